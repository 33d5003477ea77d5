package features

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"riskd/event"
	"riskd/internal/keyhash"
)

// percentileYAML declares percentiles of several quantiles and fields, by
// account and by device, with and without a filter, next to a stddev (the
// other kind add treats apart) and a count.
const percentileYAML = `
acc_p50_1h:     {percentile: amount, quantile: 0.5, by: account, window: 1h}
acc_p95_pay_1h: {percentile: amount, quantile: 0.95, by: account, window: 1h, where: 'type == "payment"'}
acc_sd_1h:      {stddev: amount, by: account, window: 1h}
acc_lon_p10_1h: {percentile: geo.lon, quantile: 0.1, by: account, window: 1h}
acc_n_10m:      {count: "*", by: account, window: 10m}
dev_p99_10m:    {percentile: amount, quantile: 0.99, by: device.id, window: 10m}
dev_p1_10m:     {percentile: amount, quantile: 0.01, by: device.id, window: 10m, where: 'amount > 100'}
`

// busyYAML adds percentiles by channel, whose few entities get enough
// events to reach the bound on items.
const busyYAML = `
ch_p90_1h:      {percentile: amount, quantile: 0.9, by: channel, window: 1h}
ch_p20_1h:      {percentile: amount, quantile: 0.2, by: channel, window: 1h}
`

// exactQuantile is the nearest-rank quantile q of xs: the value of rank
// ⌈q·n⌉ (1-based, q·n in float64) in ascending order; 0 for none.
func exactQuantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[quantRank(q, uint64(len(s)))-1]
}

// withinQuantBound reports whether got is within the documented error of
// the exact value: relative quantAlpha (plus rounding) from quantMin up,
// 0 below.
func withinQuantBound(got, exact float64) bool {
	if math.Abs(exact) < quantMin {
		return got == 0
	}
	return math.Abs(got-exact) <= quantAlpha*math.Abs(exact)*(1+1e-9)
}

// binAt names bin k of bucket b, as the brute force counts them.
func binAt(b uint32, k int32) uint64 { return uint64(b)<<32 | uint64(uint32(k)) }

// movedTo returns the highest bin to which the Store's items of feature
// i in the buckets in() accepts hold events moved from lower bins (the
// bound on items collapsed them): a bin with more events there than the
// brute force counts, want. ok is false when none moved.
func movedTo(items []item, i int, in func(b uint32) bool, want map[uint64]uint32) (top int32, ok bool) {
	for _, c := range items {
		if c.f() != i || !in(c.b) {
			continue
		}
		k := int32(uint32(c.x))
		if uint32(c.n()) > want[binAt(c.b, k)] && (!ok || k > top) {
			top, ok = k, true
		}
	}
	return top, ok
}

// checkQuantRead checks a percentile's read got against the exact
// nearest-rank quantile of xs and the highest bin events moved to (see
// movedTo): the exact quantile's bin's reading (within quantAlpha of
// it) when nothing moved or that bin is at or above where they moved;
// otherwise between the two bins' readings. It returns whether the read
// was in the second case.
func checkQuantRead(got, exact float64, n int, top int32, moved bool) (below bool, err error) {
	k := quantBin(exact)
	if !moved || k >= top {
		if got != quantValue(k) || !withinQuantBound(got, exact) {
			return false, fmt.Errorf("read %v, want %v within %v (its bin reads %v; %d values)", got, exact, quantAlpha, quantValue(k), n)
		}
		return false, nil
	}
	if got < quantValue(k) || got > quantValue(top) {
		return true, fmt.Errorf("read %v, want from %v (the bin of %v) to %v (the bin events moved to; %d values)", got, quantValue(k), exact, quantValue(top), n)
	}
	return true, nil
}

// entityItems returns the items of the entity id of group g.
func entityItems(st *Store, g int, id string) []item {
	h := keyhash.String(id)
	if g == st.set.accGroup {
		return accountItems(st, id)
	}
	sp := &st.shared.stripes[st.shared.stripeOf(keyhash.String(id))]
	return sp.items.view(sp.groups[g].get(h).items)
}

// accountItems returns the items of account id's windows.
func accountItems(st *Store, id string) []item {
	return st.accItems.view(st.accounts.get(keyhash.String(id)).win.items)
}

// Every event's percentiles, recomputed from the events of its windows
// (as the other kinds' brute-force test selects them: as of the event's
// bucket, lateness and all), are what the exact nearest-rank quantile's
// bin reads, within quantAlpha of it, unless the bound on items moved
// events of lower bins up to bins above it (checkQuantRead).
func TestPercentileMatchesBruteForce(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { checkPercentiles(t, seed, 8000) })
	}
}

