package features

import (
	"math"
	"math/bits"
	"slices"

	"riskd/event"
)

// A percentile feature keeps, per entity, a log-scale histogram of its
// field (the mapping of DDSketch, Masson, Rim and Lee, VLDB 2019): bin
// k >= 1 holds the values of [quantMin·γ^(k-1), quantMin·γ^k), γ =
// (1+quantAlpha)/(1-quantAlpha), and reads as 2·quantMin·γ^k/(1+γ),
// which is within a relative quantAlpha of every value in the bin. Bin 0
// holds zero and every value of magnitude below quantMin (read as 0),
// bin -k the negatives mirrored, so bins sort as their values do.
//
// The histogram is cut like the other kinds' state: one item per
// non-empty (bucket, bin), x the bin (an int32 in its low 32 bits), b the
// bucket, the low 24 bits of fn the bin's event count (saturating at
// 2^24-1). Buckets leave the window as they do for sum and count, and a
// read merges the bins of the buckets in the window by adding their
// counts: the histogram of a window is exactly the histogram of its
// events, whatever the cut into buckets.
//
// A read takes the bin of the event of nearest rank ⌈q·n⌉ (1-based, in
// ascending order, q·n computed in float64) among the n events of the
// window: since bins sort as values do, that is the bin of the exact
// nearest-rank quantile, and the read is within a relative quantAlpha of
// it (an absolute quantMin below quantMin).
//
// Bound: at most maxQuantileItems items per feature and entity. One more
// collapses the lowest bins into the lowest bin T for which the items
// then fit (capQuantile): the events of those bins move up to T, in
// their own buckets. Moving events up keeps the bin of every rank whose
// exact bin is T or above, so a read whose exact quantile is in the
// highest bin any of its window's events moved to, or above, keeps the
// bound; a lower one reads too high, at most that bin. When even one bin
// per bucket does not fit (more buckets than maxQuantileItems),
// everything is in one bin per bucket.
const (
	// quantAlpha is the relative error of a read: 2%, bins 4% wide, 58
	// to a decade.
	quantAlpha = 0.02
	// quantMin is the smallest magnitude read with a relative error;
	// below it, values read as 0. Amounts are whole minor units, and
	// 10^-6 degrees of latitude is about 11 cm.
	quantMin = 1e-6
	// maxQuantileItems bounds the items of one percentile feature of one
	// entity: 256 items, 4 KiB.
	maxQuantileItems = 256
	// quantSketchID is added to a percentile's featureID.of: a snapshot
	// whose bins meant something else (another quantAlpha or quantMin)
	// does not restore into this build's percentiles, which start empty.
	quantSketchID = "@log(0.02,1e-06)"
)

var (
	// quantLogGamma is ln γ.
	quantLogGamma = math.Log((1 + quantAlpha) / (1 - quantAlpha))
	// quantLogMin is ln quantMin.
	quantLogMin = math.Log(quantMin)
	// quantScale is 2/(1+γ): bin k reads as quantMin·γ^k·quantScale.
	quantScale = 2 / (1 + (1+quantAlpha)/(1-quantAlpha))
	// quantMaxBin is the bin of math.MaxFloat64, the largest there is;
	// infinities go there too.
	quantMaxBin = int32((math.Log(math.MaxFloat64)-quantLogMin)/quantLogGamma) + 1
)

// quantBin returns the bin of x (see above). NaN goes to bin 0.
func quantBin(x float64) int32 {
	a := math.Abs(x)
	if !(a >= quantMin) {
		return 0
	}
	k := quantMaxBin
	if a <= math.MaxFloat64 {
		k = min(int32(math.Floor((math.Log(a)-quantLogMin)/quantLogGamma))+1, quantMaxBin)
	}
	if x < 0 {
		return -k
	}
	return k
}

// quantValue is what bin k reads as.
func quantValue(k int32) float64 {
	if k == 0 {
		return 0
	}
	// The largest bin's reading would overflow: MaxFloat64 is within
	// quantAlpha of its values too.
	a := min(math.Exp(float64(abs32(k))*quantLogGamma+quantLogMin)*quantScale, math.MaxFloat64)
	if k < 0 {
		return -a
	}
	return a
}

func abs32(k int32) int32 {
	if k < 0 {
		return -k
	}
	return k
}

// quantRank is the 1-based nearest rank of quantile q among n values.
func quantRank(q float64, n uint64) uint64 {
	return min(max(uint64(math.Ceil(q*float64(n))), 1), n)
}

