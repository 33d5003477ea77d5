package features

import (
	"fmt"
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
// exception a freeze relies on: viewShared may run on another goroutine
// while the owner allocates, for a slot the owner neither writes nor
// frees meanwhile (see freeze.go).

// list is where a list lives in its arena: a slot of a class (capacity
// classCap[class]) at off in chunk, of which the first len elements are
// in use. The zero list is empty and has no slot. A list is 8 bytes, so
// an entity is 24: the chunk and offset are 16 bits each (an arena holds
// at most maxChunks chunks of maxChunk elements), the length and class
// share a word (nc: len<<8 | class; the item bound of a stored entity,
// itemBound, is far below the 2^24 elements it allows).
type list struct {
	chunk, off uint16
	nc         uint32
}

// listOf returns the list of n elements in the slot of class at off in
// chunk.
func listOf(chunk, off uint32, n int, class uint8) list {
	return list{chunk: uint16(chunk), off: uint16(off), nc: uint32(n)<<8 | uint32(class)}
}

// len returns how many elements the list holds.
func (l list) len() int { return int(l.nc >> 8) }

// class returns the class of the list's slot, 0 for none.
func (l list) class() uint8 { return uint8(l.nc) }

// setLen makes the list hold its first n elements (n within its slot).
func (l *list) setLen(n int) { l.nc = uint32(n)<<8 | l.nc&0xff }

// Size classes: 1 to 7 elements, then eight classes per doubling (8, 9,
// ..., 15, 16, 18, ..., 30, 32, 36, ...), so a slot wastes less than an
// eighth of itself, as Go's own size classes do. Class 0 is no slot.
const (
	numClasses = 8 + 8*27 // caps up to 15<<26, past any bound on a list
	// Slots of every class are cut from one chunk at a time, in the
	// order asked for. A chunk holds a quarter of the elements cut so
	// far, from minChunk to maxChunk, so a lightly used arena (a stripe
	// of a small Shared) stays small and what is cut but not yet used is
	// a fifth of the arena at most. A class of more than maxChunk
	// elements is given a chunk per slot.
	minChunk = 64
	maxChunk = 1 << 16
	// maxChunks bounds the chunks of an arena (list.chunk): 4 Gi
	// elements, 64 GiB of items, in chunks of maxChunk. An arena that
	// needs more panics (newChunk).
	maxChunks = 1 << 16
)

var classCap = func() (caps [numClasses]uint32) {
	for c := 1; c < numClasses; c++ {
		if c < 8 {
			caps[c] = uint32(c)
			continue
		}
		k := c - 8
		caps[c] = uint32(8+k%8) << (k / 8)
	}
	return caps
}()

// classFor returns the smallest class holding n elements (n >= 1).
func classFor(n int) uint8 {
	if n < 8 {
		return uint8(n)
	}
	exp := bits.Len(uint(n)) - 4 // n>>exp is in [8, 16)
	c := 8 + 8*exp + (n>>exp - 8)
	if classCap[c] < uint32(n) {
		c++
	}
	return uint8(c)
}

// listElem are the types an arena holds: 8-byte aligned, at least 8
// bytes, no pointers, so that a free slot can hold the link to the next
// (see arena.free).
type listElem interface{ item | uint64 }

// arena holds lists of T. Its zero value is empty and ready.
type arena[T listElem] struct {
	// chunks is the directory of chunks, as the owner reads it. It is
	// replaced whole when a chunk is added or dropped, never changed in
	// place, and published in shared for a reader on another goroutine
	// (a freeze's copier, viewShared).
	chunks [][]T
	shared atomic.Pointer[[][]T]
	// free is, by class, the last freed slot, as slotRef; each free slot
	// holds the next in its first eight bytes, 0 ending the list. Keeping
	// the list in the slots themselves means taking one touches only the
	// slot, which its new list is about to write anyway.
	free [numClasses]uint64
	// chunk, next and end are where the next slot is cut from when no
	// slot of its class is free; cut counts the elements cut so far.
	chunk, next, end uint32
	cut              uint64
	// freeChunks are the positions of dropped chunks, for reuse.
	freeChunks []uint32
}

// slotRef names a slot of a small class in a free list: never 0.
func slotRef(chunk, off uint32) uint64 { return (uint64(chunk)+1)<<32 | uint64(off) }

// link is the first eight bytes of the slot v starts: where a free slot
// keeps the next one's slotRef.
func link[T listElem](v []T) *uint64 { return (*uint64)(unsafe.Pointer(unsafe.SliceData(v))) }

// view returns l's elements: a slice of the arena, len l.len(), cap its
// slot's, valid until the slot is freed or grown. Only the arena's owner
// may call it (see viewShared).
func (a *arena[T]) view(l list) []T {
	if l.class() == 0 {
		return nil
	}
	c, off := a.chunks[l.chunk], uint32(l.off)
	return c[off : off+l.nc>>8 : off+classCap[l.class()]]
}

// viewShared is view for a reader on another goroutine than the owner's,
// of a list the owner neither frees nor grows meanwhile.
func (a *arena[T]) viewShared(l list) []T {
	if l.class() == 0 {
		return nil
	}
	c, off := (*a.shared.Load())[l.chunk], uint32(l.off)
	return c[off : off+l.nc>>8 : off+classCap[l.class()]]
}

// alloc returns a list of n elements (n >= 1) in a fresh slot and its
// view. The elements hold whatever the slot held last: the caller writes
// them all.
func (a *arena[T]) alloc(n int) (list, []T) {
	class := classFor(n)
	l := listOf(0, 0, n, class)
	if s := a.free[class]; s != 0 {
		l.chunk, l.off = uint16(s>>32-1), uint16(s)
		v := a.view(l)
		a.free[class] = *link(v)
		return l, v
	}
	size := classCap[class]
	if size > maxChunk {
		l.chunk = uint16(a.newChunk(size))
		return l, a.view(l)
	}
	if a.end-a.next < size {
		a.freeRest()
		a.chunk, a.next = a.newChunk(uint32(min(maxChunk, max(minChunk, uint64(size), a.cut/4)))), 0
		a.end = uint32(len(a.chunks[a.chunk]))
	}
	l.chunk, l.off = uint16(a.chunk), uint16(a.next)
	a.next += size
	a.cut += uint64(size)
	return l, a.view(l)
}

// freeRest puts what is left of the chunk slots are cut from in the free
// lists, as slots of the largest classes it holds, before a new chunk
// replaces it.
func (a *arena[T]) freeRest() {
	for rest := a.end - a.next; rest > 0; {
		c := classFor(int(rest))
		if classCap[c] > rest {
			c--
		}
		a.pushFree(a.chunk, a.next, c)
		a.next += classCap[c]
		rest -= classCap[c]
	}
}

// pushFree puts the slot at off in chunk on class's free list.
func (a *arena[T]) pushFree(chunk, off uint32, class uint8) {
	*link(a.view(listOf(chunk, off, 1, class))) = a.free[class]
	a.free[class] = slotRef(chunk, off)
}

// newChunk adds a chunk of size elements and returns its position.
func (a *arena[T]) newChunk(size uint32) uint32 {
	c := make([]T, size)
	dir := a.chunks
	next := make([][]T, len(dir), len(dir)+1)
	copy(next, dir)
	var at uint32
	if n := len(a.freeChunks); n > 0 {
		at = a.freeChunks[n-1]
		a.freeChunks = a.freeChunks[:n-1]
		next[at] = c
	} else {
		if len(next) >= maxChunks {
			panic(fmt.Sprintf("features: an arena of %d chunks has no room for %d more elements", maxChunks, size))
		}
		at = uint32(len(next))
		next = append(next, c)
	}
	a.publish(next)
	return at
}

// publish makes dir the arena's directory, for the owner and for the
// readers of viewShared.
func (a *arena[T]) publish(dir [][]T) {
	a.chunks = dir
	a.shared.Store(&dir)
}

// release frees l's slot, if any, and empties l.
func (a *arena[T]) release(l *list) {
	if l.class() == 0 {
		return
	}
	if classCap[l.class()] > maxChunk {
		// The slot is its chunk: drop it rather than keep a large
		// chunk for a list that may not come again.
		next := make([][]T, len(a.chunks))
		copy(next, a.chunks)
		next[l.chunk] = nil
		a.publish(next)
		a.freeChunks = append(a.freeChunks, uint32(l.chunk))
	} else {
		a.pushFree(uint32(l.chunk), uint32(l.off), l.class())
	}
	*l = list{}
}

// grow moves l, whose elements are cur (its view), to a slot with room
// for at least need elements, and returns the new view, len len(cur).
// Short lists double; long ones grow by an eighth (a quarter with the
// class's rounding): busy entities hold most of the items, and doubling
// would leave up to half of their slots unused.
func (a *arena[T]) grow(l *list, cur []T, need int) []T {
	want := max(need, 2*len(cur))
	if len(cur) >= 16 {
		want = max(need, len(cur)+len(cur)/8)
	}
	nl, v := a.alloc(want)
	copy(v, cur)
	a.release(l)
	nl.setLen(len(cur))
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
	if l.class() == 0 || int(classCap[l.class()]) < len(vs) {
		a.release(l)
		var v []T
		*l, v = a.alloc(len(vs))
		copy(v, vs)
		return v
	}
	l.setLen(len(vs))
	v := a.view(*l)
	copy(v, vs)
	return v
}

// appendTo appends v to the list l whose elements are cur (its view),
// growing its slot when full, and returns the new view; l's length
// follows.
func (a *arena[T]) appendTo(l *list, cur []T, v T) []T {
	if len(cur) == cap(cur) {
		cur = a.grow(l, cur, len(cur)+1)
	}
	cur = append(cur, v)
	l.setLen(len(cur))
	return cur
}
