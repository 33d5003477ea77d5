package rules_test

import (
	"fmt"
	"time"

	"riskd/event"
	"riskd/rules"
)

type windows map[string]int

func (w windows) Index(name string) (int, bool) { i, ok := w[name]; return i, ok }

func Example() {
	rs, err := rules.Compile(map[string][]byte{
		"auth.yaml": []byte(`
- id: brute-force-lock
  when: event.type == "login_failed" && f.failed_logins_15m >= 5
  action: lock
  lock_for: 30m
  examples:
    - f: {failed_logins_15m: 6}
      expect: match
`),
	}, windows{"failed_logins_15m": 0})
	if err != nil {
		fmt.Println(err)
		return
	}
	var h rules.Holder
	h.Swap(rs)

	e := rules.NewEvaluator()
	env := e.Env()
	env.Event = event.Event{Type: "login_failed", AccountID: "acct-1"}
	env.W[0] = 7 // failed_logins_15m, slot 0
	var out rules.Outcome
	e.Eval(h.Load(), &out)
	for _, r := range out.Matched {
		fmt.Println(r.ID, r.Action, r.LockFor, r.Features)
	}
	// Output: brute-force-lock lock 30m0s [failed_logins_15m]
}

func ExampleRuleSet_RunTest() {
	rs, err := rules.Compile(map[string][]byte{
		"payments.yaml": []byte(`
- id: velocity
  when: event.type == "payment" && f.payments_1h > 5
  score: 40
- id: new-device
  when: f.new_device
  score: 30
`),
		rules.SettingsFile: []byte("thresholds:\n  - {score: 60, action: review}\n"),
	}, windows{"payments_1h": 0})
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := rs.RunTest([]rules.TestEvent{{
		Event: map[string]any{"type": "payment", "amount": 12000},
		F:     map[string]any{"payments_1h": 7, "new_device": true},
	}}, time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := rep.Events[0]
	fmt.Println(ev.EventID, ev.Action, ev.Score)
	for _, r := range ev.Rules {
		fmt.Println(r.ID, r.Result, r.Features)
	}
	// Output:
	// test-1 review 70
	// velocity match map[payments_1h:7]
	// new-device match map[new_device:1]
}
