package features

import (
	"math"
	"math/bits"
	"sync"

	"github.com/expr-lang/expr/vm"

	"riskd/event"
	"riskd/internal/keyhash"
)

// Store holds one shard's window and profile state. It belongs to one
// goroutine and is not safe for concurrent use; the entities of groups not
// keyed by account live in a Shared, which Stores of one engine share
// (see Shared.NewStore), or which is private to a Store made with
// Set.NewStore.
//
// Memory: accounts (profile plus the window state of features grouped by
// account) and the entities of every other group (one per By value) live
// inline in open-addressing tables keyed by a 64-bit FNV-1a hash of the
// key (see table), so no event strings are retained and an event costs
// one lookup per entity; their item lists and first-seen sets live in
// arenas (see arena.go), so the tables hold no pointers for the garbage
// collector to follow. Window state is sparse: an entity keeps one item
// per (feature, non-empty bucket), two for stddev, one per non-empty
// (bucket, bin) for percentile up to maxQuantileItems, at most
// Config.MaxDistinct items per distinct feature and maxRecords records
// per last or time_since feature, seqKeep occurrences per earlier step of
// a sequence (one item each, two with a link value), so a quiet account
// costs little and a busy one is bounded by features × Buckets items plus
// the distinct sets, records and step occurrences.
type Store struct {
	set      *Set
	accounts table[account, *account]
	// shared holds the entities of the other groups. ownShared: the
	// Store made it (Set.NewStore) and snapshots it with its own state;
	// countShared: Len counts its entities (one Store per Shared does).
	shared      *Shared
	ownShared   bool
	countShared bool
	nProf       int // accounts with a profile
	nAccWin     int // accounts with window state
	// part tags the accounts the next observations touch (SetPartition).
	part    uint16
	vm      vm.VM
	scratch []window // per group, for the event being observed
	accWin  window   // the account's, for the event being observed
	// accItems and accSeen hold the accounts' item lists and first-seen
	// sets (see arena.go).
	accItems arena[item]
	accSeen  arena[uint64]
	clocks   []laneClock
	bucket   []int64 // per lane, bucket of the event being observed
	// Scratch of add and fill, by feature index (lo by lane); kept here so
	// each call does not zero them. Only the entries of the group at hand
	// are written before they are read.
	bk     [MaxWindows]uint32 // bucket of the event
	hd     [MaxWindows]uint64 // hash of the distinct value
	seen   [MaxWindows]int32  // distinct values held
	oldest [MaxWindows]int32  // position of the least recently seen, +1
	lo     [MaxWindows]uint32 // last bucket out of the window, by lane
	lof    [MaxWindows]uint32 // last bucket out of the window
	hi     [MaxWindows]uint32 // as-of reads: the event's bucket, by lane
	hif    [MaxWindows]uint32 // the event's bucket
	keep   [MaxWindows]uint32 // last bucket out of the window at the entity's latest time, by lane
	keepf  [MaxWindows]uint32 // the same by feature
	cnt    [MaxWindows]float64
	// Scratch of the kinds whose value fill works out at the end (see
	// kinds.go): stddev's mean and sum of squared deviations, the time of
	// the best record or bucket of last, time_since and first_seen, and
	// last's value read just before its time.
	mean [MaxWindows]float64
	m2   [MaxWindows]float64
	best [MaxWindows]int64
	pend [MaxWindows]float64
	// asOf is the event time fill reads as of; rec the record features
	// (last, time_since) add left for addRecords; recPos its scratch.
	asOf   int64
	rec    uint64
	recPos []recPos
	keys   []uint64 // per group, hash of the event's By value
	stripe []uint16 // per group, the Shared stripe of the event's entity
	held   []uint16 // stripes locked for the event, ascending, no repeats
	sink   uint64   // keeps the loads of the touch pass
	// Hashes of the event's fields (Set.fields), valid where fepoch
	// equals epoch, which Observe advances per event; fok reports a
	// non-empty value.
	fh     []uint64
	fepoch []uint32
	fok    []bool
	epoch  uint32
	// occ is the scratch of a sequence read (see sequences).
	occ []seqOcc
	// qs is the scratch of a percentile's read (packBin) and of its
	// bound on bins (see capQuantile); qb and qk that of the bound.
	qs []uint64
	qb []uint32
	qk []int32
	// accGuard is, in a copy made by Freeze, the guard copying the
	// accounts (see freeze.go) until Complete; cloning guards the copy's
	// arenas meanwhile.
	accGuard *freezeGuard[account]
	cloning  sync.Mutex
}

