package rules

import (
	"errors"
	"fmt"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/parser"
	"gopkg.in/yaml.v3"

	"riskd/event"
	"riskd/features"
)

// Problem is one thing wrong in a rule set, where it is written.
type Problem struct {
	// File is the file's slash path in the rule directory.
	File string `json:"file"`
	// Line and Col are 1-based; a YAML syntax error has only a line, and
	// its Col is 1.
	Line int `json:"line"`
	Col  int `json:"col"`
	// RuleID is the rule the problem is in, empty for a file's problem.
	RuleID string `json:"rule_id,omitempty"`
	// Message says what is wrong, with a "did you mean" for a misspelt
	// feature, event field, list, function or key.
	Message string `json:"message"`
}

// String formats the problem as file:line:col: rule-id: message, the
// form editors and CI annotators read (without rule-id when there is none).
func (p Problem) String() string {
	if p.RuleID == "" {
		return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Message)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", p.File, p.Line, p.Col, p.RuleID, p.Message)
}

// MaxLintProblems bounds the problems Lint reports; a set with more gets
// one last problem saying how many more there were.
const MaxLintProblems = 1000

// FeatureNames is what a FeatureIndex also implements when it can list its
// window features (*features.Set does): Lint suggests among them.
type FeatureNames interface {
	Names() []string
}

// Lint reports every problem Compile would refuse files for, not only the
// first: YAML errors, rules that are not maps, unknown keys, bad actions,
// modes, scores and lock_for, expressions that do not compile or exceed
// the limits, duplicate ids, examples that fail, settings that do not
// parse; and, within one expression, every unknown feature, event or
// account field and list, each with a suggestion when one is close. It
// goes on after a problem: each file, each rule, each key and each example
// is checked on its own. Problems come sorted by file, line and column. A
// set Lint finds nothing in compiles.
func Lint(files map[string][]byte, feats FeatureIndex) []Problem {
	rs := &RuleSet{Lists: make(map[string]map[string]struct{})}
	names := sortedNames(files)
	for _, name := range names {
		if dir, base := path.Split(name); dir == "lists/" && strings.HasSuffix(base, ".txt") {
			rs.Lists[strings.TrimSuffix(base, ".txt")] = parseList(files[name])
		}
	}
	l := &linter{c: newCompiler(rs, feats), seen: make(map[string]*Rule)}
	l.known = knownNames(feats, rs.Lists)
	for _, name := range names {
		if strings.Contains(name, "/") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		if name == FeaturesFile {
			continue
		}
		if name == SettingsFile {
			if _, err := parseSettings(files[name], name); err != nil {
				l.compileError(err)
			}
			continue
		}
		l.file(name, files[name])
	}
	sort.SliceStable(l.out, func(i, j int) bool {
		a, b := l.out[i], l.out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	if len(l.out) > MaxLintProblems {
		more := len(l.out) - MaxLintProblems
		last := l.out[MaxLintProblems-1]
		l.out = append(l.out[:MaxLintProblems-1], Problem{File: last.File, Line: last.Line, Col: last.Col,
			Message: fmt.Sprintf("and %d more problems (Lint reports at most %d)", more+1, MaxLintProblems)})
	}
	return l.out
}

// linter collects the problems of one set.
type linter struct {
	c     *compiler
	seen  map[string]*Rule
	known known
	out   []Problem
	// at holds the positions already reported, so that a problem found
	// both by the compiler and by the name walk is reported once.
	at map[[3]any]bool
}

func (l *linter) add(p Problem) {
	if l.at == nil {
		l.at = make(map[[3]any]bool)
	}
	key := [3]any{p.File, p.Line, p.Col}
	if l.at[key] {
		return
	}
	l.at[key] = true
	l.out = append(l.out, p)
}

// yamlLine finds the line in a yaml.v3 error ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: (?:unmarshal errors:\n\s*)?line (\d+): `)

// yamlParserError matches the errors of yaml.v3's parser (the others are
// its scanner's): their line is the 0-based line of the construct left
// open, where the scanner's is 1-based.
var yamlParserError = regexp.MustCompile(`^YAML: did not find expected (key|node content|'-' indicator|',' or|<document start>)`)

// compileError records a *CompileError (any other error as a file-less
// problem), taking the line of a YAML error from its text.
func (l *linter) compileError(err error) {
	var ce *CompileError
	if !errors.As(err, &ce) {
		l.add(Problem{Message: err.Error()})
		return
	}
	p := Problem{File: ce.File, Line: ce.Line, Col: ce.Col, RuleID: ce.RuleID, Message: l.known.suggest(ce.Msg)}
	if p.Line == 0 {
		p.Line, p.Col = 1, 1
		if m := yamlLine.FindStringSubmatch(ce.Msg); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Message = "YAML: " + ce.Msg[len(m[0]):]
			if yamlParserError.MatchString(p.Message) {
				p.Line++ // yaml.v3 numbers its parser's errors from 0
			}
		}
	}
	l.add(p)
}

// file lints one rule file.
func (l *linter) file(name string, b []byte) {
	l.c.src = b
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		l.compileError(&CompileError{File: name, Msg: err.Error()})
		return
	}
	if doc.Kind == 0 {
		return
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.SequenceNode {
		l.add(Problem{File: name, Line: root.Line, Col: root.Column, Message: "a rule file is a YAML list of rules"})
		return
	}
	var parsed []*parsedRule
	for _, item := range root.Content {
		if pr := l.rule(item, name); pr != nil {
			parsed = append(parsed, pr)
		}
	}
	for _, pr := range parsed {
		l.examples(pr)
	}
}

// stand-ins replace a key's value that has a problem, so that parsing the
// rule again finds the problems of its other keys and not "missing when"
// or "action lock needs lock_for" for the key taken out.
var standIns = map[string]string{"when": "true", "lock_for": "1m", "action": "allow", "score": "0", "mode": "active"}

// rule lints one rule: it parses it as Compile does and, after each
// problem, again with the offending key taken out (or given a stand-in
// value), until it parses; it walks the expression for every unknown name
// too. It returns the parsed rule when no stand-in was needed, for its
// examples to run; nil otherwise.
func (l *linter) rule(item *yaml.Node, file string) *parsedRule {
	id := ""
	if item.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(item.Content); i += 2 {
			if item.Content[i].Value == "id" {
				id = item.Content[i+1].Value
			}
			if item.Content[i].Value == "when" && item.Content[i+1].Kind == yaml.ScalarNode {
				l.walkWhen(file, id, item.Content[i+1])
			}
		}
	}
	node := *item
	node.Content = append([]*yaml.Node(nil), item.Content...)
	clean := true
	for range len(item.Content)/2 + 2 {
		pr, err := l.c.parseRule(&node, file)
		if err == nil {
			if prev, ok := l.seen[pr.rule.ID]; ok {
				l.compileError(pr.errAt(pr.idNode, "duplicate id, first defined at %s:%d", prev.File, prev.Line))
				return nil
			}
			l.seen[pr.rule.ID] = pr.rule
			if clean {
				return pr
			}
			return nil
		}
		l.compileError(err)
		clean = false
		var ce *CompileError
		if !errors.As(err, &ce) || !takeOut(&node, ce.Line, ce.Col) {
			return nil
		}
	}
	return nil
}

