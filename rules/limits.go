package rules

import (
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"

	"riskd/event"
)

// Limits on rule expressions. A rule over one of them is refused with a
// *CompileError that names the limit; the reference rules stay far below
// each (the longest is 148 bytes and 31 nodes, none loops). All but
// RunMemoryBudget and RunStepBudget are checked when the set compiles, so
// they cost nothing per event; those two are budgets of each VM run, and a
// run over one fails as the rule's error.
const (
	// MaxExprBytes bounds the length of a rule's when, in bytes. It is
	// checked before the expression is parsed and is what bounds the
	// recursion of expr's recursive-descent parser, every level of which
	// consumes at least one token of the source.
	MaxExprBytes = 4096
	// MaxExprDepth bounds how deep an expression nests, counted lexically
	// before parsing: each open bracket ((, [, {) and each prefix operator
	// (!, not, unary - and +) in a run of them is a level. These are what
	// nest one level per byte or two, the inputs that overflowed the
	// parser's stack; the nesting of other constructs (a ? b : c ? ...,
	// a ** b ** ..., let chains) costs more source per level and is
	// bounded by MaxExprBytes while parsing and by MaxExprNodes after.
	MaxExprDepth = 64
	// MaxExprNodes bounds the nodes of the syntax tree (expr's MaxNodes,
	// enforced by its parser): names, constants, operators and calls.
	MaxExprNodes = 1000
	// MaxStringLiteral bounds a string literal, in bytes.
	MaxStringLiteral = 256
	// MaxListLiteral bounds the elements of an array literal and the
	// entries of a map literal; long lists belong in lists/NAME.txt.
	MaxListLiteral = 100
	// MaxRange bounds the elements of a range a..b, whose bounds must be
	// integer constants.
	MaxRange = 1000
	// MaxSteps bounds the work a rule can do on one event, as the static
	// bound described under "Work" below. Accepted rules near it took 4 to
	// 12 ms of VM time on an event built to reach their bound (a typical
	// decision takes 0.2 ms); the loops it refuses took seconds.
	MaxSteps = 1 << 21
	// DynamicLen is the bound the work walk puts on a string or a list
	// from the event, or built from one (split(event.attrs["tags"], ","),
	// a map or filter of it): every such value comes from an event the
	// decoder accepted, so it has at most that many bytes or elements.
	DynamicLen = event.DefaultMaxBytes
	// RunMemoryBudget is the vm.VM memory budget of one rule run (expr's
	// default is 1e6): the elements of the arrays, maps and ranges the
	// rule builds, plus the bytes of repeat, summed over the run. A run
	// over it fails with "memory budget exceeded", which Eval counts as
	// the rule's error. It does not see strings built by + or lower;
	// MaxSteps bounds those.
	RunMemoryBudget = 1 << 15
	// RunStepBudget bounds the loop iterations of one rule run: every
	// iteration of every loop builtin, nested ones included, ticks a
	// counter the Evaluator resets before each VM rule (see addTicks), and
	// the tick past the budget fails the run with "rule over its run-time
	// budget of 10000 iterations", which Eval counts as the rule's error.
	// MaxSteps still admits a loop over each character of the largest
	// event (DynamicLen, 65536), and with lower(#) in its body such a loop
	// took 15 ms; 10000 iterations of it take about 2.5 ms. Rules have
	// reason to loop over a few tags or items of an event, or over a
	// constant range of at most MaxRange (1000) elements: the loops of
	// limits_test.go's accepted examples run at most 100 iterations, and
	// no reference rule loops.
	RunStepBudget = 10000
)

