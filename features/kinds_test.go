package features

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
	"riskd/internal/keyhash"
)

// kindsYAMLNew declares one or more features of each kind added after
// count..distinct, by account and by device, with and without filters,
// next to an old kind.
const kindsYAMLNew = `
acc_sd_1h:        {stddev: amount, by: account, window: 1h, where: 'type == "payment"'}
acc_last_1h:      {last: amount, by: account, window: 1h}
acc_since_10m:    {time_since: "*", by: account, window: 10m}
acc_since_pay_1h: {time_since: payment, by: account, window: 1h}
acc_first_1h:     {first_seen: login, by: account, window: 1h}
acc_n_10m:        {count: "*", by: account, window: 10m}
dev_sd_10m:       {stddev: amount, by: device.id, window: 10m}
dev_last_10m:     {last: amount, by: device.id, window: 10m, where: 'amount > 100'}
dev_since_1h:     {time_since: "*", by: device.id, window: 1h}
dev_first_1h:     {first_seen: "*", by: device.id, window: 1h}
`

// jitteredTraffic returns n generated events in stream order with their
// times disturbed: a fifth moved back by up to 8 minutes (some beyond the
// 5-minute tolerance: late), a few by up to two hours or ten years, and
// some repeated at the same time with another amount (ties).
func jitteredTraffic(n int, seed uint64) []event.Event {
	g := traffic.New(traffic.Config{Accounts: 40, Seed: seed, FraudRate: 0.05,
		Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EventsPerSecond: 40.0 / 90})
	r := rand.New(rand.NewPCG(seed, 99))
	const minute = 60_000
	evs := make([]event.Event, 0, n)
	for len(evs) < n {
		var ev event.Event
		g.Next(&ev)
		switch k := r.IntN(100); {
		case k < 20:
			ev.TS -= int64(r.IntN(8 * minute))
		case k < 23:
			ev.TS -= int64(r.IntN(120 * minute))
		case k == 23:
			ev.TS -= 10 * 365 * 24 * 60 * minute
		}
		evs = append(evs, ev)
		if r.IntN(100) < 5 && len(evs) < n {
			ev.Amount += int64(1 + r.IntN(5000))
			evs = append(evs, ev)
		}
	}
	return evs
}

// oracle recomputes the new kinds from the events themselves, for one
// entity of one group: the events it was given (not late for it) in
// stream order, and for last and time_since a model of the records the
// Store keeps, which only the reads of late events depend on.
type oracle struct {
	added []oev
	recs  map[int][]oev // by feature index
}

type oev struct {
	ts, seq int64
	val     float64
	ev      *event.Event
}

func TestNewKindsMatchBruteForce(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { checkNewKinds(t, seed, 12_000) })
	}
}