// takeOut removes from the rule map n the key whose key or value holds
// position line:col, or gives it a stand-in value; false when the
// position is the rule's own (a problem of the whole rule) or the id's.
func takeOut(n *yaml.Node, line, col int) bool {
	at := -1
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Line < line || (k.Line == line && k.Column <= col) {
			at = i
		}
	}
	if at < 0 || (line == n.Line && col == n.Column) || n.Content[at].Value == "id" {
		return false
	}
	k := n.Content[at]
	if v, ok := standIns[k.Value]; ok {
		n.Content[at+1] = &yaml.Node{Kind: yaml.ScalarNode, Value: v, Line: k.Line, Column: k.Column}
		return true
	}
	n.Content = append(n.Content[:at:at], n.Content[at+2:]...)
	return true
}

// examples runs a parsed rule's examples as Compile does, each on its
// own, so that every failing one is reported, not only the first.
func (l *linter) examples(pr *parsedRule) {
	r := pr.rule
	all := r.examples
	defer func() { r.examples = all }()
	for i := range all {
		r.examples = all[i : i+1]
		err := l.c.runExamples(pr)
		var ce *CompileError
		if errors.As(err, &ce) {
			// runExamples numbers the one example it was given 1.
			ce.Msg = strings.Replace(ce.Msg, "example 1:", fmt.Sprintf("example %d:", i+1), 1)
		}
		if err != nil {
			l.compileError(err)
		}
	}
}

