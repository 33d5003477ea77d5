package engine

import (
	"bytes"
	"cmp"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
	"riskd/features"
	"riskd/internal/alone"
	"riskd/rules"
)

const minute = int64(60_000)

func TestAlertThrottleTable(t *testing.T) {
	if !alone.Process(t) { // it counts allocations
		return
	}
	th := newAlertThrottle(10 * time.Minute)
	const a1, a2, r1, r2 = 1, 2, 11, 12
	steps := []struct {
		name          string
		account, rule uint64
		ts            int64
		pass          bool
		sent          int64 // the window's opener, when held back
	}{
		{"the first alert goes out", a1, r1, t0, true, 0},
		{"a repeat a minute later is held back", a1, r1, t0 + minute, false, t0},
		{"another rule of the account has its own window", a1, r2, t0 + minute, true, 0},
		{"another account has its own window", a2, r1, t0 + minute, true, 0},
		{"a repeat a millisecond before the window ends is held back", a1, r1, t0 + 10*minute - 1, false, t0},
		{"a repeat dated before the opener (late) is held back", a1, r1, t0 - 5*minute, false, t0},
		{"the first one at the window's end goes out", a1, r1, t0 + 10*minute, true, 0},
		{"and opens the next window", a1, r1, t0 + 11*minute, false, t0 + 10*minute},
		{"the second rule's window is its own", a1, r2, t0 + 11*minute, true, 0},
	}
	for _, s := range steps {
		sent, ok := th.allow(s.account, s.rule, s.ts)
		if ok != s.pass || sent != s.sent {
			t.Errorf("%s: allow = %d, %v; want %d, %v", s.name, sent, ok, s.sent, s.pass)
		}
	}
	if n := th.len(); n != 3 {
		t.Errorf("%d entries, want 3 (a1/r1, a1/r2, a2/r1)", n)
	}
	// At t0+11m the windows of a2/r1 (t0+1m) ended; a1/r1 (t0+10m) and
	// a1/r2 (t0+11m) are open.
	if n := th.expire(t0 + 11*minute); n != 1 || th.len() != 2 {
		t.Errorf("expire dropped %d, left %d; want 1 dropped, 2 left", n, th.len())
	}
	if _, ok := th.allow(a2, r1, t0+11*minute); !ok {
		t.Error("after its window ended and was swept, a2/r1 is still held back")
	}

	if allocs := testing.AllocsPerRun(100, func() { th.allow(a1, r1, t0+12*minute) }); allocs != 0 {
		t.Errorf("a held-back alert allocates %v times, want 0", allocs)
	}

	off := newAlertThrottle(0)
	for i := range 3 {
		if _, ok := off.allow(a1, r1, t0+int64(i)); !ok {
			t.Errorf("with the throttle off, repeat %d was held back", i)
		}
	}
	if off.len() != 0 {
		t.Errorf("with the throttle off it remembered %d entries", off.len())
	}

	far := newAlertThrottle(time.Hour)
	far.allow(a1, r1, math.MaxInt64-1) // an event dated at the end of time
	if _, ok := far.allow(a1, r1, math.MaxInt64-1); ok {
		t.Error("a window opened near the end of time wrapped around and let a repeat through")
	}
}

// twoAlertRules writes a rule set with two alerting rules that one payment
// can match both of, over testdata's features.
func twoAlertRules(t *testing.T) (*features.Set, *rules.Holder) {
	t.Helper()
	dir := t.TempDir()
	ruleFile := `- id: watched-payee
  when: event.type == "payment" && event.payee_id == "payee-watch"
  action: alert
  alert: "You paid a payee we are watching."
- id: big-payment
  when: event.type == "payment" && event.amount >= 10000
  action: alert
  alert: "A large payment left your wallet."
`
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(ruleFile), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadWorkload(t, "testdata/features.yaml", dir)
}

