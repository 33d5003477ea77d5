package features

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// Shared holds the window state of every group not keyed by account
// (device.id, ip, payee_id, card_id, ...) for all the Stores of one engine.
// Events are sharded by account, so the events of one device or IP reach
// several shards; keeping those entities in one place makes their windows
// count every shard's events, as one Store on one goroutine would.
//
// Concurrency: the entities are split into lock stripes by their key's
// hash, each stripe a mutex and one table per group. Store.Observe locks
// the stripes of the event's entities (in ascending order, so two shards
// never deadlock) while it looks them up, checks lateness, adds the event
// and reads their windows (it looks the account up in the same spell, so
// the cache misses overlap); account profiles and account-grouped windows
// stay in the shard's own Store and are updated after the unlock. Expire, Snapshot and Len lock one
// stripe at a time.
//
// A Shared is safe for concurrent use by its Stores.
type Shared struct {
	set     *Set
	stripes []stripe
	shift   uint8 // 64 - log2(len(stripes))
	// sweep is the next stripe Expire sweeps; stores counts the Stores
	// attached, each of which sweeps its share of the stripes per call,
	// so a round of Expire calls (one per shard) sweeps every stripe once.
	sweep  atomic.Uint32
	stores atomic.Int32
	// warmUntil is, by feature index, the event time until which the
	// feature is warming (never: it is not), and warmEnd the latest of
	// them: restores set them (see noteRestore), before any Store of the
	// Shared observes, and nothing changes them after.
	warmUntil [MaxWindows]int64
	warmEnd   int64
	// restored is what the Shared knows of the snapshot it was restored
	// from.
	restored restoreInfo
	// guards are, in a copy made by Freeze, the guards copying each
	// stripe's tables, stripe by stripe and group by group, until
	// Complete.
	guards []*freezeGuard[entity]
}

// sharedStripes is how many lock stripes a Shared has: enough that shards
// touching different entities rarely meet on one lock, few enough that a
// sweep's per-stripe overhead is noise.
const sharedStripes = 256 // a power of two

// stripeMul spreads a key over the stripes. It differs from mixMul, whose
// top bits pick a key's home slot inside the stripe's table: picking the
// stripe from the same bits would crowd each stripe's keys into a sliver
// of its table.
const stripeMul = 0xD6E8FEB86659FD93

// stripe is one lock and the entities under it, padded to its own cache
// line so shards locking neighbouring stripes do not share one.
type stripe struct {
	mu sync.Mutex
	// groups holds the entities by group index; the account group's
	// table stays empty (that state lives in the Store).
	groups []table[entity, *entity]
	// items holds the item lists of the stripe's entities; inline, so
	// that its directory shares the lock's cache line.
	items arena[item]
	_     [(64 - (8+24+unsafe.Sizeof(arena[item]{}))%64) % 64]byte
}

// NewShared returns empty shared entity state for the Stores of one engine;
// make each shard's Store with Shared.NewStore.
func (s *Set) NewShared() *Shared {
	n := sharedStripes
	bits := uint8(0)
	for 1<<bits < n {
		bits++
	}
	sh := &Shared{set: s, stripes: make([]stripe, n), shift: 64 - bits, warmEnd: never}
	for i := range sh.warmUntil {
		sh.warmUntil[i] = never
	}
	for i := range sh.stripes {
		sh.stripes[i].groups = make([]table[entity, *entity], len(s.groups))
	}
	return sh
}

// NewStore returns an empty Store that keeps its non-account groups in sh.
// Each shard owns one; it is not safe for concurrent use, but Stores of
// the same Shared may run on different goroutines.
func (sh *Shared) NewStore() *Store {
	st := sh.set.newStore(sh)
	// The first Store counts the shared entities in Len, so a sum over
	// an engine's shards counts each once.
	st.countShared = sh.stores.Add(1) == 1
	return st
}

// Set returns the Set the Shared was made from.
func (sh *Shared) Set() *Set { return sh.set }

// stripeOf returns the stripe of the entity whose key hashes to h.
func (sh *Shared) stripeOf(h uint64) uint16 { return uint16((h * stripeMul) >> sh.shift) }

// Len returns how many entities the Shared holds, over all groups.
func (sh *Shared) Len() int {
	n := 0
	for i := range sh.stripes {
		sp := &sh.stripes[i]
		sp.mu.Lock()
		for g := range sp.groups {
			n += sp.groups[g].len()
		}
		sp.mu.Unlock()
	}
	return n
}

// expire sweeps the next share of the stripes (all of them when one Store
// is attached) for entities idle as of nowMs, and returns how many it
// removed.
func (sh *Shared) expire(nowMs int64) int {
	n := len(sh.stripes)
	share := n
	if k := int(sh.stores.Load()); k > 1 {
		share = (n + k - 1) / k
	}
	// The cursor wraps at 2^32, a multiple of the stripe count.
	first := sh.sweep.Add(uint32(share)) - uint32(share)
	removed := 0
	for i := range uint32(share) {
		removed += sh.expireStripe(&sh.stripes[(first+i)%uint32(n)], nowMs)
	}
	return removed
}

func (sh *Shared) expireStripe(sp *stripe, nowMs int64) int {
	s := sh.set
	tol := s.cfg.LateTolerance.Milliseconds()
	n := 0
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for g := range sp.groups {
		t := &sp.groups[g]
		idle := s.groups[g].maxWinMs + tol
		for j := 0; j < len(t.vals); {
			if t.vals[j].last+idle <= nowMs {
				t.willWrite(j)
				sp.items.release(&t.vals[j].items)
				t.del(j) // the last entity moved to j: look at j again
				n++
				continue
			}
			j++
		}
	}
	return n
}

// lock locks the stripes held, which are ascending: every Store takes
// its locks in that one order, so none waits for another in a cycle.
func (sh *Shared) lock(held []uint16) {
	for _, i := range held {
		sh.stripes[i].mu.Lock()
	}
}

func (sh *Shared) unlock(held []uint16) {
	for _, i := range held {
		sh.stripes[i].mu.Unlock()
	}
}
