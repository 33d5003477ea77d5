package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
	"riskd/features"
	"riskd/internal/alone"
	"riskd/rules"
)

// A feature file before and after an analyst's edit: kept as they were
// (one renamed), accounts_per_ip_1h dropped (and with it the ip group),
// devices_24h's window changed, merchants_per_card_1h added in a new
// group.
const (
	featuresBefore = `
failed_logins_15m: {count: login_failed, by: account, window: 15m}
payments_1h: {count: payment, by: account, window: 1h}
amount_24h: {sum: amount, by: account, window: 24h, where: 'type == "payment"'}
accounts_per_device_1h: {distinct: account_id, by: device.id, window: 1h}
accounts_per_ip_1h: {distinct: account_id, by: ip, window: 1h}
senders_per_payee_24h: {distinct: account_id, by: payee_id, window: 24h}
devices_24h: {distinct: device.id, by: account, window: 24h}
`
	featuresAfter = `
payments_1h: {count: payment, by: account, window: 1h}
failed_logins_15m: {count: login_failed, by: account, window: 15m}
amount_24h: {sum: amount, by: account, window: 24h, where: 'type == "payment"'}
accounts_per_device_1h: {distinct: account_id, by: device.id, window: 1h}
payee_senders_24h: {distinct: account_id, by: payee_id, window: 24h}
devices_24h: {distinct: device.id, by: account, window: 12h}
merchants_per_card_1h: {distinct: merchant_id, by: card_id, window: 1h}
`
	// rulesCommon read only features both files keep under one name.
	rulesCommon = `
- id: brute-force-lock
  when: event.type == "login_failed" && f.failed_logins_15m >= 3
  action: lock
  lock_for: 30m
- id: many-payments
  when: event.type == "payment" && f.payments_1h > 2
  score: 30
- id: big-day
  when: event.type == "payment" && f.amount_24h > 50000
  action: review
- id: device-farm
  when: f.accounts_per_device_1h > 1
  action: review
  mode: shadow
`
	rulesBefore = rulesCommon + `
- id: probe
  when: event.type != "" || f.senders_per_payee_24h > 0
  mode: shadow
  action: alert
`
	// rulesAfter reads the new features in a shadow rule that matches
	// every payment: those decisions say the features are warming.
	rulesAfter = rulesCommon + `
- id: probe
  when: event.type != "" || f.payee_senders_24h > 0
  mode: shadow
  action: alert
- id: reads-new
  when: event.type == "payment" && f.devices_24h + f.merchants_per_card_1h >= 0
  mode: shadow
  action: review
`
)

// renamedAs maps the kept features' names after the edit to before it.
var renamedAs = map[string]string{"payee_senders_24h": "senders_per_payee_24h"}

func loadInline(t *testing.T, featuresYAML, rulesYAML string) (*features.Set, *rules.Holder) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "features.yaml"), []byte(featuresYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules", "rules.yaml"), []byte(rulesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadWorkload(t, filepath.Join(dir, "features.yaml"), filepath.Join(dir, "rules"))
}