// Work.
//
// The work walk bounds, before a rule is ever run, the steps it can take
// on the largest event: a step is a node evaluated, an element visited or
// a byte read or built. A loop (all, any, none, one, filter, map, count,
// sum, find, findIndex, findLast, findLastIndex, groupBy, sortBy, reduce)
// costs its collection plus its body's cost once per element, so nested
// loops multiply. A collection's length is bounded by what it is: a range
// by its size, an array literal by its length, anything else by
// DynamicLen. Sizes of strings are tracked too, because a byte-sized
// operation repeated per element is as costly as a nested loop: lower of
// a 64 KiB attribute inside a loop over its characters is 4 GB of work, and
// an accumulator that doubles each step is 2^64 bytes after 64 steps.
// Where a loop's body depends on the size of its element (lower(#) over
// split(s, ",")), the body is bounded at an empty element and at the
// largest one and charged along the chord between them, which for costs
// that grow convexly with the element's size (the walk adds, multiplies
// and takes maxima) bounds the sum over elements whose sizes add up to the
// collection's total: the work of lower(#) over split(s, ",") is the size
// of s, not its square. A step is a coarse unit: calls and loop starts are
// weighted (callSteps, loopSteps) so that a step is roughly 5 to 15 ns of
// VM time, but it is a bound on work, not a timing.

// callSteps and loopSteps are the steps of calling a function or builtin
// (the VM boxes its arguments, and most builtins allocate) and of starting
// a loop (a scope, the collection read through reflect), on top of the
// arguments, elements and bytes they handle. They make a step roughly one
// comparison's worth of VM time.
const (
	callSteps = 8
	loopSteps = 32
	inSteps   = 4 // per element of the list x in list scans
)

// sortFactor is the comparisons per element charged for a sort: the
// log2 of a list twice DynamicLen, beyond which the steps are over MaxSteps
// anyway.
const sortFactor = 17

// costCap caps costs and sizes so that nested loops and doubling
// accumulators stay finite floats.
const costCap = 1e30

// maxAmortized is how many nested loops are bounded at two element sizes;
// deeper ones are bounded at the largest (a sound, coarser bound), so that
// the walk visits each node at most 2^maxAmortized times per loop nest.
const maxAmortized = 3

// maxVisits and maxReduceSteps bound the walk itself.
const (
	maxVisits      = 1 << 20
	maxReduceSteps = 4096
)

// loopBuiltins are expr's builtins that run a predicate per element.
var loopBuiltins = map[string]bool{
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true,
	"count": true, "sum": true, "find": true, "findIndex": true, "findLast": true,
	"findLastIndex": true, "groupBy": true, "sortBy": true, "reduce": true,
}

// tickName is the hidden Env function each loop iteration calls.
const tickName = "__tick"

var tickType = reflect.TypeFor[func() bool]()

// addTicks makes every iteration of every loop builtin in the tree call
// __tick (Env.Tick), which counts it against RunStepBudget: each
// predicate body P becomes the sequence (__tick(); P), whose value is P's,
// and count(list) and sum(list) get the predicate (__tick(); #). It runs
// on the checked, optimised tree, so the work walk and the optimiser
// never see the ticks, and it types the nodes it adds as the checker
// would: __tick is a func() bool, which the VM calls without reflection
// (OpCallTyped). A tree without loops, every native rule's among them, is
// left as it is.
func addTicks(root *ast.Node) {
	ast.Walk(root, tickPatcher{})
}

type tickPatcher struct{}

func (tickPatcher) Visit(node *ast.Node) {
	n, ok := (*node).(*ast.BuiltinNode)
	if !ok || !loopBuiltins[n.Name] {
		return
	}
	switch len(n.Arguments) {
	case 1:
		if n.Name == "count" || n.Name == "sum" {
			elem := &ast.PointerNode{}
			elem.SetLocation(n.Location())
			body := &ast.PredicateNode{Node: tickThen(elem, n)}
			body.SetLocation(n.Location())
			n.Arguments = append(n.Arguments, body)
		}
	case 2, 3:
		if p, ok := n.Arguments[1].(*ast.PredicateNode); ok {
			p.Node = tickThen(p.Node, n)
		}
	}
}

