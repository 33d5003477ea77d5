package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"riskd/engine/event"
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
			f, ok := toFloat(params[i])
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

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
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
				f, ok := toFloat(v)
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
		f, ok := toFloat(v)
		if !ok {
			return nil, fmt.Errorf("f.%s must be a number", name)
		}
		env.W[slot] = f
	}
	env.InList = c.rs.inList
	return env, nil
}