// TestAlertThrottlePerAccountAndRuleAcrossACheckpoint decides one script
// on an engine that is checkpointed and restored halfway: each rule of an
// account is throttled on its own, on event time, and the windows survive
// the restore.
func TestAlertThrottlePerAccountAndRuleAcrossACheckpoint(t *testing.T) {
	set, holder := twoAlertRules(t)
	const watch, big = "watched-payee", "big-payment"
	type alert struct {
		rule string
		sent int64 // for a throttled alert: the window's opener
	}
	steps := []struct {
		id, account string
		at, amount  int64 // at: minutes after t0 (in ms)
		payee       string
		sent        []string
		throttled   []alert
	}{
		{"e1", "a1", 0, 20000, "payee-watch", []string{watch, big}, nil},
		{"e2", "a1", minute, 20000, "payee-watch", nil, []alert{{watch, t0}, {big, t0}}},
		{"e3", "a2", minute, 20000, "payee-watch", []string{watch, big}, nil},
		{"e4", "a1", 5 * minute, 100, "payee-watch", nil, []alert{{watch, t0}}},
		{"e5", "a1", 10*minute - 1, 100, "payee-watch", nil, []alert{{watch, t0}}},
		// checkpoint and restore here
		{"e6", "a1", 10 * minute, 100, "payee-watch", []string{watch}, nil},
		{"e7", "a1", 10*minute + 30_000, 20000, "payee-other", []string{big}, nil},
		{"e8", "a1", 12 * minute, 20000, "payee-watch", nil, []alert{{watch, t0 + 10*minute}, {big, t0 + 10*minute + 30_000}}},
		{"e9", "a1", 30_000, 100, "payee-watch", nil, []alert{{watch, t0 + 10*minute}}}, // late: before the opener
		{"e10", "a2", 4 * minute, 20000, "payee-watch", nil, []alert{{watch, t0 + minute}, {big, t0 + minute}}},
	}
	// The wall clock after the last step: the throttle runs on event time.
	cfg := Config{Shards: 2, AlertThrottle: 10 * time.Minute, Now: newFakeClock(t0 + time.Hour.Milliseconds()).Now}
	e := New(cfg, set, holder)
	ctx := startEngine(t, e)
	for i, s := range steps {
		if s.id == "e6" {
			var buf bytes.Buffer
			if err := e.Checkpoint(ctx, &buf); err != nil {
				t.Fatal(err)
			}
			r, err := Restore(cfg, set, holder, &buf)
			if err != nil {
				t.Fatal(err)
			}
			e, ctx = r, startEngine(t, r)
		}
		d := mustDecide(t, ctx, e, payment(s.id, s.account, t0+s.at, s.amount, s.payee))
		var sent []string
		for _, a := range d.Alerts {
			sent = append(sent, a.RuleID)
		}
		var throttled []alert
		for _, a := range d.ThrottledAlerts {
			throttled = append(throttled, alert{a.RuleID, a.SentTS})
			if a.UntilTS != a.SentTS+10*minute || a.Message == "" {
				t.Errorf("step %d (%s): throttled %+v, want until = sent + 10m and the message", i, s.id, a)
			}
		}
		slices.Sort(sent)
		slices.Sort(s.sent)
		sortAlerts := func(as []alert) {
			slices.SortFunc(as, func(x, y alert) int { return cmp.Compare(x.rule, y.rule) })
		}
		sortAlerts(throttled)
		sortAlerts(s.throttled)
		if !slices.Equal(sent, s.sent) || !slices.Equal(throttled, s.throttled) {
			t.Errorf("step %d (%s %s at t0+%dms): sent %v throttled %v; want sent %v throttled %v",
				i, s.id, s.account, s.at, sent, throttled, s.sent, s.throttled)
		}
	}
}

func TestAlertThrottleCanBeTurnedOff(t *testing.T) {
	set, holder := twoAlertRules(t)
	s := NewScorer(Config{AlertThrottle: -1, Now: fixedClock()}, set, holder)
	for i := range 3 {
		d := score(t, s, payment("off-"+strconv.Itoa(i), "a1", t0+int64(i)*1000, 100, "payee-watch"))
		if len(d.Alerts) != 1 || len(d.ThrottledAlerts) != 0 {
			t.Errorf("repeat %d with the throttle off: alerts %v, throttled %v; want it sent", i, d.Alerts, d.ThrottledAlerts)
		}
	}
}

