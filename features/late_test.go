package features

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"riskd/event"
)

const lateYAML = `
n_1h: {count: payment, by: account, window: 1h}
sum_1h: {sum: amount, by: account, window: 1h}
dev_1h: {distinct: device.id, by: account, window: 1h}
card_n_1h: {count: "*", by: card_id, window: 1h}
card_max_1h: {max: amount, by: card_id, window: 1h}
acc_per_dev_1h: {distinct: account_id, by: device.id, window: 1h}
dev_n_1h: {count: "*", by: device.id, window: 1h}
dev_sum_10m: {sum: amount, by: device.id, window: 10m}
`

// groupOf returns the index of the group named name.
func groupOf(t *testing.T, s *Set, name string) int {
	t.Helper()
	for g := range s.Groups() {
		if s.GroupName(g) == name {
			return g
		}
	}
	t.Fatalf("no group %s", name)
	return -1
}

func TestGroupNames(t *testing.T) {
	s := mustSet(t, lateYAML)
	var got []string
	for g := range s.Groups() {
		got = append(got, s.GroupName(g))
	}
	if want := []string{"account", "card_id", "device.id"}; !slices.Equal(got, want) {
		t.Fatalf("group names %q, want %q", got, want)
	}
	if s.GroupName(-1) != "" || s.GroupName(s.Groups()) != "" {
		t.Fatal("a group that does not exist has a name")
	}
	all := LateMask(1<<s.Groups() - 1)
	if got := s.AppendGroupNames(nil, all); !slices.Equal(got, []string{"account", "card_id", "device.id"}) {
		t.Fatalf("AppendGroupNames(all) = %q", got)
	}
	if got := s.AppendGroupNames(nil, 0); got != nil {
		t.Fatalf("AppendGroupNames(0) = %q", got)
	}
}

// An event late for its device (another account used the device later)
// but in time for its account is added to the account's windows only.
func TestLateForDeviceOnly(t *testing.T) {
	s := mustSet(t, lateYAML)
	st := s.NewStore()
	min := int64(60_000)
	var v Values
	steps := []event.Event{
		{Type: "payment", AccountID: "a", TS: t0, Amount: 100, Device: event.Device{ID: "d"}},
		{Type: "payment", AccountID: "b", TS: t0 + 20*min, Amount: 7, Device: event.Device{ID: "d"}},
	}
	for i := range steps {
		if late := st.Observe(&steps[i], &v); late != 0 {
			t.Fatalf("in-order event %d late for %v", i, s.AppendGroupNames(nil, late))
		}
	}
	// a's latest is t0; d's is t0+20m, more than the 5m tolerance ahead.
	ev := event.Event{Type: "payment", AccountID: "a", TS: t0 + 10*min, Amount: 50, Device: event.Device{ID: "d"}}
	late := st.Observe(&ev, &v)
	dev := groupOf(t, s, "device.id")
	if late != 1<<dev || !late.Has(dev) || late.Has(groupOf(t, s, "account")) {
		t.Fatalf("late for %q, want device.id only", s.AppendGroupNames(nil, late))
	}
	if got := s.AppendGroupNames(nil, late); !slices.Equal(got, []string{"device.id"}) {
		t.Fatalf("late names %q", got)
	}
	want := map[string]float64{
		"n_1h": 2, "sum_1h": 150, "dev_1h": 1, // the account's windows got it
		// The device's did not, and are read as of t0+10m: a's t0 event
		// only, not b's later one.
		"acc_per_dev_1h": 1, "dev_n_1h": 1, "dev_sum_10m": 0,
	}
	for name, w := range want {
		if got := win(t, s, &v, name); got != w {
			t.Errorf("late event: %s = %v, want %v", name, got, w)
		}
	}
	// Later events see the account's windows with it and the device's
	// without it.
	probe := event.Event{Type: "login", AccountID: "a", TS: t0 + 21*min, Device: event.Device{ID: "d"}}
	if late := st.Observe(&probe, &v); late != 0 {
		t.Fatalf("probe late for %q", s.AppendGroupNames(nil, late))
	}
	want = map[string]float64{"n_1h": 2, "sum_1h": 150, "acc_per_dev_1h": 2, "dev_n_1h": 3, "dev_sum_10m": 7}
	for name, w := range want {
		if got := win(t, s, &v, name); got != w {
			t.Errorf("probe: %s = %v, want %v", name, got, w)
		}
	}
}

