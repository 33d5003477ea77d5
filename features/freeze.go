package features

import (
	"runtime"
	"sync"
)

// Freezing copies state in memory so that its snapshot can be encoded
// later, on another goroutine, while the original goes on observing. An
// engine cut pauses its shards for as long as it takes to capture their
// state: copying the tables and the item lists is a few memory moves per
// entity, where encoding them (sorting, varints) cost ten times more and
// held every event decided behind the cut.

// Freeze returns a copy of the Store's state for Snapshot: its accounts
// (profiles, windows, partitions) and, when the Store owns its Shared
// (Set.NewStore), a Freeze of that. The copy shares nothing mutable with
// the Store, so Snapshot may run on it on any goroutine while the Store
// observes. It serves Snapshot only: its tables hold their values but no
// index (Snapshot walks the values), so it can neither look up nor observe.
// A Store of an engine shard shares its Shared with the other shards;
// freeze that once with Shared.Freeze, in a turn when no shard observes.
func (st *Store) Freeze() *Store {
	f := &Store{set: st.set, ownShared: st.ownShared, countShared: st.countShared,
		nProf: st.nProf, nAccWin: st.nAccWin, part: st.part}
	f.accounts = cloneAccounts(&st.accounts)
	if st.ownShared {
		f.shared = st.shared.Freeze()
	} else {
		f.shared = st.shared.frozenLayout()
	}
	return f
}

// cloneAccounts copies the account table's values (not its index), the
// accounts' item lists and seen sets into two arenas: one allocation each,
// not one per account.
func cloneAccounts(t *table[account, *account]) table[account, *account] {
	c := table[account, *account]{vals: append([]account(nil), t.vals...)}
	var nItems, nSeen int
	for i := range c.vals {
		nItems += len(c.vals[i].win.items)
		nSeen += len(c.vals[i].p.seen)
	}
	items := make([]item, 0, nItems)
	seen := make([]uint64, 0, nSeen)
	for i := range c.vals {
		a := &c.vals[i]
		if a.win.items != nil {
			at := len(items)
			items = append(items, a.win.items...)
			a.win.items = items[at:len(items):len(items)]
		}
		if a.p.seen != nil {
			at := len(seen)
			seen = append(seen, a.p.seen...)
			a.p.seen = seen[at:len(seen):len(seen)]
		}
	}
	return c
}

// Freeze returns a copy of the Shared's entities for Snapshot, taken a
// stripe at a time under its lock: consistent as a whole only when no
// Store observes meanwhile (an engine's cut takes it in a turn of its
// own). The copy shares nothing mutable with the Shared; no Store may be
// attached to it.
//
// The stripes are copied on up to GOMAXPROCS goroutines at once: an
// engine's cut holds every shard while this runs, and the copy is memory
// bound, so spreading it over the cores shortens the pause.
func (sh *Shared) Freeze() *Shared {
	f := sh.frozenLayout()
	f.stripes = make([]stripe, len(sh.stripes))
	workers := min(runtime.GOMAXPROCS(0), len(sh.stripes))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(sh.stripes); i += workers {
				sp := &sh.stripes[i]
				sp.mu.Lock()
				f.stripes[i].groups = cloneEntityTables(sp.groups)
				sp.mu.Unlock()
			}
		})
	}
	wg.Wait()
	return f
}

// frozenLayout returns a Shared with no entities and what a snapshot's
// layout reads of sh (the warming ends, set before any Store observes and
// never changed after).
func (sh *Shared) frozenLayout() *Shared {
	return &Shared{set: sh.set, shift: sh.shift, warmUntil: sh.warmUntil, warmEnd: sh.warmEnd}
}

// cloneEntityTables copies the values of one stripe's tables (not their
// index) and their entities' item lists into one arena.
func cloneEntityTables(groups []table[entity, *entity]) []table[entity, *entity] {
	out := make([]table[entity, *entity], len(groups))
	n := 0
	for g := range groups {
		for j := range groups[g].vals {
			n += len(groups[g].vals[j].items)
		}
	}
	items := make([]item, 0, n)
	for g := range groups {
		t := &groups[g]
		c := table[entity, *entity]{vals: append([]entity(nil), t.vals...)}
		for j := range c.vals {
			e := &c.vals[j]
			if e.items != nil {
				at := len(items)
				items = append(items, e.items...)
				e.items = items[at:len(items):len(items)]
			}
		}
		out[g] = c
	}
	return out
}