// tickThen returns the sequence (__tick(); body), placed at loop so that
// a run over the budget points at the loop.
func tickThen(body ast.Node, loop ast.Node) ast.Node {
	fn := &ast.IdentifierNode{Value: tickName}
	fn.SetType(tickType)
	fn.SetLocation(loop.Location())
	call := &ast.CallNode{Callee: fn}
	call.SetType(tickType.Out(0))
	call.SetLocation(loop.Location())
	seq := &ast.SequenceNode{Nodes: []ast.Node{call, body}}
	seq.SetNature(*body.Nature())
	seq.SetLocation(body.Location())
	return seq
}

// checkSource applies the limits checked before parsing to a rule's when.
// The position of its error is the start of the expression.
func checkSource(src string) *file.Error {
	if d := nesting(src); d > MaxExprDepth {
		return &file.Error{Message: fmt.Sprintf("expression nests %d deep, limit is %d", d, MaxExprDepth)}
	}
	if len(src) > MaxExprBytes {
		return &file.Error{Message: fmt.Sprintf("expression is %d bytes long, limit is %d", len(src), MaxExprBytes)}
	}
	return nil
}

// nodeLimitMessage is how expr's parser reports a tree over MaxNodes.
const nodeLimitMessage = "compilation failed: expression exceeds maximum allowed nodes"

// nesting returns how deep src nests, read lexically without parsing: an
// open bracket opens a level that its closing bracket ends, and a prefix
// operator one that its operand ends. It keeps at most MaxExprDepth+1
// brackets' worth of state, so a huge input costs no memory; past that
// depth it may over-count prefix operators, which only matters once the
// limit is exceeded anyway.
func nesting(src string) int {
	var (
		depth, deepest int
		prefix         int   // prefix operators waiting for their operand
		saved          []int // prefix before each open bracket, innermost last
		unsaved        int   // open brackets beyond those in saved
		operand        bool  // the last token ends an operand, so + and - are binary
		name           bool  // the last token is . or ?., so a word is a name
	)
	endOperand := func() {
		depth -= prefix
		prefix = 0
		operand = true
	}
	for i := 0; i < len(src); {
		c := src[i]
		var next byte
		if i+1 < len(src) {
			next = src[i+1]
		}
		wasName := name
		name = false
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			name = wasName
			i++
		case c == '"' || c == '\'':
			i = skipQuoted(src, i)
			endOperand()
		case c == '`':
			i++
			for i < len(src) && src[i] != '`' {
				i++
			}
			i++
			endOperand()
		case c == '/' && next == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			name = wasName
		case c == '/' && next == '*':
			i += 2
			for i < len(src) && !(src[i] == '*' && i+1 < len(src) && src[i+1] == '/') {
				i++
			}
			i += 2
			name = wasName
		case isDigit(c) || (c == '.' && isDigit(next)):
			i = skipNumber(src, i)
			endOperand()
		case isWordByte(c):
			j := i
			for j < len(src) && (isWordByte(src[j]) || isDigit(src[j])) {
				j++
			}
			word := src[i:j]
			i = j
			switch {
			case wasName:
				endOperand()
			case word == "not" && !operand:
				prefix++
				depth++
			case word == "not", word == "and", word == "or", word == "in", word == "matches", word == "contains",
				word == "startsWith", word == "endsWith", word == "let", word == "if", word == "else":
				operand = false
			default:
				endOperand()
			}
		case c == '(' || c == '[' || c == '{':
			if len(saved) <= MaxExprDepth {
				saved = append(saved, prefix)
			} else {
				unsaved++
			}
			prefix = 0
			depth++
			operand = false
			i++
		case c == ')' || c == ']' || c == '}':
			depth -= prefix
			prefix = 0
			switch n := len(saved); {
			case unsaved > 0:
				unsaved--
				depth--
			case n > 0:
				depth -= 1 + saved[n-1]
				saved = saved[:n-1]
			}
			operand = true
			i++
		case c == '#':
			i++
			for i < len(src) && (isWordByte(src[i]) || isDigit(src[i])) {
				i++
			}
			endOperand()
		case c == '.' && next != '.':
			name = true
			operand = false
			i++
		case c == '?' && next == '.':
			name = true
			operand = false
			i += 2
		case (c == '!' && next != '=') || ((c == '-' || c == '+') && !operand):
			prefix++
			depth++
			operand = false
			i++
		default:
			operand = false
			i++
		}
		deepest = max(deepest, depth)
	}
	return deepest
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isWordByte reports whether c can start a name: a letter, _ or $, or a
// byte of a multi-byte UTF-8 character (expr allows Unicode letters).
func isWordByte(c byte) bool {
	return c == '_' || c == '$' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || c >= 0x80
}