// account is one account's profile and the window state of the features
// grouped by account, found with one lookup. Either may be absent: Expire
// drops them on different schedules.
type account struct {
	win        entity // win.key is the account's key even when !hasWin
	hasProfile bool
	hasWin     bool
	// part is the input partition the account's events come from, plus
	// one; 0 while none came from a partition (see SetPartition).
	part uint16
	p    profile
}

func (a *account) hkey() uint64 { return a.win.key }

// entity is the window state of one By value in one group. Its items
// live in the arena of its table's owner: the Store's for an account,
// the stripe's for a shared entity.
type entity struct {
	key   uint64 // hash of the By value
	last  int64  // latest event time added, ms
	items list
}

func (e *entity) hkey() uint64 { return e.key }

// window is an entity as the Store reads and changes it: the entity, and
// its items as a slice of the arena that holds them. Changes to the
// items' length go back to the entity through appendItem and truncate;
// items written in place need nothing more.
type window struct {
	*entity
	ar    *arena[item]
	items []item
}

// open makes w the window of e, whose items are in ar.
func (w *window) open(e *entity, ar *arena[item]) {
	w.entity, w.ar, w.items = e, ar, ar.view(e.items)
}

// appendItem appends c to the items.
func (w *window) appendItem(c item) {
	w.items = w.ar.appendTo(&w.entity.items, w.items, c)
}

// truncate keeps the first k items.
func (w *window) truncate(k int) {
	clear(w.items[k:])
	w.items = w.items[:k]
	w.entity.items.setLen(k)
}

// item is one bucket of one feature, or one value of a distinct set,
// 16 bytes (stddev, first_seen, last and time_since: see kinds.go). For
// count, sum, avg, min and max, x holds the float64 bits of
// the sum (sum, avg), minimum or maximum; for distinct it is the value's
// hash. b is the bucket number (event time / width) truncated to 32 bits,
// for distinct the latest bucket the value was seen in: live buckets are
// all within a window of the entity's latest time, so comparisons by
// signed 32-bit difference are exact, and Observe clears an entity idle
// for longer than its longest window before the truncation could alias.
// fn packs the feature index (top 8 bits) and, in the low 24 bits, for
// counters the event count (saturating), for distinct the span: how many
// buckets before b the value was first seen (saturating), which as-of
// reads need (see fill).
type item struct {
	x  uint64
	b  uint32
	fn uint32
}

const cellMaxN = 1<<24 - 1

func (c *item) f() int         { return int(c.fn >> 24) }
func (c *item) n() int64       { return int64(c.fn & cellMaxN) }
func (c *item) v() float64     { return math.Float64frombits(c.x) }
func (c *item) setV(v float64) { c.x = math.Float64bits(v) }

// seenIn marks the distinct value c seen in bucket b: b becomes its latest
// bucket if later, its first if earlier.
func (c *item) seenIn(b uint32) {
	span := uint64(c.fn & cellMaxN)
	if after(b, c.b) {
		span += uint64(b - c.b)
		c.b = b
	} else {
		span = max(span, uint64(c.b-b))
	}
	c.fn = c.fn&^cellMaxN | uint32(min(span, cellMaxN))
}

// laneClock caches the bucket of the last event time seen for one bucket
// width, so events close in time (the usual stream) skip the division.
type laneClock struct {
	start, end int64 // the bucket covers [start, end)
	b          int64
}

// after reports whether bucket a is later than bucket b.
func after(a, b uint32) bool { return int32(a-b) > 0 }

