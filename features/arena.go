package features

import (
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// Arenas.
//
// The window state's variable-length lists (an entity's items, an
// account's first-seen set) live in arenas instead of in lists of their
// own, and the tables' values refer to them by position (list), so that
// the values hold no pointers. The garbage collector then has nothing to
// scan in the tables and nothing to mark per entity: with a list of its
// own per entity, each collection scanned every table and marked every
// list (1.3 million objects for 300,000 accounts of the reference
// workload, 45 ms of marking at each collection on this machine), which
// made the collector 14% of riskd's CPU in the end-to-end bench.
// BenchmarkCollectState measures it.
//
// An arena hands out slots by size class from chunks it allocates, and
// takes freed slots back for reuse in their class; it never returns a
// chunk to the heap, except a chunk that holds one slot of a large
// class. It belongs to whatever guards its table (a shard's Store, a
// Shared stripe's lock) and is not safe for concurrent use, with one
// exception a freeze relies on: view may run on another goroutine while
// the owner allocates, for a slot the owner neither writes nor frees
// meanwhile (see freeze.go).

// list is where a list lives in its arena: a slot of class (capacity
// classCap[class]) at off in chunk, of which the first n elements are in
// use. The zero list is empty and has no slot.
type list struct {
	chunk uint32
	off   uint32
	n     uint32
	class uint8
}

// Len returns how many elements the list holds.
func (l list) len() int { return int(l.n) }

// Size classes: 1, 2 and 3 elements, then four classes per doubling (4,
// 5, 6, 7, 8, 10, 12, 14, 16, 20, ...), so a slot wastes less than a
// quarter of itself. Class 0 is no slot.
const (
	numClasses = 4 + 4*28 // caps up to 7<<28, past any bound on a list
	// maxChunk is the most elements a chunk of a small class holds; a
	// class of more is given a chunk per slot.
	maxChunk = 1 << 15
	// minChunkSlots is how many slots the first chunk of a class holds;
	// each next chunk holds as many as the class has so far, up to
	// maxChunk elements, so a lightly used arena (a stripe of a small
	// Shared) stays small.
	minChunkSlots = 4
)

var classCap = func() (caps [numClasses]uint32) {
	for c := 1; c < numClasses; c++ {
		if c < 4 {
			caps[c] = uint32(c)
			continue
		}
		k := c - 4
		caps[c] = uint32(4+k%4) << (k / 4)
	}
	return caps
}()

// classFor returns the smallest class holding n elements (n >= 1).
func classFor(n int) uint8 {
	if n <= 3 {
		return uint8(n)
	}
	exp := bits.Len(uint(n)) - 3 // n>>exp is in [4, 8)
	c := 4 + 4*exp + (n>>exp - 4)
	if classCap[c] < uint32(n) {
		c++
	}
	return uint8(c)
}

// listElem are the types an arena holds: 8-byte aligned, at least 8
// bytes, no pointers, so that a free slot can hold the link to the next
// (see classState.free).
type listElem interface{ item | uint64 }

// arena holds lists of T. Its zero value is empty and ready.
type arena[T listElem] struct {
	// chunks is the directory of chunks, as the owner reads it. It is
	// replaced whole when a chunk is added or dropped, never changed in
	// place, and published in shared for a reader on another goroutine
	// (a freeze's copier, viewShared).
	chunks [][]T
	shared atomic.Pointer[[][]T]
	class  [numClasses]classState
	// freeChunks are the positions of dropped chunks, for reuse.
	freeChunks []uint32
}

// classState is an arena's state for one class, on one cache line or
// two: an allocation reads nothing else of the arena but its directory.
type classState struct {
	// free is the last freed slot, as slotRef; each free slot holds the
	// next in its first eight bytes, 0 ending the list. Keeping the list
	// in the slots themselves means taking one touches only the slot,
	// which its new list is about to write anyway.
	free uint64
	// chunk, next and end are where the next slot is cut from when none
	// is free.
	chunk, next, end uint32
	// slots counts the slots cut, which sizes the next chunk.
	slots uint32
}

// slotRef names a slot of a small class in a free list: never 0.
func slotRef(chunk, off uint32) uint64 { return (uint64(chunk)+1)<<32 | uint64(off) }

// link is the first eight bytes of the slot v starts: where a free slot
// keeps the next one's slotRef.
func link[T listElem](v []T) *uint64 { return (*uint64)(unsafe.Pointer(unsafe.SliceData(v))) }

// view returns l's elements: a slice of the arena, len l.n, cap its
// slot's, valid until the slot is freed or grown. Only the arena's owner
// may call it (see viewShared).
func (a *arena[T]) view(l list) []T {
	if l.class == 0 {
		return nil
	}
	c := a.chunks[l.chunk]
	return c[l.off : l.off+l.n : l.off+classCap[l.class]]
}

// viewShared is view for a reader on another goroutine than the owner's,
// of a list the owner neither frees nor grows meanwhile.
func (a *arena[T]) viewShared(l list) []T {
	if l.class == 0 {
		return nil
	}
	c := (*a.shared.Load())[l.chunk]
	return c[l.off : l.off+l.n : l.off+classCap[l.class]]
}

// alloc returns a list of n elements (n >= 1) in a fresh slot and its
// view. The elements hold whatever the slot held last: the caller writes
// them all.
func (a *arena[T]) alloc(n int) (list, []T) {
	class := classFor(n)
	l := list{class: class, n: uint32(n)}
	cs := &a.class[class]
	if s := cs.free; s != 0 {
		l.chunk, l.off = uint32(s>>32)-1, uint32(s)
		v := a.view(l)
		cs.free = *link(v)
		return l, v
	}
	size := classCap[class]
	if cs.end-cs.next < size {
		a.newChunk(class)
	}
	l.chunk, l.off = cs.chunk, cs.next
	cs.next += size
	cs.slots++
	return l, a.view(l)
}

// newChunk gives class a fresh chunk to cut slots from.
func (a *arena[T]) newChunk(class uint8) {
	size := classCap[class]
	cs := &a.class[class]
	slots := max(minChunkSlots, cs.slots)
	if size*slots > maxChunk || size*slots < size { // or overflows
		slots = max(1, maxChunk/size)
	}
	c := make([]T, int(size)*int(slots))
	dir := a.chunks
	next := make([][]T, len(dir), len(dir)+1)
	copy(next, dir)
	var at uint32
	if n := len(a.freeChunks); n > 0 {
		at = a.freeChunks[n-1]
		a.freeChunks = a.freeChunks[:n-1]
		next[at] = c
	} else {
		at = uint32(len(next))
		next = append(next, c)
	}
	a.publish(next)
	cs.chunk, cs.next, cs.end = at, 0, uint32(len(c))
}

// publish makes dir the arena's directory, for the owner and for the
// readers of viewShared.
func (a *arena[T]) publish(dir [][]T) {
	a.chunks = dir
	a.shared.Store(&dir)
}

// release frees l's slot, if any, and empties l.
func (a *arena[T]) release(l *list) {
	if l.class == 0 {
		return
	}
	if classCap[l.class] > maxChunk {
		// The slot is its chunk: drop it rather than keep a large
		// chunk for a list that may not come again.
		next := make([][]T, len(a.chunks))
		copy(next, a.chunks)
		next[l.chunk] = nil
		a.publish(next)
		a.freeChunks = append(a.freeChunks, l.chunk)
		a.class[l.class].slots--
	} else {
		cs := &a.class[l.class]
		*link(a.view(list{chunk: l.chunk, off: l.off, n: 1, class: l.class})) = cs.free
		cs.free = slotRef(l.chunk, l.off)
	}
	*l = list{}
}

// grow moves l, whose elements are cur (its view), to a slot with room
// for at least need elements, and returns the new view, len len(cur).
// Short lists double; long ones grow by a class (a quarter at most):
// busy entities hold most of the items, and doubling would leave up to
// half of their slots unused.
func (a *arena[T]) grow(l *list, cur []T, need int) []T {
	want := max(need, 2*len(cur))
	if len(cur) >= 16 {
		want = need
		if c := int(classCap[l.class]); want <= c {
			want = c + 1
		}
	}
	nl, v := a.alloc(want)
	copy(v, cur)
	a.release(l)
	nl.n = uint32(len(cur))
	*l = nl
	return v[:len(cur)]
}

// set makes l hold exactly vs, in its slot when it fits, and returns
// the view. An empty vs releases the slot.
func (a *arena[T]) set(l *list, vs []T) []T {
	if len(vs) == 0 {
		a.release(l)
		return nil
	}
	if l.class == 0 || int(classCap[l.class]) < len(vs) {
		a.release(l)
		var v []T
		*l, v = a.alloc(len(vs))
		copy(v, vs)
		return v
	}
	l.n = uint32(len(vs))
	v := a.view(*l)
	copy(v, vs)
	return v
}

// appendTo appends v to the list l whose elements are cur (its view),
// growing its slot when full, and returns the new view; l.n follows.
func (a *arena[T]) appendTo(l *list, cur []T, v T) []T {
	if len(cur) == cap(cur) {
		cur = a.grow(l, cur, len(cur)+1)
	}
	cur = append(cur, v)
	l.n = uint32(len(cur))
	return cur
}