// skipQuoted returns the index after the quoted string starting at i.
func skipQuoted(src string, i int) int {
	q := src[i]
	for i++; i < len(src); i++ {
		switch src[i] {
		case '\\':
			i++
		case q:
			return i + 1
		}
	}
	return len(src)
}

// skipNumber returns the index after the number starting at i: digits,
// letters (hex, exponents), _, a fraction (not the .. of a range) and the
// sign of an exponent.
func skipNumber(src string, i int) int {
	hex := i+1 < len(src) && src[i] == '0' && (src[i+1] == 'x' || src[i+1] == 'X')
	for i < len(src) {
		c := src[i]
		switch {
		case isDigit(c) || isWordByte(c) && c < 0x80:
		case c == '.' && !(i+1 < len(src) && src[i+1] == '.'):
		case (c == '+' || c == '-') && !hex && (src[i-1] == 'e' || src[i-1] == 'E'):
		default:
			return i
		}
		i++
	}
	return i
}

// size is what the work walk knows about a value's size. For a string, n
// bounds its bytes; for an array or map, n bounds its elements, t the sum
// of their sizes and e the size of the largest; a scalar (number, bool,
// nil, time) has n = 1. The size of a value is n + t.
type size struct {
	n, t, e float64
	scalar  bool
}

var scalarSize = size{n: 1, scalar: true}

func (s size) total() float64 { return s.n + s.t }

// touch is the steps of reading s once: nothing for a scalar.
func touch(s size) float64 {
	if s.scalar {
		return 0
	}
	return s.total()
}

// join is the bound of a value that is either a or b.
func join(a, b size) size {
	return size{n: max(a.n, b.n), t: max(a.t, b.t), e: max(a.e, b.e), scalar: a.scalar && b.scalar}
}

func within(a, b size) bool { return a.n <= b.n && a.t <= b.t && a.e <= b.e }

func capped(x float64) float64 { return min(x, costCap) }

func cappedSize(s size) size {
	return size{n: capped(s.n), t: capped(s.t), e: capped(s.e), scalar: s.scalar}
}

var timeType = reflect.TypeFor[time.Time]()

// shapeOf is the size of a value of type t whose size is at most x.
func shapeOf(t reflect.Type, x float64) size {
	if t == nil {
		return size{n: x, t: x, e: x}
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Func:
		return scalarSize
	case reflect.String:
		return size{n: x}
	case reflect.Struct:
		if t == timeType {
			return scalarSize
		}
	}
	return size{n: x, t: x, e: x}
}

// elemShape is the size of an element of the collection node, at most x.
func elemShape(coll ast.Node, x float64) size {
	if t := coll.Type(); t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		return shapeOf(t.Elem(), x)
	}
	return size{n: x, t: x, e: x}
}

// constInt reads an integer constant, signed or not.
func constInt(n ast.Node) (int, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return n.Value, true
	case *ast.UnaryNode:
		i, ok := constInt(n.Node)
		switch {
		case !ok:
		case n.Operator == "-":
			return -i, true
		case n.Operator == "+":
			return i, true
		}
	}
	return 0, false
}

