package chstore_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"riskd/engine"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/chstore"
)

// The backtest reads give each event once, in replay order, its original
// decision over a duplicate's repeat, the labels, and support's locks
// only, bounded.
func TestBacktestReads(t *testing.T) {
	cfg := chtest.Config(t)
	cfg.RecoveryWindow = -1 // store the repeats below, as a replay past the window does
	st, err := chstore.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	ds := sampleDecisions("bt", 20, base)
	// Two events at one millisecond, on partitions in the opposite order
	// of their ids, to see the tie broken by Kafka position.
	ds[3].EventTS, ds[3].Source.Partition = ds[2].EventTS, 9
	ds[2].Source.Partition = 8
	if err := st.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	// The events and decisions stored again, as a replay after a restart
	// does; the decisions as the duplicates the engine marks them.
	if err := st.WriteDecisions(t.Context(), replayedCopies(ds)); err != nil {
		t.Fatal(err)
	}
	from, to := base.UnixMilli(), base.Add(time.Minute).UnixMilli()

	var ids []string
	err = st.ReplayEvents(t.Context(), from, to, func(ev *chstore.ReplayEvent) error {
		ids = append(ids, ev.EventID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, 0, len(ds))
	for _, d := range ds {
		want = append(want, d.EventID)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("replayed %v\nwant %v", ids, want)
	}

	var got []chstore.ReplayDecision
	if err := st.ReplayDecisions(t.Context(), from, to, func(d chstore.ReplayDecision) error { got = append(got, d); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ds) {
		t.Fatalf("%d decisions, want %d", len(got), len(ds))
	}
	for _, g := range got {
		i := slices.IndexFunc(ds, func(d *engine.Decision) bool { return d.EventID == g.EventID })
		if g.Action != ds[i].Action.String() || g.DecidedAtMs != ds[i].DecidedAt.UnixMilli() || !slices.Equal(g.MatchedRules, ruleIDs(ds[i].Matched)) {
			t.Errorf("%s: got %s %v at %d, want the original %s %v at %d", g.EventID, g.Action, g.MatchedRules, g.DecidedAtMs,
				ds[i].Action, ruleIDs(ds[i].Matched), ds[i].DecidedAt.UnixMilli())
		}
	}

	// The text and values come through as stored, whatever they hold.
	odd := []float64{0, math.Copysign(0, -1), 0.1, 1.0 / 3, 1e-300, 5e-324, math.MaxFloat64, math.NaN(), math.Inf(1), math.Inf(-1), 256, 1 << 56}
	d := ds[5].Clone()
	d.EventID, d.EventTS, d.Action = "bt-odd", base.Add(2*time.Minute).UnixMilli(), rules.Block // past the span read below
	d.RuleSetVersion = "v:1,2"
	d.Matched = []engine.RuleHit{{RuleID: "a:b,c", Action: rules.Block}, {RuleID: "", Action: rules.Alert}, {RuleID: "12:x", Action: rules.Alert}}
	d.Shadow = nil
	d.Features = nil
	for i, v := range odd {
		d.Features = append(d.Features, engine.FeatureValue{Name: fmt.Sprintf("f%d", i), Value: v})
	}
	if err := st.WriteDecisions(t.Context(), []*engine.Decision{d}); err != nil {
		t.Fatal(err)
	}
	var oddGot []chstore.ReplayDecision
	if err := st.ReplayDecisions(t.Context(), d.EventTS, d.EventTS+1, func(r chstore.ReplayDecision) error { oddGot = append(oddGot, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(oddGot) != 1 {
		t.Fatalf("%d decisions at %d, want 1", len(oddGot), d.EventTS)
	}
	g := oddGot[0]
	if g.Action != "block" || g.RuleSetVersion != d.RuleSetVersion || !slices.Equal(g.MatchedRules, ruleIDs(d.Matched)) || g.ShadowRules != nil {
		t.Errorf("read back %q %q %q %q, want block %q %q and no shadow rules", g.Action, g.RuleSetVersion, g.MatchedRules, g.ShadowRules, d.RuleSetVersion, ruleIDs(d.Matched))
	}
	if len(g.FeatureNames) != len(odd) || len(g.FeatureValues) != len(odd) {
		t.Fatalf("read back %d names and %d values, want %d", len(g.FeatureNames), len(g.FeatureValues), len(odd))
	}
	for i, v := range odd {
		if g.FeatureNames[i] != d.Features[i].Name || math.Float64bits(g.FeatureValues[i]) != math.Float64bits(v) {
			t.Errorf("feature %d read back as %s=%v (%#x), want %s=%v (%#x)", i, g.FeatureNames[i], g.FeatureValues[i],
				math.Float64bits(g.FeatureValues[i]), d.Features[i].Name, v, math.Float64bits(v))
		}
	}
	// A lone 0 (whose bytes ClickHouse renders as nothing) is still one value.
	zero := d.Clone()
	zero.EventID, zero.EventTS = "bt-zero", d.EventTS+1
	zero.Features = []engine.FeatureValue{{Name: "z", Value: 0}}
	if err := st.WriteDecisions(t.Context(), []*engine.Decision{zero}); err != nil {
		t.Fatal(err)
	}
	var zeroGot []chstore.ReplayDecision
	if err := st.ReplayDecisions(t.Context(), zero.EventTS, zero.EventTS+1, func(r chstore.ReplayDecision) error { zeroGot = append(zeroGot, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(zeroGot) != 1 || !slices.Equal(zeroGot[0].FeatureNames, []string{"z"}) || !slices.Equal(zeroGot[0].FeatureValues, []float64{0}) {
		t.Errorf("a lone zero read back as %+v", zeroGot)
	}

	var labels int
	if err := st.ReplayLabels(t.Context(), from, to, func(l chstore.ReplayLabel) error {
		if l.Label != "fraud" {
			t.Errorf("label %+v", l)
		}
		labels++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if labels != 5 {
		t.Errorf("%d labels, want 5", labels)
	}

	counts, err := st.CountEvents(t.Context(), from, to, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	// 40 rows (20 events stored twice) over 20 s in steps of 10 s.
	if wantCounts := []chstore.EventCount{{StartMs: from, Rows: 20}, {StartMs: from + 10_000, Rows: 20}}; !slices.Equal(counts, wantCounts) {
		t.Errorf("counts %v, want %v", counts, wantCounts)
	}

	// Support's locks: the engine's lock rows are left out; the bound holds.
	for i, at := range []time.Time{base.Add(time.Second), base.Add(2 * time.Second), base.Add(3 * time.Second)} {
		row := chstore.LockRow{AccountID: "acct-1", Action: "lock", Reason: "r", Until: at.Add(500*time.Millisecond + time.Hour),
			Actor: "support:a", At: at.Add(500 * time.Millisecond)}
		if i == 1 {
			row.Action, row.Until = "unlock", time.Time{}
		}
		if err := st.WriteLock(t.Context(), row); err != nil {
			t.Fatal(err)
		}
	}
	locks, err := st.SupportLocks(t.Context(), from, to, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(locks) != 3 || locks[0].Action != "lock" || locks[1].Action != "unlock" ||
		!locks[0].Until.Equal(base.Add(1500*time.Millisecond+time.Hour)) || !locks[1].Until.IsZero() {
		t.Errorf("support locks %+v", locks)
	}
	_, err = st.SupportLocks(t.Context(), from, to, 2)
	if !errors.Is(err, chstore.ErrTooManyLocks) ||
		err.Error() != "chstore: support locks: too many support locks: more than 2 between 2026-05-01T00:00:00Z and 2026-05-01T00:01:00Z" {
		t.Errorf("over the bound: %v", err)
	}

	first, last, ok, err := st.DecisionTimes(t.Context(), from, to)
	if err != nil || !ok || first != ds[0].DecidedAt.UnixMilli() || last < ds[19].DecidedAt.UnixMilli() {
		t.Errorf("decision times %d..%d %v %v", first, last, ok, err)
	}
	if ts, ok, err := st.EarliestEvent(t.Context()); err != nil || !ok || ts != ds[0].EventTS {
		t.Errorf("earliest event %d %v %v, want %d", ts, ok, err, ds[0].EventTS)
	}
}

func ruleIDs(hs []engine.RuleHit) []string {
	ids := []string{}
	for _, h := range hs {
		ids = append(ids, h.RuleID)
	}
	return ids
}
