package features

import (
	"math"
	"math/bits"
	"slices"

	"riskd/event"
)

// The kinds added after count, sum, min, max, avg and distinct keep their
// state in the same 16-byte items, told apart by the low 24 bits of fn
// (the tag; a counter's event count otherwise):
//
//   - stddev keeps two items per non-empty bucket: the bucket's mean (x)
//     with its event count (tag >= 1), and the sum of squared deviations
//     from that mean, M2 (x, tag 0). add updates them with Welford's
//     method; a read merges the buckets with the pairwise formula of
//     Chan, Golub and LeVeque. Both avoid the cancellation of
//     sum-of-squares: the relative error of the variance is about
//     n·κ·2^-53 (n events, κ = sqrt(1 + mean²/variance)), against
//     n·κ²·2^-53 for sum and sum of squares. A bucket whose count
//     saturates (2^24-1 events) takes no more events.
//   - first_seen keeps one item per non-empty bucket: the earliest event
//     time in it (x, as a float64, exact below 2^53 ms) and its count.
//     A read as of time t takes the earliest bucket minimum not after t:
//     exact at the millisecond, since a bucket whose minimum is after t
//     holds no event up to t.
//   - last and time_since keep records of single events (see addRecords):
//     an event time item (x, tag 0), for last preceded by a value item
//     (x, tag 1). Items of one feature keep their order (appends, in-order
//     compaction and restore's remapping preserve it), so a value item is
//     the item of its feature just before its time item.

// maxRecords bounds the records of one last or time_since feature per
// entity (see addRecords).
const maxRecords = 16

// eventTime is what first_seen and time_since items hold: event time in
// ms, exact in a float64 for any date within 285,000 years of 1970.
func eventTime(e *event.Event) float64 { return float64(e.TS) }

// recPos is one record of a feature in an entity's items: the position of
// its time item, of its value item (-1: none), and its time.
type recPos struct {
	t, v int32
	ts   int64
}

// dropped marks an item for removal (feature 255 does not exist).
const dropped = math.MaxUint32

// addStddev adds ev to the stddev features in mask, which it matched:
// a Welford step on the current bucket's mean and M2 items, or a new pair.
// The current bucket's items are usually last, so it looks from the end.
func (st *Store) addStddev(e *window, mask uint64, ev *event.Event) {
	s := st.set
	for ; mask != 0; mask &= mask - 1 {
		i := bits.TrailingZeros64(mask)
		x := s.feats[i].num(ev)
		b := st.bk[i]
		mi, qi := -1, -1
		for j := len(e.items) - 1; j >= 0 && (mi < 0 || qi < 0); j-- {
			c := &e.items[j]
			if int(c.fn>>24) != i || c.b != b {
				continue
			}
			if c.fn&cellMaxN != 0 {
				mi = j
			} else {
				qi = j
			}
		}
		if mi < 0 || qi < 0 {
			e.appendItem(item{x: math.Float64bits(x), b: b, fn: uint32(i)<<24 | 1})
			e.appendItem(item{b: b, fn: uint32(i) << 24})
			continue
		}
		m, q := &e.items[mi], &e.items[qi]
		n := m.fn & cellMaxN
		if n == cellMaxN {
			continue // saturated: the bucket takes no more
		}
		n++
		mean := m.v()
		d := x - mean
		mean += d / float64(n)
		m.setV(mean)
		q.setV(q.v() + d*(x-mean))
		m.fn++
	}
}

// startMore clears the scratch of group g's final features before a read.
func (st *Store) startMore(g *group) {
	st.qs = st.qs[:0]
	for f := g.final; f != 0; f &= f - 1 {
		i := bits.TrailingZeros64(f)
		st.m2[i], st.mean[i], st.pend[i] = 0, 0, 0
	}
}

// accumulateMore adds item c of feature i (stddev, first_seen, last or
// time_since) to the read as of st.asOf; finish works out the values.
func (st *Store) accumulateMore(w *[MaxWindows]float64, i uint32, c *item) {
	cnt := &st.cnt
	n := c.fn & cellMaxN
	switch st.set.ops[i] {
	case opStddev:
		if n == 0 {
			st.m2[i] += c.v()
			return
		}
		// Merge the bucket (n, mean) into the read so far; the buckets'
		// own M2 items add up apart, the merge adds what lies between.
		nb, mb := float64(n), c.v()
		if na := cnt[i]; na == 0 {
			cnt[i], st.mean[i] = nb, mb
		} else {
			tot := na + nb
			d := mb - st.mean[i]
			st.mean[i] += d * nb / tot
			st.m2[i] += d * d * na * nb / tot
			cnt[i] = tot
		}
	case opFirst:
		if ts := int64(c.v()); ts <= st.asOf && (cnt[i] == 0 || ts < st.best[i]) {
			st.best[i], cnt[i] = ts, 1
		}
	case opQuantile:
		st.qs = append(st.qs, packBin(i, int32(uint32(c.x)), n))
	case opLast, opSince:
		if n != 0 {
			st.pend[i] = c.v() // last's value; its time item follows
			return
		}
		// The latest record not after asOf; on equal times the later
		// item, the one observed later.
		if ts := int64(c.v()); ts <= st.asOf && (cnt[i] == 0 || ts >= st.best[i]) {
			st.best[i], cnt[i] = ts, 1
			w[i] = st.pend[i]
		}
		st.pend[i] = 0
	}
}