// packBin packs feature f, bin k and count n into one word that sorts
// by feature, then bin, so a read's bins sort as plain integers.
func packBin(f uint32, k int32, n uint32) uint64 {
	return uint64(f)<<56 | uint64(uint32(k)^1<<31)<<24 | uint64(n&cellMaxN)
}

// unpackBin undoes packBin.
func unpackBin(x uint64) (f uint32, k int32, n uint32) {
	return uint32(x >> 56), int32(uint32(x>>24) ^ 1<<31), uint32(x) & cellMaxN
}

// validQuantile reports whether q is a percentile's quantile: 0 < q < 1.
func validQuantile(q float64) bool { return q > 0 && q < 1 }

// addQuantile adds ev to the percentile features in mask, which it
// matched: one more in the count of its bin in the current bucket, or a
// new item, then the bound on items.
func (st *Store) addQuantile(e *window, mask uint64, ev *event.Event) {
	s := st.set
	for ; mask != 0; mask &= mask - 1 {
		i := uint32(bits.TrailingZeros64(mask))
		x := uint64(uint32(quantBin(s.feats[i].num(ev))))
		b := st.bk[i]
		n, found := 0, false
		// The current bucket's items are usually last: look from the end.
		for j := len(e.items) - 1; j >= 0; j-- {
			c := &e.items[j]
			if c.fn>>24 != i {
				continue
			}
			if c.b == b && c.x == x {
				if c.fn&cellMaxN < cellMaxN {
					c.fn++
				}
				found = true
				break
			}
			n++
		}
		if found {
			continue
		}
		e.appendItem(item{x: x, b: b, fn: i<<24 | 1})
		if n+1 > maxQuantileItems {
			st.capQuantile(e, i)
		}
	}
}

// capQuantile collapses feature i's lowest bins into the lowest bin T for
// which at most maxQuantileItems items remain (one item per bucket for
// the bins up to T, as they are for the bins above), or into the highest
// bin when none does. Counts add up (saturating); the items keep their
// order.
func (st *Store) capQuantile(e *window, i uint32) {
	// The feature's items by bin: the bin (as packBin orders it) over
	// the item's position.
	sc := st.qs[:0]
	for j := range e.items {
		if c := &e.items[j]; c.fn>>24 == i {
			sc = append(sc, uint64(uint32(c.x)^1<<31)<<32|uint64(j))
		}
	}
	st.qs = sc
	if len(sc) <= maxQuantileItems {
		return
	}
	slices.Sort(sc)
	bks := st.qb[:0] // the buckets of the bins up to T
	k := 0
	for k < len(sc) {
		t := sc[k] >> 32
		for ; k < len(sc) && sc[k]>>32 == t; k++ {
			if b := e.items[uint32(sc[k])].b; !slices.Contains(bks, b) {
				bks = append(bks, b)
			}
		}
		if len(bks)+len(sc)-k <= maxQuantileItems {
			break
		}
	}
	st.qb = bks
	t := uint64(uint32(sc[k-1]>>32) ^ 1<<31) // the bin as items hold it
	keep := st.qk[:0]                        // by bucket in bks, the item the bins up to T go to
	for range bks {
		keep = append(keep, -1)
	}
	st.qk = keep
	drops := false
	for _, x := range sc[:k] {
		j := int32(uint32(x))
		c := &e.items[j]
		at := slices.Index(bks, c.b)
		if keep[at] < 0 {
			keep[at] = j
			c.x = t
			continue
		}
		to := &e.items[keep[at]]
		n := min(to.fn&cellMaxN+c.fn&cellMaxN, cellMaxN)
		to.fn = to.fn&^cellMaxN | n
		c.fn = dropped
		drops = true
	}
	if drops {
		e.removeDropped()
	}
}

// quantileOf reads quantile q of feature i from the bins of a read
// (packBin), sorted: 0 when there are none.
func quantileOf(qs []uint64, i uint32, q float64) float64 {
	lo, _ := slices.BinarySearch(qs, uint64(i)<<56)
	var n uint64
	hi := lo
	for ; hi < len(qs) && uint32(qs[hi]>>56) == i; hi++ {
		n += qs[hi] & cellMaxN
	}
	if n == 0 {
		return 0
	}
	r := quantRank(q, n)
	var c uint64
	for _, x := range qs[lo:hi] {
		if c += x & cellMaxN; c >= r {
			_, k, _ := unpackBin(x)
			return quantValue(k)
		}
	}
	_, k, _ := unpackBin(qs[hi-1])
	return quantValue(k)
}
