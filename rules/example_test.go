package rules_test

import (
	"fmt"

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