func checkNewKinds(t *testing.T, seed uint64, n int) {
	const buckets = 10
	s := mustSet(t, kindsYAMLNew, func(c *Config) { c.Buckets = buckets })
	st := s.NewStore()
	tol := s.Config().LateTolerance.Milliseconds()
	evs := jitteredTraffic(n, seed)
	ents := map[string]*oracle{}
	stats := map[string]int{}
	observeEntities(t, s, st, evs, func(e entityVisit) {
		seq, ev, v, g, name, id, isLate := e.seq, e.ev, e.v, e.g, e.name, e.id, e.late
		o := ents[e.key()]
		if o == nil {
			o = &oracle{recs: map[int][]oev{}}
			ents[e.key()] = o
		}
		cur := oev{ts: ev.TS, seq: int64(seq), ev: ev}
		last := e.latest // the entity's latest time, this event included unless late
		if isLate {
			stats["late "+name]++
		} else {
			o.added = append(o.added, cur)
			last = max(last, ev.TS)
		}
		if ev.TS < last {
			stats["behind "+name]++
		}
		{
			for _, i := range s.groups[g].feats {
				f := &s.feats[i]
				width := s.ids[i].widthMs
				bk := floorDiv(ev.TS, width)
				keep := floorDiv(last, width) - buckets
				inWin := func(x *oev) bool {
					b := floorDiv(x.ts, width)
					return b > bk-buckets && b <= bk && b > keep && f.match(x.ev, &st.vm)
				}
				got := v.Windows[i]
				var want float64
				switch f.kind {
				case KindCount:
					for k := range o.added {
						if inWin(&o.added[k]) {
							want++
						}
					}
				case KindStddev:
					var xs []float64
					for k := range o.added {
						if inWin(&o.added[k]) {
							xs = append(xs, f.num(o.added[k].ev))
						}
					}
					want = popStddev(xs)
					if math.Abs(got-want) > 1e-9*max(1, want) {
						t.Fatalf("event %d (%s %s): %s = %v, want %v (%d values)", seq, name, id, s.Name(i), got, want, len(xs))
					}
					got = want
				case KindFirstSeen:
					first := int64(math.MaxInt64)
					for k := range o.added {
						if x := &o.added[k]; inWin(x) && x.ts <= ev.TS {
							first = min(first, x.ts)
						}
					}
					if first != math.MaxInt64 {
						want = float64(ev.TS-first) / 1000
					}
				case KindLast, KindTimeSince:
					var from []oev // the events before this one
					if isLate {
						from = o.recs[i] // what the Store keeps of them
					} else {
						from = o.added[:len(o.added)-1]
					}
					var best *oev
					for k := range from {
						x := &from[k]
						if inWin(x) && x.ts <= ev.TS && (best == nil || x.ts >= best.ts) {
							best = x
						}
					}
					switch {
					case f.kind == KindTimeSince && best == nil:
						want = NeverSecs
					case f.kind == KindTimeSince:
						want = float64(ev.TS-best.ts) / 1000
					case best != nil:
						want = f.num(best.ev)
					}
					if !isLate && f.match(ev, &st.vm) {
						cur.val = want
						o.recs[i] = keepRecords(append(o.recs[i], cur), last-tol, floorDiv(last, width)-buckets, width)
					}
					if best != nil {
						stats["found "+string(f.kind)]++
					}
				}
				if got != want {
					t.Fatalf("event %d at %d (%s %s, latest %d, late %v): %s = %v, want %v", seq, ev.TS, name, id, last, isLate, s.Name(i), got, want)
				}
			}
		}
	})
	t.Log(stats)
	for _, k := range []string{"late account", "late device.id", "behind account", "behind device.id", "found last", "found time_since"} {
		if stats[k] < 20 {
			t.Fatalf("the traffic tests too little: %v", stats)
		}
	}
}

// keepRecords is the oracle's version of Store.pruneRecords: drop what
// left the window, the records before band but the latest, then the
// earliest beyond maxRecords.
func keepRecords(rs []oev, band, keep, width int64) []oev {
	out := rs[:0]
	anchor := -1
	for k := range rs {
		if rs[k].ts < band && floorDiv(rs[k].ts, width) > keep && (anchor < 0 || rs[k].ts >= rs[anchor].ts) {
			anchor = k
		}
	}
	for k := range rs {
		if floorDiv(rs[k].ts, width) > keep && (rs[k].ts >= band || k == anchor) {
			out = append(out, rs[k])
		}
	}
	for len(out) > maxRecords {
		first := 0
		for k := range out {
			if out[k].ts < out[first].ts {
				first = k
			}
		}
		out = append(out[:first], out[first+1:]...)
	}
	return out
}

func popStddev(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(len(xs))
	var q float64
	for _, x := range xs {
		q += (x - mean) * (x - mean)
	}
	return math.Sqrt(q / float64(len(xs)))
}