func checkPercentiles(t *testing.T, seed uint64, n int) {
	const buckets = 10
	s := mustSet(t, percentileYAML+busyYAML, func(c *Config) { c.Buckets = buckets })
	st := s.NewStore()
	evs := jitteredTraffic(n, seed)
	added := map[string][]*event.Event{} // per entity, the events added to it
	bins := map[uint64]uint32{}          // per read, the events by bucket and bin
	stats := map[string]int{}
	var worst float64
	observeEntities(t, s, st, evs, func(e entityVisit) {
		ev := e.ev
		last := e.latest
		if !e.late {
			added[e.key()] = append(added[e.key()], ev)
			last = max(last, ev.TS)
		}
		// Events over 2h behind the entity's latest are in no window (1h
		// at most) any more: forget them, so the busy entities stay cheap.
		old := added[e.key()]
		for len(old) > 0 && old[0].TS < last-2*3600_000 {
			old = old[1:]
		}
		added[e.key()] = old
		items := entityItems(st, e.g, e.id)
		for _, i := range s.groups[e.g].feats {
			f := &s.feats[i]
			if f.kind != KindPercentile {
				continue
			}
			width := s.ids[i].widthMs
			bk := floorDiv(ev.TS, width)
			keep := floorDiv(last, width) - buckets
			var xs []float64
			clear(bins)
			for _, x := range added[e.key()] {
				b := floorDiv(x.TS, width)
				if b > bk-buckets && b <= bk && b > keep && f.match(x, &st.vm) {
					xs = append(xs, f.num(x))
					bins[binAt(uint32(b), quantBin(f.num(x)))]++
				}
			}
			in := func(b uint32) bool {
				return after(b, uint32(bk-buckets)) && !after(b, uint32(bk)) && after(b, uint32(keep))
			}
			top, moved := movedTo(items, i, in, bins)
			got, exact := e.v.Windows[i], exactQuantile(xs, f.q)
			below, err := checkQuantRead(got, exact, len(xs), top, moved)
			if err != nil {
				t.Fatalf("event %d (%s %s, late %v): %s: %v", e.seq, e.name, e.id, e.late, s.Name(i), err)
			}
			if exact != 0 && !below {
				worst = max(worst, math.Abs(got-exact)/math.Abs(exact))
			}
			switch {
			case below:
				stats["collapsed, reads high"]++
			case moved:
				stats["collapsed, within bound"]++
			case len(xs) >= 10:
				stats["10+ values"]++
			case len(xs) == 0:
				stats["none"]++
			}
			if e.late {
				stats["late"]++
			} else if ev.TS < last {
				stats["behind"]++
			}
		}
	})
	t.Logf("%v, worst relative error %.5f", stats, worst)
	for _, k := range []string{"10+ values", "none", "late", "behind", "collapsed, within bound"} {
		if stats[k] < 20 {
			t.Fatalf("the traffic tests too little: %v", stats)
		}
	}
}

// A bin reads within quantAlpha of each of its values, over the whole
// float64 range, both signs; values below quantMin read 0; bins sort as
// their values do.
func TestPercentileBins(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 5))
	xs := []float64{0, quantMin, -quantMin, quantMin / 2, 1, 1.01, 0.99, 100, 1e15,
		math.MaxFloat64, -math.MaxFloat64, math.Inf(1), math.Inf(-1)}
	for range 100_000 {
		x := math.Exp(r.Float64()*80 - 20) // about 2·10^-9 to 5·10^25
		if r.IntN(2) == 0 {
			x = -x
		}
		xs = append(xs, x, math.Round(x))
	}
	for _, x := range xs {
		got := quantValue(quantBin(x))
		switch {
		case math.IsInf(x, 0):
			if got != math.Copysign(quantValue(quantMaxBin), x) {
				t.Fatalf("%v reads %v, want the largest bin's %v", x, got, quantValue(quantMaxBin))
			}
		case !withinQuantBound(got, x):
			t.Fatalf("%v reads %v: more than %v off", x, got, quantAlpha)
		}
	}
	slices.Sort(xs)
	for k := 1; k < len(xs); k++ {
		if quantBin(xs[k-1]) > quantBin(xs[k]) {
			t.Fatalf("bin of %v (%d) above the bin of %v (%d)", xs[k-1], quantBin(xs[k-1]), xs[k], quantBin(xs[k]))
		}
	}
	if quantBin(math.NaN()) != 0 {
		t.Fatal("NaN is not in bin 0")
	}
}

