package rules

import (
	"reflect"
	"slices"
	"time"
	"unsafe"

	"github.com/expr-lang/expr/ast"

	"riskd/event"
	"riskd/features"
)

// Native predicates.
//
// Most rules are a few comparisons of an event or feature field with a
// constant, joined by && and ||. Running those in expr's VM costs a
// reflect field fetch per operand and an interface box per comparison; as
// Go closures over field offsets they cost a load and a compare. compileNative
// builds such a closure from the rule's syntax tree, the one tree that
// expr then type-checks and compiles (a rule that fails there is rejected,
// closure and all), and gives up (leaving the rule to the VM) on any node
// it does not know, so the two can only differ through a bug, which
// TestNativeRulesAgreeWithTheVM looks for over generated traffic.
//
// What it knows: &&, ||, ! (and their word forms); ==, !=, <, <=, >, >= on
// numbers (int compared as int, int with float as float, as expr does) and
// == and != on strings; +, -, * and / on numbers (/ always float, as in
// expr); x in ["a", ...] for a string x and constant string elements;
// in_list("name", string); hour(int); the helpers attr_num, attr_str,
// ratio, zscore and local_hour (helpers.go); number, string and bool constants;
// and reads of bool, int, int64, float64 and string fields of the Env by
// their expr names, window features included. None of these can fail at
// run time, so a native rule never errors: an expression that could (a map
// index, an integer %, which fails on zero, a call of haversine) stays in
// the VM, which counts its errors as before.

// predicate is a compiled rule expression.
type predicate func(*Env) bool

// valKind is the type of a native operand.
type valKind uint8

const (
	kindInt valKind = iota + 1
	kindFloat
	kindBool
	kindString
)

// operand is a native sub-expression: a constant, a field of the Env at an
// offset, or a computed value. Exactly one getter matching kind is set,
// except for constants, which carry their value instead.
type operand struct {
	kind    valKind
	isConst bool
	i       int
	f       float64
	s       string
	b       bool
	// field: an Env field read at off; goKind tells int from int64.
	field  bool
	off    uintptr
	goKind reflect.Kind
	// computed values.
	getInt   func(*Env) int
	getFloat func(*Env) float64
	getStr   func(*Env) string
	getBool  func(*Env) bool
}

func fieldPtr(e *Env, off uintptr) unsafe.Pointer { return unsafe.Add(unsafe.Pointer(e), off) }

// intFn returns the operand as an int getter (kind must be kindInt).
func (o *operand) intFn() func(*Env) int {
	switch {
	case o.isConst:
		k := o.i
		return func(*Env) int { return k }
	case o.field && o.goKind == reflect.Int64:
		off := o.off
		return func(e *Env) int { return int(*(*int64)(fieldPtr(e, off))) }
	case o.field:
		off := o.off
		return func(e *Env) int { return *(*int)(fieldPtr(e, off)) }
	}
	return o.getInt
}

// floatFn returns a numeric operand converted to float64, as expr converts
// an int meeting a float.
func (o *operand) floatFn() func(*Env) float64 {
	if o.kind == kindInt {
		if o.isConst {
			k := float64(o.i)
			return func(*Env) float64 { return k }
		}
		get := o.intFn()
		return func(e *Env) float64 { return float64(get(e)) }
	}
	switch {
	case o.isConst:
		k := o.f
		return func(*Env) float64 { return k }
	case o.field:
		off := o.off
		return func(e *Env) float64 { return *(*float64)(fieldPtr(e, off)) }
	}
	return o.getFloat
}

func (o *operand) strFn() func(*Env) string {
	switch {
	case o.isConst:
		k := o.s
		return func(*Env) string { return k }
	case o.field:
		off := o.off
		return func(e *Env) string { return *(*string)(fieldPtr(e, off)) }
	}
	return o.getStr
}

func (o *operand) boolFn() predicate {
	switch {
	case o.isConst:
		k := o.b
		return func(*Env) bool { return k }
	case o.field:
		off := o.off
		return func(e *Env) bool { return *(*bool)(fieldPtr(e, off)) }
	}
	return o.getBool
}

// nativeBuilder compiles one rule; it holds what resolving names needs.
type nativeBuilder struct {
	feats FeatureIndex
	lists map[string]map[string]struct{}
}

