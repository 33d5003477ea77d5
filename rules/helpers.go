package rules

import (
	"fmt"
	"math"
	"strconv"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"

	"riskd/event"
)

// Rule helpers: functions rules call that cannot fail, so that a missing
// attribute or a zero divisor is a value a rule tests, not a rule error.
//
//	attr_num("k", default)  attrs["k"] as a number; default when missing or not a number
//	attr_str("k", default)  attrs["k"]; default when missing
//	ratio(a, b)             a / b; 0 when b is 0
//	zscore(x, mean, sd)     (x - mean) / sd; 0 when sd is 0 or less
//	local_hour()            hour of day 0..23 of the event in its tz, UTC without one;
//	                        local_hour(event) is the same
//
// Each is one Go function below, which the expr VM and the native
// predicates (native.go) both call, so the two cannot differ. attr_num,
// attr_str and local_hour read the event: the patcher passes it to them
// (patchHelper), so rules do not name it.

// AttrNum returns attrs[key] read as a decimal number (12, -3.5, 1e3), or
// def when the key is missing or its value is anything else ("", "12 ",
// "0x10", "NaN", "true", a number too large for a float64). Only that
// last case allocates (strconv's error).
func AttrNum(attrs event.Attrs, key string, def float64) float64 {
	s, ok := attrs[key]
	if !ok || !decimal(s) {
		return def
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return def
	}
	return f
}

// decimal reports whether s is [+-]digits[.digits][(e|E)[+-]digits], with
// digits on at least one side of the dot: the numbers AttrNum reads.
// Checking first keeps strconv from allocating an error for the common
// non-number and refuses what ParseFloat accepts beyond decimals (hex,
// underscores, Inf, NaN).
func decimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// AttrStr returns attrs[key], or def when the key is missing. A key sent
// with an empty value is present: it returns "".
func AttrStr(attrs event.Attrs, key, def string) string {
	if s, ok := attrs[key]; ok {
		return s
	}
	return def
}

// Ratio is a / b, or 0 when b is 0: "this amount against the usual one"
// for an account with no history yet is no signal, not an error or +Inf.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// ZScore is (x - mean) / sd, or 0 when sd is 0 or less: with no spread
// yet (one event, or all equal) there is no distance to measure.
func ZScore(x, mean, sd float64) float64 {
	if !(sd > 0) {
		return 0
	}
	return (x - mean) / sd
}

// helperOptions registers the helpers with expr. attr_num, attr_str and
// local_hour take the arguments the patcher rewrites calls to (see
// patchHelper), so a rule never sees these signatures in an error.
func helperOptions() []expr.Option {
	num := func(what string, v any) (float64, error) {
		f, ok := ToFloat(v)
		if !ok {
			return 0, fmt.Errorf("%s: argument is %T, not a number", what, v)
		}
		return f, nil
	}
	return []expr.Option{
		expr.Function("attr_num", func(params ...any) (any, error) {
			attrs, _ := params[0].(event.Attrs)
			key, _ := params[1].(string)
			def, err := num("attr_num", params[2])
			if err != nil {
				return nil, err
			}
			return AttrNum(attrs, key, def), nil
		}, new(func(event.Attrs, string, float64) float64)),
		expr.Function("attr_str", func(params ...any) (any, error) {
			attrs, _ := params[0].(event.Attrs)
			key, _ := params[1].(string)
			def, _ := params[2].(string)
			return AttrStr(attrs, key, def), nil
		}, new(func(event.Attrs, string, string) string)),
		expr.Function("ratio", func(params ...any) (any, error) {
			a, err := num("ratio", params[0])
			if err != nil {
				return nil, err
			}
			b, err := num("ratio", params[1])
			if err != nil {
				return nil, err
			}
			return Ratio(a, b), nil
		}, new(func(float64, float64) float64)),
		expr.Function("zscore", func(params ...any) (any, error) {
			var p [3]float64
			for i := range p {
				f, err := num("zscore", params[i])
				if err != nil {
					return nil, err
				}
				p[i] = f
			}
			return ZScore(p[0], p[1], p[2]), nil
		}, new(func(float64, float64, float64) float64)),
		expr.Function("local_hour", func(params ...any) (any, error) {
			ms, _ := params[0].(int64)
			tz, _ := params[1].(string)
			return event.LocalHour(ms, tz), nil
		}, new(func(int64, string) int)),
	}
}

// helperNames are the helpers' names, for Lint's suggestions.
var helperNames = []string{"attr_num", "attr_str", "ratio", "zscore", "local_hour"}

// patchHelper checks a call of attr_num, attr_str or local_hour as the
// rule wrote it and rewrites it to the form helperOptions registers:
// attr_num("k", d) to attr_num(event.attrs, "k", d), local_hour() to
// local_hour(event.ts, event.tz). ratio and zscore need no rewrite; expr
// checks their arguments. It reports false after recording a problem.
func (p *patcher) patchHelper(n *ast.CallNode, name string) bool {
	switch name {
	case "attr_num", "attr_str":
		want, example := "a number", `attr_num("k", 0)`
		if name == "attr_str" {
			want, example = "a string", `attr_str("k", "")`
		}
		if len(n.Arguments) != 2 {
			p.fail(n, "%s takes 2 arguments, a constant key and a default (%s), got %d", name, example, len(n.Arguments))
			return false
		}
		if _, ok := n.Arguments[0].(*ast.StringNode); !ok {
			p.fail(n.Arguments[0], "%s needs a constant key string as its first argument (%s)", name, example)
			return false
		}
		if k := constKind(n.Arguments[1]); k != "" && k != want {
			p.fail(n.Arguments[1], "%s: the default must be %s, got %s", name, want, k)
			return false
		}
		n.Arguments = append([]ast.Node{eventMember(n, "attrs")}, n.Arguments...)
	case "local_hour":
		if len(n.Arguments) != 0 && !isEventArg(n.Arguments) {
			p.fail(n, "local_hour takes no argument or event (it reads the event's ts and tz), got %d arguments", len(n.Arguments))
			return false
		}
		n.Arguments = []ast.Node{eventMember(n, "ts"), eventMember(n, "tz")}
	}
	return true
}

// isEventArg reports whether args is the one argument event, as in
// local_hour(event).
func isEventArg(args []ast.Node) bool {
	if len(args) != 1 {
		return false
	}
	id, ok := args[0].(*ast.IdentifierNode)
	return ok && id.Value == "event"
}

// constKind names the type of a constant node, or "" for any other node.
func constKind(n ast.Node) string {
	switch n := n.(type) {
	case *ast.StringNode:
		return "a string"
	case *ast.IntegerNode, *ast.FloatNode:
		return "a number"
	case *ast.BoolNode:
		return "a bool"
	case *ast.NilNode:
		return "nil"
	case *ast.UnaryNode:
		if n.Operator == "-" {
			return constKind(n.Node)
		}
	}
	return ""
}

// eventMember is the node event.<field>, placed at call's position so that
// a problem with it points at the call.
func eventMember(call ast.Node, field string) ast.Node {
	id := &ast.IdentifierNode{Value: "event"}
	id.SetLocation(call.Location())
	prop := &ast.StringNode{Value: field}
	prop.SetLocation(call.Location())
	m := &ast.MemberNode{Node: id, Property: prop}
	m.SetLocation(call.Location())
	return m
}
