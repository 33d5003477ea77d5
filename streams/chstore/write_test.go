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

func TestReplayedBatchIsStoredOnce(t *testing.T) {
	cfg := chtest.Config(t)
	st, err := chstore.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	ds := sampleDecisions("replay", 60, base)
	for range 2 {
		if err := st.WriteDecisions(t.Context(), ds); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	if n, err := st.CountDecisions(ctx, base); err != nil || n != 60 {
		t.Errorf("CountDecisions = %d, %v; want 60", n, err)
	}
	if n, err := st.CountDecisions(ctx, base.Add(30*time.Second+2*time.Millisecond)); err != nil || n != 29 {
		t.Errorf("CountDecisions(since 30.002s later) = %d, %v; want 29 (since is exact to the ms)", n, err)
	}
	if n, err := st.CountDecisions(ctx, time.Time{}); err != nil || n != 60 {
		t.Errorf("CountDecisions(zero time) = %d, %v; want 60", n, err)
	}
	if n, err := st.DuplicateDecisionRows(ctx); err != nil || n != 0 {
		t.Errorf("DuplicateDecisionRows = %d, %v; want 0", n, err)
	}
	checkRows(t, rawConn(t, cfg.Addr), cfg.Database, wantRows(ds))

	wantActions := map[string]uint64{}
	for _, d := range ds {
		wantActions[d.Action.String()]++
	}
	if got, err := st.ActionCounts(ctx, base); err != nil || !mapsEqual(got, wantActions) {
		t.Errorf("ActionCounts = %v, %v; want %v", got, err, wantActions)
	}
	top, err := st.TopRules(ctx, base, 2)
	if err != nil {
		t.Fatal(err)
	}
	// scam-payee (i%3==0) and velocity (odd, not locked) both hit 20 of 60;
	// ties are ordered by rule id.
	if want := []chstore.RuleCount{{RuleID: "scam-payee", Hits: 20}, {RuleID: "velocity", Hits: 20}}; !slices.Equal(top, want) {
		t.Errorf("TopRules = %v, want %v", top, want)
	}
}

func TestDecisionByEventReturnsWhatWasWritten(t *testing.T) {
	st := chtest.Open(t)
	base := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	d := &engine.Decision{
		EventID:        "ev-lock-1",
		AccountID:      "acct-42",
		EventType:      "login_failed",
		EventTS:        base.UnixMilli() + 789,
		DecidedAt:      base.Add(1234 * time.Millisecond),
		Action:         rules.Lock,
		Score:          90,
		Matched:        []engine.RuleHit{{RuleID: "brute-force-lock", Action: rules.Lock, Score: 90}},
		Shadow:         []engine.RuleHit{{RuleID: "s1"}, {RuleID: "s2"}},
		Errored:        []engine.RuleHit{{RuleID: "broken", Error: "nil map"}},
		RuleSetVersion: "42-1a2b3c4d",
		Features:       []engine.FeatureValue{{Name: "failed_logins_15m", Value: 5}, {Name: "ratio", Value: 0.25}},
		Latency:        321 * time.Microsecond,
		LockUntil:      base.Add(30 * time.Minute),
		Alerts:         []engine.AlertMessage{{RuleID: "brute-force-lock", Message: "Your wallet was locked."}},
		Late:           true,
		LateFor:        []string{"account", "device.id"},
		Raw:            []byte(`{"event_id":"ev-lock-1"}`),
		Source:         engine.Source{Topic: "account-events", Partition: 2, Offset: 77},
	}
	allow := &engine.Decision{EventID: "ev-allow", AccountID: "acct-1", EventType: "payment", EventTS: base.UnixMilli(),
		DecidedAt: base, RuleSetVersion: "42-1a2b3c4d", Source: engine.Source{Topic: "api", Partition: -1}}
	if err := st.WriteDecisions(t.Context(), []*engine.Decision{d, allow}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := st.DecisionByEvent(t.Context(), "ev-lock-1")
	if err != nil || !ok {
		t.Fatalf("DecisionByEvent = %v, %v", ok, err)
	}
	want := chstore.StoredDecision{
		EventID: "ev-lock-1", AccountID: "acct-42", EventType: "login_failed",
		EventTime: base, EventTS: base.UnixMilli() + 789, DecidedAt: base.Add(1234 * time.Millisecond),
		Action: "lock", Score: 90, MatchedRules: []string{"brute-force-lock"}, ShadowRules: []string{"s1", "s2"},
		ErroredRules: []string{"broken"}, RuleErrors: []string{"nil map"}, RuleSetVersion: "42-1a2b3c4d",
		Features: d.Features, Latency: 321 * time.Microsecond, LockUntil: base.Add(30 * time.Minute), Late: true,
		LateFor: []string{"account", "device.id"}, Source: d.Source,
	}
	if !storedEqual(got, want) {
		t.Errorf("DecisionByEvent:\n got %+v\nwant %+v", got, want)
	}

	got, ok, err = st.DecisionByEvent(t.Context(), "ev-allow")
	if err != nil || !ok {
		t.Fatalf("DecisionByEvent(ev-allow) = %v, %v", ok, err)
	}
	if got.Action != "allow" || !got.LockUntil.IsZero() || len(got.MatchedRules) != 0 || got.Source.Partition != -1 ||
		got.Late || len(got.LateFor) != 0 {
		t.Errorf("allow decision read back as %+v; want action allow, no lock, no rules, partition -1, not late", got)
	}
	late, err := st.LateCounts(t.Context(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if late.Events != 1 || !mapsEqual(late.ByReason, map[string]uint64{"account": 1, "device.id": 1}) {
		t.Errorf("LateCounts = %+v, want 1 event, late for account and device.id once each", late)
	}

	if _, ok, err := st.DecisionByEvent(t.Context(), "no-such-event"); ok || err != nil {
		t.Errorf("DecisionByEvent(no-such-event) = %v, %v; want false, nil", ok, err)
	}
}

func TestDuplicateRepeatDoesNotReplaceTheOriginalDecision(t *testing.T) {
	st := chtest.Open(t)
	base := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	orig := sampleDecisions("dup", 5, base)[4] // a new lock
	repeat := *orig
	repeat.Duplicate, repeat.Reason, repeat.DecidedAt = true, engine.ReasonDuplicate, base.Add(time.Hour)
	for _, d := range []*engine.Decision{orig, &repeat} {
		if err := st.WriteDecisions(t.Context(), []*engine.Decision{d}); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := st.DecisionByEvent(t.Context(), orig.EventID)
	if err != nil || !ok {
		t.Fatalf("DecisionByEvent = %v, %v", ok, err)
	}
	if got.Duplicate || got.Reason != "" || !got.DecidedAt.Equal(orig.DecidedAt.Truncate(time.Millisecond)) {
		t.Errorf("stored %+v; want the original decision (not duplicate, decided at %v)", got, orig.DecidedAt)
	}
}

func TestWriteLockAndRuleSetAreRecordedOnce(t *testing.T) {
	cfg := chtest.Config(t)
	st, err := chstore.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)
	lock := chstore.LockRow{AccountID: "acct-1", Action: "lock", Reason: "owner reported theft", Until: at.Add(24 * time.Hour), Actor: "support:agent-17", At: at}
	unlock := chstore.LockRow{AccountID: "acct-1", Action: "unlock", Reason: "owner verified by phone", Actor: "support:agent-17", At: at.Add(300 * time.Millisecond)}
	rs := chstore.RuleSetRow{Version: "3-deadbeef", Seq: 3, Hash: "deadbeefcafe", LoadedAt: at, RuleCount: 12, Source: "dir:/etc/riskd/rules"}
	for range 2 { // the second round is a retry and must collapse
		for _, r := range []chstore.LockRow{lock, unlock} {
			if err := st.WriteLock(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.WriteRuleSet(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
	}
	conn := rawConn(t, cfg.Addr)
	if n := countFinal(t, conn, cfg.Database, "account_locks"); n != 2 {
		t.Errorf("account_locks: %d rows, want 2 (a lock and an unlock in the same second)", n)
	}
	if n := countFinal(t, conn, cfg.Database, "rulesets"); n != 1 {
		t.Errorf("rulesets: %d rows, want 1", n)
	}
	var version, source string
	var count uint32
	err = conn.QueryRow(t.Context(), "SELECT version, source, rule_count FROM `"+cfg.Database+"`.rulesets FINAL").Scan(&version, &source, &count)
	if err != nil || version != "3-deadbeef" || source != "dir:/etc/riskd/rules" || count != 12 {
		t.Errorf("rulesets row = %q %q %d, %v", version, source, count, err)
	}
	if err := st.WriteLock(t.Context(), chstore.LockRow{AccountID: "acct-1", Action: "freeze"}); err == nil ||
		err.Error() != `chstore: write lock acct-1: action "freeze": want lock or unlock` {
		t.Errorf("WriteLock(freeze) error = %v", err)
	}
}

func storedEqual(a, b chstore.StoredDecision) bool {
	return a.EventID == b.EventID && a.AccountID == b.AccountID && a.EventType == b.EventType &&
		a.EventTime.Equal(b.EventTime) && a.EventTS == b.EventTS && a.DecidedAt.Equal(b.DecidedAt) &&
		a.Action == b.Action && a.Score == b.Score && a.Reason == b.Reason &&
		slices.Equal(a.MatchedRules, b.MatchedRules) && slices.Equal(a.ShadowRules, b.ShadowRules) &&
		slices.Equal(a.ErroredRules, b.ErroredRules) && slices.Equal(a.RuleErrors, b.RuleErrors) &&
		a.RuleSetVersion == b.RuleSetVersion && slices.Equal(a.Features, b.Features) &&
		a.Latency == b.Latency && a.LockUntil.Equal(b.LockUntil) && a.Late == b.Late &&
		slices.Equal(a.LateFor, b.LateFor) && a.Duplicate == b.Duplicate && a.Source == b.Source
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
