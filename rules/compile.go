package rules

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	exprcompiler "github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"riskd/features"
)

// windowsName is the hidden Env name window features are rewritten to.
const windowsName = "__w"

// hiddenName reports whether name is one of the hidden Env names the
// compiler writes (windowsName, tickName) and analysts may not.
func hiddenName(name string) bool {
	return name == windowsName || strings.HasPrefix(name, tickName)
}

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
	rs.feats = feats
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
	opts := []expr.Option{
		expr.Env(Env{}),
		expr.AsBool(),
		expr.Function("haversine", haversine, new(func(float64, float64, float64, float64) float64)),
		expr.Function("hour", hour, new(func(int64) int), new(func(int) int)),
	}
	return &compiler{rs: rs, feats: feats, opts: append(opts, helperOptions()...)}
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
// (for a clearer message), in_list list names and the hidden __w and
// __tick, whether named, read from $env or declared with let.
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
		if hiddenName(n.Value) {
			p.fail(n, "unknown name %s", n.Value)
		}
	case *ast.VariableDeclaratorNode:
		if hiddenName(n.Name) {
			p.fail(n, "unknown name %s", n.Name)
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if ok && id.Value == "$env" {
			if s, ok := n.Property.(*ast.StringNode); ok && hiddenName(s.Value) {
				p.fail(s, "unknown name %s", s.Value)
			}
			return
		}
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
		if ok && (callee.Value == "attr_num" || callee.Value == "attr_str" || callee.Value == "local_hour") {
			p.patchHelper(n, callee.Value)
			return
		}
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

// compileRule parses the rule's when once and builds everything from that
// one tree: its event types and native predicate from the tree as written,
// then the expr program from the same tree, which expr's checker patches
// (f.<window feature> to __w[slot]) and its optimizer folds in place.
func (c *compiler) compileRule(pr *parsedRule) error {
	r := pr.rule
	if fe := checkSource(r.When); fe != nil {
		return c.exprError(pr, fe)
	}
	p := &patcher{feats: c.feats, lists: c.rs.Lists}
	config := c.config(p)
	tree, err := parser.ParseWithConfig(r.When, config)
	var fe *file.Error
	if errors.As(err, &fe) && fe.Message == nodeLimitMessage {
		fe.Message = fmt.Sprintf("expression has more than %d nodes, limit is %d", MaxExprNodes, MaxExprNodes)
	}
	if err == nil {
		r.Types = typesOf(tree.Node)
		r.native, r.nativeTyped = compileNative(tree.Node, c.feats, c.rs.Lists)
		r.program, err = program(tree, config)
	}
	if p.err != nil {
		return c.exprError(pr, p.err)
	}
	if err != nil {
		if errors.As(err, &fe) {
			return c.exprError(pr, fe)
		}
		return pr.errAt(pr.whenNode, "%v", err)
	}
	r.Features = p.used
	return nil
}

// config is the expr configuration of one rule, built as expr.Compile
// builds it from the compiler's options and the rule's patcher.
func (c *compiler) config(p *patcher) *conf.Config {
	config := conf.CreateNew()
	for _, op := range c.opts {
		op(config)
	}
	expr.Patch(p)(config)
	expr.MaxNodes(MaxExprNodes)(config)
	for name := range config.Disabled {
		delete(config.Builtins, name)
	}
	config.Check()
	return config
}

// program is expr.Compile after the parse: patch and type-check tree,
// check it against the limits that need its types (literals, ranges,
// work), optimise it, make each loop iteration tick the run-time budget
// (see addTicks) and compile it. It changes tree.
func program(tree *parser.Tree, config *conf.Config) (*vm.Program, error) {
	if _, err := new(checker.Checker).PatchAndCheck(tree, config); err != nil {
		return nil, err
	}
	if fe := checkTree(tree.Node); fe != nil {
		return nil, fe
	}
	if config.Optimize {
		if err := optimizer.Optimize(&tree.Node, config); err != nil {
			var fe *file.Error
			if errors.As(err, &fe) {
				return nil, fe.Bind(tree.Source)
			}
			return nil, err
		}
	}
	addTicks(&tree.Node)
	return exprcompiler.Compile(tree, config)
}

func (c *compiler) exprError(pr *parsedRule, fe *file.Error) *CompileError {
	line, col := exprPos(pr.whenNode, c.src, fe.From)
	// TrimSpace: some of expr's messages end in a space ("... to call ratio ").
	return &CompileError{RuleID: pr.rule.ID, File: pr.rule.File, Line: line, Col: col, Msg: strings.TrimSpace(fe.Message)}
}

// typesOf returns the event types a rule can match if its expression tree
// n is a && chain with a conjunct event.type == "x" or event.type in
// ["x", ...], or nil if it may match any type. n is the tree as parsed,
// before the checker and optimizer change it.
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