// Two events of one card and account arriving swapped, further apart
// than a bucket (2m for 1h windows): each reads as of its own time, and
// the state afterwards reads the same as after the two in order.
func TestSwappedEventsReadAsOfTheirOwnTime(t *testing.T) {
	s := mustSet(t, lateYAML)
	min := int64(60_000)
	prior := []event.Event{
		{Type: "payment", AccountID: "a", CardID: "c", TS: t0, Amount: 10, Device: event.Device{ID: "d1"}},
		{Type: "login", AccountID: "a", TS: t0 + 5*min, Device: event.Device{ID: "d2"}},
	}
	first := event.Event{Type: "payment", AccountID: "a", CardID: "c", TS: t0 + 10*min, Amount: 300, Device: event.Device{ID: "d3"}}
	second := event.Event{Type: "payment", AccountID: "a", CardID: "c", TS: t0 + 13*min, Amount: 40, Device: event.Device{ID: "d4"}}
	// The delayed one reads only what came before it in event time.
	wantFirst := map[string]float64{"n_1h": 2, "sum_1h": 310, "dev_1h": 3, "card_n_1h": 2, "card_max_1h": 300,
		"acc_per_dev_1h": 1, "dev_n_1h": 1, "dev_sum_10m": 300}

	run := func(order ...event.Event) (*Store, map[string]Values) {
		st := s.NewStore()
		got := map[string]Values{}
		for _, ev := range append(slices.Clone(prior), order...) {
			var v Values
			if late := st.Observe(&ev, &v); late != 0 {
				t.Fatalf("event at %d late for %q", ev.TS, s.AppendGroupNames(nil, late))
			}
			got[fmt.Sprint(ev.TS)] = v
		}
		return st, got
	}
	inOrder, ordered := run(first, second)
	swapped, got := run(second, first)
	key := fmt.Sprint(first.TS)
	for name, w := range wantFirst {
		if g := win(t, s, ptr(got[key]), name); g != w {
			t.Errorf("delayed event: %s = %v, want %v", name, g, w)
		}
		if g := win(t, s, ptr(ordered[key]), name); g != w {
			t.Errorf("in order: %s = %v, want %v", name, g, w)
		}
	}
	// The later one, seen first, reads the prior events and itself.
	wantSecond := map[string]float64{"n_1h": 2, "sum_1h": 50, "dev_1h": 3, "card_n_1h": 2, "card_max_1h": 40}
	for name, w := range wantSecond {
		if g := win(t, s, ptr(got[fmt.Sprint(second.TS)]), name); g != w {
			t.Errorf("early event: %s = %v, want %v", name, g, w)
		}
	}

	// Probes after both, at times that move the windows' edges past the
	// prior events and then past the swapped ones.
	for _, at := range []int64{14, 59, 61, 66, 70, 71, 72, 73, 74} {
		for _, dev := range []string{"d1", "d3", "d4"} {
			probe := event.Event{Type: "payment", AccountID: "a", CardID: "c", TS: t0 + at*min, Amount: 1, Device: event.Device{ID: dev}}
			var w1, w2 Values
			p1, p2 := probe, probe
			inOrder.Observe(&p1, &w1)
			swapped.Observe(&p2, &w2)
			if w1.Windows != w2.Windows {
				for _, name := range s.Names() {
					if a, b := win(t, s, &w1, name), win(t, s, &w2, name); a != b {
						t.Errorf("probe at t0+%dm on %s: %s = %v in order, %v swapped", at, dev, name, a, b)
					}
				}
			}
		}
	}
}

func ptr(v Values) *Values { return &v }

// A distinct value is counted as of the event reading it when it was seen
// up to the event's bucket, not when it was first seen after it.
func TestDistinctAsOf(t *testing.T) {
	s := mustSet(t, lateYAML)
	st := s.NewStore()
	min := int64(60_000)
	var v Values
	for _, ev := range []event.Event{
		{Type: "login", AccountID: "a", TS: t0, Device: event.Device{ID: "old"}},
		{Type: "login", AccountID: "a", TS: t0 + 10*min, Device: event.Device{ID: "old"}},
		{Type: "login", AccountID: "a", TS: t0 + 10*min, Device: event.Device{ID: "new"}},
	} {
		st.Observe(&ev, &v)
	}
	// At t0+6m "old" had been seen (t0) and "new" had not.
	ev := event.Event{Type: "login", AccountID: "a", TS: t0 + 6*min, Device: event.Device{ID: "mine"}}
	if late := st.Observe(&ev, &v); late != 0 {
		t.Fatal("in time, but late")
	}
	if got := win(t, s, &v, "dev_1h"); got != 2 {
		t.Fatalf("dev_1h as of t0+6m = %v, want 2 (old and mine)", got)
	}
	// Its own value, seen later too, counts as of its own time.
	ev = event.Event{Type: "login", AccountID: "a", TS: t0 + 7*min, Device: event.Device{ID: "new"}}
	st.Observe(&ev, &v)
	if got := win(t, s, &v, "dev_1h"); got != 3 {
		t.Fatalf("dev_1h as of t0+7m = %v, want 3 (old, mine, new)", got)
	}
	ev = event.Event{Type: "login", AccountID: "a", TS: t0 + 11*min, Device: event.Device{ID: "old"}}
	st.Observe(&ev, &v)
	if got := win(t, s, &v, "dev_1h"); got != 3 {
		t.Fatalf("dev_1h as of t0+11m = %v, want 3", got)
	}
}