func laterOf(a, b uint32) uint32 {
	if after(a, b) {
		return a
	}
	return b
}

// NewStore returns an empty Store for the Set with a Shared of its own,
// for tools that score on one goroutine. The shards of an engine make
// theirs with Shared.NewStore instead, so that entity windows see every
// shard's events.
func (s *Set) NewStore() *Store {
	st := s.NewShared().NewStore()
	st.ownShared = true
	return st
}

func (s *Set) newStore(sh *Shared) *Store {
	return &Store{
		set:     s,
		shared:  sh,
		scratch: make([]window, len(s.groups)),
		clocks:  make([]laneClock, len(s.widths)),
		bucket:  make([]int64, len(s.widths)),
		keys:    make([]uint64, len(s.groups)),
		stripe:  make([]uint16, len(s.groups)),
		held:    make([]uint16, 0, len(s.groups)),
		fh:      make([]uint64, len(s.fields)),
		fepoch:  make([]uint32, len(s.fields)),
		fok:     make([]bool, len(s.fields)),
	}
}

// Reserve makes room for n accounts in all: a tool that knows how many
// accounts it is about to replay (a backtest) saves growing the account
// table step by step, each step a copy of every account. n is a hint, to
// be bounded by the caller: the room is taken at once.
func (st *Store) Reserve(accounts int) {
	st.accounts.reserve(accounts)
}

// Set returns the Set the Store was made from.
func (st *Store) Set() *Set { return st.set }

// Len returns how many entities the Store holds: account profiles, the
// window state of accounts and, for the first Store of a Shared (or one
// made with Set.NewStore), the entities of every other group, so that a
// sum over an engine's Stores counts each entity once.
func (st *Store) Len() int {
	n := st.nProf + st.nAccWin
	if st.countShared {
		n += st.shared.Len()
	}
	return n
}

// Accounts returns how many account profiles the Store holds.
func (st *Store) Accounts() int { return st.nProf }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// fieldHash returns the hash of field f (an index in Set.fields) of the
// event being observed, or false when the field is empty. Each field is
// read and hashed once per event.
func (st *Store) fieldHash(f int, ev *event.Event) (uint64, bool) {
	if st.fepoch[f] != st.epoch {
		v := st.set.fields[f](ev)
		st.fepoch[f], st.fok[f] = st.epoch, v != ""
		if v != "" {
			st.fh[f] = keyhash.String(v)
		}
	}
	return st.fh[f], st.fok[f]
}

// bucketOf returns floorDiv(ts, width of lane l), from the lane's cache
// when ts falls in the bucket computed last.
func (st *Store) bucketOf(l int, ts int64) int64 {
	c := &st.clocks[l]
	if ts >= c.start && ts < c.end {
		return c.b
	}
	w := st.set.widths[l]
	b := floorDiv(ts, w)
	start := b * w
	end := start + w
	if start <= ts && ts < end { // false only on overflow near the int64 ends
		c.start, c.end, c.b = start, end, b
	}
	return b
}

// LateMask names the groups an event was late for: bit g is set when the
// event was more than Config.LateTolerance behind the latest event time of
// its entity in group g (Set.GroupName(g)), so that entity's windows did
// not get it. Zero means every window the event belongs to got it.
type LateMask uint64

// Has reports whether the event was late for group g.
func (m LateMask) Has(g int) bool { return g >= 0 && g < 64 && m&(1<<g) != 0 }

// Groups returns how many entity groups the Set keeps windows for; group
// indexes (LateMask bits, GroupName) run from 0 to Groups()-1.
func (s *Set) Groups() int { return len(s.groups) }

// GroupName returns the name of group g: "account" for the features by
// account, otherwise their By field as the event names it ("device.id",
// "ip", "payee_id", "card_id", "merchant_id", "attrs.x", ...), or "" when
// there is no group g. The strings are the Set's own: naming the groups
// of a LateMask allocates nothing.
func (s *Set) GroupName(g int) string {
	switch {
	case g < 0 || g >= len(s.groups):
		return ""
	case g == s.accGroup:
		return "account"
	}
	return s.groups[g].by
}

