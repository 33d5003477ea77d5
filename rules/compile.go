package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"
	"unsafe"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"riskd/event"
	"riskd/features"
)

// windowsName is the hidden Env name window features are rewritten to.
const windowsName = "__w"

// profileFields maps each features.Profile expr name to its field index.
var profileFields = func() map[string]int {
	m := make(map[string]int)
	t := reflect.TypeFor[features.Profile]()
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("expr"); name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}()

// compiler holds what compiling one rule set needs.
type compiler struct {
	rs    *RuleSet
	feats FeatureIndex
	opts  []expr.Option
	src   []byte // the file being parsed, for positions
}

func newCompiler(rs *RuleSet, feats FeatureIndex) *compiler {
	if feats == nil {
		feats = noFeatures{}
	}
	haversine := func(params ...any) (any, error) {
		var p [4]float64
		for i := range p {
			f, ok := ToFloat(params[i])
			if !ok {
				return nil, fmt.Errorf("haversine: argument %d is %T, not a number", i+1, params[i])
			}
			p[i] = f
		}
		return Haversine(p[0], p[1], p[2], p[3]), nil
	}
	hour := func(params ...any) (any, error) {
		ms, ok := params[0].(int64)
		if !ok {
			i, ok := params[0].(int)
			if !ok {
				return nil, fmt.Errorf("hour: argument is %T, not an integer", params[0])
			}
			ms = int64(i)
		}
		return time.UnixMilli(ms).UTC().Hour(), nil
	}
	return &compiler{
		rs:    rs,
		feats: feats,
		opts: []expr.Option{
			expr.Env(Env{}),
			expr.AsBool(),
			expr.Function("haversine", haversine, new(func(float64, float64, float64, float64) float64)),
			expr.Function("hour", hour, new(func(int64) int), new(func(int) int)),
		},
	}
}

type noFeatures struct{}

func (noFeatures) Index(string) (int, bool) { return 0, false }

// ToFloat reads a number decoded from YAML or JSON (examples, test
// events) as a float64; ok is false for anything that is not a number.
func ToFloat(v any) (f float64, ok bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

// Haversine returns the great-circle distance in km between two points.
func Haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const earthKm = 6371.0
	rad := math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthKm * math.Asin(math.Min(1, math.Sqrt(a)))
}

// patcher rewrites f.<window feature> into __w[slot], records the features
// a rule reads, and checks names expr's type checker cannot: feature names
// (for a clearer message), in_list list names and the hidden __w.
type patcher struct {
	feats FeatureIndex
	lists map[string]map[string]struct{}
	used  []string
	err   *file.Error
}

func (p *patcher) fail(n ast.Node, format string, args ...any) {
	if p.err == nil {
		p.err = &file.Error{Location: n.Location(), Message: fmt.Sprintf(format, args...)}
	}
}

func (p *patcher) use(name string) {
	for _, u := range p.used {
		if u == name {
			return
		}
	}
	p.used = append(p.used, name)
}

func (p *patcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if n.Value == windowsName {
			p.fail(n, "unknown name %s", n.Value)
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || id.Value != "f" {
			return
		}
		s, ok := n.Property.(*ast.StringNode)
		if !ok {
			return
		}
		if _, ok := profileFields[s.Value]; ok {
			p.use(s.Value)
			return
		}
		slot, ok := p.feats.Index(s.Value)
		if !ok || slot < 0 || slot >= features.MaxWindows {
			p.fail(s, "unknown feature f.%s", s.Value)
			return
		}
		p.use(s.Value)
		w := &ast.IdentifierNode{Value: windowsName}
		w.SetLocation(id.Location())
		idx := &ast.IntegerNode{Value: slot}
		idx.SetLocation(s.Location())
		ast.Patch(node, &ast.MemberNode{Node: w, Property: idx})
	case *ast.CallNode:
		callee, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || callee.Value != "in_list" || len(n.Arguments) == 0 {
			return
		}
		s, ok := n.Arguments[0].(*ast.StringNode)
		if !ok {
			p.fail(n.Arguments[0], "in_list needs a constant list name")
			return
		}
		if _, ok := p.lists[s.Value]; !ok {
			p.fail(s, "unknown list %q (want a file lists/%s.txt)", s.Value, s.Value)
		}
	}
}