// The nearest rank: ⌈q·n⌉, at least 1, at most n.
func TestPercentileRank(t *testing.T) {
	tests := []struct {
		q    float64
		n, r uint64
	}{
		{0.5, 1, 1}, {0.5, 2, 1}, {0.5, 3, 2}, {0.95, 20, 19}, {0.95, 21, 20}, {0.99, 100, 99},
		{0.01, 1, 1}, {0.01, 100, 1}, {0.01, 101, 2}, {1e-9, 5, 1}, {0.999999, 5, 5},
	}
	for _, tt := range tests {
		if got := quantRank(tt.q, tt.n); got != tt.r {
			t.Errorf("rank of %v among %d = %d, want %d", tt.q, tt.n, got, tt.r)
		}
	}
	s := mustSet(t, `p50: {percentile: amount, quantile: 0.5, by: account, window: 1h}`)
	st := s.NewStore()
	var v Values
	for k, want := range []float64{100, 100, 200, 200, 300} { // after 100, 300, 200, 500, 400
		ev := pay("a", t0+int64(k)*1000, []int64{100, 300, 200, 500, 400}[k])
		st.Observe(&ev, &v)
		if got := win(t, s, &v, "p50"); got != quantValue(quantBin(want)) {
			t.Fatalf("event %d: p50 = %v, want %v's bin, %v", k, got, want, quantValue(quantBin(want)))
		}
	}
}

// Past maxQuantileItems items the lowest bins collapse: the items stay
// bounded, and every read is as checkQuantRead allows, most of them
// within quantAlpha for a high quantile. With more buckets than the
// bound, one bin per bucket remains.
func TestPercentileBinsAreBounded(t *testing.T) {
	s := mustSet(t, `
p99: {percentile: amount, quantile: 0.99, by: account, window: 1h}
p10: {percentile: amount, quantile: 0.1, by: account, window: 1h}
n_1h: {count: "*", by: account, window: 1h}
`)
	p99, _ := s.Index("p99")
	width := s.ids[p99].widthMs
	st := s.NewStore()
	r := rand.New(rand.NewPCG(6, 7))
	var xs []float64
	bins := map[uint64]uint32{}
	var v Values
	stats := map[string]int{}
	const n = 2000
	for k := range n {
		amount := int64(1 + r.IntN(1_000_000))
		ev := pay("a", t0+int64(k)*1000, amount) // 50 minutes over 30 buckets: nothing leaves
		st.Observe(&ev, &v)
		xs = append(xs, float64(amount))
		bins[binAt(uint32(floorDiv(ev.TS, width)), quantBin(float64(amount)))]++
		items := entityItems(st, s.accGroup, "a")
		n := 0
		for _, c := range items {
			if c.f() == p99 {
				n++
			}
		}
		if n > maxQuantileItems {
			t.Fatalf("event %d: %d items of p99, at most %d", k, n, maxQuantileItems)
		}
		top, moved := movedTo(items, p99, func(uint32) bool { return true }, bins)
		for _, name := range []string{"p99", "p10"} {
			i, _ := s.Index(name)
			below, err := checkQuantRead(v.Windows[i], exactQuantile(xs, s.feats[i].q), len(xs), top, moved)
			if err != nil {
				t.Fatalf("event %d: %s: %v", k, name, err)
			}
			stats[fmt.Sprint(name, " moved ", moved, " below ", below)]++
		}
		if got := win(t, s, &v, "n_1h"); got != float64(k+1) {
			t.Fatalf("event %d: n_1h = %v next to the percentiles", k, got)
		}
	}
	t.Log(stats)
	if stats["p99 moved true below false"] < 2*n/3 || stats["p10 moved true below true"] < 2*n/3 {
		t.Fatalf("the bins collapsed too little, or p99 lost its bound: %v", stats)
	}

	// 400 buckets: collapsing everything leaves one bin per bucket.
	s = mustSet(t, `p50: {percentile: amount, quantile: 0.5, by: account, window: 400s}`, func(c *Config) { c.Buckets = 400 })
	st = s.NewStore()
	for k := range 4000 {
		ev := pay("a", t0+int64(k)*100, int64(1+k%7*1000+k))
		st.Observe(&ev, &v)
		if n := len(entityItems(st, s.accGroup, "a")); n > max(maxQuantileItems, 401) {
			t.Fatalf("event %d: %d items with 400 buckets", k, n)
		}
	}
}