// compileNative returns a native predicate for the expression tree root,
// or nil if it uses anything the builder does not know. root is the tree
// as parsed, before expr's checker runs the patcher over it: the builder
// resolves f.<window feature> itself and only reads the tree. typed is
// the same predicate without the event.type conjunct that typesOf found,
// for events whose type is known to be one of the rule's Types (the
// Evaluator's per-type lists); it is nil when the rule has no such
// conjunct.
func compileNative(root ast.Node, feats FeatureIndex, lists map[string]map[string]struct{}) (full, typed predicate) {
	nb := &nativeBuilder{feats: feats, lists: lists}
	if feats == nil {
		nb.feats = noFeatures{}
	}
	full, ok := nb.pred(root)
	if !ok {
		return nil, nil
	}
	if typesOf(root) == nil {
		return full, nil
	}
	// typesOf takes the first type test met left to right in the top &&
	// chain; flattening the chain keeps that order, so it is the first
	// part with types. The rest can be compiled: full was.
	var nodes []ast.Node
	flattenAnd(root, &nodes)
	var parts []predicate
	dropped := false
	for _, n := range nodes {
		if !dropped && typesOf(n) != nil {
			dropped = true
			continue
		}
		p, _ := nb.pred(n)
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return full, func(*Env) bool { return true }
	}
	return full, joinPredicates(parts, true)
}

// flattenAnd appends the conjuncts of a && chain to nodes, in order.
func flattenAnd(n ast.Node, nodes *[]ast.Node) {
	if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "&&" || b.Operator == "and") {
		flattenAnd(b.Left, nodes)
		flattenAnd(b.Right, nodes)
		return
	}
	*nodes = append(*nodes, n)
}

// pred compiles a bool-valued node.
func (nb *nativeBuilder) pred(n ast.Node) (predicate, bool) {
	switch n := n.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			and := n.Operator == "&&" || n.Operator == "and"
			var parts []predicate
			if !nb.chain(n, and, &parts) {
				return nil, false
			}
			return joinPredicates(parts, and), true
		case "==", "!=", "<", "<=", ">", ">=":
			l, ok := nb.operand(n.Left)
			if !ok {
				return nil, false
			}
			r, ok := nb.operand(n.Right)
			if !ok {
				return nil, false
			}
			return compare(n.Operator, l, r)
		case "in":
			return nb.in(n)
		}
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			p, ok := nb.pred(n.Node)
			if !ok {
				return nil, false
			}
			return func(e *Env) bool { return !p(e) }, true
		}
	case *ast.CallNode:
		return nb.inList(n)
	}
	o, ok := nb.operand(n)
	if !ok || o.kind != kindBool {
		return nil, false
	}
	return o.boolFn(), true
}

// chain flattens a run of the same boolean operator into parts, in order.
func (nb *nativeBuilder) chain(n ast.Node, and bool, parts *[]predicate) bool {
	if b, ok := n.(*ast.BinaryNode); ok {
		isAnd := b.Operator == "&&" || b.Operator == "and"
		isOr := b.Operator == "||" || b.Operator == "or"
		if (and && isAnd) || (!and && isOr) {
			return nb.chain(b.Left, and, parts) && nb.chain(b.Right, and, parts)
		}
	}
	p, ok := nb.pred(n)
	if ok {
		*parts = append(*parts, p)
	}
	return ok
}

// joinPredicates short-circuits left to right, as expr does.
func joinPredicates(parts []predicate, and bool) predicate {
	switch {
	case len(parts) == 1:
		return parts[0]
	case len(parts) == 2 && and:
		a, b := parts[0], parts[1]
		return func(e *Env) bool { return a(e) && b(e) }
	case len(parts) == 2:
		a, b := parts[0], parts[1]
		return func(e *Env) bool { return a(e) || b(e) }
	case and:
		return func(e *Env) bool {
			for _, p := range parts {
				if !p(e) {
					return false
				}
			}
			return true
		}
	}
	return func(e *Env) bool {
		for _, p := range parts {
			if p(e) {
				return true
			}
		}
		return false
	}
}

