package rules

import (
	"encoding/json"
	"testing"
	"time"
)

const testRunRules = `- id: scam-payee
  when: event.type == "payment" && in_list("scam_payees", event.payee_id)
  action: block
  examples:
    - event: {payee_id: payee-bad-1}
      expect: match
    - event: {payee_id: payee-7}
      expect: no_match
- id: brute-force
  when: event.type == "login_failed" && f.failed_logins_15m >= 5
  action: lock
  lock_for: 30m
- id: young-and-fast
  when: account.age_days < 2 && f.payments_1h > 3
  score: 40
  mode: shadow
- id: modulo
  when: event.type == "payment" && event.amount % int(f.payments_1h) == 0
  score: 5
`

func TestRunTestDecidesLikeTheEngine(t *testing.T) {
	rs := mustCompile(t, testRunRules)
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	rep, err := rs.RunTest([]TestEvent{
		{Event: map[string]any{"payee_id": "payee-bad-1", "amount": 10}, F: map[string]any{"payments_1h": 4},
			Account: json.RawMessage(`{"age_days": 1}`)},
		{Event: map[string]any{"type": "login_failed"}, F: map[string]any{"failed_logins_15m": 5, "payments_1h": 0}},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	results := func(er EventResult) map[string]string {
		m := map[string]string{}
		for _, r := range er.Rules {
			m[r.ID] = r.Result
		}
		return m
	}
	e0, e1 := rep.Events[0], rep.Events[1]
	if e0.EventID != "test-1" || e0.Type != "payment" || e0.Action != Block || e0.Score != 0 {
		t.Errorf("event 0 = %s %s %v %d, want test-1 payment block 0", e0.EventID, e0.Type, e0.Action, e0.Score)
	}
	if got := results(e0); got["scam-payee"] != ResultMatch || got["young-and-fast"] != ResultMatch ||
		got["modulo"] != ResultNoMatch || got["brute-force"] != ResultNoMatch {
		t.Errorf("event 0 results = %v", got)
	}
	if f := e0.Rules[2].Features; e0.Rules[2].Mode != "shadow" || f["payments_1h"] != 4 {
		t.Errorf("young-and-fast = %+v, want a shadow rule reading payments_1h = 4", e0.Rules[2])
	}
	// modulo does not run on a login: the per-type index leaves it out, as
	// in the engine, so its division by zero is no error.
	if got := results(e1); e1.Action != Lock || got["brute-force"] != ResultMatch || got["modulo"] != ResultNoMatch {
		t.Errorf("event 1 = %v %v, want lock by brute-force and modulo not run", e1.Action, got)
	}
	if len(rep.Examples) != 2 || !rep.ExamplesPassed || rep.Examples[1].Expect != "no_match" ||
		rep.Examples[1].Result != ResultNoMatch || rep.Examples[0].File != "auth.yaml" || rep.Examples[0].Index != 1 {
		t.Errorf("examples = %+v passed=%v", rep.Examples, rep.ExamplesPassed)
	}
}

func TestRunTestNamesTheEventItCannotRead(t *testing.T) {
	rs := mustCompile(t, testRunRules)
	for _, tt := range []struct {
		name string
		ev   TestEvent
		want string
	}{
		{"an unknown feature", TestEvent{Event: map[string]any{}, F: map[string]any{"no_such": 1}},
			"events[1]: unknown feature f.no_such"},
		{"a flag given as a number", TestEvent{F: map[string]any{"new_device": 1}},
			"events[1]: f.new_device must be true or false"},
		{"an account that is not a map", TestEvent{Account: json.RawMessage(`[1]`)},
			"events[1].account: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into rules.AccountInfo"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rs.RunTest([]TestEvent{{}, tt.ev}, time.Now())
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
