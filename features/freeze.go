package features

import (
	"sync"
	"sync/atomic"
)

// Freezing takes a copy of the state as of one moment so that its snapshot
// can be encoded later, on another goroutine, while the original goes on
// observing. An engine cut freezes its shards at their markers, and a
// shard decides nothing while it freezes: copying a million accounts
// (their values, item lists and seen sets) there held every event behind
// the cut for a third of a second and more.
//
// So a freeze copies nothing at once: it installs a copy-on-write guard on
// each table (freezeGuard) holding the count of values at the freeze, the
// slab they were in and a bitmap of the values copied since. A write to a
// value not yet copied copies that value first (table.willWrite), and
// Complete, on the goroutine that will encode the copy, copies the values
// no write reached and takes the guards off. While no freeze is in
// progress a write pays one atomic load; while one is, one more, and the
// copy of the few values an event writes first.
//
// The copy is tracked value by value, not by chunks: events write accounts
// and entities all over their tables, so a shard that copied a whole chunk
// of a thousand values before its first write to it made most of the copy
// itself, a chunk or more an event, and decided a few thousand events a
// second until the copy was complete. Chunks are the unit of locking
// only: a value is copied under its chunk's lock, so a shard's write
// waits only when the copier is in the same chunk, for that chunk at
// most (one lock per table, which the copier took again at once after
// each batch, held the shards off for a millisecond a write).
//
// The slab captured at the freeze stays right even after an insertion
// reallocates vals: a value not yet copied has not been written since the
// freeze (its item list and seen set included), and a reallocated slab is
// never written again. Values move only by del, which copies both
// positions first. The copier reads a value of the captured slab only
// while it is not copied, and the table writes it only after it is, both
// under the chunk's lock or after seeing its bit set, so each read of the
// copier happens before any later write (the race detector agrees).

// freezeChunk is how many values share one lock of a guard, and how many
// Complete copies under one hold of it: a write to a value not yet copied
// waits for one chunk at most (a few hundred microseconds for accounts).
const freezeChunk = 1024

// freezeGuard is a table's copy of its values as of a freeze.
type freezeGuard[V any] struct {
	n0  int // values at the freeze
	src []V // the slab at the freeze, len n0
	// copied has bit p set once value p of src is copied; set under the
	// lock of p's chunk, read without it on the fast path: a set bit means
	// the copy happened before.
	copied []atomic.Uint64
	locks  []sync.Mutex // by chunk of freezeChunk values
	// clone copies values and what they point to that the table's writes
	// change (item lists, seen sets), so the copy shares nothing mutable.
	clone func(dst, src []V)
	// at is where the guard is installed, to take it off when complete.
	at *atomic.Pointer[freezeGuard[V]]

	// dst is the frozen slab, allocated by complete (a large allocation,
	// kept off the shard) and stored under mu; values copied before it
	// exists wait in early, under mu.
	dst   atomic.Pointer[[]V]
	mu    sync.Mutex
	early []earlyRun[V]
}

// earlyRun is values copied before the frozen slab existed, from lo on.
type earlyRun[V any] struct {
	lo   int
	vals []V
}

// freeze installs a guard on t and returns it. A guard still installed
// (a freeze whose copy was neither completed nor discarded) is completed
// first, so two copies never overlap; an engine takes one cut at a time,
// so that costs it nothing.
func (t *table[V, P]) freeze(clone func(dst, src []V)) *freezeGuard[V] {
	if old := t.guard.Load(); old != nil {
		old.complete()
	}
	n := len(t.vals)
	g := &freezeGuard[V]{n0: n, src: t.vals[:n:n], copied: make([]atomic.Uint64, (n+63)/64),
		locks: make([]sync.Mutex, (n+freezeChunk-1)/freezeChunk), clone: clone}
	if n > 0 { // an empty table has nothing to guard
		g.at = &t.guard
		t.guard.Store(g)
	}
	return g
}

// willWrite copies the value at position p unless it is copied already
// or p is past the values of the freeze.
func (g *freezeGuard[V]) willWrite(p int) {
	if p >= g.n0 || g.isCopied(p) {
		return
	}
	mu := &g.locks[p/freezeChunk]
	mu.Lock()
	if !g.isCopied(p) {
		g.copyRun(p, p+1)
	}
	mu.Unlock()
}