// in compiles x in ["a", "b"] for a string x and constant string elements.
func (nb *nativeBuilder) in(n *ast.BinaryNode) (predicate, bool) {
	arr, ok := n.Right.(*ast.ArrayNode)
	if !ok {
		return nil, false
	}
	x, ok := nb.operand(n.Left)
	if !ok || x.kind != kindString {
		return nil, false
	}
	set := make([]string, len(arr.Nodes))
	for i, el := range arr.Nodes {
		s, ok := el.(*ast.StringNode)
		if !ok {
			return nil, false
		}
		set[i] = s.Value
	}
	get := x.strFn()
	return func(e *Env) bool {
		v := get(e)
		for _, s := range set {
			if v == s {
				return true
			}
		}
		return false
	}, true
}

// inList compiles in_list("name", x) against the rule set's lists, which
// are fixed for the life of the compiled set.
func (nb *nativeBuilder) inList(n *ast.CallNode) (predicate, bool) {
	callee, ok := n.Callee.(*ast.IdentifierNode)
	if !ok || callee.Value != "in_list" || len(n.Arguments) != 2 {
		return nil, false
	}
	name, ok := n.Arguments[0].(*ast.StringNode)
	if !ok {
		return nil, false
	}
	list, ok := nb.lists[name.Value]
	if !ok {
		return nil, false
	}
	x, ok := nb.operand(n.Arguments[1])
	if !ok || x.kind != kindString {
		return nil, false
	}
	get := x.strFn()
	return func(e *Env) bool {
		_, ok := list[get(e)]
		return ok
	}, true
}

// operand compiles a value node.
func (nb *nativeBuilder) operand(n ast.Node) (operand, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return operand{kind: kindInt, isConst: true, i: n.Value}, true
	case *ast.FloatNode:
		return operand{kind: kindFloat, isConst: true, f: n.Value}, true
	case *ast.StringNode:
		return operand{kind: kindString, isConst: true, s: n.Value}, true
	case *ast.BoolNode:
		return operand{kind: kindBool, isConst: true, b: n.Value}, true
	case *ast.UnaryNode:
		if n.Operator != "-" {
			break
		}
		o, ok := nb.operand(n.Node)
		if !ok || !o.isConst {
			break
		}
		switch o.kind {
		case kindInt:
			o.i = -o.i
			return o, true
		case kindFloat:
			o.f = -o.f
			return o, true
		}
	case *ast.MemberNode:
		return nb.member(n)
	case *ast.BinaryNode:
		return nb.arith(n)
	case *ast.CallNode:
		return nb.call(n)
	}
	return operand{}, false
}

// call compiles hour(int) and the helpers of helpers.go, with the
// arguments the rule wrote (the patcher has not rewritten them here).
func (nb *nativeBuilder) call(n *ast.CallNode) (operand, bool) {
	callee, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return operand{}, false
	}
	if callee.Value == "local_hour" && isEventArg(n.Arguments) {
		return operand{kind: kindInt, getInt: func(e *Env) int {
			return event.LocalHour(e.Event.TS, e.Event.TZ)
		}}, true
	}
	args := make([]operand, len(n.Arguments))
	for i, a := range n.Arguments {
		if args[i], ok = nb.operand(a); !ok {
			return operand{}, false
		}
	}
	numeric := func(from int) bool {
		for _, a := range args[from:] {
			if a.kind != kindInt && a.kind != kindFloat {
				return false
			}
		}
		return true
	}
	switch {
	case callee.Value == "hour" && len(args) == 1 && args[0].kind == kindInt:
		get := args[0].intFn()
		return operand{kind: kindInt, getInt: func(e *Env) int {
			return time.UnixMilli(int64(get(e))).UTC().Hour()
		}}, true
	case callee.Value == "local_hour" && len(args) == 0:
		return operand{kind: kindInt, getInt: func(e *Env) int {
			return event.LocalHour(e.Event.TS, e.Event.TZ)
		}}, true
	case callee.Value == "attr_num" && len(args) == 2 && args[0].isConst && args[0].kind == kindString && numeric(1):
		key, def := args[0].s, args[1].floatFn()
		return operand{kind: kindFloat, getFloat: func(e *Env) float64 {
			return AttrNum(e.Event.Attrs, key, def(e))
		}}, true
	case callee.Value == "attr_str" && len(args) == 2 && args[0].isConst && args[0].kind == kindString &&
		args[1].kind == kindString:
		key, def := args[0].s, args[1].strFn()
		return operand{kind: kindString, getStr: func(e *Env) string {
			return AttrStr(e.Event.Attrs, key, def(e))
		}}, true
	case callee.Value == "ratio" && len(args) == 2 && numeric(0):
		a, b := args[0].floatFn(), args[1].floatFn()
		return operand{kind: kindFloat, getFloat: func(e *Env) float64 { return Ratio(a(e), b(e)) }}, true
	case callee.Value == "zscore" && len(args) == 3 && numeric(0):
		x, m, sd := args[0].floatFn(), args[1].floatFn(), args[2].floatFn()
		return operand{kind: kindFloat, getFloat: func(e *Env) float64 { return ZScore(x(e), m(e), sd(e)) }}, true
	}
	return operand{}, false
}

