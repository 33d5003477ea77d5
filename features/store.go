package features

import (
	"math"

	"github.com/expr-lang/expr/vm"

	"riskd/engine/event"
)

// Store holds one shard's window and profile state. It belongs to one
// goroutine and is not safe for concurrent use.
//
// Memory: entities (one per By value per group of features sharing a By
// field) and profiles (one per account) live in maps keyed by a 64-bit
// FNV-1a hash of the key, so no event strings are retained. Window
// counters are sparse: an entity keeps one cell per (feature, non-empty
// bucket), and at most Config.MaxDistinct hashes per distinct feature, so
// a quiet account costs little and a busy one is bounded by
// features × Buckets cells.
type Store struct {
	set      *Set
	groups   []map[uint64]*entity
	profiles map[uint64]*profile
	vm       vm.VM
	scratch  []*entity // per group, for the event being observed
}

// entity is the window state of one By value in one group.
type entity struct {
	last  int64 // latest event time added, ms
	cells []cell
	dist  []dent
}

// cell is one bucket of one feature, 16 bytes. v is the sum (sum, avg),
// minimum or maximum. b is the bucket number (event time / width)
// truncated to 32 bits: live buckets are all within a window of the
// entity's latest time, so comparisons by signed 32-bit difference are
// exact, and Observe clears an entity idle for longer than its longest
// window before the truncation could alias. fn packs the feature index
// (top 8 bits) and the event count (low 24 bits, saturating).
type cell struct {
	v  float64
	b  uint32
	fn uint32
}

const cellMaxN = 1<<24 - 1

func (c *cell) f() int   { return int(c.fn >> 24) }
func (c *cell) n() int64 { return int64(c.fn & cellMaxN) }

// dent is one value of a distinct set with the latest bucket it was seen
// in (truncated like cell.b), 16 bytes.
type dent struct {
	h uint64
	b uint32
	f uint32
}

// after reports whether bucket a is later than bucket b.
func after(a, b uint32) bool { return int32(a-b) > 0 }

func laterOf(a, b uint32) uint32 {
	if after(a, b) {
		return a
	}
	return b
}

// NewStore returns an empty Store for the Set.
func (s *Set) NewStore() *Store {
	st := &Store{
		set:      s,
		groups:   make([]map[uint64]*entity, len(s.groups)),
		profiles: make(map[uint64]*profile),
		scratch:  make([]*entity, len(s.groups)),
	}
	for i := range st.groups {
		st.groups[i] = make(map[uint64]*entity)
	}
	return st
}

// Set returns the Set the Store was made from.
func (st *Store) Set() *Set { return st.set }

// Len returns how many entities the Store holds: account profiles plus
// window entities of every group.
func (st *Store) Len() int {
	n := len(st.profiles)
	for _, m := range st.groups {
		n += len(m)
	}
	return n
}