func TestPercentileParse(t *testing.T) {
	defs, err := ParseDefinitions([]byte(`p95: {percentile: amount, quantile: 0.95, by: account, window: 24h, where: 'type == "payment"'}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Definition{Name: "p95", Kind: KindPercentile, Of: "amount", By: "account", Window: 24 * time.Hour,
		Where: `type == "payment"`, Quantile: 0.95}
	if len(defs) != 1 || fmt.Sprint(defs[0]) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", defs, want)
	}
	tests := []struct {
		name, yml, want string
	}{
		{"a missing quantile is named", `x: {percentile: amount, by: account, window: 1h}`,
			`feature x (line 1): no quantile (the q of the percentile, between 0 and 1, like 0.95)`},
		{"a quantile of 1 is refused", `x: {percentile: amount, quantile: 1, by: account, window: 1h}`,
			`feature x (line 1): bad quantile "1": want a number between 0 and 1, both excluded, like 0.95`},
		{"a quantile of 0 is refused", `x: {percentile: amount, quantile: 0, by: account, window: 1h}`,
			`feature x (line 1): bad quantile "0": want a number between 0 and 1, both excluded, like 0.95`},
		{"a percent is refused", `x: {percentile: amount, quantile: 95, by: account, window: 1h}`,
			`feature x (line 1): bad quantile "95": want a number between 0 and 1, both excluded, like 0.95`},
		{"a negative quantile is refused", `x: {percentile: amount, quantile: -0.5, by: account, window: 1h}`,
			`feature x (line 1): bad quantile "-0.5": want a number between 0 and 1, both excluded, like 0.95`},
		{"NaN is refused", `x: {percentile: amount, quantile: NaN, by: account, window: 1h}`,
			`feature x (line 1): bad quantile "NaN": want a number between 0 and 1, both excluded, like 0.95`},
		{"a word is refused", `x: {percentile: amount, quantile: high, by: account, window: 1h}`,
			`feature x (line 1): bad quantile "high": want a number between 0 and 1, both excluded, like 0.95`},
		{"a list is refused", `x: {percentile: amount, quantile: [0.5], by: account, window: 1h}`,
			`feature x (line 1): quantile: want a plain value`},
		{"a quantile on another kind is refused", `x: {stddev: amount, quantile: 0.5, by: account, window: 1h}`,
			`feature x (line 1): quantile is for percentile features, not stddev`},
		{"a quantile on a sequence is refused", `x: {sequence: [login, payment], quantile: 0.5, by: account, within: 1h}`,
			`feature x (line 1): quantile is for percentile features, not sequence`},
		{"a field that is not numeric is named", `x: {percentile: device.id, quantile: 0.5, by: account, window: 1h}`,
			`feature x (line 1): unknown field "device.id" in percentile (numeric fields: amount, geo.lat, geo.lon)`},
		{"two kinds are refused", `x: {percentile: amount, avg: amount, quantile: 0.5, by: account, window: 1h}`,
			`feature x (line 1): two kinds (percentile and avg); declare one`},
		{"within is refused", `x: {percentile: amount, quantile: 0.5, by: account, within: 1h}`,
			`feature x (line 1): within and link are for sequence features; a percentile takes a window`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDefinitions([]byte(tt.yml))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v\nwant %s", err, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		d    Definition
		want string
	}{
		{Definition{Name: "p", Kind: KindPercentile, Of: "amount", By: "account", Window: time.Hour},
			"bad quantile 0: want a number between 0 and 1, both excluded, like 0.95"},
		{Definition{Name: "p", Kind: KindPercentile, Of: "amount", By: "account", Window: time.Hour, Quantile: math.NaN()},
			"bad quantile NaN: want a number between 0 and 1, both excluded, like 0.95"},
		{Definition{Name: "p", Kind: KindAvg, Of: "amount", By: "account", Window: time.Hour, Quantile: 0.5},
			"quantile is for percentile features, not avg"},
	} {
		if err := tt.d.Validate(); err == nil || err.Error() != tt.want {
			t.Errorf("Validate %+v: %v, want %s", tt.d, err, tt.want)
		}
	}
}

// With no matching event, or no entity, a percentile reads 0, as avg.
func TestPercentileOfNothing(t *testing.T) {
	s := mustSet(t, `
p_pay: {percentile: amount, quantile: 0.5, by: account, window: 1h, where: 'type == "payment"'}
p_dev: {percentile: amount, quantile: 0.5, by: device.id, window: 1h}
`)
	st := s.NewStore()
	ev := event.Event{Type: "login", AccountID: "a", TS: t0, Amount: 5}
	var v Values
	st.Observe(&ev, &v)
	if a, b := win(t, s, &v, "p_pay"), win(t, s, &v, "p_dev"); a != 0 || b != 0 {
		t.Fatalf("p_pay %v p_dev %v, want 0 and 0", a, b)
	}
	ev = pay("a", t0+1000, 0) // an amount of 0 is a value, read as 0
	st.Observe(&ev, &v)
	if got := win(t, s, &v, "p_pay"); got != 0 {
		t.Fatalf("p_pay of 0 = %v", got)
	}
	ev = pay("a", t0+3*3600_000, 700) // the window emptied: this one alone
	st.Observe(&ev, &v)
	if got := win(t, s, &v, "p_pay"); !withinQuantBound(got, 700) {
		t.Fatalf("p_pay of 700 alone = %v", got)
	}
}

// The percentiles give the same values on one Store as on four sharing a
// Shared.
func TestPercentileSharedMatchOneStore(t *testing.T) {
	checkSharedMatchesOneStore(t, mustSet(t, percentileYAML), jitteredTraffic(8000, 5))
}

// A snapshot taken mid-stream restores (one Store, or a Shared and three
// shards) to the same bytes, and reads what the original does for every
// later event.
func TestPercentileSnapshotRoundTrip(t *testing.T) {
	checkRoundTrip(t, mustSet(t, percentileYAML+busyYAML), jitteredTraffic(8000, 6), 5000)
}

// A restore into changed definitions (what a hot reload does) keeps a
// percentile's state when its definition is unchanged, renamed, or only
// its quantile changed: it reads what a Store that ran the new
// definitions all along reads. A new window starts empty and is warming.
func TestPercentileRestoreAcrossAChange(t *testing.T) {
	const after = `
dev_p99_10m:  {percentile: amount, quantile: 0.99, by: device.id, window: 10m}
acc_p75_1h:   {percentile: amount, quantile: 0.75, by: account, window: 1h}
pay_p95_1h:   {percentile: amount, quantile: 0.95, by: account, window: 1h, where: 'type == "payment"'}
acc_p50_2h:   {percentile: amount, quantile: 0.5, by: account, window: 2h}
`
	before, changed := mustSet(t, percentileYAML), mustSet(t, after)
	evs := jitteredTraffic(8000, 7)
	for _, shards := range []int{0, 2} {
		t.Run(fmt.Sprint(shards, " shards"), func(t *testing.T) {
			r, all := newRig(before, shards), newRig(changed, shards)
			var v Values
			for i := range evs[:5000] {
				r.observe(&evs[i], &v)
				all.observe(&evs[i], &v)
			}
			shared, stores := r.snapshot(t)
			r2 := restoreRig(t, changed, shared, stores)
			warm := r2.sh.Warming(evs[5000].TS)
			if len(warm) != 1 || warm[0].Name != "acc_p50_2h" {
				t.Fatalf("warming %v, want acc_p50_2h", warm)
			}
			for i := 5000; i < len(evs); i++ {
				var v1, v2 Values
				all.observe(&evs[i], &v1)
				r2.observe(&evs[i], &v2)
				for _, name := range []string{"dev_p99_10m", "acc_p75_1h", "pay_p95_1h"} {
					if got, want := win(t, changed, &v2, name), win(t, changed, &v1, name); got != want {
						t.Fatalf("event %d: %s = %v after the restore, want %v", i, name, got, want)
					}
				}
			}
		})
	}
}

// A snapshot from a Set without percentiles restores into one with them,
// the percentiles warming; one with them restores into a Set without
// them, their state dropped.
func TestPercentileRestoresFromAndToASetWithout(t *testing.T) {
	const plain = `acc_n_10m: {count: "*", by: account, window: 10m}`
	with := mustSet(t, plain+"\n"+`p95: {percentile: amount, quantile: 0.95, by: account, window: 1h}`)
	without := mustSet(t, plain)
	evs := jitteredTraffic(3000, 9)
	for _, c := range []struct {
		from, to *Set
		warm     int
	}{{without, with, 1}, {with, without, 0}} {
		r := newRig(c.from, 0)
		var v Values
		for i := range evs[:2000] {
			r.observe(&evs[i], &v)
		}
		shared, stores := r.snapshot(t)
		r2 := restoreRig(t, c.to, shared, stores)
		if w := r2.sh.Warming(evs[2000].TS); len(w) != c.warm {
			t.Fatalf("warming %v, want %d", w, c.warm)
		}
		for i := 2000; i < len(evs); i++ {
			var v1, v2 Values
			r.observe(&evs[i], &v1)
			r2.observe(&evs[i], &v2)
			if a, b := win(t, c.from, &v1, "acc_n_10m"), win(t, c.to, &v2, "acc_n_10m"); a != b {
				t.Fatalf("event %d: acc_n_10m = %v after the restore, want %v", i, b, a)
			}
		}
	}
}

// A snapshot's percentile entity may hold maxQuantileItems more items
// than the base bound, not one more.
func TestRestoreBoundsItemsOfPercentiles(t *testing.T) {
	s := mustSet(t, `p: {percentile: amount, quantile: 0.5, by: account, window: 1h}`, func(c *Config) { c.Buckets, c.MaxDistinct = 10, 4 })
	bound := itemBound(KindPercentile, s.Config())
	if bound != 10+4+maxQuantileItems {
		t.Fatalf("itemBound %d", bound)
	}
	checkRestoreBound(t, s, bound)
}

// Observe allocates nothing in steady state with percentiles, their
// bins collapsing included.
func TestPercentileDoesNotAllocate(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	for _, c := range []struct {
		name string
		evs  []event.Event
	}{
		{"generated traffic", jitteredTraffic(2000, 8)},
		{"one account past the bound", wideAmounts(2000)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustSet(t, percentileYAML)
			st := s.NewStore()
			var v Values
			for i := range c.evs {
				st.Observe(&c.evs[i], &v)
			}
			if allocs := steadyAllocs(st, c.evs, 2000); allocs > 0.5 {
				t.Fatalf("%v allocs per Observe in steady state", allocs)
			}
		})
	}
}

// wideAmounts is n payments of one account a second apart, their amounts
// over six decades: more bins than maxQuantileItems.
func wideAmounts(n int) []event.Event {
	r := rand.New(rand.NewPCG(10, 11))
	evs := make([]event.Event, n)
	for k := range evs {
		evs[k] = pay("a", t0+int64(k)*1000, int64(math.Exp(r.Float64()*14)))
		evs[k].Device.ID = "d"
	}
	return evs
}

// BenchmarkMemoryPercentile reports the live heap per active account as
// BenchmarkMemoryReference does (100k accounts, 400k generated events):
// the reference features alone, and with a percentile of payment amounts
// by account over 24h added.
func BenchmarkMemoryPercentile(b *testing.B) {
	yml, err := os.ReadFile("../bench/reference/features.yaml")
	if err != nil {
		b.Fatal(err)
	}
	const p95 = `amount_p95_24h: {percentile: amount, quantile: 0.95, by: account, window: 24h, where: 'type == "payment"'}`
	for _, c := range []struct{ name, yml string }{
		{"reference", string(yml)},
		{"reference+amount_p95_24h", string(yml) + p95 + "\n"},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := mustSet(b, c.yml)
			evs := memoryTraffic()
			var perAccount float64
			var items, ents int
			for b.Loop() {
				var st *Store
				perAccount, st = heapPerAccount(s, evs)
				items, ents = 0, 0
				if i, ok := s.Index("amount_p95_24h"); ok {
					for j := range st.accounts.vals {
						n := 0
						for _, c := range st.accItems.view(st.accounts.vals[j].win.items) {
							if c.f() == i {
								n++
							}
						}
						items += n
						ents += min(n, 1)
					}
				}
				runtime.KeepAlive(st)
			}
			b.ReportMetric(perAccount, "B/account")
			if ents > 0 {
				b.ReportMetric(float64(items)/float64(ents), "items/holder")
			}
		})
	}
}

// BenchmarkPercentileBusyAccount is Observe of one account whose window
// holds more bins than the bound, so that each event collapses bins and
// each read sorts a full histogram: the most a percentile costs.
func BenchmarkPercentileBusyAccount(b *testing.B) {
	s := mustSet(b, `p95: {percentile: amount, quantile: 0.95, by: account, window: 1h}`)
	st := s.NewStore()
	evs := wideAmounts(4000)
	var v Values
	for i := range evs {
		st.Observe(&evs[i], &v)
	}
	span := evs[len(evs)-1].TS - evs[0].TS + 1000
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := &evs[i%len(evs)]
		ev.TS += span
		st.Observe(ev, &v)
		i++
	}
	if v.Windows[0] == 0 {
		b.Fatal("no value")
	}
}