// checkTree applies the limits checked on the type-checked tree: literal
// sizes, constant ranges and work. The error points at the offending node.
func checkTree(root ast.Node) *file.Error {
	w := &workWalk{}
	steps, _ := w.eval(root)
	if w.err != nil {
		return w.err
	}
	if steps > MaxSteps {
		at := w.hot
		if at == nil {
			at = root
		}
		return &file.Error{Location: at.Location(), Message: fmt.Sprintf(
			"expression may take %s steps, limit is %d (a loop runs its body once per element, "+
				"and a list or string from the event may have %d elements or bytes)",
			formatSteps(steps), MaxSteps, DynamicLen)}
	}
	return nil
}

func formatSteps(x float64) string {
	if x < 1e18 {
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strconv.FormatFloat(x, 'g', 3, 64)
}

// workWalk bounds the steps of a type-checked tree (see Work) and checks
// literals and ranges on the way.
type workWalk struct {
	vars   []workVar   // let variables in scope, innermost last
	loops  []loopScope // loops in scope, innermost last
	nested int         // loops being bounded at two element sizes
	visits int
	err    *file.Error
	hot    ast.Node // the first node, innermost first, whose steps exceed MaxSteps
}

type workVar struct {
	name string
	size size
}

// loopScope is what the pointers of the innermost loop see: # has size at
// most x, #acc (in reduce) size acc.
type loopScope struct {
	x   float64
	acc size
}

func (w *workWalk) fail(n ast.Node, format string, args ...any) {
	if w.err == nil {
		w.err = &file.Error{Location: n.Location(), Message: fmt.Sprintf(format, args...)}
	}
}

// eval returns the steps of evaluating n once and the size of its value.
func (w *workWalk) eval(n ast.Node) (float64, size) {
	w.visits++
	if w.visits > maxVisits {
		if w.err == nil {
			w.fail(n, "expression is too complex to bound its work: nest fewer loops")
		}
		return costCap, size{n: costCap, t: costCap, e: costCap}
	}
	steps, s := w.node(n)
	steps, s = capped(steps), cappedSize(s)
	if steps > MaxSteps && w.hot == nil && n != nil {
		w.hot = n
	}
	return steps, s
}

func (w *workWalk) node(node ast.Node) (float64, size) {
	switch n := node.(type) {
	case nil:
		return 0, scalarSize
	case *ast.NilNode, *ast.BoolNode, *ast.IntegerNode, *ast.FloatNode:
		return 1, scalarSize
	case *ast.StringNode:
		if len(n.Value) > MaxStringLiteral {
			w.fail(n, "string literal is %d bytes long, limit is %d", len(n.Value), MaxStringLiteral)
		}
		return 1, size{n: float64(len(n.Value))}
	case *ast.BytesNode:
		if len(n.Value) > MaxStringLiteral {
			w.fail(n, "bytes literal is %d bytes long, limit is %d", len(n.Value), MaxStringLiteral)
		}
		return 1, size{n: float64(len(n.Value))}
	case *ast.ConstantNode:
		v := reflect.ValueOf(n.Value)
		switch v.Kind() {
		case reflect.String, reflect.Slice, reflect.Array, reflect.Map:
			l := float64(v.Len())
			return 1, size{n: l, t: l * DynamicLen, e: DynamicLen}
		}
		return 1, scalarSize
	case *ast.IdentifierNode:
		for i := len(w.vars) - 1; i >= 0; i-- {
			if w.vars[i].name == n.Value {
				return 1, w.vars[i].size
			}
		}
		return 1, shapeOf(n.Type(), DynamicLen) // a name of the Env
	case *ast.PointerNode:
		if len(w.loops) == 0 {
			return 1, shapeOf(n.Type(), DynamicLen)
		}
		l := w.loops[len(w.loops)-1]
		switch n.Name {
		case "":
			return 1, shapeOf(n.Type(), l.x)
		case "acc":
			return 1, l.acc
		}
		return 1, scalarSize // #index
	case *ast.UnaryNode:
		c, _ := w.eval(n.Node)
		return 1 + c, scalarSize
	case *ast.ChainNode:
		return w.eval(n.Node)
	case *ast.MemberNode:
		co, so := w.eval(n.Node)
		cp, sp := w.eval(n.Property)
		steps := 1 + co + cp
		if t := n.Node.Type(); t != nil && t.Kind() == reflect.Map {
			steps += touch(sp) // hashing the key
		}
		// A field or element is at most its largest element; an index
		// into a string is one character.
		return steps, shapeOf(n.Type(), max(so.e, 4))
	case *ast.SliceNode:
		c, s := w.eval(n.Node)
		cf, _ := w.eval(n.From)
		ct, _ := w.eval(n.To)
		return 1 + c + cf + ct, s
	case *ast.CallNode:
		steps := 1.0 + callSteps
		if _, ok := n.Callee.(*ast.IdentifierNode); !ok {
			c, _ := w.eval(n.Callee) // a method's receiver
			steps += c
		}
		var in float64
		for _, a := range n.Arguments {
			c, s := w.eval(a)
			steps += c + touch(s)
			in += s.total()
		}
		out := shapeOf(n.Type(), in+32)
		return steps + touch(out), out
	case *ast.BuiltinNode:
		if loopBuiltins[n.Name] {
			return w.loop(n)
		}
		return w.builtin(n)
	case *ast.PredicateNode:
		return w.eval(n.Node)
	case *ast.SequenceNode:
		var steps float64
		s := scalarSize
		for _, e := range n.Nodes {
			var c float64
			c, s = w.eval(e)
			steps += c
		}
		return steps, s
	case *ast.VariableDeclaratorNode:
		cv, sv := w.eval(n.Value)
		w.vars = append(w.vars, workVar{name: n.Name, size: sv})
		ce, se := w.eval(n.Expr)
		w.vars = w.vars[:len(w.vars)-1]
		return 1 + cv + ce, se
	case *ast.ConditionalNode:
		cc, _ := w.eval(n.Cond)
		c1, s1 := w.eval(n.Exp1)
		c2, s2 := w.eval(n.Exp2)
		return 1 + cc + max(c1, c2), join(s1, s2)
	case *ast.ArrayNode:
		if len(n.Nodes) > MaxListLiteral {
			w.fail(n, "array literal has %d elements, limit is %d (put long lists in lists/NAME.txt and use in_list)",
				len(n.Nodes), MaxListLiteral)
		}
		l := float64(len(n.Nodes))
		steps, s := 1+l, size{n: l}
		for _, e := range n.Nodes {
			c, se := w.eval(e)
			steps += c
			s.t += se.total()
			s.e = max(s.e, se.total())
		}
		return steps, s
	case *ast.MapNode:
		if len(n.Pairs) > MaxListLiteral {
			w.fail(n, "map literal has %d entries, limit is %d", len(n.Pairs), MaxListLiteral)
		}
		l := float64(len(n.Pairs))
		steps, s := 1+l, size{n: l}
		for _, p := range n.Pairs {
			pair, ok := p.(*ast.PairNode)
			if !ok {
				c, _ := w.eval(p)
				steps += c
				continue
			}
			ck, sk := w.eval(pair.Key)
			cv, sv := w.eval(pair.Value)
			steps += ck + cv + touch(sk)
			s.t += sk.total() + sv.total()
			s.e = max(s.e, sv.total())
		}
		return steps, s
	case *ast.BinaryNode:
		return w.binary(n)
	}
	// Every node type of expr v1.17 is handled above; bound any other
	// as reading the largest event.
	return DynamicLen, size{n: DynamicLen, t: DynamicLen, e: DynamicLen}
}

func (w *workWalk) binary(n *ast.BinaryNode) (float64, size) {
	if n.Operator == ".." {
		from, ok1 := constInt(n.Left)
		to, ok2 := constInt(n.Right)
		if !ok1 || !ok2 {
			w.fail(n, "a range needs constant bounds")
			return 1, size{n: DynamicLen, t: DynamicLen, e: 1}
		}
		var l float64
		if to >= from {
			l = float64(to) - float64(from) + 1
		}
		if l > MaxRange {
			w.fail(n, "range %d..%d has %s elements, limit is %d", from, to, formatSteps(l), MaxRange)
		}
		return 3 + l, size{n: l, t: l, e: 1}
	}
	cl, sl := w.eval(n.Left)
	cr, sr := w.eval(n.Right)
	steps := 1 + cl + cr
	switch n.Operator {
	case "+":
		if sl.scalar && sr.scalar {
			return steps, scalarSize
		}
		out := size{n: sl.n + sr.n, t: sl.t + sr.t, e: max(sl.e, sr.e)}
		return steps + touch(sl) + touch(sr) + out.total(), out
	case "==", "!=", "<", ">", "<=", ">=", "contains", "startsWith", "endsWith", "matches":
		return steps + touch(sl) + touch(sr), scalarSize
	case "in":
		if t := n.Right.Type(); t != nil && t.Kind() == reflect.Map {
			return steps + touch(sl), scalarSize
		}
		// Each element is fetched through reflect and compared, reading at
		// most the element.
		return steps + inSteps*sr.n + sr.t, scalarSize
	case "??":
		return steps, join(sl, sr)
	}
	return steps, scalarSize // &&, ||, arithmetic
}

// builtin bounds a call of a builtin that does not loop over a predicate:
// it reads its arguments once, and pays for the bytes or elements of the
// value it builds.
func (w *workWalk) builtin(n *ast.BuiltinNode) (float64, size) {
	steps := 1.0 + callSteps
	args := make([]size, len(n.Arguments))
	for i, a := range n.Arguments {
		c, s := w.eval(a)
		steps += c + touch(s)
		args[i] = s
	}
	arg := func(i int) size {
		if i < len(args) {
			return args[i]
		}
		return scalarSize
	}
	var out size
	builds := true
	switch n.Name {
	case "first", "last", "get", "max", "min":
		out, builds = shapeOf(n.Type(), max(arg(0).e, 1)), false
	case "trim", "trimPrefix", "trimSuffix", "fromBase64":
		out = size{n: arg(0).total()}
	case "upper", "lower":
		out = size{n: 3 * arg(0).total()} // an invalid byte becomes the 3-byte U+FFFD
	case "toBase64":
		out = size{n: 2*arg(0).total() + 4}
	case "string", "toJSON":
		out = size{n: 8*arg(0).total() + 32}
	case "replace":
		per := 1.0
		if len(n.Arguments) > 1 {
			if old, ok := n.Arguments[1].(*ast.StringNode); ok && len(old.Value) > 0 {
				per = float64(len(old.Value))
			}
		}
		src := arg(0).total()
		out = size{n: src + (src/per+1)*arg(2).total()}
	case "repeat":
		times := 1e6 // expr refuses more
		if len(n.Arguments) > 1 {
			if k, ok := constInt(n.Arguments[1]); ok {
				times = max(0, float64(k))
			}
		}
		out = size{n: arg(0).total() * times}
	case "join":
		out = size{n: arg(0).t + arg(0).n*arg(1).total()}
	case "split", "splitAfter":
		// The parts share the string's bytes: only the list is built.
		s := arg(0).total()
		out, builds = size{n: s + 1, t: s, e: s}, false
		steps += out.n
	case "fromJSON":
		s := arg(0).total()
		out = size{n: s, t: s, e: s}
	case "keys", "values", "toPairs", "fromPairs":
		s := arg(0).total()
		out = size{n: arg(0).n, t: s, e: s}
	case "reverse", "uniq", "take":
		out = arg(0)
	case "sort":
		out = arg(0)
		steps += sortFactor * out.total()
	case "median":
		out, builds = scalarSize, false
		steps += sortFactor * arg(0).total()
	case "concat":
		for _, a := range args {
			out.n += a.n
			out.t += a.t
			out.e = max(out.e, a.e)
		}
	case "flatten":
		out = size{n: arg(0).t, t: arg(0).t, e: arg(0).e}
	default:
		// len, abs, int, float, indexOf, hasPrefix, mean, date, ...: they
		// read their arguments, counted above, and return a small value.
		var in float64
		for _, a := range args {
			in += a.total()
		}
		out = shapeOf(n.Type(), in+32)
		builds = !out.scalar
	}
	out = cappedSize(out)
	if builds {
		steps += touch(out)
	}
	if out.scalar {
		out = scalarSize
	}
	return steps, out
}

// loop bounds a builtin that runs its predicate once per element.
func (w *workWalk) loop(n *ast.BuiltinNode) (float64, size) {
	if len(n.Arguments) == 0 {
		return 1, scalarSize
	}
	cc, coll := w.eval(n.Arguments[0])
	steps := 1 + loopSteps + cc
	var body ast.Node
	if len(n.Arguments) > 1 {
		body = n.Arguments[1]
	}
	var extra size // sortBy's order, reduce's initial value
	hasExtra := len(n.Arguments) > 2
	if hasExtra {
		var ce float64
		ce, extra = w.eval(n.Arguments[2])
		steps += ce
	}
	run := func(x float64, acc size) (float64, size) {
		if body == nil { // count(list), sum(list)
			return 1, elemShape(n.Arguments[0], x)
		}
		w.loops = append(w.loops, loopScope{x: x, acc: acc})
		c, s := w.eval(body)
		w.loops = w.loops[:len(w.loops)-1]
		return 1 + c, s
	}
	if n.Name == "reduce" {
		acc := extra
		if !hasExtra {
			acc = elemShape(n.Arguments[0], coll.e)
		}
		c, s := w.reduce(coll, acc, run)
		return capped(steps + c), s
	}
	c, results := w.over(coll, func(x float64) (float64, size) { return run(x, size{}) })
	steps += c
	out := scalarSize // all, any, none, one, count, sum, findIndex, findLastIndex
	switch n.Name {
	case "filter":
		out = coll
		steps += coll.n
	case "map":
		out = results
		steps += coll.n
	case "find", "findLast":
		out = shapeOf(n.Type(), coll.e)
	case "groupBy":
		s := coll.total() + results.t
		out = size{n: coll.n, t: s, e: s}
		steps += coll.n
	case "sortBy":
		out = coll
		steps += coll.n + sortFactor*(coll.n+results.t)
	}
	return steps, out
}

// over bounds running body once per element of coll: the steps and the
// list of the values body returns. See Work for the chord bound.
func (w *workWalk) over(coll size, body func(x float64) (float64, size)) (float64, size) {
	n, t, e := coll.n, coll.t, coll.e
	if n == 0 {
		return 0, size{}
	}
	if w.nested >= maxAmortized || e == 0 || t == 0 {
		c, s := body(e)
		return capped(n * c), cappedSize(size{n: n, t: n * s.total(), e: s.total()})
	}
	w.nested++
	c0, s0 := body(0)
	ce, se := body(e)
	w.nested--
	k := t / e // how many elements can be of the largest size
	steps := n*c0 + k*max(0, ce-c0)
	sum := n*s0.total() + k*max(0, se.total()-s0.total())
	return capped(steps), cappedSize(size{n: n, t: sum, e: se.total()})
}

// reduce bounds reduce's steps and result: the accumulator is followed
// step by step, each step at the largest element, until it stops growing;
// the remaining steps are then bounded like any loop.
func (w *workWalk) reduce(coll size, acc size, run func(x float64, acc size) (float64, size)) (float64, size) {
	var steps float64
	for k := 0.0; k < coll.n; k++ {
		if k >= maxReduceSteps || steps >= costCap {
			return costCap, acc
		}
		c, next := run(coll.e, acc)
		if within(next, acc) {
			rest := size{n: coll.n - k, t: coll.t, e: coll.e}
			c, _ := w.over(rest, func(x float64) (float64, size) { return run(x, acc) })
			return capped(steps + c), acc
		}
		steps = capped(steps + c)
		acc = cappedSize(join(acc, next))
	}
	return steps, acc
}