// TestAsOfReadsMatchBruteForce feeds jittered traffic (some of it beyond
// the tolerance) and checks every count and sum against the events
// themselves: an entity's window as of an event holds the events it was
// given in buckets up to the event's, down to the window's start as of the
// event, and no further back than its window as of its latest time (older
// buckets are gone).
func TestAsOfReadsMatchBruteForce(t *testing.T) {
	const yml = `
acc_n_10m: {count: "*", by: account, window: 10m}
acc_sum_1h: {sum: amount, by: account, window: 1h}
dev_n_10m: {count: "*", by: device.id, window: 10m}
dev_sum_1h: {sum: amount, by: device.id, window: 1h}
`
	s := mustSet(t, yml, func(c *Config) { c.Buckets = 10 })
	st := s.NewStore()
	r := rand.New(rand.NewPCG(3, 4))
	type key struct {
		g  string
		id string
	}
	type ent struct {
		last  int64
		added []event.Event
	}
	ents := map[key]*ent{}
	min := int64(60_000)
	tol := s.Config().LateTolerance.Milliseconds()
	ts := t0
	lates := map[string]int{}
	for n := range 20_000 {
		ts += int64(r.IntN(20_000))
		at := ts - int64(r.IntN(int(8*min)))
		switch r.IntN(100) {
		case 0, 1, 2: // behind by up to two hours: out of every window
			at = ts - int64(r.IntN(int(120*min)))
		case 3: // years behind: the bucket numbers differ by more than 32 bits
			at = ts - 10*365*24*60*min
		}
		ev := event.Event{Type: "payment", AccountID: fmt.Sprint("a", r.IntN(30)), TS: at,
			Amount: int64(1 + r.IntN(1000)), Device: event.Device{ID: fmt.Sprint("d", r.IntN(12))}}
		var v Values
		late := st.Observe(&ev, &v)
		for _, g := range []struct {
			name, id string
			feats    [2]string
			widths   [2]int64
		}{
			{"account", ev.AccountID, [2]string{"acc_n_10m", "acc_sum_1h"}, [2]int64{10 * min, 60 * min}},
			{"device.id", ev.Device.ID, [2]string{"dev_n_10m", "dev_sum_1h"}, [2]int64{10 * min, 60 * min}},
		} {
			e := ents[key{g.name, g.id}]
			if e == nil {
				e = &ent{last: at}
				ents[key{g.name, g.id}] = e
			}
			wantLate := at < e.last-tol
			if late.Has(groupOf(t, s, g.name)) != wantLate {
				t.Fatalf("event %d at %d: late for %s %v, want %v (latest %d)", n, at, g.name, !wantLate, wantLate, e.last)
			}
			prevLast := e.last
			if wantLate {
				lates[g.name]++
			} else {
				e.added = append(e.added, ev)
				e.last = max(e.last, at)
			}
			for k, name := range g.feats {
				width := g.widths[k] / 10
				bk := floorDiv(at, width)
				keep := floorDiv(prevLast, width) - 10
				want := 0.0
				for i := range e.added {
					x := &e.added[i]
					b := floorDiv(x.TS, width)
					if b <= bk-10 || b > bk {
						continue
					}
					if b <= keep {
						continue // out of what the entity keeps
					}
					if k == 0 {
						want++
					} else {
						want += float64(x.Amount)
					}
				}
				if got := win(t, s, &v, name); got != want {
					t.Fatalf("event %d at %d (%s latest %d): %s = %v, want %v", n, at, g.name, prevLast, name, got, want)
				}
			}
		}
	}
	if lates["account"] == 0 || lates["device.id"] == 0 {
		t.Fatalf("the traffic tests too little lateness: %v", lates)
	}
}

// An event dated a whole window or more behind its entity's latest time
// reads 0 there, even when its bucket number equals a kept one's modulo
// 2^32 (buckets are kept as 32-bit numbers).
func TestFarBehindEventReadsNothing(t *testing.T) {
	s := mustSet(t, `n_3s: {count: "*", by: account, window: 3s}`) // 100ms buckets
	st := s.NewStore()
	var v Values
	ev := event.Event{Type: "login", AccountID: "a", TS: t0}
	st.Observe(&ev, &v)
	ev.TS = t0 - 1<<32*100 // the same bucket, truncated
	if late := st.Observe(&ev, &v); late != 1 {
		t.Fatalf("late %v, want late for the account", late)
	}
	if got := win(t, s, &v, "n_3s"); got != 0 {
		t.Fatalf("n_3s = %v as of 13 years before the only event, want 0", got)
	}
	ev.TS = t0 + 1
	st.Observe(&ev, &v)
	if got := win(t, s, &v, "n_3s"); got != 2 {
		t.Fatalf("n_3s = %v after, want 2", got)
	}
}
