package features

import "sync/atomic"

// table is an open-addressing hash table from a 64-bit key hash to a value
// of type V, built for the Store's hot path: one probe sequence per lookup
// and the value held inline in a dense slab, so a lookup touches one index
// slot and one value instead of a map group and a pointed-to struct.
//
// Layout: slots is a power-of-two array of uint64 (linear probing), each
// 0 when empty or tag<<32 | (pos+1), where tag is the top 32 bits of the
// mixed hash (the home slot is the tag's top bits, so the table grows and
// deletes without touching the values) and pos indexes vals. The key itself
// lives in the value (P.hkey) and is compared on a tag match. vals is dense:
// deleting moves the last value into the hole. Pointers into vals are valid
// until the next insertion or deletion in the same table.
//
// Writes: while a freeze's copy is in progress (see freeze.go) a value must
// not change before it is copied, so every write to vals goes through a
// method that calls willWrite first: upsert, getForWrite, del. A caller
// that walks vals and changes a value in place calls willWrite itself;
// get and touch are for reading only.
//
// Memory: 8 bytes per slot at a load of 3/8 to 3/4, plus the values.
type table[V any, P keyed[V]] struct {
	slots []uint64
	vals  []V
	shift uint32 // 32 - log2(len(slots))
	// guard is the copy-on-write guard of a freeze in progress, nil
	// otherwise: the hot path pays one load of it per write.
	guard atomic.Pointer[freezeGuard[V]]
}

// keyed is what a table value provides: the full 64-bit key it is stored
// under.
type keyed[V any] interface {
	*V
	hkey() uint64
}

const (
	tableMinSlots = 8
	// mixMul spreads FNV hashes over the top bits (Fibonacci hashing).
	mixMul = 0x9E3779B97F4A7C15
)

func tagOf(h uint64) uint32 { return uint32((h * mixMul) >> 32) }

// Len returns how many values the table holds.
func (t *table[V, P]) len() int { return len(t.vals) }

// find returns the position of h in vals, or -1.
func (t *table[V, P]) find(h uint64) int {
	if len(t.slots) == 0 {
		return -1
	}
	tag := tagOf(h)
	mask := uint32(len(t.slots) - 1)
	for i := tag >> t.shift; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return -1
		}
		if uint32(s>>32) == tag {
			p := int(uint32(s)) - 1
			if P(&t.vals[p]).hkey() == h {
				return p
			}
		}
	}
}

// touch loads the home slot of h and the value it points to and returns a
// word of it. It changes nothing: a caller about to look up several keys
// touches them all first, so that their cache misses overlap instead of
// coming one after another.
func (t *table[V, P]) touch(h uint64) uint64 {
	if len(t.slots) == 0 {
		return 0
	}
	s := t.slots[tagOf(h)>>t.shift]
	if s == 0 {
		return 0
	}
	return P(&t.vals[uint32(s)-1]).hkey()
}

// get returns the value stored under h, or nil, for reading only.
func (t *table[V, P]) get(h uint64) *V {
	if p := t.find(h); p >= 0 {
		return &t.vals[p]
	}
	return nil
}

// getForWrite is get for a caller about to change the value.
func (t *table[V, P]) getForWrite(h uint64) *V {
	if p := t.find(h); p >= 0 {
		t.willWrite(p)
		return &t.vals[p]
	}
	return nil
}

// willWrite lets a freeze in progress copy the value at position p before
// the caller changes it.
func (t *table[V, P]) willWrite(p int) {
	if g := t.guard.Load(); g != nil {
		g.willWrite(p)
	}
}

// upsert returns the value stored under h, inserting a zero value (whose
// key the caller must set to h) when there is none; fresh reports that.
func (t *table[V, P]) upsert(h uint64) (v *V, fresh bool) {
	if (len(t.vals)+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	tag := tagOf(h)
	mask := uint32(len(t.slots) - 1)
	i := tag >> t.shift
	for ; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			break
		}
		if uint32(s>>32) == tag {
			p := int(uint32(s)) - 1
			if P(&t.vals[p]).hkey() == h {
				t.willWrite(p)
				return &t.vals[p], false
			}
		}
	}
	// No willWrite: a position a freeze's copy still needs (below its
	// count) is free only after a del, which copied it first.
	var zero V
	t.vals = append(t.vals, zero)
	t.slots[i] = uint64(tag)<<32 | uint64(len(t.vals))
	return &t.vals[len(t.vals)-1], true
}

// reserve makes room for n values in all, so that inserting up to n
// moves no value and rehashes no slot.
func (t *table[V, P]) reserve(n int) {
	if n > cap(t.vals) {
		vals := make([]V, len(t.vals), n)
		copy(vals, t.vals)
		t.vals = vals
	}
	for (n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
}

func (t *table[V, P]) grow() {
	n := max(tableMinSlots, 2*len(t.slots))
	bits := uint32(0)
	for 1<<bits < n {
		bits++
	}
	old := t.slots
	t.slots = make([]uint64, n)
	t.shift = 32 - bits
	mask := uint32(n - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := uint32(s>>32) >> t.shift
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// slotOf returns the slot holding position p, whose key hashes to h.
func (t *table[V, P]) slotOf(h uint64, p int) uint32 {
	mask := uint32(len(t.slots) - 1)
	want := uint32(p + 1)
	i := tagOf(h) >> t.shift
	for uint32(t.slots[i]) != want {
		i = (i + 1) & mask
	}
	return i
}

// del removes the value at position p. The last value moves into p, so a
// caller walking vals should look at p again.
func (t *table[V, P]) del(p int) {
	last := len(t.vals) - 1
	t.willWrite(p)
	t.willWrite(last)
	mask := uint32(len(t.slots) - 1)
	// Backward-shift deletion keeps every probe sequence unbroken without
	// tombstones: later entries of the run move into the hole unless their
	// home lies cyclically in (hole, their slot].
	hole := t.slotOf(P(&t.vals[p]).hkey(), p)
	for j := (hole + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		home := uint32(t.slots[j]>>32) >> t.shift
		if (j-home)&mask >= (j-hole)&mask {
			t.slots[hole] = t.slots[j]
			hole = j
		}
	}
	t.slots[hole] = 0

	if p != last {
		i := t.slotOf(P(&t.vals[last]).hkey(), last)
		t.slots[i] = t.slots[i]&^0xFFFFFFFF | uint64(p+1)
		t.vals[p] = t.vals[last]
	}
	var zero V
	t.vals[last] = zero
	t.vals = t.vals[:last]
}