// AppendGroupNames appends the names of the groups set in m to dst, in
// group order, and returns it.
func (s *Set) AppendGroupNames(dst []string, m LateMask) []string {
	for ; m != 0; m &= m - 1 {
		dst = append(dst, s.GroupName(bits.TrailingZeros64(uint64(m))))
	}
	return dst
}

// Observe computes the profile as of before ev, adds ev to the windows,
// and fills out, as of ev's own time (Event.TS).
//
// Lateness is per entity: an event more than Config.LateTolerance behind
// the latest event time of its entity in one group (its account, device,
// IP, ...) is late for that group: it is not added to that entity's
// windows, and late has the group's bit set. It is still added to the
// windows of every other entity it belongs to. The account profile reads
// and records every event, late or not.
//
// Every window value is read as of ev: the buckets up to ev's own bucket
// (window/Config.Buckets wide) are counted, later ones are not, so an
// event that arrives after events dated later than itself does not count
// them. The resolution is the bucket: events dated after ev but in its
// own bucket count. The window values include ev except for the groups it
// was late for. Two bounds apply to an event dated behind its entity's
// latest time: the entity keeps only the buckets in the window as of that
// latest time, so the read lacks the oldest buckets of ev's window (about
// as much time as ev is behind; all of them, and the read is 0, when ev's
// own bucket has left that window); and a distinct set keeps the first and
// the latest bucket of each value, so a value first seen before ev's
// window and seen again after ev's bucket counts even if it was not seen
// in between. An event in time order (dated no earlier than the latest
// time of each of its entities) reads exactly the events of its windows
// (distinct counts up to Config.MaxDistinct). last and time_since read
// the latest matching event before ev in the stream dated no later than
// ev, at the millisecond, not the bucket, and never ev itself (see
// addRecords for their one bound); sequences read the steps dated before
// ev, at the millisecond too (see sequence.go for their bound).
//
// The event's non-account entities are read and updated under the locks
// of their Shared stripes, all held from the late check to the fill, so
// the event sees and changes them as one step, as if the engine had one
// shard.
func (st *Store) Observe(ev *event.Event, out *Values) (late LateMask) {
	return st.ObserveIn(ev, out, ScopeAll)
}

// Scope says which of an event's entities an observation updates. A fleet
// of instances splits an event in two (see streams' entity table): the
// instance that reads its account's partition owns the account's state,
// and every instance keeps the windows of the shared entities (devices,
// IPs, payees...) of every event, so that each reads them whole.
type Scope uint8

const (
	// ScopeAll updates the account and every shared entity: Observe.
	ScopeAll Scope = iota
	// ScopeShared updates the shared entities only: the account's profile
	// and windows are not touched (nor created). The values filled in are
	// the shared groups' only, of no use but to a caller that wants them.
	ScopeShared
	// ScopeAccount updates the account only, for an event already added to
	// the shared entities (by ScopeShared): their windows are read as of
	// the event, which they hold, and not changed, and the event is late
	// for none of them.
	ScopeAccount
)