// member resolves a.b.c to a field of the Env. f.<window feature> reads
// its slot of W, as the patcher rewrites it for expr.
func (nb *nativeBuilder) member(n *ast.MemberNode) (operand, bool) {
	var path []string
	var node ast.Node = n
	for {
		m, ok := node.(*ast.MemberNode)
		if !ok {
			break
		}
		s, ok := m.Property.(*ast.StringNode)
		if !ok || m.Optional || m.Method {
			return operand{}, false
		}
		path = append(path, s.Value)
		node = m.Node
	}
	root, ok := node.(*ast.IdentifierNode)
	if !ok {
		return operand{}, false
	}
	path = append(path, root.Value)
	slices.Reverse(path)
	if len(path) == 2 && path[0] == "f" {
		if _, ok := profileFields[path[1]]; !ok {
			slot, ok := nb.feats.Index(path[1])
			if !ok || slot < 0 || slot >= features.MaxWindows {
				return operand{}, false
			}
			off := unsafe.Offsetof(Env{}.W) + uintptr(slot)*unsafe.Sizeof(float64(0))
			return operand{kind: kindFloat, field: true, off: off, goKind: reflect.Float64}, true
		}
	}
	return envField(path)
}

// envField finds the Env field an expr path names, by expr tags as expr
// resolves them, and returns it as an operand read at its offset.
func envField(path []string) (operand, bool) {
	t := reflect.TypeFor[Env]()
	var off uintptr
	for i, name := range path {
		if name == windowsName || t.Kind() != reflect.Struct {
			return operand{}, false
		}
		f, ok := fieldByExprName(t, name)
		if !ok {
			return operand{}, false
		}
		off += f.Offset
		t = f.Type
		if i < len(path)-1 {
			continue
		}
		o := operand{field: true, off: off, goKind: t.Kind()}
		switch t.Kind() {
		case reflect.Int, reflect.Int64:
			o.kind = kindInt
		case reflect.Float64:
			o.kind = kindFloat
		case reflect.Bool:
			o.kind = kindBool
		case reflect.String:
			o.kind = kindString
		default:
			return operand{}, false
		}
		// Named types (Action, Mode, ...) would need expr's conversions.
		if t.PkgPath() != "" {
			return operand{}, false
		}
		return o, true
	}
	return operand{}, false
}

