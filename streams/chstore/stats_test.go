package chstore_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"riskd/engine"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/chstore"
)

// statsBase is the start of the hand-made period of the stats tests.
var statsBase = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// statsDecisions is a hand-made set: two rule-set versions, active rules
// r-block and r-score, shadow rule s-review, events inside the two-hour
// period from statsBase and one on each side of it.
func statsDecisions() []*engine.Decision {
	d := func(id, typ string, at time.Duration, version string, action rules.Action, matched, shadow []string, label string) *engine.Decision {
		hit := func(ids []string) []engine.RuleHit {
			var hs []engine.RuleHit
			for _, id := range ids {
				hs = append(hs, engine.RuleHit{RuleID: id})
			}
			return hs
		}
		return &engine.Decision{EventID: id, AccountID: "acct-" + id, EventType: typ, EventTS: statsBase.Add(at).UnixMilli(),
			DecidedAt: statsBase.Add(at + time.Millisecond), Action: action, RuleSetVersion: version,
			Matched: hit(matched), Shadow: hit(shadow), Label: label, Raw: []byte(`{}`)}
	}
	return []*engine.Decision{
		d("e0", "payment", -time.Millisecond, "1-aaaaaaaa", rules.Review, []string{"r-score"}, nil, ""), // before the period
		d("e1", "payment", 5*time.Minute, "1-aaaaaaaa", rules.Block, []string{"r-block"}, []string{"s-review"}, "ato"),
		d("e2", "payment", 10*time.Minute, "1-aaaaaaaa", rules.Allow, nil, []string{"s-review"}, ""),
		d("e3", "payment", 40*time.Minute, "1-aaaaaaaa", rules.Review, []string{"r-score"}, nil, ""),
		d("e4", "login", 70*time.Minute, "2-bbbbbbbb", rules.Challenge, []string{"r-block"}, nil, ""),
		d("e5", "payment", 100*time.Minute, "2-bbbbbbbb", rules.Block, []string{"r-block", "r-score"}, []string{"s-review"}, ""),
		d("e6", "payment", 2*time.Hour, "2-bbbbbbbb", rules.Block, []string{"r-never"}, nil, ""), // at To: outside
	}
}

