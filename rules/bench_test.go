package rules

import (
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
	"riskd/features"
)

const benchRules = `
- id: brute-force-lock
  when: event.type == "login_failed" && f.failed_logins_15m >= 5
  action: lock
  lock_for: 30m
- id: scam-payee
  when: event.type == "payment" && in_list("scam_payees", event.payee_id)
  action: block
- id: new-device-big
  when: event.type in ["payment", "withdrawal"] && f.new_device && event.amount > 5 * f.avg_amount_30d
  score: 40
  mode: shadow
- id: reset-then-pay
  when: event.type == "payment" && f.secs_since_password_reset < 600 && f.new_payee
  action: challenge
- id: velocity
  when: event.type == "payment" && f.payments_1h > 10
  score: 30
- id: rooted
  when: event.device.rooted || event.device.emulator
  score: 20
- id: impossible-travel
  when: f.kmh_from_last > 900
  action: review
- id: big-ratio
  when: event.type == "payment" && f.amount_ratio > 20 && event.amount > 50000
  score: 50
- id: new-country-topup
  when: event.type == "topup" && f.new_country
  score: 10
- id: young-account
  when: account.age_days < 2 && event.amount > 100000
  action: review
`

// BenchmarkEval evaluates 10 rules (8 of which apply to a payment) against
// one payment event.
func BenchmarkEval(b *testing.B) {
	rs, err := Compile(map[string][]byte{
		"r.yaml":                []byte(benchRules),
		"lists/scam_payees.txt": []byte("payee-bad-1\n"),
	}, feats)
	if err != nil {
		b.Fatal(err)
	}
	e := NewEvaluator()
	env := e.Env()
	env.Event = event.Event{Type: "payment", PayeeID: "payee-7", Amount: 25000, Device: event.Device{ID: "d1"}}
	env.F.NewDevice = true
	env.F.AvgAmount30d = 4000
	env.F.SecsSincePasswordReset = 1e9
	env.F.AmountRatio = 3
	env.F.KmhFromLast = 12
	env.W[3] = 2
	env.Account.AgeDays = 300
	var out Outcome
	b.ReportAllocs()
	for b.Loop() {
		e.Eval(rs, &out)
	}
	if len(out.Shadow) != 1 || len(out.Errored) != 0 {
		b.Fatalf("unexpected outcome %q %q %v", ids(out.Matched), ids(out.Shadow), out.ErrorTexts)
	}
}

// BenchmarkEvalReference evaluates the 50 reference rules against real
// event and feature values (4,096 generated events observed into a feature
// store first), with native predicates and with every rule forced into
// expr's VM, in the same run.
func BenchmarkEvalReference(b *testing.B) {
	set, rs := loadReferenceRules(b)
	_, vmOnly := loadReferenceRules(b)
	for _, r := range vmOnly.Rules {
		r.native, r.nativeTyped = nil, nil
	}
	g := traffic.New(traffic.Config{Accounts: 1000, Seed: 4, FraudRate: 0.05,
		Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	store := set.NewStore()
	var dec event.Decoder
	var vals features.Values
	envs := make([]Env, 4096)
	for i := range envs {
		var ev event.Event
		if err := dec.Decode(g.AppendJSON(nil), &ev); err != nil {
			b.Fatal(err)
		}
		store.Observe(&ev, &vals)
		envs[i] = Env{Event: ev.Clone(), F: vals.Profile, W: vals.Windows}
	}
	for _, tc := range []struct {
		name string
		rs   *RuleSet
	}{{"native", rs}, {"vm", vmOnly}} {
		b.Run(tc.name, func(b *testing.B) {
			e := NewEvaluator()
			var out Outcome
			matched := 0
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				*e.Env() = envs[i%len(envs)]
				e.Eval(tc.rs, &out)
				matched += len(out.Matched) + len(out.Shadow)
				i++
			}
			if matched == 0 || len(out.Errored) != 0 {
				b.Fatalf("%d matched, %d errored", matched, len(out.Errored))
			}
		})
	}
}