func (c *compiler) compileRule(pr *parsedRule) error {
	r := pr.rule
	p := &patcher{feats: c.feats, lists: c.rs.Lists}
	opts := append(c.opts[:len(c.opts):len(c.opts)], expr.Patch(p))
	prog, err := expr.Compile(r.When, opts...)
	if p.err != nil {
		return c.exprError(pr, p.err)
	}
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return c.exprError(pr, fe)
		}
		return pr.errAt(pr.whenNode, "%v", err)
	}
	r.program = prog
	r.Features = p.used
	r.Types = eventTypes(r.When)
	r.native, r.nativeTyped = compileNative(r.When, c.feats, c.rs.Lists)
	return nil
}

func (c *compiler) exprError(pr *parsedRule, fe *file.Error) *CompileError {
	line, col := exprPos(pr.whenNode, c.src, fe.From)
	return &CompileError{RuleID: pr.rule.ID, File: pr.rule.File, Line: line, Col: col, Msg: fe.Message}
}

// eventTypes returns the event types a rule can match if its expression is
// a && chain with a conjunct event.type == "x" or event.type in ["x", ...],
// or nil if it may match any type.
func eventTypes(when string) []string {
	tree, err := parser.Parse(when)
	if err != nil {
		return nil
	}
	return typesOf(tree.Node)
}

func typesOf(n ast.Node) []string {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return nil
	}
	switch b.Operator {
	case "&&", "and":
		if t := typesOf(b.Left); t != nil {
			return t
		}
		return typesOf(b.Right)
	case "==":
		if isEventType(b.Left) {
			if s, ok := b.Right.(*ast.StringNode); ok {
				return []string{s.Value}
			}
		}
		if isEventType(b.Right) {
			if s, ok := b.Left.(*ast.StringNode); ok {
				return []string{s.Value}
			}
		}
	case "in":
		arr, ok := b.Right.(*ast.ArrayNode)
		if !ok || !isEventType(b.Left) || len(arr.Nodes) == 0 {
			return nil
		}
		var out []string
		for _, e := range arr.Nodes {
			s, ok := e.(*ast.StringNode)
			if !ok {
				return nil
			}
			out = append(out, s.Value)
		}
		return out
	}
	return nil
}

