package engine

import (
	"slices"
	"testing"
	"time"

	"riskd/bench/traffic"
)

// TestSwapFeaturesMidStream changes the feature definitions of a running
// engine in the middle of a stream (the edit of TestRestoreAcrossAFeature
// Change: features kept, one renamed, one regrouped, one added, one
// dropped) and installs the rules compiled against them at the same
// place. Every event is decided, and every decision after the swap equals
// an engine's that never swapped in action, matched rules, lock and the
// value of every kept feature; the decisions whose rules read a new
// feature say it is warming, until the state's latest event time plus
// its window.
func TestSwapFeaturesMidStream(t *testing.T) {
	before, holderBefore := loadInline(t, featuresBefore, rulesBefore)
	after, holderAfter := loadInline(t, featuresAfter, rulesAfter)
	_, holderSwapped := loadInline(t, featuresBefore, rulesBefore)
	g := traffic.New(traffic.Config{Accounts: 300, Seed: 29, FraudRate: 0.4,
		Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)})
	evs := generate(g, 8000)
	const at = 4000
	cfg := Config{Shards: 3, QueueSize: 32, Now: func() time.Time { return time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC) }}

	var c collector
	whole := New(cfg, before, holderBefore)
	want := map[string]*Decision{}
	c.submit(t, whole, startEngine(t, whole), evs, want)

	swapped := New(cfg, before, holderSwapped)
	ctx := startEngine(t, swapped)
	early, got := map[string]*Decision{}, map[string]*Decision{}
	c.submit(t, swapped, ctx, evs[:at], early)
	rsAfter := holderAfter.Load()
	installed := false
	rep, err := swapped.SwapFeatures(ctx, after, func() {
		holderSwapped.Install(rsAfter, rsAfter.Version.Seq)
		installed = true
	})
	if err != nil {
		t.Fatal(err)
	}
	if !installed {
		t.Fatal("SwapFeatures did not run during")
	}
	c.submit(t, swapped, ctx, evs[at:], got)
	c.wg.Wait()

	if len(early)+len(got) != len(evs) || len(want) != len(evs) {
		t.Fatalf("decided %d before and %d after the swap, %d without it, of %d events", len(early), len(got), len(want), len(evs))
	}
	watermark := int64(0)
	for _, d := range early {
		if d.Reason != ReasonAccountLocked {
			watermark = max(watermark, d.EventTS)
		}
	}
	if rep.Watermark != watermark || len(rep.Kept) != 5 || len(rep.Fresh) != 2 ||
		!slices.Equal(rep.Dropped, []string{"accounts_per_ip_1h", "devices_24h"}) {
		t.Fatalf("swap report %+v (watermark %d)", rep, watermark)
	}
	wantFresh := map[string]time.Duration{"devices_24h": 12 * time.Hour, "merchants_per_card_1h": time.Hour}
	warmingSeen := 0
	for id, d := range got {
		w := want[id]
		if w.Action != d.Action || w.Reason != d.Reason || !slices.Equal(ruleIDs(w.Matched), ruleIDs(d.Matched)) ||
			!w.LockUntil.Equal(d.LockUntil) {
			t.Fatalf("event %s:\nwithout a swap %v %q %v\nswapped        %v %q %v", id,
				w.Action, w.Reason, ruleIDs(w.Matched), d.Action, d.Reason, ruleIDs(d.Matched))
		}
		old := featureMap(w.Features)
		for name, v := range featureMap(d.Features) {
			if _, fresh := wantFresh[name]; fresh {
				continue
			}
			was := name
			if r, ok := renamedAs[name]; ok {
				was = r
			}
			if ov, ok := old[was]; !ok || ov != v {
				t.Fatalf("event %s: kept %s reads %v, without a swap %s %v (recorded: %v)", id, name, v, was, ov, ok)
			}
		}
		var wantWarming []string
		if slices.Contains(ruleIDs(d.Shadow), "reads-new") {
			for _, name := range []string{"devices_24h", "merchants_per_card_1h"} {
				if d.EventTS < watermark+wantFresh[name].Milliseconds() {
					wantWarming = append(wantWarming, name)
				}
			}
		}
		if !slices.Equal(d.Warming, wantWarming) {
			t.Fatalf("event %s: warming %v, want %v", id, d.Warming, wantWarming)
		}
		if len(wantWarming) > 0 {
			warmingSeen++
		}
	}
	if warmingSeen == 0 {
		t.Fatal("no decision after the swap read a warming feature: the test shows nothing")
	}
	if cur := holderSwapped.Load(); cur != rsAfter {
		t.Fatalf("the holder has %v, want the rules compiled against the new features", cur.Version)
	}
}

// TestSwapFeaturesOnAStoppedEngine: the swap is refused and during never
// runs; a running engine swaps without one.
func TestSwapFeaturesOnAStoppedEngine(t *testing.T) {
	before, holder := loadInline(t, featuresBefore, rulesBefore)
	after, _ := loadInline(t, featuresAfter, rulesAfter)
	e := New(Config{Shards: 2}, before, holder)
	startEngine(t, e)
	stopped := New(Config{Shards: 2}, before, holder)
	startEngine(t, stopped)
	stopped.gate.Lock() // what Run does when its context ends
	stopped.stopped = true
	stopped.gate.Unlock()
	if _, err := stopped.SwapFeatures(t.Context(), after, func() { t.Error("during ran") }); err == nil {
		t.Fatal("a stopped engine swapped its features")
	}
	if _, err := e.SwapFeatures(t.Context(), after, nil); err != nil {
		t.Fatalf("a running engine: %v", err)
	}
}