// storeStatsSet writes statsDecisions twice (a replay must count once) and
// labels e2 and e5 not_fraud and e4 fraud through WriteLabels.
func storeStatsSet(t *testing.T, st *chstore.Store) {
	t.Helper()
	for range 2 {
		if err := st.WriteDecisions(t.Context(), statsDecisions()); err != nil {
			t.Fatal(err)
		}
	}
	_, err := st.WriteLabels(t.Context(), []chstore.LabelItem{
		{EventID: "e2", Label: chstore.LabelNotFraud, Source: "support"},
		{EventID: "e4", Label: chstore.LabelFraud, Source: "chargeback"},
		{EventID: "e5", Label: chstore.LabelNotFraud, Source: "support"},
	}, "alice", statsBase.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
}

func TestRuleStatsCountHandMadeDecisions(t *testing.T) {
	st := chtest.Open(t)
	ctx := t.Context()
	storeStatsSet(t, st)
	p := chstore.StatsPeriod{From: statsBase, To: statsBase.Add(2 * time.Hour), Bucket: 30 * time.Minute}

	hits, err := st.RuleHitBuckets(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	ms := func(d time.Duration) int64 { return statsBase.Add(d).UnixMilli() }
	// Worked by hand from statsDecisions: e1 fraud (the generator's "ato"),
	// e2 and e5 not_fraud, e4 fraud, e3 unlabelled; buckets of 30 minutes.
	want := []chstore.RuleBucketHits{
		{RuleID: "r-block", Version: "1-aaaaaaaa", Bucket: 0, Hits: 1, Fraud: 1, First: ms(5 * time.Minute), Last: ms(5 * time.Minute)},
		{RuleID: "r-block", Version: "2-bbbbbbbb", Bucket: 2, Hits: 1, Fraud: 1, First: ms(70 * time.Minute), Last: ms(70 * time.Minute)},
		{RuleID: "r-block", Version: "2-bbbbbbbb", Bucket: 3, Hits: 1, NotFraud: 1, First: ms(100 * time.Minute), Last: ms(100 * time.Minute)},
		{RuleID: "r-score", Version: "1-aaaaaaaa", Bucket: 1, Hits: 1, First: ms(40 * time.Minute), Last: ms(40 * time.Minute)},
		{RuleID: "r-score", Version: "2-bbbbbbbb", Bucket: 3, Hits: 1, NotFraud: 1, First: ms(100 * time.Minute), Last: ms(100 * time.Minute)},
		{RuleID: "s-review", Shadow: true, Version: "1-aaaaaaaa", Bucket: 0, Hits: 2, Fraud: 1, NotFraud: 1, First: ms(5 * time.Minute), Last: ms(10 * time.Minute)},
		{RuleID: "s-review", Shadow: true, Version: "2-bbbbbbbb", Bucket: 3, Hits: 1, NotFraud: 1, First: ms(100 * time.Minute), Last: ms(100 * time.Minute)},
	}
	if !slices.Equal(hits, want) {
		t.Errorf("RuleHitBuckets:\n got %+v\nwant %+v", hits, want)
	}

	mix, err := st.DecisionMixes(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	wantMix := []chstore.DecisionMix{
		{Version: "1-aaaaaaaa", EventType: "payment", Action: "allow", Events: 1, NotFraud: 1},
		{Version: "1-aaaaaaaa", EventType: "payment", Action: "block", Events: 1, Fraud: 1},
		{Version: "1-aaaaaaaa", EventType: "payment", Action: "review", Events: 1},
		{Version: "2-bbbbbbbb", EventType: "login", Action: "challenge", Events: 1, Fraud: 1},
		{Version: "2-bbbbbbbb", EventType: "payment", Action: "block", Events: 1, NotFraud: 1},
	}
	if !slices.Equal(mix, wantMix) {
		t.Errorf("DecisionMixes:\n got %+v\nwant %+v", mix, wantMix)
	}

	shadow, err := st.ShadowHitMixes(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	wantShadow := []chstore.ShadowHitMix{
		{RuleID: "s-review", Version: "1-aaaaaaaa", EventType: "payment", Action: "allow", Hits: 1},
		{RuleID: "s-review", Version: "1-aaaaaaaa", EventType: "payment", Action: "block", Hits: 1},
		{RuleID: "s-review", Version: "2-bbbbbbbb", EventType: "payment", Action: "block", Hits: 1},
	}
	if !slices.Equal(shadow, wantShadow) {
		t.Errorf("ShadowHitMixes:\n got %+v\nwant %+v", shadow, wantShadow)
	}
}

func TestRuleStatsRefuseTooManyRowsAndBadPeriods(t *testing.T) {
	st := chtest.Open(t)
	ctx := t.Context()
	storeStatsSet(t, st)
	p := chstore.StatsPeriod{From: statsBase, To: statsBase.Add(2 * time.Hour), Bucket: 30 * time.Minute}
	if _, err := chstore.RuleHitBucketsAtMost(ctx, st, p, 7); err != nil {
		t.Errorf("7 rows with a bound of 7: %v", err)
	}
	_, err := chstore.RuleHitBucketsAtMost(ctx, st, p, 6)
	want := "chstore: rule hit buckets: too many rows: over 6 (rule, version, bucket) rows; shorten the period or widen the bucket"
	if err == nil || err.Error() != want || !errors.Is(err, chstore.ErrStatsTooLarge) {
		t.Errorf("7 rows with a bound of 6: %v, want %s", err, want)
	}
	for _, c := range []struct {
		p    chstore.StatsPeriod
		want string
	}{
		{chstore.StatsPeriod{From: statsBase, To: statsBase, Bucket: time.Minute},
			"chstore: rule hit buckets: to 2026-03-01T10:00:00Z is not after from 2026-03-01T10:00:00Z"},
		{chstore.StatsPeriod{From: statsBase, To: statsBase.Add(time.Hour)},
			"chstore: rule hit buckets: bucket 0s is under a millisecond"},
	} {
		if _, err := st.RuleHitBuckets(ctx, c.p); err == nil || err.Error() != c.want {
			t.Errorf("RuleHitBuckets(%v) = %v, want %s", c.p, err, c.want)
		}
	}
	// A period with nothing in it is no error.
	empty := chstore.StatsPeriod{From: statsBase.Add(-48 * time.Hour), To: statsBase.Add(-24 * time.Hour), Bucket: time.Hour}
	if h, err := st.RuleHitBuckets(ctx, empty); err != nil || len(h) != 0 {
		t.Errorf("empty period: %v, %v", h, err)
	}
}