func isEventType(n ast.Node) bool {
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional {
		return false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	s, ok2 := m.Property.(*ast.StringNode)
	return ok && ok2 && id.Value == "event" && s.Value == "type"
}

// index builds the per-event-type rule lists, keeping rule order.
func (rs *RuleSet) index() {
	rs.byType = make(map[string][]*Rule)
	for _, r := range rs.Rules {
		for _, t := range r.Types {
			rs.byType[t] = nil
		}
	}
	for _, r := range rs.Rules {
		if r.Types == nil {
			rs.anyType = append(rs.anyType, r)
		}
		for t := range rs.byType {
			if r.Types == nil || contains(r.Types, t) {
				rs.byType[t] = append(rs.byType[t], r)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// runExamples checks each example of a rule; the first failure rejects it.
func (c *compiler) runExamples(pr *parsedRule) error {
	r := pr.rule
	var dec event.Decoder
	for i, ex := range pr.examples {
		env, err := c.exampleEnv(r, i, ex, &dec)
		if err != nil {
			return pr.errAt(ex.node, "example %d: %v", i+1, err)
		}
		want := true
		switch ex.Expect {
		case "", "match":
		case "no_match":
			want = false
		default:
			return pr.errAt(ex.node, "example %d: expect must be match or no_match, not %q", i+1, ex.Expect)
		}
		out, err := vm.Run(r.program, env)
		if err != nil {
			return pr.errAt(ex.node, "example %d: run-time error: %v", i+1, err)
		}
		if got, _ := out.(bool); got != want {
			return pr.errAt(ex.node, "example %d: expected %s, got %s", i+1, matchWord(want), matchWord(got))
		}
	}
	return nil
}

func matchWord(b bool) string {
	if b {
		return "match"
	}
	return "no_match"
}

func (c *compiler) exampleEnv(r *Rule, i int, ex exampleSpec, dec *event.Decoder) (*Env, error) {
	m := make(map[string]any, len(ex.Event)+4)
	for k, v := range ex.Event {
		m[k] = v
	}
	defaults := map[string]any{
		"event_id":   fmt.Sprintf("example-%s-%d", r.ID, i+1),
		"account_id": "example-account",
		"ts":         int64(1700000000000),
		"type":       "payment",
	}
	if len(r.Types) > 0 {
		defaults["type"] = r.Types[0]
	}
	for k, v := range defaults {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("event: %v", err)
	}
	env := &Env{Account: ex.Account}
	if err := dec.Decode(raw, &env.Event); err != nil {
		return nil, fmt.Errorf("event: %v", err)
	}
	env.Event = env.Event.Clone()
	pv := reflect.ValueOf(&env.F).Elem()
	for name, v := range ex.F {
		if fi, ok := profileFields[name]; ok {
			fv := pv.Field(fi)
			switch fv.Kind() {
			case reflect.Bool:
				b, ok := v.(bool)
				if !ok {
					return nil, fmt.Errorf("f.%s must be true or false", name)
				}
				fv.SetBool(b)
			default:
				f, ok := ToFloat(v)
				if !ok {
					return nil, fmt.Errorf("f.%s must be a number", name)
				}
				fv.SetFloat(f)
			}
			continue
		}
		slot, ok := c.feats.Index(name)
		if !ok || slot < 0 || slot >= features.MaxWindows {
			return nil, fmt.Errorf("unknown feature f.%s", name)
		}
		f, ok := ToFloat(v)
		if !ok {
			return nil, fmt.Errorf("f.%s must be a number", name)
		}
		env.W[slot] = f
	}
	env.InList = c.rs.inList
	return env, nil
}

// ---- native predicates
//
// Most rules are a few comparisons of an event or feature field with a
// constant, joined by && and ||. Running those in expr's VM costs a
// reflect field fetch per operand and an interface box per comparison; as
// Go closures over field offsets they cost a load and a compare. compileNative
// builds such a closure from the rule's syntax tree after expr has compiled
// and type-checked it, and gives up (leaving the rule to the VM) on any
// node it does not know, so the two can only differ through a bug, which
// TestNativeRulesAgreeWithTheVM looks for over generated traffic.
//
// What it knows: &&, ||, ! (and their word forms); ==, !=, <, <=, >, >= on
// numbers (int compared as int, int with float as float, as expr does) and
// == and != on strings; +, -, * and / on numbers (/ always float, as in
// expr); x in ["a", ...] for a string x and constant string elements;
// in_list("name", string); hour(int); number, string and bool constants;
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

// compileNative returns a native predicate for the expression when, or nil
// if it uses anything the builder does not know. typed is the same
// predicate without the event.type conjunct that eventTypes found, for
// events whose type is known to be one of the rule's Types (the Evaluator's
// per-type lists); it is nil when the rule has no such conjunct.
func compileNative(when string, feats FeatureIndex, lists map[string]map[string]struct{}) (full, typed predicate) {
	tree, err := parser.Parse(when)
	if err != nil {
		return nil, nil
	}
	nb := &nativeBuilder{feats: feats, lists: lists}
	if feats == nil {
		nb.feats = noFeatures{}
	}
	full, ok := nb.pred(tree.Node)
	if !ok {
		return nil, nil
	}
	if typesOf(tree.Node) == nil {
		return full, nil
	}
	// typesOf takes the first type test met left to right in the top &&
	// chain; flattening the chain keeps that order, so it is the first
	// part with types. The rest can be compiled: full was.
	var nodes []ast.Node
	flattenAnd(tree.Node, &nodes)
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
		callee, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || callee.Value != "hour" || len(n.Arguments) != 1 {
			break
		}
		x, ok := nb.operand(n.Arguments[0])
		if !ok || x.kind != kindInt {
			break
		}
		get := x.intFn()
		return operand{kind: kindInt, getInt: func(e *Env) int {
			return time.UnixMilli(int64(get(e))).UTC().Hour()
		}}, true
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