// ObserveIn is Observe limited to scope's entities.
func (st *Store) ObserveIn(ev *event.Event, out *Values, scope Scope) (late LateMask) {
	s := st.set
	sh := st.shared
	tol := s.cfg.LateTolerance.Milliseconds()

	if st.epoch++; st.epoch == 0 { // wrapped: forget every stamp
		clear(st.fepoch)
		st.epoch = 1
	}
	acc := keyhash.String(ev.AccountID)
	if f := s.accField; f >= 0 {
		st.fh[f], st.fok[f], st.fepoch[f] = acc, ev.AccountID != "", st.epoch
	}
	var keyed uint64 // shared groups whose By value is not empty
	held := st.held[:0]
	for g := range s.groups {
		if g == s.accGroup {
			continue
		}
		if h, ok := st.fieldHash(s.groups[g].field, ev); ok {
			st.keys[g] = h
			keyed |= 1 << g
			i := sh.stripeOf(h)
			st.stripe[g] = i
			held = insertStripe(held, i)
		}
	}
	st.held = held

	// Hash every key and touch where its state lives before looking any
	// up: the tables are much larger than the cache, and touching them
	// back to back lets the misses overlap.
	sh.lock(held)
	var sink uint64
	if scope != ScopeShared {
		sink = st.accounts.touch(acc)
	}
	for g := range s.groups {
		if keyed&(1<<g) != 0 {
			sink += sh.stripes[st.stripe[g]].groups[g].touch(st.keys[g])
		}
	}

	var a *account
	if scope != ScopeShared {
		var fresh bool
		a, fresh = st.accounts.upsert(acc)
		if fresh {
			a.win.key = acc
		}
		if !a.hasProfile {
			a.p, a.hasProfile = newProfile(ev.TS), true
			st.nProf++
		}
		if st.part != 0 {
			a.part = st.part
		}
	}
	var ae *window // the account's window state, if a group is by account
	if g := s.accGroup; g >= 0 && ev.AccountID != "" && a != nil {
		ae = &st.accWin
		ae.open(&a.win, &st.accItems)
		switch {
		case !a.hasWin:
			a.hasWin = true
			st.nAccWin++
			ae.last = ev.TS
			ae.truncate(0)
		case ev.TS < ae.last-tol:
			late |= 1 << g
		case ev.TS-ae.last >= s.groups[g].maxWinMs:
			// Everything left the window; drop it before bucket numbers
			// could alias (see item).
			ae.truncate(0)
		}
	}
	for g := range s.groups {
		w := &st.scratch[g]
		if keyed&(1<<g) == 0 {
			*w = window{}
			continue
		}
		h := st.keys[g]
		sp := &sh.stripes[st.stripe[g]]
		if scope == ScopeAccount { // add nothing; fill still drops what left the window
			if e := sp.groups[g].getForWrite(h); e != nil {
				w.open(e, &sp.items)
			} else {
				*w = window{}
			}
			continue
		}
		e, fresh := sp.groups[g].upsert(h)
		w.open(e, &sp.items)
		if fresh {
			e.key, e.last = h, ev.TS
		} else if ev.TS < e.last-tol {
			late |= 1 << g
		} else if ev.TS-e.last >= s.groups[g].maxWinMs {
			w.truncate(0) // as for the account above
		}
	}

	// Likewise for the item lists and the first-seen set.
	for g := range st.scratch {
		if e := &st.scratch[g]; len(e.items) > 0 {
			sink += e.items[0].x
		}
	}
	if ae != nil && len(ae.items) > 0 {
		sink += ae.items[0].x
	}
	var seen []uint64
	if a != nil {
		seen = st.accSeen.view(a.p.seen)
		if len(seen) > 0 {
			sink += seen[0]
		}
	}
	st.sink = sink

	for l := range st.bucket {
		st.bucket[l] = st.bucketOf(l, ev.TS)
	}
	clear(out.Windows[:len(s.feats)])
	for _, i := range s.since {
		out.Windows[i] = NeverSecs // for an event without an entity there
	}
	adds := scope != ScopeAccount
	for g := range s.groups {
		if e := &st.scratch[g]; e.entity != nil {
			if adds && late&(1<<g) == 0 {
				st.add(e, &s.groups[g], ev)
				e.last = max(e.last, ev.TS)
			}
			st.fill(e, &s.groups[g], ev.TS, out)
			if adds && late&(1<<g) == 0 && st.rec != 0 {
				st.addRecords(e, ev) // after the read: an event is not its own previous one
			}
			if s.groups[g].seq != 0 {
				st.sequences(e, &s.groups[g], ev, adds && late&(1<<g) == 0, out)
			}
		}
	}
	sh.unlock(held)
	clear(st.scratch) // hold no pointer into a table past its lock
	if a == nil {
		return late
	}

	// The account's own state needs no lock.
	sk := seenKeysOf(ev)
	a.p.read(ev, &sk, seen, &out.Profile)
	a.p.update(ev, &sk, s.cfg.MaxSeen, &st.accSeen)
	if ae != nil {
		g := &s.groups[s.accGroup]
		if late&(1<<s.accGroup) == 0 {
			st.add(ae, g, ev)
			ae.last = max(ae.last, ev.TS)
		}
		st.fill(ae, g, ev.TS, out)
		if late&(1<<s.accGroup) == 0 && st.rec != 0 {
			st.addRecords(ae, ev)
		}
		if g.seq != 0 {
			st.sequences(ae, g, ev, late&(1<<s.accGroup) == 0, out)
		}
	}
	return late
}