func TestNewKindsParseErrors(t *testing.T) {
	tests := []struct {
		name, yml, want string
	}{
		{"stddev of an unknown field is named", `x: {stddev: fee, by: account, window: 1h}`,
			`feature x (line 1): unknown field "fee" in stddev (numeric fields: amount, geo.lat, geo.lon)`},
		{"last of an entity field is refused", `x: {last: device.id, by: account, window: 1h}`,
			`feature x (line 1): unknown field "device.id" in last (numeric fields: amount, geo.lat, geo.lon)`},
		{"time_since without a type is refused", `x: {time_since: "", by: account, window: 1h}`,
			`feature x (line 1): time_since needs an event type or "*"`},
		{"first_seen without a type is refused", `x: {first_seen: "", by: device.id, window: 24h}`,
			`feature x (line 1): first_seen needs an event type or "*"`},
		{"two new kinds are refused", `x: {last: amount, stddev: amount, by: account, window: 1h}`,
			`feature x (line 1): two kinds (last and stddev); declare one`},
		{"a bad by field is named", `x: {first_seen: "*", by: phone, window: 1h}`,
			`feature x (line 1): unknown field "phone" in by`},
		{"a missing window is named", `x: {time_since: login, by: account}`,
			`feature x (line 1): no window`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDefinitions([]byte(tt.yml))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v\nwant %s", err, tt.want)
			}
		})
	}
	_, err := Compile([]Definition{{Name: "sd", Kind: KindStddev, Of: "amount", By: "account", Window: time.Hour, Where: "amount >"}}, DefaultConfig())
	if err == nil || !strings.HasPrefix(err.Error(), "feature sd: where:") {
		t.Fatalf("a bad where of a stddev: %v", err)
	}
	err = Definition{Name: "ts", Kind: KindTimeSince, By: "account", Window: time.Hour}.Validate()
	if err == nil || err.Error() != `time_since needs an event type or "*"` {
		t.Fatalf("Validate: %v", err)
	}
}

// The new kinds give the same values on one Store as on four sharing a
// Shared.
func TestNewKindsSharedMatchOneStore(t *testing.T) {
	checkSharedMatchesOneStore(t, mustSet(t, kindsYAMLNew), jitteredTraffic(8000, 5))
}

// A snapshot taken mid-stream restores (one Store, or a Shared and three
// shards) to the same bytes, and the restored state reads what the
// original does for every later event.
func TestNewKindsSnapshotRoundTrip(t *testing.T) {
	checkRoundTrip(t, mustSet(t, kindsYAMLNew), jitteredTraffic(8000, 6), 5000)
}

// A restore into a changed feature file keeps the state of each new-kind
// feature whose definition is unchanged (renamed or moved): it reads what
// the feature reads in the Store that never stopped. A changed one starts
// empty and is warming.
func TestNewKindsRestoreAcrossAChange(t *testing.T) {
	const after = `
dev_first_1h:     {first_seen: "*", by: device.id, window: 1h}
sd_payments_1h:   {stddev: amount, by: account, window: 1h, where: 'type == "payment"'}
acc_since_10m:    {time_since: "*", by: account, window: 10m}
acc_last_1h:      {last: amount, by: account, window: 1h}
dev_last_10m:     {last: amount, by: device.id, window: 10m, where: 'amount > 100'}
acc_since_pay_2h: {time_since: payment, by: account, window: 2h}
acc_first_1h:     {first_seen: login, by: account, window: 1h, where: 'amount >= 0'}
`
	keptAs := map[string]string{"dev_first_1h": "dev_first_1h", "sd_payments_1h": "acc_sd_1h",
		"acc_since_10m": "acc_since_10m", "acc_last_1h": "acc_last_1h", "dev_last_10m": "dev_last_10m"}
	before, changed := mustSet(t, kindsYAMLNew), mustSet(t, after)
	evs := jitteredTraffic(8000, 7)
	for _, shards := range []int{0, 2} {
		t.Run(fmt.Sprint(shards, " shards"), func(t *testing.T) {
			r := newRig(before, shards)
			var v Values
			for i := range evs[:5000] {
				r.observe(&evs[i], &v)
			}
			shared, stores := r.snapshot(t)
			r2 := restoreRig(t, changed, shared, stores)
			warm := r2.sh.Warming(evs[5000].TS)
			if len(warm) != 2 || warm[0].Name != "acc_since_pay_2h" || warm[1].Name != "acc_first_1h" {
				t.Fatalf("warming %v, want acc_since_pay_2h and acc_first_1h", warm)
			}
			for i := 5000; i < len(evs); i++ {
				var v1, v2 Values
				r.observe(&evs[i], &v1)
				r2.observe(&evs[i], &v2)
				for name, was := range keptAs {
					got, want := win(t, changed, &v2, name), win(t, before, &v1, was)
					if got != want {
						t.Fatalf("event %d: %s = %v, want %v", i, name, got, want)
					}
				}
			}
		})
	}
}