// fieldByExprName finds an exported field of struct t by its expr tag, or by
// its Go name when it has none, skipping fields tagged "-".
func fieldByExprName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Anonymous {
			continue
		}
		tag := f.Tag.Get("expr")
		if tag == "-" {
			continue
		}
		if tag == name || (tag == "" && f.Name == name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// arith compiles +, -, * and / on numbers with expr's typing: int op int is
// an int (wrapping on overflow, as in Go), anything with a float is a
// float, and / is always a float division.
func (nb *nativeBuilder) arith(n *ast.BinaryNode) (operand, bool) {
	switch n.Operator {
	case "+", "-", "*", "/":
	default:
		return operand{}, false
	}
	l, ok := nb.operand(n.Left)
	if !ok || (l.kind != kindInt && l.kind != kindFloat) {
		return operand{}, false
	}
	r, ok := nb.operand(n.Right)
	if !ok || (r.kind != kindInt && r.kind != kindFloat) {
		return operand{}, false
	}
	if l.kind == kindInt && r.kind == kindInt && n.Operator != "/" {
		a, b := l.intFn(), r.intFn()
		var get func(*Env) int
		switch n.Operator {
		case "+":
			get = func(e *Env) int { return a(e) + b(e) }
		case "-":
			get = func(e *Env) int { return a(e) - b(e) }
		case "*":
			get = func(e *Env) int { return a(e) * b(e) }
		}
		return operand{kind: kindInt, getInt: get}, true
	}
	a, b := l.floatFn(), r.floatFn()
	var get func(*Env) float64
	switch {
	case n.Operator == "*" && l.isConst: // the common 10 * f.avg_amount_30d
		k := a(nil)
		get = func(e *Env) float64 { return k * b(e) }
	case n.Operator == "+":
		get = func(e *Env) float64 { return a(e) + b(e) }
	case n.Operator == "-":
		get = func(e *Env) float64 { return a(e) - b(e) }
	case n.Operator == "*":
		get = func(e *Env) float64 { return a(e) * b(e) }
	case n.Operator == "/":
		get = func(e *Env) float64 { return a(e) / b(e) }
	}
	return operand{kind: kindFloat, getFloat: get}, true
}

// flipped is op with its operands swapped: 5 < x is x > 5.
var flipped = map[string]string{"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

// compare compiles l op r.
func compare(op string, l, r operand) (predicate, bool) {
	if l.isConst && !r.isConst {
		l, r, op = r, l, flipped[op]
	}
	switch {
	case l.kind == kindString && r.kind == kindString:
		if op != "==" && op != "!=" {
			return nil, false
		}
		eq := op == "=="
		if l.field && r.isConst {
			off, k := l.off, r.s
			if eq {
				return func(e *Env) bool { return *(*string)(fieldPtr(e, off)) == k }, true
			}
			return func(e *Env) bool { return *(*string)(fieldPtr(e, off)) != k }, true
		}
		a, b := l.strFn(), r.strFn()
		return func(e *Env) bool { return (a(e) == b(e)) == eq }, true
	case l.kind == kindInt && r.kind == kindInt:
		if l.field && r.isConst && l.goKind == reflect.Int64 {
			return cmpFieldConst(op, l.off, int64(r.i)), true
		}
		if l.field && r.isConst {
			return cmpFieldConst(op, l.off, r.i), true
		}
		return cmpFuncs(op, l.intFn(), r.intFn()), true
	case (l.kind == kindInt || l.kind == kindFloat) && (r.kind == kindInt || r.kind == kindFloat):
		if l.field && l.kind == kindFloat && r.isConst {
			k := r.f
			if r.kind == kindInt {
				k = float64(r.i)
			}
			return cmpFieldConst(op, l.off, k), true
		}
		return cmpFuncs(op, l.floatFn(), r.floatFn()), true
	}
	return nil, false
}

// cmpFieldConst compares the T at offset off of the Env with k: one load
// and one compare per call.
func cmpFieldConst[T int | int64 | float64](op string, off uintptr, k T) predicate {
	switch op {
	case "==":
		return func(e *Env) bool { return *(*T)(fieldPtr(e, off)) == k }
	case "!=":
		return func(e *Env) bool { return *(*T)(fieldPtr(e, off)) != k }
	case "<":
		return func(e *Env) bool { return *(*T)(fieldPtr(e, off)) < k }
	case "<=":
		return func(e *Env) bool { return *(*T)(fieldPtr(e, off)) <= k }
	case ">":
		return func(e *Env) bool { return *(*T)(fieldPtr(e, off)) > k }
	}
	return func(e *Env) bool { return *(*T)(fieldPtr(e, off)) >= k }
}

func cmpFuncs[T int | float64](op string, a, b func(*Env) T) predicate {
	switch op {
	case "==":
		return func(e *Env) bool { return a(e) == b(e) }
	case "!=":
		return func(e *Env) bool { return a(e) != b(e) }
	case "<":
		return func(e *Env) bool { return a(e) < b(e) }
	case "<=":
		return func(e *Env) bool { return a(e) <= b(e) }
	case ">":
		return func(e *Env) bool { return a(e) > b(e) }
	}
	return func(e *Env) bool { return a(e) >= b(e) }
}