// insertStripe adds stripe i to the ascending list held unless it is
// there; held has room for one per group.
func insertStripe(held []uint16, i uint16) []uint16 {
	j := len(held)
	for j > 0 && held[j-1] >= i {
		if held[j-1] == i {
			return held
		}
		j--
	}
	held = append(held, 0)
	copy(held[j+1:], held[j:])
	held[j] = i
	return held
}

// add adds ev to the features of group g that it matches: it updates the
// counter item of each matched feature's current bucket and marks each
// matched distinct value seen, in one pass over the entity's items, then
// appends what it did not find in feature order. A full distinct set
// forgets the value seen least recently (the first such in item order).
// Stddev features are added by addStddev; last and time_since are left in
// st.rec for addRecords, which runs after the read.
func (st *Store) add(e *window, g *group, ev *event.Event) {
	s := st.set
	var needC, needD uint64 // by feature index: counters and distinct values still to place
	bk, hd := &st.bk, &st.hd
	st.rec = 0
	for _, i := range g.adds {
		f := &s.feats[i]
		if !f.match(ev, &st.vm) {
			continue
		}
		bk[i] = uint32(st.bucket[s.lanes[i]])
		if f.op != opDistinct {
			needC |= 1 << i
			continue
		}
		h, ok := st.fieldHash(f.of, ev)
		if !ok {
			continue
		}
		hd[i] = h
		needD |= 1 << i
	}
	if sp := needC & g.special; sp != 0 {
		needC &^= sp
		st.rec = sp & g.records
		if sd := sp &^ g.records &^ g.quant; sd != 0 {
			st.addStddev(e, sd, ev)
		}
		if q := sp & g.quant; q != 0 {
			st.addQuantile(e, q, ev)
		}
	}
	if needC|needD == 0 {
		return
	}
	seen, oldest := &st.seen, &st.oldest
	for d := needD; d != 0; d &= d - 1 {
		i := bits.TrailingZeros64(d)
		seen[i], oldest[i] = 0, 0
	}
	if needD == 0 {
		// Counters only: the current bucket's items were appended last.
		for j := len(e.items) - 1; j >= 0 && needC != 0; j-- {
			c := &e.items[j]
			if i := c.fn >> 24; needC&(1<<i) != 0 && c.b == bk[i] {
				needC &^= 1 << i
				st.bump(c, &s.feats[i], ev)
			}
		}
	} else {
		for j := range e.items {
			c := &e.items[j]
			i := c.fn >> 24
			bit := uint64(1) << i
			switch {
			case needD&bit != 0:
				if c.x == hd[i] {
					c.seenIn(bk[i])
					needD &^= bit
					continue
				}
				seen[i]++
				if o := oldest[i]; o == 0 || after(e.items[o-1].b, c.b) {
					oldest[i] = int32(j + 1)
				}
			case needC&bit != 0 && c.b == bk[i]:
				needC &^= bit
				st.bump(c, &s.feats[i], ev)
			}
		}
	}
	for need := needC | needD; need != 0; need &= need - 1 {
		i := bits.TrailingZeros64(need)
		f := &s.feats[i]
		if f.op == opDistinct {
			if int(seen[i]) >= s.cfg.MaxDistinct {
				// The newcomer takes the forgotten value's place up to its
				// latest bucket, so the set stays full that long.
				o := &e.items[oldest[i]-1]
				b := laterOf(bk[i], o.b)
				*o = item{x: hd[i], b: b, fn: uint32(i)<<24 | min(b-bk[i], cellMaxN)}
				continue
			}
			e.appendItem(item{x: hd[i], b: bk[i], fn: uint32(i) << 24})
			continue
		}
		var x float64
		if f.num != nil {
			x = f.num(ev)
		}
		e.appendItem(item{x: math.Float64bits(x), b: bk[i], fn: uint32(i)<<24 | 1})
	}
}