// Beyond maxRecords matching events within the late tolerance of the
// latest, the earliest records are forgotten: an event dated before all
// that are kept reads none; one dated among them still reads exactly; and
// the items stay bounded.
func TestRecordsAreBounded(t *testing.T) {
	s := mustSet(t, `
last_1h: {last: amount, by: account, window: 1h}
since_1h: {time_since: "*", by: account, window: 1h}
`)
	st := s.NewStore()
	var v Values
	ev := pay("a", t0, 1)
	st.Observe(&ev, &v) // the first: no previous one
	if got := win(t, s, &v, "since_1h"); got != NeverSecs {
		t.Fatalf("since_1h of the first event = %v, want NeverSecs", got)
	}
	for k := range int64(3 * maxRecords) {
		ev := pay("a", t0+60_000+k*1000, 100+k)
		st.Observe(&ev, &v)
		if got := win(t, s, &v, "last_1h"); k > 0 && got != float64(99+k) {
			t.Fatalf("event %d: last_1h = %v, want %d", k, got, 99+k)
		}
	}
	items := accountItems(st, "a")
	if len(items) != 3*maxRecords {
		t.Fatalf("%d items, want %d (two per last record, one per time_since record)", len(items), 3*maxRecords)
	}
	// Dated between the 40th and the 41st: reads the 40th exactly.
	ev = pay("a", t0+60_000+39*1000+500, 7)
	st.Observe(&ev, &v)
	if got, since := win(t, s, &v, "last_1h"), win(t, s, &v, "since_1h"); got != 139 || since != 0.5 {
		t.Fatalf("between the 40th and 41st: last_1h %v since_1h %v, want 139 and 0.5", got, since)
	}
	// Dated before every kept record (the 16 latest): reads none, though
	// the first events were within the window.
	ev = pay("a", t0+60_000+10*1000+1, 7)
	st.Observe(&ev, &v)
	if got, since := win(t, s, &v, "last_1h"), win(t, s, &v, "since_1h"); got != 0 || since != NeverSecs {
		t.Fatalf("before every kept record: last_1h %v since_1h %v, want 0 and NeverSecs", got, since)
	}
}

// Two events of one entity at the same time: the later observed is the
// previous one of the next, whatever the amounts; an event is never its
// own previous one.
func TestRecordTies(t *testing.T) {
	s := mustSet(t, `
last_1h: {last: amount, by: account, window: 1h}
since_1h: {time_since: payment, by: account, window: 1h}
first_1h: {first_seen: payment, by: account, window: 1h}
`)
	st := s.NewStore()
	steps := []struct {
		ts, amount        int64
		last, since, frst float64
	}{
		{t0 + 5000, 10, 0, NeverSecs, 0},
		{t0 + 5000, 30, 10, 0, 0},
		{t0 + 5000, 20, 30, 0, 0},
		{t0 + 9000, 40, 20, 4, 4},
		{t0 + 7000, 50, 20, 2, 2}, // behind: the event at 9000 is after it
		{t0 + 3000, 60, 0, NeverSecs, 0},
		{t0 + 9500, 70, 40, 0.5, 6.5},
	}
	for k, x := range steps {
		ev := pay("a", x.ts, x.amount)
		var v Values
		st.Observe(&ev, &v)
		last, since, first := win(t, s, &v, "last_1h"), win(t, s, &v, "since_1h"), win(t, s, &v, "first_1h")
		if last != x.last || since != x.since || first != x.frst {
			t.Fatalf("step %d: last %v since %v first_seen %v, want %v %v %v", k, last, since, first, x.last, x.since, x.frst)
		}
	}
}