// finish works out the values of group g's avg, stddev, first_seen,
// last, time_since and percentile features from what the items added up
// to.
func (st *Store) finish(g *group, w *[MaxWindows]float64) {
	s, cnt := st.set, &st.cnt
	if g.quant != 0 {
		slices.Sort(st.qs)
	}
	for f := g.final; f != 0; f &= f - 1 {
		i := bits.TrailingZeros64(f)
		switch s.ops[i] {
		case opAvg:
			if cnt[i] > 0 {
				w[i] /= cnt[i]
			}
		case opStddev:
			w[i] = 0
			if cnt[i] >= 2 {
				w[i] = math.Sqrt(max(st.m2[i], 0) / cnt[i])
			}
		case opFirst:
			w[i] = 0
			if cnt[i] > 0 {
				w[i] = float64(st.asOf-st.best[i]) / 1000
			}
		case opLast:
			if cnt[i] == 0 {
				w[i] = 0
			}
		case opSince:
			w[i] = NeverSecs
			if cnt[i] > 0 {
				w[i] = float64(st.asOf-st.best[i]) / 1000
			}
		case opQuantile:
			w[i] = quantileOf(st.qs, uint32(i), s.feats[i].q)
		}
	}
}

// addRecords adds ev to the last and time_since features in st.rec (ev
// matched them and was not late), after the read, then prunes each one's
// records. A read as of t takes the latest record not after t, and every
// event not late for the entity is dated no earlier than its latest time
// minus Config.LateTolerance (the band), so the records dated before the
// band matter only through the latest of them: the others are dropped.
// Beyond maxRecords records the earliest are dropped too, so that the
// one bound on reads is this: an event dated before maxRecords or more of
// its entity's matching events already seen (it can only be behind its
// entity's latest time) may read none.
func (st *Store) addRecords(e *window, ev *event.Event) {
	s := st.set
	band := e.last - s.cfg.LateTolerance.Milliseconds()
	ts := math.Float64bits(float64(ev.TS))
	for mask := st.rec; mask != 0; mask &= mask - 1 {
		i := bits.TrailingZeros64(mask)
		f := &s.feats[i]
		b := st.bk[i]
		if f.op == opLast {
			e.appendItem(item{x: math.Float64bits(f.num(ev)), b: b, fn: uint32(i)<<24 | 1})
		}
		e.appendItem(item{x: ts, b: b, fn: uint32(i) << 24})
		st.pruneRecords(e, uint32(i), band)
	}
	st.rec = 0
}

// pruneRecords drops feature i's records dated before band but the latest
// of them, then the earliest while more than maxRecords remain.
func (st *Store) pruneRecords(e *window, i uint32, band int64) {
	rs := st.recPos[:0]
	v := int32(-1)
	for j := range e.items {
		c := &e.items[j]
		if c.fn>>24 != i {
			continue
		}
		if c.fn&cellMaxN != 0 {
			v = int32(j)
			continue
		}
		rs = append(rs, recPos{t: int32(j), v: v, ts: int64(c.v())})
		v = -1
	}
	st.recPos = rs
	anchor := -1 // the latest record before the band; the later on a tie
	for k := range rs {
		if rs[k].ts < band && (anchor < 0 || rs[k].ts >= rs[anchor].ts) {
			anchor = k
		}
	}
	n, drops := len(rs), 0
	for k := range rs {
		if rs[k].ts < band && k != anchor {
			st.dropRecord(e, &rs[k])
			n--
			drops++
		}
	}
	for ; n > maxRecords; n-- {
		first := -1
		for k := range rs {
			if rs[k].t >= 0 && (first < 0 || rs[k].ts < rs[first].ts) {
				first = k
			}
		}
		st.dropRecord(e, &rs[first])
		drops++
	}
	if drops == 0 {
		return
	}
	e.removeDropped()
}

// removeDropped removes the items marked dropped, the others keeping
// their order.
func (e *window) removeDropped() {
	k := 0
	for j := range e.items {
		if e.items[j].fn == dropped {
			continue
		}
		e.items[k] = e.items[j]
		k++
	}
	e.truncate(k)
}

// dropRecord marks record r's items for removal.
func (st *Store) dropRecord(e *window, r *recPos) {
	e.items[r.t].fn = dropped
	if r.v >= 0 {
		e.items[r.v].fn = dropped
	}
	r.t = -1
}