// bump adds ev to the counter item c of feature f.
func (st *Store) bump(c *item, f *feature, ev *event.Event) {
	if c.fn&cellMaxN < cellMaxN {
		c.fn++
	}
	switch f.op {
	case opSum, opAvg:
		c.setV(c.v() + f.num(ev))
	case opMin, opFirst:
		c.setV(min(c.v(), f.num(ev)))
	case opMax:
		c.setV(max(c.v(), f.num(ev)))
	}
}

// fill drops the buckets that left the window as of the entity's latest
// time and adds the buckets in the window as of ts to out. A bucket b of
// feature f is in the window at time t when
// floor(t/width) - Buckets < b <= floor(t/width); a distinct value is in
// it when the buckets it was first and last seen in, [b-span, b], meet
// the window. The Store's bucket has ts's buckets by lane.
func (st *Store) fill(e *window, g *group, ts int64, out *Values) {
	if ts < e.last {
		st.fillAsOf(e, g, ts, out)
		return
	}
	// ts is the entity's latest time: no item is later than ts's bucket,
	// and what is in the window as of ts is what the entity keeps.
	s := st.set
	nb := int64(s.cfg.Buckets)
	lo, lof, cnt := &st.lo, &st.lof, &st.cnt
	st.asOf = ts
	for _, l := range g.lanes {
		lo[l] = uint32(st.bucket[l] - nb)
	}
	for _, i := range g.feats {
		lof[i], cnt[i] = lo[s.lanes[i]], 0
	}
	if g.final != 0 {
		st.startMore(g)
	}
	w := &out.Windows
	items := e.items
	k := 0 // items kept so far; they move down only once one is dropped
	for j := range items {
		c := &items[j]
		i := c.fn >> 24
		if !after(c.b, lof[i]) {
			continue
		}
		// Set.accumulate written out: a call per item costs the hot path.
		switch s.ops[i] {
		case opCount:
			w[i] += float64(c.n())
		case opSum:
			w[i] += c.v()
		case opAvg:
			w[i] += c.v()
			cnt[i] += float64(c.n())
		case opMin:
			if cnt[i] == 0 || c.v() < w[i] {
				w[i] = c.v()
			}
			cnt[i]++
		case opMax:
			if cnt[i] == 0 || c.v() > w[i] {
				w[i] = c.v()
			}
			cnt[i]++
		case opDistinct:
			w[i]++
		}
		if k != j {
			items[k] = *c
		}
		k++
	}
	e.truncate(k)
	if g.final != 0 {
		// The newer kinds in a pass of their own, so that the loop above
		// makes no call.
		if g.more != 0 {
			for j := range e.items {
				if c := &e.items[j]; g.more&(1<<(c.fn>>24)) != 0 {
					st.accumulateMore(w, c.fn>>24, c)
				}
			}
		}
		st.finish(g, w)
	}
}

