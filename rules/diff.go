package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxDiffBytes bounds the files of one side of a Diff: four times what
// the rule topic carries in one version (rulesync.DefaultMaxRecordBytes),
// so a real set always fits and a runaway directory is refused.
const MaxDiffBytes = 32 << 20

// DiffSample bounds the list entries a ListChange shows of each kind
// (added, removed); the counts are always whole.
const DiffSample = 20

// SetDiff is what changed from one set of rule files (From) to another
// (To): rules, lists, settings and window features (by feature name, from
// the versions' FeaturesFile), each sorted by name.
type SetDiff struct {
	Rules    RulesDiff     `json:"rules"`
	Lists    ListsDiff     `json:"lists"`
	Settings []FieldChange `json:"settings"`
	Features []FieldChange `json:"features"`
}

// Empty reports whether the two sets decide alike as far as the diff can
// tell (files may still differ in comments and layout).
func (d *SetDiff) Empty() bool {
	return len(d.Rules.Added)+len(d.Rules.Removed)+len(d.Rules.Changed)+
		len(d.Lists.Added)+len(d.Lists.Removed)+len(d.Lists.Changed)+len(d.Settings)+len(d.Features) == 0
}

// RulesDiff is the rules added, removed and changed, by id.
type RulesDiff struct {
	Added   []RuleRef    `json:"added"`
	Removed []RuleRef    `json:"removed"`
	Changed []RuleChange `json:"changed"`
}

// RuleRef names a rule and where it is defined.
type RuleRef struct {
	ID     string `json:"id"`
	File   string `json:"file"`
	Line   int    `json:"line"`
	Action string `json:"action,omitempty"`
	Mode   string `json:"mode"`
}

// RuleChange is a rule in both sets whose fields differ.
type RuleChange struct {
	ID     string        `json:"id"`
	File   string        `json:"file"`
	Line   int           `json:"line"`
	Fields []FieldChange `json:"fields"`
}

// FieldChange is one field's old and new value. A value is the field's
// text for a plain value (when, action, alert...) and its JSON for a
// structured one (examples, thresholds); empty with Absent set when the
// field is not there.
type FieldChange struct {
	Field     string `json:"field"`
	Old       string `json:"old"`
	New       string `json:"new"`
	OldAbsent bool   `json:"old_absent,omitempty"`
	NewAbsent bool   `json:"new_absent,omitempty"`
}

// ListsDiff is the lists added, removed and changed, by name.
type ListsDiff struct {
	Added   []ListRef    `json:"added"`
	Removed []ListRef    `json:"removed"`
	Changed []ListChange `json:"changed"`
}

// ListRef is a whole list: its entry count and up to DiffSample entries.
type ListRef struct {
	Name    string   `json:"name"`
	Entries int      `json:"entries"`
	Sample  []string `json:"sample"`
}

// ListChange is a list in both sets with entries added or removed.
type ListChange struct {
	Name          string   `json:"name"`
	OldEntries    int      `json:"old_entries"`
	NewEntries    int      `json:"new_entries"`
	Added         int      `json:"added"`
	Removed       int      `json:"removed"`
	AddedSample   []string `json:"added_sample"`
	RemovedSample []string `json:"removed_sample"`
}

// Diff compares two rule sets given as files keyed by slash path, as
// ReadFiles returns them and versions hold them. It parses the YAML but
// does not compile: it also explains sets that no longer compile. A rule
// file that does not parse, a rule without an id, a duplicate id, or a
// side over MaxDiffBytes is an error naming the side, file and line.
func Diff(from, to map[string][]byte) (*SetDiff, error) {
	a, err := parseForDiff("from", from)
	if err != nil {
		return nil, err
	}
	b, err := parseForDiff("to", to)
	if err != nil {
		return nil, err
	}
	d := &SetDiff{Rules: RulesDiff{Added: []RuleRef{}, Removed: []RuleRef{}, Changed: []RuleChange{}},
		Lists: ListsDiff{Added: []ListRef{}, Removed: []ListRef{}, Changed: []ListChange{}}, Settings: []FieldChange{}}
	for _, id := range unionKeys(a.rules, b.rules) {
		ra, inA := a.rules[id]
		rb, inB := b.rules[id]
		switch {
		case !inA:
			d.Rules.Added = append(d.Rules.Added, rb.ref())
		case !inB:
			d.Rules.Removed = append(d.Rules.Removed, ra.ref())
		default:
			fields := diffFields(ra.fields, rb.fields)
			if ra.file != rb.file {
				fields = append([]FieldChange{{Field: "file", Old: ra.file, New: rb.file}}, fields...)
			}
			if len(fields) > 0 {
				d.Rules.Changed = append(d.Rules.Changed, RuleChange{ID: id, File: rb.file, Line: rb.line, Fields: fields})
			}
		}
	}
	for _, name := range unionKeys(a.lists, b.lists) {
		la, inA := a.lists[name]
		lb, inB := b.lists[name]
		switch {
		case !inA:
			d.Lists.Added = append(d.Lists.Added, listRef(name, lb))
		case !inB:
			d.Lists.Removed = append(d.Lists.Removed, listRef(name, la))
		default:
			added, removed := setMinus(lb, la), setMinus(la, lb)
			if len(added)+len(removed) > 0 {
				d.Lists.Changed = append(d.Lists.Changed, ListChange{Name: name, OldEntries: len(la), NewEntries: len(lb),
					Added: len(added), Removed: len(removed), AddedSample: sample(added), RemovedSample: sample(removed)})
			}
		}
	}
	d.Settings = diffFields(a.settings, b.settings)
	d.Features = diffFields(a.features, b.features)
	return d, nil
}

// diffSide is one side of a Diff, parsed.
type diffSide struct {
	rules    map[string]*diffRule
	lists    map[string]map[string]struct{}
	settings map[string]string
	features map[string]string
}

