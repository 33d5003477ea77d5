package engine

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
	"riskd/features"
	"riskd/rules"
)

// twinStream is generated traffic with some events sent twice (the
// duplicates a replay meets) and, every 997 events, a support lock of the
// account whose event comes next.
type twinStream struct {
	raws    [][]byte
	lockAt  map[int]string // index -> account locked before that event
	clockAt func(i int) int64
}

func newTwinStream(t *testing.T, n int) twinStream {
	t.Helper()
	g := traffic.New(traffic.Config{Accounts: 1500, Seed: 11, FraudRate: 0.05,
		Start: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)})
	st := twinStream{lockAt: map[int]string{}}
	var ev event.Event
	var ts []int64
	for i := 0; len(st.raws) < n; i++ {
		g.Next(&ev)
		raw := ev.AppendJSON(nil)
		st.raws, ts = append(st.raws, raw), append(ts, ev.TS)
		if i%301 == 0 { // the same event again, a little later
			st.raws, ts = append(st.raws, raw), append(ts, ev.TS)
		}
		if i%997 == 0 {
			st.lockAt[len(st.raws)] = ev.AccountID
		}
	}
	// The simulated wall clock: a second after the event, never backwards.
	clock := make([]int64, len(ts))
	for i, x := range ts {
		clock[i] = x + 1000
		if i > 0 {
			clock[i] = max(clock[i], clock[i-1])
		}
	}
	st.clockAt = func(i int) int64 { return clock[i] }
	return st
}

// swap installs a rule set in a holder before event i of a stream, as a
// backtest's baseline switches where the record did.
type swap struct {
	i  int
	rs *rules.RuleSet
}

func (sw *swap) at(i int, h *rules.Holder) {
	if sw != nil && sw.i == i {
		h.Install(sw.rs, 100)
	}
}

// sameDecision reports how two decisions of one event differ in what any
// output of them shows, or "".
func sameDecision(a, b *Decision) string {
	switch {
	case a.EventID != b.EventID:
		return fmt.Sprintf("event %s vs %s", a.EventID, b.EventID)
	case a.Action != b.Action || a.Reason != b.Reason || a.Score != b.Score || a.Duplicate != b.Duplicate:
		return fmt.Sprintf("action %v %q score %d dup %v vs %v %q score %d dup %v",
			a.Action, a.Reason, a.Score, a.Duplicate, b.Action, b.Reason, b.Score, b.Duplicate)
	case !a.LockUntil.Equal(b.LockUntil):
		return fmt.Sprintf("lock until %v vs %v", a.LockUntil, b.LockUntil)
	case !slices.Equal(a.Matched, b.Matched) || !slices.Equal(a.Shadow, b.Shadow):
		return fmt.Sprintf("matched %v shadow %v vs %v %v", a.Matched, a.Shadow, b.Matched, b.Shadow)
	case !slices.Equal(a.Features, b.Features):
		return fmt.Sprintf("features %v vs %v", a.Features, b.Features)
	case !slices.Equal(a.Alerts, b.Alerts) || !slices.Equal(a.ThrottledAlerts, b.ThrottledAlerts):
		return fmt.Sprintf("alerts %v throttled %v vs %v %v", a.Alerts, a.ThrottledAlerts, b.Alerts, b.ThrottledAlerts)
	case a.Late != b.Late || !slices.Equal(a.LateFor, b.LateFor) || a.RuleSetVersion != b.RuleSetVersion:
		return fmt.Sprintf("late %v %v version %s vs %v %v version %s", a.Late, a.LateFor, a.RuleSetVersion, b.Late, b.LateFor, b.RuleSetVersion)
	}
	return ""
}

// decideAlone decides the stream with one rule set on a Scorer of its own:
// what a twin's world must reproduce.
func decideAlone(t *testing.T, set *features.Set, holder *rules.Holder, st twinStream, sw *swap) []*Decision {
	t.Helper()
	var clock int64
	s := NewScorer(Config{Now: func() time.Time { return time.UnixMilli(clock) }, AlertThrottle: time.Hour}, set, holder)
	out := make([]*Decision, len(st.raws))
	var d Decision
	for i, raw := range st.raws {
		clock = st.clockAt(i)
		sw.at(i, holder)
		if acc, ok := st.lockAt[i]; ok {
			s.Lock(acc, clock+20*60*1000, "support:test")
		}
		if err := s.Score(raw, Source{}, &d); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		out[i] = d.Clone()
	}
	return out
}

