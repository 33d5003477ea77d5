package rules

import (
	"slices"
	"testing"
)

func TestVocabularyOffersWhatCompiles(t *testing.T) {
	lists := map[string]map[string]struct{}{"scam_payees": {}, "bad_ips": {}}
	v := NewVocabulary(lintFeatures(t), lists)
	for _, c := range []struct{ chain, name string }{
		{"event", "amount"}, {"event", "payee_id"}, {"event.device", "id"}, {"event.geo", "lat"},
		{"f", "failed_logins_15m"}, {"f", "payments_1h"}, {"f", "new_device"}, {"account", "age_days"},
	} {
		if !slices.Contains(v.Fields[c.chain], c.name) {
			t.Errorf("Fields[%q] = %v, want %s among them", c.chain, v.Fields[c.chain], c.name)
		}
	}
	if !slices.Equal(v.Lists, []string{"bad_ips", "scam_payees"}) {
		t.Errorf("Lists = %v, want [bad_ips scam_payees]", v.Lists)
	}
	if !slices.Equal(v.Actions, []string{"allow", "alert", "review", "challenge", "block", "lock"}) {
		t.Errorf("Actions = %v", v.Actions)
	}
	for _, fn := range []string{"in_list", "haversine", "hour", "attr_num", "len", "any"} {
		if !slices.Contains(v.Functions, fn) {
			t.Errorf("Functions lack %s: %v", fn, v.Functions)
		}
	}
	for _, hidden := range []string{"event", "f", "account", windowsName, tickName} {
		if slices.Contains(v.Functions, hidden) {
			t.Errorf("Functions offer %s, which is no function a rule may call", hidden)
		}
	}
	if v.Functions[0] != "attr_num" {
		t.Errorf("Functions start with %s, want riskd's helpers first (attr_num)", v.Functions[0])
	}
	if !slices.Contains(v.Keys, "when") || !slices.Contains(v.Keys, "unlock_clears") {
		t.Errorf("Keys = %v, want when and unlock_clears among them", v.Keys)
	}
}

// Every name the vocabulary offers compiles in a when expression.
func TestEveryOfferedFieldCompiles(t *testing.T) {
	feats := lintFeatures(t)
	v := NewVocabulary(feats, nil)
	for chain, names := range v.Fields {
		for _, name := range names {
			src := "- id: r\n  when: " + chain + "." + name + " != nil\n  action: alert\n"
			if _, err := Compile(map[string][]byte{"r.yaml": []byte(src)}, feats); err != nil {
				t.Errorf("%s.%s: %v", chain, name, err)
			}
		}
	}
}