type diffRule struct {
	file   string
	line   int
	fields map[string]string
}

func (r *diffRule) ref() RuleRef {
	return RuleRef{ID: r.fields["id"], File: r.file, Line: r.line, Action: r.fields["action"], Mode: r.fields["mode"]}
}

func parseForDiff(side string, files map[string][]byte) (*diffSide, error) {
	total := 0
	for _, b := range files {
		total += len(b)
	}
	if total > MaxDiffBytes {
		return nil, fmt.Errorf("diff: %s: the files hold %d bytes, more than the %d a diff reads", side, total, MaxDiffBytes)
	}
	s := &diffSide{rules: map[string]*diffRule{}, lists: map[string]map[string]struct{}{}, settings: map[string]string{}, features: map[string]string{}}
	for _, name := range sortedNames(files) {
		dir, base := path.Split(name)
		switch {
		case dir == "lists/" && strings.HasSuffix(base, ".txt"):
			s.lists[strings.TrimSuffix(base, ".txt")] = parseList(files[name])
		case dir != "" || !(strings.HasSuffix(base, ".yaml") || strings.HasSuffix(base, ".yml")):
			// not a file Compile reads
		case name == SettingsFile:
			if err := parseMap(side, name, "settings", files[name], s.settings); err != nil {
				return nil, err
			}
		case name == FeaturesFile:
			if err := parseMap(side, name, "features", files[name], s.features); err != nil {
				return nil, err
			}
		default:
			if err := s.parseRules(side, name, files[name]); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// parseMap reads a file that is one YAML map (settings, features) into
// into, each value as its text.
func parseMap(side, name, what string, b []byte, into map[string]string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("diff: %s: %s: %w", side, name, err)
	}
	if doc.Kind == 0 {
		return nil
	}
	root := docRoot(&doc)
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("diff: %s: %s:%d:%d: %s are a map", side, name, root.Line, root.Column, what)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		v, err := fieldText(root.Content[i+1])
		if err != nil {
			return fmt.Errorf("diff: %s: %s:%d: %w", side, name, root.Content[i].Line, err)
		}
		into[root.Content[i].Value] = v
	}
	return nil
}

func (s *diffSide) parseRules(side, name string, b []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("diff: %s: %s: %w", side, name, err)
	}
	if doc.Kind == 0 {
		return nil // empty file
	}
	root := docRoot(&doc)
	if root.Kind != yaml.SequenceNode {
		return fmt.Errorf("diff: %s: %s:%d:%d: a rule file is a YAML list of rules", side, name, root.Line, root.Column)
	}
	for _, item := range root.Content {
		if item.Kind != yaml.MappingNode {
			return fmt.Errorf("diff: %s: %s:%d:%d: a rule is a map with id, when and action", side, name, item.Line, item.Column)
		}
		r := &diffRule{file: name, line: item.Line, fields: map[string]string{}}
		for i := 0; i+1 < len(item.Content); i += 2 {
			v, err := fieldText(item.Content[i+1])
			if err != nil {
				return fmt.Errorf("diff: %s: %s:%d: %w", side, name, item.Content[i].Line, err)
			}
			r.fields[item.Content[i].Value] = v
		}
		id := r.fields["id"]
		if id == "" {
			return fmt.Errorf("diff: %s: %s:%d:%d: rule without an id", side, name, item.Line, item.Column)
		}
		if prev, dup := s.rules[id]; dup {
			return fmt.Errorf("diff: %s: %s:%d: rule %s: duplicate id, first defined at %s:%d", side, name, item.Line, id, prev.file, prev.line)
		}
		// Defaults written out or left out are the same rule.
		if r.fields["mode"] == "" {
			r.fields["mode"] = Active.String()
		}
		s.rules[id] = r
	}
	return nil
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	return doc
}

// fieldText is a field's value as a diff shows it: a scalar's text, or
// the JSON of anything structured (keys sorted, so layout and key order
// in the YAML do not count as changes).
func fieldText(n *yaml.Node) (string, error) {
	if n.Kind == yaml.ScalarNode {
		return n.Value, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("line %d: %w", n.Line, err)
	}
	return strings.TrimSpace(buf.String()), nil
}

// ruleFieldOrder is the order a rule's changed fields are shown in; other
// keys follow by name.
var ruleFieldOrder = []string{"when", "action", "score", "mode", "lock_for", "alert", "description", "examples"}

func diffFields(a, b map[string]string) []FieldChange {
	out := []FieldChange{}
	for _, k := range unionKeys(a, b) {
		if k == "id" {
			continue
		}
		va, inA := a[k]
		vb, inB := b[k]
		if inA == inB && va == vb {
			continue
		}
		out = append(out, FieldChange{Field: k, Old: va, New: vb, OldAbsent: !inA, NewAbsent: !inB})
	}
	rank := func(f string) int {
		for i, k := range ruleFieldOrder {
			if k == f {
				return i
			}
		}
		return len(ruleFieldOrder)
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i].Field) < rank(out[j].Field) })
	return out
}

func unionKeys[V any](a, b map[string]V) []string {
	seen := make(map[string]struct{}, len(a)+len(b))
	for k := range a {
		seen[k] = struct{}{}
	}
	for k := range b {
		seen[k] = struct{}{}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func listRef(name string, set map[string]struct{}) ListRef {
	return ListRef{Name: name, Entries: len(set), Sample: sample(setMinus(set, nil))}
}

// setMinus returns the entries of a not in b, sorted.
func setMinus(a, b map[string]struct{}) []string {
	out := []string{}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func sample(sorted []string) []string {
	if len(sorted) > DiffSample {
		return sorted[:DiffSample]
	}
	return sorted
}