// TestRestoreAcrossAFeatureChange cuts an engine's state in the middle of
// a stream, restores the cut with edited feature definitions and rules,
// and decides the rest of the stream there: every decision equals the
// uninterrupted engine's (actions, matched rules, locks, duplicates, late
// groups both keep, and the value of every kept feature, renamed or not),
// and the decisions whose rules read a feature that started empty say it
// is warming, until the cut's latest event time plus its window.
func TestRestoreAcrossAFeatureChange(t *testing.T) {
	before, holderBefore := loadInline(t, featuresBefore, rulesBefore)
	after, holderAfter := loadInline(t, featuresAfter, rulesAfter)
	g := traffic.New(traffic.Config{Accounts: 300, Seed: 23, FraudRate: 0.4,
		Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)})
	evs := generate(g, 8000)
	evs = append(evs, evs[3900:4100]...) // duplicates on both sides of the cut
	const at = 4000
	cfg := Config{Shards: 3, QueueSize: 32, Now: func() time.Time { return time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC) }}

	var c collector
	whole := New(cfg, before, holderBefore)
	ctx := startEngine(t, whole)
	early, want := map[string]*Decision{}, map[string]*Decision{}
	c.submit(t, whole, ctx, evs[:at], early)
	cutc, err := whole.StartCut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.submit(t, whole, ctx, evs[at:], want)
	res := <-cutc
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	c.wg.Wait()
	// The latest event time the cut's state has seen: the events before
	// it that reached the features.
	watermark := int64(0)
	for _, d := range early {
		if !d.Duplicate && d.Reason != ReasonAccountLocked {
			watermark = max(watermark, d.EventTS)
		}
	}

	t.Run("another features Config is refused", func(t *testing.T) {
		defs, _ := features.ParseDefinitions([]byte(featuresAfter))
		cfg60 := features.DefaultConfig()
		cfg60.Buckets = 60
		set60, err := features.Compile(defs, cfg60)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Restore(cfg, set60, holderAfter, bytes.NewReader(res.Data))
		if !errors.Is(err, ErrCheckpointFormat) || !errors.Is(err, features.ErrSnapshot) ||
			!strings.Contains(err.Error(), "features.buckets 30, this configuration has 60") {
			t.Fatalf("restore with 60 buckets: %v", err)
		}
	})
	t.Run("a checkpoint older than the oldest version read is refused", func(t *testing.T) {
		old := bytes.Clone(res.Data)
		binary.LittleEndian.PutUint16(old[len(checkpointMagic):], oldestCheckpointVersion-1)
		_, err := Restore(cfg, after, holderAfter, bytes.NewReader(old))
		if !errors.Is(err, ErrCheckpointFormat) || !strings.Contains(err.Error(), "version 6, this build reads 7 to 8") {
			t.Fatalf("restore of a version 6 checkpoint: %v", err)
		}
	})

	resumed, err := Restore(cfg, after, holderAfter, bytes.NewReader(res.Data))
	if err != nil {
		t.Fatal(err)
	}
	rep := resumed.FeatureRestore()
	wantFresh := map[string]time.Duration{"devices_24h": 12 * time.Hour, "merchants_per_card_1h": time.Hour}
	if rep.Watermark != watermark || len(rep.Kept) != 5 || len(rep.Fresh) != 2 ||
		!slices.Equal(rep.Dropped, []string{"accounts_per_ip_1h", "devices_24h"}) || !slices.Equal(rep.DroppedGroups, []string{"ip"}) {
		t.Fatalf("restore report %+v (watermark %d)", rep, watermark)
	}
	for _, f := range rep.Fresh {
		if f.Until != watermark+wantFresh[f.Name].Milliseconds() {
			t.Errorf("%s warming until %d, want %d", f.Name, f.Until, watermark+wantFresh[f.Name].Milliseconds())
		}
	}
	if w := resumed.Warming(watermark); len(w) != 2 {
		t.Errorf("warming at the watermark: %v", w)
	}
	if w := whole.Warming(watermark); w != nil {
		t.Errorf("the uninterrupted engine has warming features: %v", w)
	}

	rctx := startEngine(t, resumed)
	got := map[string]*Decision{}
	c.submit(t, resumed, rctx, evs[at:], got)
	c.wg.Wait()

	common := func(groups []string) []string {
		return slices.DeleteFunc(slices.Clone(groups), func(g string) bool { return g == "ip" || g == "card_id" })
	}
	var warmingSeen, warmedSeen [2]int
	for id, d := range got {
		w, ok := want[id]
		if !ok {
			t.Fatalf("the resumed engine decided %s, the uninterrupted one did not", id)
		}
		if w.Action != d.Action || w.Reason != d.Reason || w.Duplicate != d.Duplicate ||
			!slices.Equal(ruleIDs(w.Matched), ruleIDs(d.Matched)) || !w.LockUntil.Equal(d.LockUntil) ||
			!slices.Equal(common(w.LateFor), common(d.LateFor)) {
			t.Fatalf("event %s:\nuninterrupted %v %q dup=%v %v late %v\nresumed       %v %q dup=%v %v late %v", id,
				w.Action, w.Reason, w.Duplicate, ruleIDs(w.Matched), w.LateFor,
				d.Action, d.Reason, d.Duplicate, ruleIDs(d.Matched), d.LateFor)
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
				t.Fatalf("event %s: kept %s reads %v, the uninterrupted %s %v (recorded: %v)", id, name, v, was, ov, ok)
			}
		}
		if len(w.Warming) != 0 {
			t.Fatalf("event %s: the uninterrupted engine says %v are warming", id, w.Warming)
		}
		var wantWarming []string
		if slices.Contains(ruleIDs(d.Shadow), "reads-new") {
			for i, name := range []string{"devices_24h", "merchants_per_card_1h"} {
				if d.EventTS < watermark+wantFresh[name].Milliseconds() {
					wantWarming = append(wantWarming, name)
					warmingSeen[i]++
				} else {
					warmedSeen[i]++
				}
			}
		}
		if !slices.Equal(d.Warming, wantWarming) {
			t.Fatalf("event %s at watermark%+v (%s, shadow %v): warming %v, want %v", id,
				time.Duration(d.EventTS-watermark)*time.Millisecond, d.EventType, ruleIDs(d.Shadow), d.Warming, wantWarming)
		}
	}
	if len(got) < len(evs)-at-10 {
		t.Fatalf("compared %d decisions of %d after the cut", len(got), len(evs)-at)
	}
	for i := range warmingSeen {
		if warmingSeen[i] == 0 || warmedSeen[i] == 0 {
			t.Fatalf("decisions reading a new feature: %v while warming, %v after; the test needs both", warmingSeen, warmedSeen)
		}
	}
}

