package rules

import (
	"strings"
	"testing"
)

func filesOf(kv ...string) map[string][]byte {
	m := map[string][]byte{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = []byte(kv[i+1])
	}
	return m
}

const diffBase = `- id: scam-payee
  when: in_list("scam", event.payee_id)
  action: block
  examples:
    - event: {payee_id: p1}
      expect: match
- id: big
  when: event.amount > 1000
  action: review
  score: 40
- id: gone
  when: event.amount > 5000
  action: alert
`

func TestDiffNamesRulesListsAndSettingsThatChanged(t *testing.T) {
	from := filesOf("pay.yaml", diffBase, "lists/scam.txt", "p1\np2\n# note\n", "lists/old.txt", "x\n",
		"settings.yaml", "thresholds:\n  - {score: 100, action: review}\n")
	to := filesOf("pay.yaml", strings.NewReplacer(
		"event.amount > 1000", "event.amount > 2000",
		"      expect: match", "      expect: match\n    - event: {payee_id: p9}\n      expect: no_match",
		"- id: gone\n  when: event.amount > 5000\n  action: alert\n", "").Replace(diffBase),
		"new.yaml", "- id: fresh\n  when: event.type == \"login\"\n  action: alert\n  mode: shadow\n",
		"lists/scam.txt", "p1\np3\np4\n",
		"settings.yaml", "thresholds:\n  - {score: 90, action: review}\n")
	d, err := Diff(from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Rules.Added) != 1 || d.Rules.Added[0] != (RuleRef{ID: "fresh", File: "new.yaml", Line: 1, Action: "alert", Mode: "shadow"}) {
		t.Errorf("added = %+v", d.Rules.Added)
	}
	if len(d.Rules.Removed) != 1 || d.Rules.Removed[0].ID != "gone" || d.Rules.Removed[0].Line != 11 {
		t.Errorf("removed = %+v", d.Rules.Removed)
	}
	if len(d.Rules.Changed) != 2 {
		t.Fatalf("changed = %+v, want big and scam-payee", d.Rules.Changed)
	}
	if c := d.Rules.Changed[0]; c.ID != "big" || len(c.Fields) != 1 ||
		c.Fields[0] != (FieldChange{Field: "when", Old: "event.amount > 1000", New: "event.amount > 2000"}) {
		t.Errorf("big: %+v", c)
	}
	if c := d.Rules.Changed[1]; c.ID != "scam-payee" || len(c.Fields) != 1 || c.Fields[0].Field != "examples" ||
		c.Fields[0].Old != `[{"event":{"payee_id":"p1"},"expect":"match"}]` ||
		c.Fields[0].New != `[{"event":{"payee_id":"p1"},"expect":"match"},{"event":{"payee_id":"p9"},"expect":"no_match"}]` {
		t.Errorf("scam-payee: %+v", c)
	}
	if len(d.Lists.Removed) != 1 || d.Lists.Removed[0].Name != "old" || d.Lists.Removed[0].Entries != 1 {
		t.Errorf("lists removed = %+v", d.Lists.Removed)
	}
	want := ListChange{Name: "scam", OldEntries: 2, NewEntries: 3, Added: 2, Removed: 1}
	if len(d.Lists.Changed) != 1 {
		t.Fatalf("lists changed = %+v", d.Lists.Changed)
	}
	got := d.Lists.Changed[0]
	if got.Name != want.Name || got.OldEntries != 2 || got.NewEntries != 3 || got.Added != 2 || got.Removed != 1 ||
		strings.Join(got.AddedSample, ",") != "p3,p4" || strings.Join(got.RemovedSample, ",") != "p2" {
		t.Errorf("scam list: %+v", got)
	}
	if len(d.Settings) != 1 || d.Settings[0] != (FieldChange{Field: "thresholds",
		Old: `[{"action":"review","score":100}]`, New: `[{"action":"review","score":90}]`}) {
		t.Errorf("settings = %+v", d.Settings)
	}
}

func TestDiffIgnoresLayoutCommentsAndDefaultMode(t *testing.T) {
	a := filesOf("a.yaml", "- id: r\n  when: event.amount > 1\n  action: alert\n", "lists/l.txt", "x\ny\n")
	b := filesOf("a.yaml", "# moved keys, explicit default mode\n- action: alert\n  id: r\n  mode: active\n  when: 'event.amount > 1'\n",
		"lists/l.txt", "y # why\n\nx\n")
	d, err := Diff(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Empty() {
		t.Errorf("diff = %+v, want none", d)
	}
	// A rule moved to another file is a change of its file.
	d, err = Diff(a, filesOf("b.yaml", "- id: r\n  when: event.amount > 1\n  action: alert\n", "lists/l.txt", "x\ny\n"))
	if err != nil || len(d.Rules.Changed) != 1 || d.Rules.Changed[0].Fields[0] != (FieldChange{Field: "file", Old: "a.yaml", New: "b.yaml"}) {
		t.Errorf("moved rule: %+v %v", d, err)
	}
}

func TestDiffSamplesAreBoundedAndCountsWhole(t *testing.T) {
	var many strings.Builder
	for i := range 1000 {
		many.WriteString("e" + strings.Repeat("0", 4-len(itoa(i))) + itoa(i) + "\n")
	}
	d, err := Diff(filesOf(), filesOf("lists/big.txt", many.String()))
	if err != nil {
		t.Fatal(err)
	}
	if l := d.Lists.Added[0]; l.Entries != 1000 || len(l.Sample) != DiffSample || l.Sample[0] != "e0000" {
		t.Errorf("added list: %d entries, sample of %d starting %q", l.Entries, len(l.Sample), l.Sample[0])
	}
	d, err = Diff(filesOf("lists/big.txt", "only\n"), filesOf("lists/big.txt", many.String()))
	if err != nil {
		t.Fatal(err)
	}
	if c := d.Lists.Changed[0]; c.Added != 1000 || c.Removed != 1 || len(c.AddedSample) != DiffSample {
		t.Errorf("changed list: %+v", c)
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestDiffRefusesWhatItCannotRead(t *testing.T) {
	huge := filesOf("lists/huge.txt", strings.Repeat("x", MaxDiffBytes+1))
	for _, c := range []struct {
		name     string
		from, to map[string][]byte
		want     string
	}{
		{"a side over the bound", filesOf(), huge,
			"diff: to: the files hold 33554433 bytes, more than the 33554432 a diff reads"},
		{"a rule without id", filesOf("a.yaml", "- when: true\n  action: alert\n"), filesOf(),
			"diff: from: a.yaml:1:3: rule without an id"},
		{"a duplicate id", filesOf(), filesOf("a.yaml", "- id: r\n  when: true\n- id: r\n  when: false\n"),
			"diff: to: a.yaml:3: rule r: duplicate id, first defined at a.yaml:1"},
		{"a rule file that is not a list", filesOf("a.yaml", "id: r\n"), filesOf(),
			"diff: from: a.yaml:1:1: a rule file is a YAML list of rules"},
		{"bad YAML", filesOf(), filesOf("a.yaml", "- id: [\n"),
			"diff: to: a.yaml: yaml: line 1: did not find expected node content"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Diff(c.from, c.to)
			if err == nil || err.Error() != c.want {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}
