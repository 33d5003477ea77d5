package chstore_test

import (
	"slices"
	"testing"
	"time"

	"riskd/engine"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/chstore"
)

// runDecision is one decided event for the run-scoped reads: matched names
// the rules that matched (each acting with the decision's action), label
// the scenario ("" for honest traffic).
type runDecision struct {
	id, account string
	action      rules.Action
	reason      string
	matched     []string
	features    []engine.FeatureValue
	label       string
}

// writeRun stores ds as decisions of events seconds apart from base,
// twice (a replay), so the reads must collapse repeats with FINAL.
func writeRun(t *testing.T, st *chstore.Store, base time.Time, ds []runDecision) {
	t.Helper()
	batch := make([]*engine.Decision, len(ds))
	for i, r := range ds {
		d := &engine.Decision{
			EventID: r.id, AccountID: r.account, EventType: "payment",
			EventTS: base.Add(time.Duration(i) * time.Second).UnixMilli(), DecidedAt: base.Add(time.Duration(i) * time.Second),
			Action: r.action, Reason: r.reason, Features: r.features, Label: r.label, RuleSetVersion: "5-0badcafe",
			Source: engine.Source{Topic: "payments", Offset: int64(i)},
		}
		for _, id := range r.matched {
			d.Matched = append(d.Matched, engine.RuleHit{RuleID: id, Action: r.action, Score: 10})
		}
		batch[i] = d
	}
	for range 2 {
		if err := st.WriteDecisions(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDetectionCountsAttacksCaughtAndFalseAlarmsOfOneRun(t *testing.T) {
	st := chtest.Open(t)
	base := time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC)
	writeRun(t, st, base, []runDecision{
		// brute_force on two accounts: acct-1 caught on its third event, acct-2 never.
		{id: "run1-01", account: "acct-1", action: rules.Allow, label: "brute_force"},
		{id: "run1-02", account: "acct-1", action: rules.Alert, matched: []string{"failed-logins"}, label: "brute_force"},
		{id: "run1-03", account: "acct-1", action: rules.Lock, matched: []string{"brute-force-lock"}, label: "brute_force"},
		{id: "run1-04", account: "acct-1", action: rules.Lock, reason: engine.ReasonAccountLocked, label: "brute_force"},
		{id: "run1-05", account: "acct-2", action: rules.Allow, label: "brute_force"},
		// scam_payee, blocked.
		{id: "run1-06", account: "acct-3", action: rules.Block, matched: []string{"scam-payee"}, label: "scam_payee"},
		{id: "run1-07", account: "acct-3", action: rules.Challenge, matched: []string{"scam-payee"}, label: "scam_payee"},
		// card_testing that slipped through.
		{id: "run1-08", account: "acct-4", action: rules.Alert, label: "card_testing"},
		// Honest traffic: one review and one challenge are false alarms;
		// acct-1's owner shares the account with the attack.
		{id: "run1-09", account: "acct-1", action: rules.Review, reason: engine.ReasonScoreThreshold},
		{id: "run1-10", account: "acct-5", action: rules.Allow},
		{id: "run1-11", account: "acct-5", action: rules.Challenge, matched: []string{"velocity"}},
		{id: "run1-12", account: "acct-6", action: rules.Alert},
		// Another run, same accounts: not counted.
		{id: "run2-01", account: "acct-2", action: rules.Lock, matched: []string{"brute-force-lock"}, label: "brute_force"},
		{id: "run2-02", account: "acct-5", action: rules.Block, matched: []string{"velocity"}},
	})
	got, err := st.Detection(t.Context(), "run1-")
	if err != nil {
		t.Fatal(err)
	}
	want := []chstore.ScenarioDetection{
		{Label: "", Accounts: 3, AccountsFlagged: 2, Events: 4, EventsFlagged: 2},
		{Label: "brute_force", Accounts: 2, AccountsFlagged: 1, Events: 5, EventsFlagged: 2},
		{Label: "card_testing", Accounts: 1, AccountsFlagged: 0, Events: 1, EventsFlagged: 0},
		{Label: "scam_payee", Accounts: 1, AccountsFlagged: 1, Events: 2, EventsFlagged: 2},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Detection(run1-):\n got %+v\nwant %+v", got, want)
	}

	got, err = st.Detection(t.Context(), "run2-")
	if err != nil {
		t.Fatal(err)
	}
	want = []chstore.ScenarioDetection{
		{Label: "", Accounts: 1, AccountsFlagged: 1, Events: 1, EventsFlagged: 1},
		{Label: "brute_force", Accounts: 1, AccountsFlagged: 1, Events: 1, EventsFlagged: 1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Detection(run2-):\n got %+v\nwant %+v", got, want)
	}

	if got, err := st.Detection(t.Context(), "run3-"); err != nil || len(got) != 0 {
		t.Errorf("Detection(run3-) = %+v, %v; want no rows", got, err)
	}
}

func TestExampleDecisionPicksTheStrongestRuleDecisionOfTheRun(t *testing.T) {
	st := chtest.Open(t)
	base := time.Date(2026, 5, 2, 9, 0, 0, 0, time.UTC)
	feats := []engine.FeatureValue{{Name: "failed_logins_15m", Value: 6}, {Name: "distinct_devices_24h", Value: 2}}
	writeRun(t, st, base, []runDecision{
		{id: "run1-01", account: "acct-1", action: rules.Review, matched: []string{"velocity"}, features: feats},
		{id: "run1-02", account: "acct-1", action: rules.Block, matched: []string{"scam-payee"}, features: feats},
		{id: "run1-03", account: "acct-2", action: rules.Lock, reason: engine.ReasonAccountLocked},
		{id: "run1-04", account: "acct-2", action: rules.Lock, reason: engine.ReasonScoreThreshold,
			matched: []string{"new-device", "velocity"}, features: feats},
		{id: "run1-05", account: "acct-3", action: rules.Lock, matched: []string{"brute-force-lock"}},
		{id: "run1-06", account: "acct-4", action: rules.Lock, matched: []string{"brute-force-lock", "new-device"}, features: feats,
			label: "brute_force"},
		{id: "run1-07", account: "acct-5", action: rules.Lock, matched: []string{"brute-force-lock"}, features: feats},
		// Earlier than all of run1 and a lock by a rule, but another run's.
		{id: "run2-01", account: "acct-0", action: rules.Lock, matched: []string{"brute-force-lock"}, features: feats},
		{id: "run3-01", account: "acct-0", action: rules.Alert, matched: []string{"scam-payee"}},
		{id: "run3-02", account: "acct-0", action: rules.Review, reason: engine.ReasonScoreThreshold},
	})

	got, ok, err := st.ExampleDecision(t.Context(), "run1-")
	if err != nil || !ok {
		t.Fatalf("ExampleDecision(run1-) = %v, %v", ok, err)
	}
	// run1-06: a lock a rule decided, with features, earlier than run1-07.
	if got.EventID != "run1-06" || got.Action != "lock" || got.Reason != "" ||
		!slices.Equal(got.MatchedRules, []string{"brute-force-lock", "new-device"}) || !slices.Equal(got.Features, feats) ||
		got.RuleSetVersion != "5-0badcafe" || got.AccountID != "acct-4" {
		t.Errorf("ExampleDecision(run1-) = %+v; want run1-06, the lock by brute-force-lock with its features", got)
	}

	if got, ok, err := st.ExampleDecision(t.Context(), "run3-"); ok || err != nil {
		t.Errorf("ExampleDecision(run3-) = %+v, %v, %v; want none (an alert, and a review no rule decided)", got, ok, err)
	}
}