// TestWarmingCostsNoAllocation scores events on a Scorer whose state was
// restored with a feature added, while it is warming and after: the
// decision's Warming reuses its slice, as LateFor does.
func TestWarmingCostsNoAllocation(t *testing.T) {
	if !alone.Process(t) { // it counts allocations
		return
	}
	s := warmingScorer(t, rulesAfter)
	var d Decision
	n := 0
	for _, at := range []int64{t0 + 60_000, t0 + 13*3600_000} { // warming, then warmed
		raws := make([][]byte, 200)
		for i := range raws {
			n++
			raws[i] = msg(event.Event{ID: "w" + strconv.Itoa(n), Type: event.TypePayment,
				AccountID: "a", TS: at + int64(i), Amount: 100, Device: event.Device{ID: "d"}, CardID: "c", MerchantID: "m"})
		}
		if err := s.Score(raws[0], Source{}, &d); err != nil {
			t.Fatal(err)
		}
		if warming := len(d.Warming) > 0; warming != (at == t0+60_000) {
			t.Fatalf("at %d: warming %v", at, d.Warming)
		}
		i := 1
		if allocs := testing.AllocsPerRun(100, func() {
			if err := s.Score(raws[i], Source{}, &d); err != nil {
				t.Fatal(err)
			}
			i++
		}); allocs != 0 {
			t.Errorf("at %d (warming %v): Score allocates %v times per event", at, d.Warming, allocs)
		}
	}
}

// TestWhenWarmingSkip restores a state with a feature added and scores
// payments while it is warming and after: a rule reading it that declares
// when_warming: skip gives nothing while it warms (and is listed in
// WarmingSkipped), one that does not decides with the partial window and
// marks the decision; both match once the window has filled. A rule that
// reads no warming feature is never skipped.
func TestWhenWarmingSkip(t *testing.T) {
	s := warmingScorer(t, `
- id: cautious
  when: event.type == "payment" && f.merchants_per_card_1h < 5
  action: review
  when_warming: skip
- id: eager
  when: event.type == "payment" && f.merchants_per_card_1h < 5
  mode: shadow
  action: alert
- id: steady
  when: event.type == "payment" && f.payments_1h >= 0
  mode: shadow
  action: alert
  when_warming: skip
`)
	var d Decision
	for i, at := range []int64{t0 + 60_000, t0 + 2*3600_000} { // warming, then warmed
		raw := msg(event.Event{ID: "p" + strconv.Itoa(i), Type: event.TypePayment, AccountID: "a", TS: at, Amount: 100,
			Device: event.Device{ID: "d"}, CardID: "c", MerchantID: "m"})
		if err := s.Score(raw, Source{}, &d); err != nil {
			t.Fatal(err)
		}
		warming := i == 0
		wantMatched, wantShadow, wantSkipped := []string{"cautious"}, []string{"eager", "steady"}, []string(nil)
		wantAction, wantWarming := rules.Review, []string(nil)
		if warming {
			wantMatched, wantSkipped, wantAction, wantWarming = nil, []string{"cautious"}, rules.Allow, []string{"merchants_per_card_1h"}
		}
		if !slices.Equal(ruleIDs(d.Matched), wantMatched) || !slices.Equal(ruleIDs(d.Shadow), wantShadow) ||
			!slices.Equal(d.WarmingSkipped, wantSkipped) || d.Action != wantAction || !slices.Equal(d.Warming, wantWarming) {
			t.Errorf("warming %v: matched %v shadow %v skipped %v action %v warming %v; want %v %v %v %v %v", warming,
				ruleIDs(d.Matched), ruleIDs(d.Shadow), d.WarmingSkipped, d.Action, d.Warming,
				wantMatched, wantShadow, wantSkipped, wantAction, wantWarming)
		}
	}
}

// warmingScorer is a Scorer whose state, one payment of account "a" on
// device "d" at t0 under featuresBefore, was restored into featuresAfter
// with rulesYAML: its new features warm until t0 plus their window.
func warmingScorer(t *testing.T, rulesYAML string) *Scorer {
	t.Helper()
	before, _ := loadInline(t, featuresBefore, rulesBefore)
	after, holder := loadInline(t, featuresAfter, rulesYAML)
	st := before.NewStore()
	var v features.Values
	ev := event.Event{Type: event.TypePayment, AccountID: "a", TS: t0, Amount: 100, Device: event.Device{ID: "d"}}
	st.Observe(&ev, &v)
	var buf bytes.Buffer
	if err := st.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	restored, err := after.Restore(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return newScorer(Config{DedupeCapacity: 1 << 16, MaxFutureSkew: -1}.withDefaults(), after, holder, restored)
}
