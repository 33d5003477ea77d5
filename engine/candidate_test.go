package engine

import (
	"slices"
	"strconv"
	"testing"

	"riskd/rules"
)

// candidateSet compiles a candidate rule set against the scorer's features.
func candidateSet(t *testing.T, set rules.FeatureIndex, yaml string) *rules.RuleSet {
	t.Helper()
	rs, err := rules.Compile(map[string][]byte{"rules.yaml": []byte(yaml)}, set)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// A candidate that locks on the third failed login (the live set waits
// for the fifth) records its lock on every decision from the third on,
// reading the same window the live set reads, while the live set goes on
// allowing, nothing is locked, and the state is what it would be without
// a candidate: the fifth failed login is locked by the live rule, as
// always, and only then.
func TestCandidateDecidesBesideTheLiveSetWithoutActing(t *testing.T) {
	set, holder := loadTestdata(t)
	clock := newFakeClock(t0 + 5000)
	s := NewScorer(Config{Now: clock.Now}, set, holder)
	holder.InstallCandidate(candidateSet(t, set, `
- id: lock-sooner
  when: event.type == "login_failed" && f.failed_logins_15m >= 3
  action: lock
  lock_for: 1h
  alert: "locked sooner"
- id: watch-payments
  when: event.type == "payment" && f.payments_1h >= 1
  score: 10
`), 7)
	want := rules.Version{Seq: 7, Hash: holder.LoadCandidate().Version.Hash}.String()
	live := holder.Load().Version.String()
	for i := 1; i <= 4; i++ {
		d := score(t, s, login("f"+strconv.Itoa(i), "a1", t0+int64(i)*1000, true))
		if d.Action != rules.Allow || d.Reason != "" || !d.LockUntil.IsZero() || len(d.Alerts) != 0 || d.RuleSetVersion != live {
			t.Fatalf("failed login %d: live %v %q lock %v alerts %v version %s, want allow by %s and nothing else",
				i, d.Action, d.Reason, d.LockUntil, d.Alerts, d.RuleSetVersion, live)
		}
		wantCand := rules.Allow
		var wantIDs []string
		if i >= 3 {
			wantCand, wantIDs = rules.Lock, []string{"lock-sooner"}
		}
		if d.Candidate.Version != want || d.Candidate.Action != wantCand || !slices.Equal(d.Candidate.Matched, wantIDs) {
			t.Fatalf("failed login %d: candidate %+v, want version %s action %v matched %v", i, d.Candidate, want, wantCand, wantIDs)
		}
	}
	// Not locked by the candidate: a payment of a1 is decided, not refused.
	p := score(t, s, payment("p1", "a1", t0+4500, 100, "payee-1"))
	if p.Reason == ReasonAccountLocked || p.Action != rules.Allow {
		t.Fatalf("payment after the candidate's lock: %v %q, want allow (a candidate locks nothing)", p.Action, p.Reason)
	}
	if p.Candidate.Action != rules.Allow || p.Candidate.Score != 10 || !slices.Equal(p.Candidate.Matched, []string{"watch-payments"}) {
		t.Errorf("payment: candidate %+v, want allow, score 10 by watch-payments", p.Candidate)
	}
	// The live set's lock comes at the fifth failed login, as without a candidate.
	d := score(t, s, login("f5", "a1", t0+5000, true))
	if d.Action != rules.Lock || len(d.Matched) != 1 || d.Matched[0].RuleID != "brute-force-lock" || len(d.Alerts) != 1 ||
		d.Alerts[0].RuleID != "brute-force-lock" {
		t.Fatalf("fifth failed login: %v %v alerts %v, want the live brute-force-lock and its alert only", d.Action, ruleIDs(d.Matched), d.Alerts)
	}
	if d.Candidate.Action != rules.Lock {
		t.Errorf("fifth failed login: candidate %v, want lock", d.Candidate.Action)
	}
	// Refused before the rules ran: no candidate outcome either.
	if r := score(t, s, payment("p2", "a1", t0+6000, 100, "payee-1")); r.Reason != ReasonAccountLocked || r.Candidate.Version != "" {
		t.Errorf("payment of the locked account: reason %q candidate %+v, want refused and no candidate", r.Reason, r.Candidate)
	}

	holder.ClearCandidate()
	if d := score(t, s, payment("p3", "a2", t0+7000, 100, "payee-1")); d.Candidate.Version != "" || len(d.Candidate.Matched) != 0 {
		t.Errorf("after ClearCandidate: candidate %+v, want none", d.Candidate)
	}
}

func TestNoCandidateNoCandidateOutcome(t *testing.T) {
	s, _, _ := newTestScorer(t)
	d := score(t, s, payment("p1", "a1", t0, 100, "payee-1"))
	if d.Candidate.Version != "" || d.Candidate.Action != rules.Allow || d.Candidate.Matched != nil {
		t.Errorf("candidate %+v, want the zero value", d.Candidate)
	}
}
