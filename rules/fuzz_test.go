package rules

import (
	"strings"
	"testing"
)

func FuzzLoad(f *testing.F) {
	f.Add([]byte(sampleRules))
	f.Add([]byte(benchRules))
	f.Add([]byte("- id: a\n  when: |\n    event.type == \"x\" &&\n      f.nope > 1\n"))
	f.Add([]byte("- id: a\n  when: >\n    event.amount\n    > 5\n  examples:\n    - event: {amount: 9}\n"))
	f.Add([]byte("- id: a\n  when: \"in_list(\\\"scam_payees\\\", event.ip)\"\n  mode: shadow\n"))
	f.Add([]byte("{}"))
	f.Add([]byte("- [1, 2]\n- id: 3\n"))
	// Over the limits: a deep expression, a big range, nested loops.
	f.Add([]byte("- id: deep\n  when: " + strings.Repeat("(", 2000) + "true" + strings.Repeat(")", 2000) + "\n"))
	f.Add([]byte("- id: nots\n  when: \"" + strings.Repeat("!", 2000) + "true\"\n"))
	f.Add([]byte("- id: range\n  when: 'all(1..900000, # >= 0)'\n  mode: shadow\n"))
	f.Add([]byte("- id: loops\n  when: 'any(split(event.attrs[\"a\"], \",\"), any(split(#, \":\"), # == \"x\"))'\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		rs, err := Compile(map[string][]byte{
			"r.yaml":                src,
			"lists/scam_payees.txt": []byte("payee-bad-1\n"),
		}, feats)
		if err == nil && rs == nil {
			t.Fatal("nil rule set without an error")
		}
		if err == nil {
			e := NewEvaluator()
			var out Outcome
			e.Eval(rs, &out)
		}
	})
}