// decideTwin decides the stream on a twin Scorer, split at the first lock
// the worlds disagree on, and returns both worlds' decisions and the index
// of the split (-1: none).
func decideTwin(t *testing.T, set *features.Set, holder, twin *rules.Holder, st twinStream, sw *swap) (a, b []*Decision, split int) {
	t.Helper()
	var clock int64
	now := func() time.Time { return time.UnixMilli(clock) }
	cfg := Config{Now: now, AlertThrottle: time.Hour}
	s := NewTwinScorer(cfg, set, holder, twin)
	var other *Scorer // the twin world, once split
	split = -1
	a, b = make([]*Decision, len(st.raws)), make([]*Decision, len(st.raws))
	var d, td Decision
	for i, raw := range st.raws {
		clock = st.clockAt(i)
		sw.at(i, twin)
		if acc, ok := st.lockAt[i]; ok {
			s.Lock(acc, clock+20*60*1000, "support:test")
			if other != nil {
				other.Lock(acc, clock+20*60*1000, "support:test")
			}
		}
		if other == nil {
			err := s.ScoreTwin(raw, &d, &td)
			if errors.Is(err, ErrTwinsDiverge) {
				if other, err = s.Split(now); err != nil {
					t.Fatal(err)
				}
				split = i
			} else if err != nil {
				t.Fatalf("event %d: %v", i, err)
			} else {
				a[i], b[i] = d.Clone(), td.Clone()
				continue
			}
		}
		if err := s.Score(raw, Source{}, &d); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if err := other.Score(raw, Source{}, &td); err != nil {
			t.Fatalf("event %d, twin: %v", i, err)
		}
		a[i], b[i] = d.Clone(), td.Clone()
	}
	return a, b, split
}

// A twin Scorer decides a stream for two rule sets exactly as two Scorers
// of their own would, decision for decision: before the worlds' locks
// part (one observation of the features serves both), at the split, and
// after it, with duplicates, alerts throttled per world and support locks
// applied to both. The twin's set locks on a signal the live set only
// scores, so the worlds part early in the stream.
func TestTwinScorerDecidesAsTwoScorers(t *testing.T) {
	set, holder := loadReference(t)
	files, err := rules.ReadFiles(os.DirFS(filepath.Join(referenceDir, "rules")))
	if err != nil {
		t.Fatal(err)
	}
	files0 := maps.Clone(files)
	files["extra.yaml"] = []byte(`
- id: lock-on-new-device-payment
  when: event.type == "payment" && f.new_device && event.amount > 300
  action: lock
  lock_for: 45m
  alert: "locked"
`)
	locking, err := rules.Compile(files, set)
	if err != nil {
		t.Fatal(err)
	}
	st := newTwinStream(t, 30_000)
	// The same lock from two thirds of the stream on: a split with much
	// state to copy.
	files["extra.yaml"] = []byte(fmt.Sprintf(`
- id: lock-on-new-device-payment-late
  when: event.type == "payment" && event.amount > 200 && event.ts >= %d
  action: lock
  lock_for: 24h
`, st.clockAt(20_000)))
	lockingLate, err := rules.Compile(files, set)
	if err != nil {
		t.Fatal(err)
	}

	// The live set compiled again: another RuleSet of the same content.
	same, err := rules.Compile(files0, set)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		twin      *rules.RuleSet
		sw        *swap
		wantSplit bool
	}{
		{"same set, never split", holder.Load(), nil, false},
		{"the same rules compiled apart, never split", same, nil, false},
		{"a set that locks more, split", locking, nil, true},
		{"a set that locks more late, split late", lockingLate, nil, true},
		{"the same set, then one that locks more", same, &swap{12_000, locking}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := &rules.Holder{}
			live.Install(holder.Load(), 1)
			twin := &rules.Holder{}
			twin.Install(tc.twin, 2)
			wantA := decideAlone(t, set, live, st, nil)
			wantB := decideAlone(t, set, twin, st, tc.sw)
			twin.Install(tc.twin, 2)
			a, b, split := decideTwin(t, set, live, twin, st, tc.sw)
			if (split >= 0) != tc.wantSplit {
				t.Fatalf("split at %d, want a split: %v", split, tc.wantSplit)
			}
			locks := 0
			for i := range st.raws {
				if diff := sameDecision(a[i], wantA[i]); diff != "" {
					t.Fatalf("event %d (split at %d), live world: %s", i, split, diff)
				}
				if diff := sameDecision(b[i], wantB[i]); diff != "" {
					t.Fatalf("event %d (split at %d), twin world: %s", i, split, diff)
				}
				if b[i].Action == rules.Lock {
					locks++
				}
			}
			t.Logf("%d events, split at %d, %d locks in the twin world", len(st.raws), split, locks)
		})
	}
}