// fillAsOf is fill for an event dated before its entity's latest time:
// it keeps what is in the window as of that time and counts what is in
// the window as of ts, never the buckets after ts's. Where ts's bucket
// is itself out of the window as of the latest time, the entity keeps
// nothing ts's window holds, and the read is 0; this also keeps the
// 32-bit bucket comparisons exact (see item) for an event dated any
// time back.
func (st *Store) fillAsOf(e *window, g *group, ts int64, out *Values) {
	s := st.set
	nb := int64(s.cfg.Buckets)
	lo, lof, cnt := &st.lo, &st.lof, &st.cnt
	hi, hif, keep, keepf := &st.hi, &st.hif, &st.keep, &st.keepf
	st.asOf = ts
	var gone uint64 // lanes where ts's bucket is out of the window as of e.last
	for _, l := range g.lanes {
		b, bl := st.bucket[l], floorDiv(e.last, s.widths[l])
		if bl-b >= nb {
			gone |= 1 << l
		}
		lo[l], hi[l], keep[l] = uint32(b-nb), uint32(b), uint32(bl-nb)
	}
	var skip uint64 // features that read nothing
	for _, i := range g.feats {
		l := s.lanes[i]
		lof[i], hif[i], keepf[i], cnt[i] = lo[l], hi[l], keep[l], 0
		skip |= (gone >> l & 1) << i
	}
	if g.final != 0 {
		st.startMore(g)
	}
	w := &out.Windows
	items := e.items
	k := 0
	for j := range items {
		c := &items[j]
		i := c.fn >> 24
		first := c.b // the earliest bucket the item stands for
		if s.ops[i] == opDistinct {
			first -= c.fn & cellMaxN
		}
		if skip&(1<<i) == 0 && after(c.b, lof[i]) && !after(first, hif[i]) {
			st.accumulate(w, i, c)
		}
		if !after(c.b, keepf[i]) {
			continue
		}
		if k != j {
			items[k] = *c
		}
		k++
	}
	e.truncate(k)
	if g.final != 0 {
		st.finish(g, w)
	}
}

// accumulate adds item c of feature i to the window values w; st.cnt
// counts what avg, min and max need.
func (st *Store) accumulate(w *[MaxWindows]float64, i uint32, c *item) {
	cnt := &st.cnt
	switch st.set.ops[i] {
	case opCount:
		w[i] += float64(c.n())
	case opSum:
		w[i] += c.v()
	case opAvg:
		w[i] += c.v()
		cnt[i] += float64(c.n())
	case opMin:
		if cnt[i] == 0 || c.v() < w[i] {
			w[i] = c.v()
		}
		cnt[i]++
	case opMax:
		if cnt[i] == 0 || c.v() > w[i] {
			w[i] = c.v()
		}
		cnt[i]++
	case opDistinct:
		w[i]++
	default:
		st.accumulateMore(w, i, c)
	}
}

// Expire forgets window entities idle for longer than their group's
// longest window (plus the late tolerance) and profiles idle for longer
// than Config.ProfileTTL, as of event time nowMs. Call it from the shard
// now and then (say every few thousand events); it returns how many
// entries it removed. Each call also sweeps this Store's share of its
// Shared's stripes (all of them for a Store made with Set.NewStore), so
// that one call per shard sweeps every stripe once; an entity idle as of
// one shard's event time is gone for the others too.
func (st *Store) Expire(nowMs int64) int {
	n := st.shared.expire(nowMs)
	s := st.set
	tol := s.cfg.LateTolerance.Milliseconds()
	accIdle := int64(math.MaxInt64)
	if s.accGroup >= 0 {
		accIdle = s.groups[s.accGroup].maxWinMs + tol
	}
	ttl := s.cfg.ProfileTTL.Milliseconds()
	t := &st.accounts
	for j := 0; j < len(t.vals); {
		a := &t.vals[j]
		if a.hasWin && a.win.last+accIdle <= nowMs || a.hasProfile && a.p.last+ttl <= nowMs {
			t.willWrite(j)
		}
		if a.hasWin && a.win.last+accIdle <= nowMs {
			a.hasWin = false
			st.accItems.release(&a.win.items)
			st.nAccWin--
			n++
		}
		if a.hasProfile && a.p.last+ttl <= nowMs {
			st.accSeen.release(&a.p.seen)
			a.hasProfile, a.p = false, profile{}
			st.nProf--
			n++
		}
		if !a.hasWin && !a.hasProfile {
			t.del(j)
			continue
		}
		j++
	}
	return n
}

const never = math.MinInt64