// walkWhen parses a when expression (without checking it) and reports
// every f.<name>, event field, account field and in_list list it names
// that does not exist. The compiler stops at the first; this finds them
// all, at the positions the compiler gives.
func (l *linter) walkWhen(file, id string, when *yaml.Node) {
	if checkSource(when.Value) != nil {
		return // the compiler reports it; the parser may not take it
	}
	tree, err := parser.Parse(when.Value)
	if err != nil {
		return
	}
	report := func(n ast.Node, msg string) {
		line, col := exprPos(when, l.c.src, n.Location().From)
		l.add(Problem{File: file, Line: line, Col: col, RuleID: id, Message: msg})
	}
	w := &nameWalk{known: l.known, report: report, local: make(map[string]bool), guarded: make(map[string]bool)}
	ast.Walk(&tree.Node, &letNames{w.local})
	ast.Walk(&tree.Node, &attrGuards{w.guarded})
	ast.Walk(&tree.Node, w)
}

// attrGuards gathers the attrs keys an expression tests with
// "k" in event.attrs, which makes a conversion of event.attrs["k"] safe
// enough not to flag.
type attrGuards struct{ keys map[string]bool }

func (v *attrGuards) Visit(node *ast.Node) {
	if b, ok := (*node).(*ast.BinaryNode); ok && b.Operator == "in" && memberPath(b.Right) == "event.attrs" {
		if s, ok := b.Left.(*ast.StringNode); ok {
			v.keys[s.Value] = true
		}
	}
}

// unguardedAttr returns the key of float(event.attrs["k"]) or
// int(event.attrs["k"]) when the expression does not test "k" in
// event.attrs: such a rule errors on every event without the key, or
// with a value that is not a number.
func (w *nameWalk) unguardedAttr(n *ast.BuiltinNode) (string, bool) {
	if (n.Name != "float" && n.Name != "int") || len(n.Arguments) != 1 {
		return "", false
	}
	m, ok := n.Arguments[0].(*ast.MemberNode)
	if !ok || memberPath(m.Node) != "event.attrs" {
		return "", false
	}
	key, ok := m.Property.(*ast.StringNode)
	if !ok || w.guarded[key.Value] {
		return "", false
	}
	return key.Value, true
}

// letNames gathers the names an expression declares with let.
type letNames struct{ names map[string]bool }

func (v *letNames) Visit(node *ast.Node) {
	if d, ok := (*node).(*ast.VariableDeclaratorNode); ok {
		v.names[d.Name] = true
	}
}

// nameWalk is the visitor of walkWhen.
type nameWalk struct {
	known  known
	report func(ast.Node, string)
	// local are the let names, which may be read like top-level names.
	local map[string]bool
	// guarded are the attrs keys the expression tests for (attrGuards).
	guarded map[string]bool
}

// unknownName reports a top-level name or function no rule can use.
func (w *nameWalk) unknownName(id *ast.IdentifierNode) {
	if w.local[id.Value] || slices.Contains(w.known.names, id.Value) || hiddenName(id.Value) {
		return // hidden names: the compiler's own message says it
	}
	w.report(id, w.known.suggest("unknown name "+id.Value))
}

func (w *nameWalk) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BuiltinNode:
		if key, ok := w.unguardedAttr(n); ok {
			w.report(n, fmt.Sprintf("%s(event.attrs[%q]) fails on every event without that attribute or with one that is not a number; write attr_num(%q, 0) (0 or another default), or test %q in event.attrs first",
				n.Name, key, key, key))
		}
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value != "$env" {
			w.unknownName(id)
		}
		prop, ok := n.Property.(*ast.StringNode)
		if !ok || n.Optional {
			return
		}
		owner := memberPath(n.Node)
		fields, ok := w.known.fields[owner]
		if !ok {
			return
		}
		if _, ok := fields[prop.Value]; ok {
			return
		}
		if owner == "f" {
			w.report(prop, w.known.suggest(fmt.Sprintf("unknown feature f.%s", prop.Value)))
			return
		}
		w.report(prop, w.known.suggest(fmt.Sprintf("%s has no field %s", owner, prop.Value)))
	case *ast.CallNode:
		callee, ok := n.Callee.(*ast.IdentifierNode)
		if ok {
			w.unknownName(callee)
		}
		if !ok || callee.Value != "in_list" || len(n.Arguments) == 0 {
			return
		}
		if s, ok := n.Arguments[0].(*ast.StringNode); ok {
			if _, ok := w.known.lists[s.Value]; !ok {
				w.report(s, w.known.suggest(fmt.Sprintf("unknown list %q (want a file lists/%s.txt)", s.Value, s.Value)))
			}
		}
	}
}