// TestShardSweepDropsEndedThrottleWindows: the Scorer's periodic sweep
// (every expireEvery events, on event time) forgets the windows that have
// ended and keeps the open ones, so the throttle's memory is bounded by the
// accounts that alerted within one window.
func TestShardSweepDropsEndedThrottleWindows(t *testing.T) {
	set, holder := twoAlertRules(t)
	// The wall clock after the last event: the sweep runs on event time.
	s := NewScorer(Config{AlertThrottle: 10 * time.Minute, Now: newFakeClock(t0 + time.Hour.Milliseconds()).Now}, set, holder)
	score(t, s, payment("w1", "a1", t0, 100, "payee-watch"))
	score(t, s, payment("w2", "a2", t0+5*minute, 100, "payee-watch"))
	if n := s.throttle.len(); n != 2 {
		t.Fatalf("%d throttle entries after two alerts, want 2", n)
	}
	s.observed = expireEvery - 1 // the next event sweeps
	score(t, s, login("l1", "a3", t0+10*minute+1, false))
	if n := s.throttle.len(); n != 1 {
		t.Errorf("%d throttle entries after the sweep at t0+10m, want 1 (a1's window ended, a2's is open)", n)
	}
	if d := score(t, s, payment("w3", "a2", t0+14*minute, 100, "payee-watch")); len(d.ThrottledAlerts) != 1 {
		t.Errorf("a2 inside its window after the sweep: alerts %v, want it throttled", d.Alerts)
	}
}

// TestAlertThrottleIsTheSameForAnyShardCountAndAcrossARestore decides one
// stream (generated traffic with fraud, plus floods of alerting payments
// on a few accounts) with one shard, with four, and with four checkpointed
// and restored halfway, and requires the same alerts sent and held back
// for every event.
func TestAlertThrottleIsTheSameForAnyShardCountAndAcrossARestore(t *testing.T) {
	set, holder := loadReference(t)
	g := traffic.New(traffic.Config{Accounts: 200, Seed: 9, FraudRate: 0.3,
		Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)})
	var evs [][]byte
	var dec event.Decoder
	var ev event.Event
	for i, raw := range generate(g, 4000) {
		evs = append(evs, raw)
		if i%2 != 0 {
			continue
		}
		// A scam-payee payment on one of three flood accounts (each gets
		// one every few minutes), dated like the traffic around it.
		if err := dec.Decode(raw, &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, payment("flood-"+strconv.Itoa(i), "flood-acct-"+strconv.Itoa(i%3), ev.TS, 1500, "payee-scam-0003"))
	}

	// The traffic's hours run ahead of the fixed wall clock: no skew bound.
	cfg := func(shards int) Config { return Config{Shards: shards, Now: fixedClock(), MaxFutureSkew: -1} }
	one := runEngine(t, New(cfg(1), set, holder))
	four := runEngine(t, New(cfg(4), set, holder))
	e := New(cfg(4), set, holder)
	ctx := startEngine(t, e)
	var sent, held, heldAcross int
	var restoredAt int64 // sent times up to this are windows opened before the restore
	for i, raw := range evs {
		if i == len(evs)/2 {
			var buf bytes.Buffer
			if err := e.Checkpoint(ctx, &buf); err != nil {
				t.Fatal(err)
			}
			r, err := Restore(cfg(4), set, holder, &buf)
			if err != nil {
				t.Fatal(err)
			}
			e, ctx = r, startEngine(t, r)
			if err := dec.Decode(evs[i-1], &ev); err != nil {
				t.Fatal(err)
			}
			restoredAt = ev.TS
		}
		d1, d4, dr := one(raw), four(raw), mustDecide(t, ctx, e, raw)
		for name, d := range map[string]*Decision{"4 shards": d4, "4 shards restored halfway": dr} {
			if !slices.Equal(d1.Alerts, d.Alerts) || !slices.Equal(d1.ThrottledAlerts, d.ThrottledAlerts) {
				t.Fatalf("event %d (%s): 1 shard sent %v held %v\n%s sent %v held %v", i, d1.EventID,
					d1.Alerts, d1.ThrottledAlerts, name, d.Alerts, d.ThrottledAlerts)
			}
		}
		sent += len(d1.Alerts)
		held += len(d1.ThrottledAlerts)
		for _, a := range d1.ThrottledAlerts {
			if restoredAt != 0 && a.SentTS <= restoredAt {
				heldAcross++
			}
		}
	}
	if sent == 0 || held == 0 || heldAcross == 0 {
		t.Fatalf("%d alerts sent, %d held back, %d of them by windows opened before the restore: "+
			"the stream does not test the throttle", sent, held, heldAcross)
	}
	t.Logf("%d events: %d alerts sent, %d held back (%d by windows from before the restore)", len(evs), sent, held, heldAcross)
}