func (g *freezeGuard[V]) isCopied(p int) bool {
	return g.copied[p>>6].Load()&(1<<(p&63)) != 0
}

// copyRun copies the values [lo, hi) of one chunk, none of them copied
// yet, under the chunk's lock.
func (g *freezeGuard[V]) copyRun(lo, hi int) {
	if d := g.dst.Load(); d != nil {
		g.clone((*d)[lo:hi], g.src[lo:hi])
	} else {
		g.mu.Lock()
		if d := g.dst.Load(); d != nil {
			g.clone((*d)[lo:hi], g.src[lo:hi])
		} else {
			to := make([]V, hi-lo)
			g.clone(to, g.src[lo:hi])
			g.early = append(g.early, earlyRun[V]{lo, to})
		}
		g.mu.Unlock()
	}
	for p := lo; p < hi; {
		w := p >> 6
		end := min(hi, (w+1)<<6)
		mask := uint64(1)<<(end-p) - 1 // end-p is at most 64: 1<<64 is 0 and the mask all ones
		g.copied[w].Or(mask << (p & 63))
		p = end
	}
}

// complete copies every value not copied yet, takes the guard off its
// table and returns the frozen values. It may run on any goroutine, and
// on several at once.
func (g *freezeGuard[V]) complete() []V {
	if g.dst.Load() == nil {
		slab := make([]V, g.n0) // outside the lock: the table's writes go on
		g.mu.Lock()
		if g.dst.Load() == nil {
			for _, e := range g.early {
				copy(slab[e.lo:], e.vals)
			}
			g.early = nil
			g.dst.Store(&slab)
		}
		g.mu.Unlock()
	}
	for c := range g.locks {
		g.copyChunk(c)
	}
	g.discard()
	return *g.dst.Load()
}

// copyChunk copies the values of chunk c not copied yet, a run of them at
// a time.
func (g *freezeGuard[V]) copyChunk(c int) {
	mu := &g.locks[c]
	mu.Lock()
	defer mu.Unlock()
	hi := min((c+1)*freezeChunk, g.n0)
	for p := c * freezeChunk; p < hi; {
		if g.isCopied(p) {
			p++
			continue
		}
		q := p + 1
		for q < hi && !g.isCopied(q) {
			q++
		}
		g.copyRun(p, q)
		p = q
	}
}

// discard takes the guard off its table without finishing the copy.
func (g *freezeGuard[V]) discard() {
	if g.at != nil {
		g.at.CompareAndSwap(g, nil)
	}
}

// Freeze returns a copy of the Store's state as of the call, for
// Snapshot: its accounts (profiles, windows, partitions) and, when the
// Store owns its Shared (Set.NewStore), a Freeze of that. It copies
// nothing yet (see the top of this file): the copy is made by the Store's
// writes and by Complete, which Snapshot calls, on any goroutine while
// the Store observes. Call Discard instead when the copy will not be
// snapshotted, so the Store's writes stop copying. The copy serves
// Snapshot only: its tables hold their values but no index, so it can
// neither look up nor observe.
//
// A Store of an engine shard shares its Shared with the other shards;
// freeze that once with Shared.Freeze, in a turn when no shard observes.
func (st *Store) Freeze() *Store {
	f := &Store{set: st.set, ownShared: st.ownShared, countShared: st.countShared,
		nProf: st.nProf, nAccWin: st.nAccWin, part: st.part}
	f.accGuard = st.accounts.freeze(func(dst, src []account) { f.cloneAccounts(dst, src, st) })
	if st.ownShared {
		f.shared = st.shared.Freeze()
	} else {
		f.shared = st.shared.frozenLayout()
	}
	return f
}

// Complete finishes the copy of a Store made by Freeze and takes its
// guards off the original, whose writes then copy nothing. Snapshot calls
// it; an engine cut calls it before encoding, so that the shards stop
// copying as soon as possible. It does nothing on a Store that is not a
// frozen copy, or is complete.
func (st *Store) Complete() {
	if g := st.accGuard; g != nil {
		st.accounts.vals = g.complete()
		st.accGuard = nil
	}
	if st.ownShared {
		st.shared.Complete()
	}
}