// memberPath names the chain a member is read from ("event",
// "event.device", "f"), or "" when it is not a plain chain from a name.
func memberPath(n ast.Node) string {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return n.Value
	case *ast.MemberNode:
		s, ok := n.Property.(*ast.StringNode)
		if !ok {
			return ""
		}
		if p := memberPath(n.Node); p != "" {
			return p + "." + s.Value
		}
	}
	return ""
}

// known is what names a rule can use, for suggestions.
type known struct {
	// fields holds the names under each chain: f, event, event.device,
	// event.geo, account.
	fields map[string]map[string]struct{}
	lists  map[string]map[string]struct{}
	// names are the top-level names and functions.
	names []string
}

func knownNames(feats FeatureIndex, lists map[string]map[string]struct{}) known {
	k := known{fields: make(map[string]map[string]struct{}), lists: lists}
	f := make(map[string]struct{})
	for name := range profileFields {
		f[name] = struct{}{}
	}
	if fn, ok := feats.(FeatureNames); ok {
		for _, name := range fn.Names() {
			f[name] = struct{}{}
		}
	}
	k.fields["f"] = f
	k.fields["event"] = exprFields(reflect.TypeFor[event.Event]())
	k.fields["event.device"] = exprFields(reflect.TypeFor[event.Device]())
	k.fields["event.geo"] = exprFields(reflect.TypeFor[event.Geo]())
	k.fields["account"] = exprFields(reflect.TypeFor[AccountInfo]())
	k.names = append([]string{"event", "f", "account", "in_list", "haversine", "hour"}, helperNames...)
	k.names = append(k.names, builtin.Names...)
	return k
}

func exprFields(t reflect.Type) map[string]struct{} {
	m := make(map[string]struct{})
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("expr"); name != "" && name != "-" {
			m[name] = struct{}{}
		}
	}
	return m
}

// Messages suggest knows how to add a "did you mean" to.
var (
	reUnknownFeature = regexp.MustCompile(`^unknown feature f\.(\w+)$`)
	reNoField        = regexp.MustCompile(`^(?:type [\w.]+|([\w.]+)) has no field (\w+)$`)
	reUnknownList    = regexp.MustCompile(`^unknown list "([^"]*)"`)
	reUnknownName    = regexp.MustCompile(`^unknown name (\w+)`)
	reUnknownKey     = regexp.MustCompile(`^unknown key "([^"]*)"$`)
)

// typeChains maps the Go type names expr's checker prints to the chains
// rules write.
var typeChains = map[string]string{"type event.Event": "event", "type event.Device": "event.device",
	"type event.Geo": "event.geo", "type rules.AccountInfo": "account"}

// ruleKeys are the keys of a rule.
var ruleKeys = []string{"id", "when", "action", "score", "lock_for", "alert", "description", "mode", "examples",
	"code", "user_message", "category", "step_up", "unlock_clears", "when_warming"}

// suggest adds "; did you mean X?" to a message about an unknown name
// when one known name is close enough.
func (k known) suggest(msg string) string {
	var name string
	var among []string
	switch {
	case reUnknownFeature.MatchString(msg):
		name = reUnknownFeature.FindStringSubmatch(msg)[1]
		among = keys(k.fields["f"])
	case reNoField.MatchString(msg):
		m := reNoField.FindStringSubmatch(msg)
		chain := m[1]
		if chain == "" {
			chain = typeChains[msg[:strings.Index(msg, " has no field")]]
		}
		name, among = m[2], keys(k.fields[chain])
	case reUnknownList.MatchString(msg):
		name = reUnknownList.FindStringSubmatch(msg)[1]
		among = keys(k.lists)
	case reUnknownName.MatchString(msg):
		name, among = reUnknownName.FindStringSubmatch(msg)[1], k.names
	case reUnknownKey.MatchString(msg):
		name, among = reUnknownKey.FindStringSubmatch(msg)[1], ruleKeys
	default:
		return msg
	}
	if best := closest(name, among); best != "" {
		return msg + "; did you mean " + best + "?"
	}
	return msg
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// closest returns the candidate nearest to name by edit distance when it
// is near enough to be a slip (one edit for names of up to four bytes, two
// up to eight, then a third of the length), the alphabetically first of
// equally near ones; "" if none is.
func closest(name string, candidates []string) string {
	limit := max(len(name)/3, 1)
	if len(name) > 4 {
		limit = max(limit, 2)
	}
	best, bestD := "", limit+1
	for _, c := range candidates {
		if c == name {
			continue
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(c)); d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b in bytes, with a
// swap of two neighbours counting as one edit.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

var _ FeatureNames = (*features.Set)(nil)