// The stddev of values far from zero with a small spread stays within
// the documented bound, across buckets: here κ = mean/stddev is about
// 4·10^8, so sum and sum of squares (error n·κ²·2^-53, well over 1) would
// lose every digit, where the error bound of the merged Welford states,
// n·κ·2^-53, is under 10^-4.
func TestStddevIsNumericallySound(t *testing.T) {
	s := mustSet(t, `sd_1h: {stddev: amount, by: account, window: 1h}`)
	st := s.NewStore()
	var xs []float64
	var v Values
	for k := range int64(2000) {
		amount := int64(1e9) + k%7*3 + k%2
		ev := pay("a", t0+k*1000, amount)
		st.Observe(&ev, &v)
		xs = append(xs, float64(amount))
		want := popStddev(xs)
		if got := win(t, s, &v, "sd_1h"); math.Abs(got-want) > 1e-4*want {
			t.Fatalf("event %d: sd_1h = %v, want %v", k, got, want)
		}
	}
}

// testdata/v4-old-kinds.snap was written by the build before the new
// kinds (snapshot version 4) from kindsYAML's features and the first 3000
// of crowdEvents. The state did not change for the old kinds: this build
// keeps the same state from the same events (the snapshot of version 5
// it writes equals the one of the old snapshot restored), and restores that snapshot
// into a Set with new-kind features too, keeping the old features' state
// and warming the new ones.
func TestSnapshotFromBeforeTheNewKinds(t *testing.T) {
	old, err := os.ReadFile("testdata/v4-old-kinds.snap")
	if err != nil {
		t.Fatal(err)
	}
	evs := crowdEvents(4000)
	s := mustSet(t, kindsYAML)
	st := s.NewStore()
	var v Values
	for i := range evs[:3000] {
		st.Observe(&evs[i], &v)
	}
	var buf bytes.Buffer
	if err := st.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	fromOld, err := s.Restore(bytes.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := fromOld.Snapshot(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("this build keeps another state than the one before the new kinds")
	}
	more := mustSet(t, kindsYAML+`
sd_1h: {stddev: amount, by: account, window: 1h}
dev_since_1h: {time_since: "*", by: device.id, window: 1h}
`)
	st2, err := more.Restore(bytes.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	if w := st2.Warming(evs[3000].TS); len(w) != 2 || w[0].Name != "sd_1h" || w[1].Name != "dev_since_1h" {
		t.Fatalf("warming %v, want sd_1h and dev_since_1h", w)
	}
	for i := 3000; i < len(evs); i++ {
		var v1, v2 Values
		st.Observe(&evs[i], &v1)
		st2.Observe(&evs[i], &v2)
		for _, name := range s.Names() {
			if a, b := win(t, s, &v1, name), win(t, more, &v2, name); a != b {
				t.Fatalf("event %d: %s = %v after the restore, want %v", i, name, b, a)
			}
		}
	}
}

// Observe allocates nothing in steady state with the new kinds either.
func TestNewKindsDoNotAllocate(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	s := mustSet(t, kindsYAMLNew)
	st := s.NewStore()
	evs := jitteredTraffic(2000, 8)
	var v Values
	for i := range evs {
		st.Observe(&evs[i], &v)
	}
	if allocs := steadyAllocs(st, evs, 2000); allocs > 0.5 {
		t.Fatalf("%v allocs per Observe in steady state", allocs)
	}
}

// steadyAllocs is the allocations per Observe of the events of evs again,
// shifted forward by the stream's span each time round (so they are new,
// in time order, not late), after st has seen them once.
func steadyAllocs(st *Store, evs []event.Event, runs int) float64 {
	span := evs[len(evs)-1].TS - evs[0].TS
	var v Values
	i := 0
	return testing.AllocsPerRun(runs, func() {
		ev := &evs[i%len(evs)]
		ev.TS += span
		st.Observe(ev, &v)
		i++
	})
}

// Restore refuses an entity with more items than its features may hold
// (itemBound), so a damaged snapshot cannot make it allocate at will.
func TestRestoreBoundsItemsOfNewKinds(t *testing.T) {
	s := mustSet(t, `since_1h: {time_since: "*", by: account, window: 1h}`, func(c *Config) { c.Buckets, c.MaxDistinct = 10, 4 })
	bound := itemBound(KindTimeSince, s.Config())
	if bound != 10+4+maxRecords+1 {
		t.Fatalf("itemBound %d", bound)
	}
	checkRestoreBound(t, s, bound)
}

// An event with no value in a feature's By field has no entity there: its
// time_since reads NeverSecs, the other kinds 0.
func TestNewKindsWithoutAnEntity(t *testing.T) {
	s := mustSet(t, `
dev_since_1h: {time_since: "*", by: device.id, window: 1h}
dev_last_1h: {last: amount, by: device.id, window: 1h}
dev_first_1h: {first_seen: "*", by: device.id, window: 1h}
dev_sd_1h: {stddev: amount, by: device.id, window: 1h}
`)
	st := s.NewStore()
	for k := range int64(3) {
		ev := pay("a", t0+k*1000, 100*k) // no device
		var v Values
		st.Observe(&ev, &v)
		if got := win(t, s, &v, "dev_since_1h"); got != NeverSecs {
			t.Fatalf("dev_since_1h = %v without a device, want NeverSecs", got)
		}
		for _, name := range []string{"dev_last_1h", "dev_first_1h", "dev_sd_1h"} {
			if got := win(t, s, &v, name); got != 0 {
				t.Fatalf("%s = %v without a device, want 0", name, got)
			}
		}
	}
}

// entityVisit is one entity of one observed event, as observeEntities
// hands it to a brute-force test.
type entityVisit struct {
	seq      int
	ev       *event.Event
	v        *Values
	g        int    // the entity's group
	name, id string // the group's name and the entity's value
	// latest is the entity's latest event time before this event (this
	// event's own for a new entity); late says the event is more than the
	// late tolerance behind it.
	latest int64
	late   bool
}

func (e entityVisit) key() string { return e.name + "\x00" + e.id }

// observeEntities observes evs in order on st and calls visit for every
// entity each event belongs to, after checking Observe's late mask
// against the definition of lateness.
func observeEntities(t *testing.T, s *Set, st *Store, evs []event.Event, visit func(entityVisit)) {
	t.Helper()
	tol := s.Config().LateTolerance.Milliseconds()
	latest := map[string]int64{}
	for seq := range evs {
		ev := &evs[seq]
		var v Values
		late := st.Observe(ev, &v)
		for g := range s.groups {
			get, _ := event.FieldGetter(s.groups[g].by)
			e := entityVisit{seq: seq, ev: ev, v: &v, g: g, name: s.GroupName(g), id: get(ev), latest: ev.TS}
			if e.id == "" {
				continue
			}
			last, seen := latest[e.key()]
			if seen {
				e.latest, e.late = last, ev.TS < last-tol
			}
			if late.Has(g) != e.late {
				t.Fatalf("event %d: late for %s %v, want %v", seq, e.name, late.Has(g), e.late)
			}
			visit(e)
			if !e.late {
				latest[e.key()] = max(e.latest, ev.TS)
			}
		}
	}
}

// checkRestoreBound gives an account of a Store of s bound items, then
// bound+1, and checks that Restore takes the first snapshot and refuses
// the second, naming the bound.
func checkRestoreBound(t *testing.T, s *Set, bound uint64) {
	t.Helper()
	for _, n := range []uint64{bound, bound + 1} {
		st := s.NewStore()
		ev := pay("a", t0, 1)
		var v Values
		st.Observe(&ev, &v)
		a := st.accounts.get(keyhash.String("a"))
		st.accItems.set(&a.win.items, make([]item, n))
		var buf bytes.Buffer
		if err := st.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		_, err := s.Restore(&buf)
		want := fmt.Sprintf("features snapshot: item count %d exceeds %d", n, bound)
		if n == bound && err != nil || n > bound && (err == nil || err.Error() != want) {
			t.Fatalf("%d items: %v", n, err)
		}
	}
}