// Accounts returns how many account profiles the Store holds.
func (st *Store) Accounts() int { return len(st.profiles) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Observe computes the profile as of before ev, adds ev to the windows,
// and fills out (window values include ev). An event more than
// Config.LateTolerance behind the latest event time of its account or of
// any entity it belongs to is late: it is not added to windows, late is
// true, and out still gets values as of the latest time seen.
func (st *Store) Observe(ev *event.Event, out *Values) (late bool) {
	s := st.set
	tol := s.cfg.LateTolerance.Milliseconds()

	acc := hashString(ev.AccountID)
	p := st.profiles[acc]
	if p == nil {
		p = newProfile(ev.TS)
		st.profiles[acc] = p
	} else if ev.TS < p.last-tol {
		late = true
	}
	for g := range s.groups {
		k := s.groups[g].key(ev)
		if k == "" {
			st.scratch[g] = nil
			continue
		}
		h := hashString(k)
		e := st.groups[g][h]
		if e == nil {
			e = &entity{last: ev.TS}
			st.groups[g][h] = e
		} else if ev.TS < e.last-tol {
			late = true
		} else if ev.TS-e.last >= s.groups[g].maxWinMs {
			// Everything left the window; drop it before bucket numbers
			// could alias (see cell).
			e.cells, e.dist = e.cells[:0], e.dist[:0]
		}
		st.scratch[g] = e
	}

	p.read(ev, &out.Profile)
	p.update(ev, s.cfg.MaxSeen)

	if !late {
		for i := range s.feats {
			f := &s.feats[i]
			e := st.scratch[f.group]
			if e == nil || !f.match(ev, &st.vm) {
				continue
			}
			st.add(e, i, f, ev)
		}
		for _, e := range st.scratch {
			if e != nil && ev.TS > e.last {
				e.last = ev.TS
			}
		}
	}

	clear(out.Windows[:len(s.feats)])
	for g := range s.groups {
		if e := st.scratch[g]; e != nil {
			st.fill(e, &s.groups[g], ev.TS, out)
		}
	}
	return late
}

func (st *Store) add(e *entity, i int, f *feature, ev *event.Event) {
	b := uint32(floorDiv(ev.TS, f.width))
	fi := uint32(i)
	if f.kind == KindDistinct {
		v := f.field(ev)
		if v == "" {
			return
		}
		h := hashString(v)
		n, oldest := 0, -1
		for j := range e.dist {
			d := &e.dist[j]
			if d.f != fi {
				continue
			}
			if d.h == h {
				d.b = laterOf(d.b, b)
				return
			}
			n++
			if oldest < 0 || after(e.dist[oldest].b, d.b) {
				oldest = j
			}
		}
		if n >= st.set.cfg.MaxDistinct {
			e.dist[oldest] = dent{h: h, b: laterOf(b, e.dist[oldest].b), f: fi}
			return
		}
		e.dist = append(e.dist, dent{h: h, b: b, f: fi})
		return
	}
	var x float64
	if f.num != nil {
		x = f.num(ev)
	}
	// Scan from the end: the current bucket was appended most recently.
	for j := len(e.cells) - 1; j >= 0; j-- {
		c := &e.cells[j]
		if c.fn>>24 != fi || c.b != b {
			continue
		}
		if c.fn&cellMaxN < cellMaxN {
			c.fn++
		}
		switch f.kind {
		case KindSum, KindAvg:
			c.v += x
		case KindMin:
			c.v = min(c.v, x)
		case KindMax:
			c.v = max(c.v, x)
		}
		return
	}
	e.cells = append(e.cells, cell{v: x, b: b, fn: fi<<24 | 1})
}

// fill drops buckets that left the window as of the entity's latest time
// and adds the rest to out. A bucket b of feature f is in the window at
// time t when b > floor(t/width) - Buckets.
func (st *Store) fill(e *entity, g *group, ts int64, out *Values) {
	feats := st.set.feats
	ref := max(e.last, ts)
	var lo [MaxWindows]uint32
	var cnt [MaxWindows]float64
	for _, i := range g.feats {
		lo[i] = uint32(floorDiv(ref, feats[i].width) - feats[i].nb)
	}
	w := out.Windows[:]
	keep := e.cells[:0]
	for _, c := range e.cells {
		i := c.f()
		if !after(c.b, lo[i]) {
			continue
		}
		keep = append(keep, c)
		switch feats[i].kind {
		case KindCount:
			w[i] += float64(c.n())
		case KindSum:
			w[i] += c.v
		case KindAvg:
			w[i] += c.v
			cnt[i] += float64(c.n())
		case KindMin:
			if cnt[i] == 0 || c.v < w[i] {
				w[i] = c.v
			}
			cnt[i]++
		case KindMax:
			if cnt[i] == 0 || c.v > w[i] {
				w[i] = c.v
			}
			cnt[i]++
		}
	}
	clear(e.cells[len(keep):])
	e.cells = keep
	for _, i := range g.feats {
		if feats[i].kind == KindAvg && cnt[i] > 0 {
			w[i] /= cnt[i]
		}
	}
	keepD := e.dist[:0]
	for _, d := range e.dist {
		if !after(d.b, lo[d.f]) {
			continue
		}
		keepD = append(keepD, d)
		w[d.f]++
	}
	e.dist = keepD
}

// Expire forgets window entities idle for longer than their group's
// longest window (plus the late tolerance) and profiles idle for longer
// than Config.ProfileTTL, as of event time nowMs. Call it from the shard
// now and then (say every few thousand events); it returns how many
// entries it removed.
func (st *Store) Expire(nowMs int64) int {
	n := 0
	tol := st.set.cfg.LateTolerance.Milliseconds()
	for g, m := range st.groups {
		idle := st.set.groups[g].maxWinMs + tol
		for k, e := range m {
			if e.last+idle <= nowMs {
				delete(m, k)
				n++
			}
		}
	}
	ttl := st.set.cfg.ProfileTTL.Milliseconds()
	for k, p := range st.profiles {
		if p.last+ttl <= nowMs {
			delete(st.profiles, k)
			n++
		}
	}
	return n
}

const never = math.MinInt64