// Discard drops a copy made by Freeze that will not be snapshotted: its
// guards come off the original without finishing the copy. The copy is
// not to be used afterwards.
func (st *Store) Discard() {
	if g := st.accGuard; g != nil {
		g.discard()
		st.accGuard = nil
	}
	if st.ownShared {
		st.shared.Discard()
	}
}

// cloneAccounts copies the accounts src of from into dst, their item
// lists and seen sets into f's arenas. The copy is made by from's writes
// and by Complete at once, on different goroutines: f's arenas are
// shared by both, so they take f's lock.
func (f *Store) cloneAccounts(dst, src []account, from *Store) {
	copy(dst, src)
	f.cloning.Lock()
	defer f.cloning.Unlock()
	for i := range dst {
		a := &dst[i]
		a.win.items = cloneList(&f.accItems, &from.accItems, a.win.items)
		a.p.seen = cloneList(&f.accSeen, &from.accSeen, a.p.seen)
	}
}

// cloneList copies the list l of arena from into arena to.
func cloneList[T listElem](to, from *arena[T], l list) list {
	if l.len() == 0 {
		return list{}
	}
	nl, v := to.alloc(l.len())
	copy(v, from.viewShared(l))
	return nl
}

// Freeze returns a copy of the Shared's entities as of the call, for
// Snapshot, made lazily as Store.Freeze's is (Complete, Discard). It
// installs the guards a stripe at a time under its lock: the copy is
// consistent as a whole only when no Store observes meanwhile (an
// engine's cut takes it in a turn of its own). The copy shares nothing
// mutable with the Shared; no Store may be attached to it.
func (sh *Shared) Freeze() *Shared {
	f := sh.frozenLayout()
	f.stripes = make([]stripe, len(sh.stripes))
	f.guards = make([]*freezeGuard[entity], 0, len(sh.stripes)*len(sh.set.groups))
	// The copy is made by the Stores' writes and by Complete at once
	// (see Store.cloneAccounts): one lock guards the copy's arenas.
	mu := new(sync.Mutex)
	for i := range sh.stripes {
		sp, fp := &sh.stripes[i], &f.stripes[i]
		fp.groups = make([]table[entity, *entity], len(sp.groups))
		clone := func(dst, src []entity) { cloneEntities(dst, src, &fp.items, &sp.items, mu) }
		sp.mu.Lock()
		for g := range sp.groups {
			f.guards = append(f.guards, sp.groups[g].freeze(clone))
		}
		sp.mu.Unlock()
	}
	return f
}

// Complete finishes the copy of a Shared made by Freeze (see
// Store.Complete); Snapshot calls it.
func (sh *Shared) Complete() {
	if sh.guards == nil {
		return
	}
	k := 0
	for i := range sh.stripes {
		groups := sh.stripes[i].groups
		for g := range groups {
			groups[g].vals = sh.guards[k].complete()
			k++
		}
	}
	sh.guards = nil
}

// Discard drops a copy made by Freeze that will not be snapshotted (see
// Store.Discard).
func (sh *Shared) Discard() {
	for _, g := range sh.guards {
		g.discard()
	}
	sh.guards = nil
}

// frozenLayout returns a Shared with no entities and what a snapshot's
// layout reads of sh (the warming ends, set before any Store observes and
// never changed after).
func (sh *Shared) frozenLayout() *Shared {
	return &Shared{set: sh.set, shift: sh.shift, warmUntil: sh.warmUntil, warmEnd: sh.warmEnd}
}

// cloneEntities copies the entities src, whose items are in from, into
// dst, their items into to under the lock mu (see Store.cloneAccounts).
func cloneEntities(dst, src []entity, to, from *arena[item], mu *sync.Mutex) {
	copy(dst, src)
	mu.Lock()
	defer mu.Unlock()
	for j := range dst {
		dst[j].items = cloneList(to, from, dst[j].items)
	}
}
