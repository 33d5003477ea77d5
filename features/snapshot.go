package features

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// Snapshot format (all integers varint/uvarint, floats as uvarint bits):
//
//	magic "RSKF" | version | set fingerprint
//	profiles: count, then per profile key and fields
//	groups: count, then per group: entity count, then per entity key,
//	        last, items (x, b, f<<24|n): counters and distinct values
//	        in the entity's order
//
// Keys are written in ascending order so equal stores give equal bytes.
// Version 2 keeps one item list per entity (version 1 kept counters and
// distinct values apart).
const (
	snapMagic   = "RSKF"
	snapVersion = 2
)

// ErrSnapshot wraps every problem Restore finds with the snapshot itself
// (wrong magic, version or feature definitions, truncation).
var ErrSnapshot = errors.New("features snapshot")

type snapWriter struct {
	w   *bufio.Writer
	buf [binary.MaxVarintLen64]byte
}

func (s *snapWriter) u(x uint64) {
	n := binary.PutUvarint(s.buf[:], x)
	s.w.Write(s.buf[:n])
}
func (s *snapWriter) i(x int64) {
	n := binary.PutVarint(s.buf[:], x)
	s.w.Write(s.buf[:n])
}
func (s *snapWriter) f(x float64) { s.u(math.Float64bits(x)) }

// Snapshot writes the Store's state to w.
func (st *Store) Snapshot(w io.Writer) error {
	sw := &snapWriter{w: bufio.NewWriter(w)}
	sw.w.WriteString(snapMagic)
	sw.u(snapVersion)
	sw.u(st.set.fingerprint)

	accs := st.accounts.vals
	order := make([]int, 0, len(accs))
	for j := range accs {
		if accs[j].hasProfile {
			order = append(order, j)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(accs[a].win.key, accs[b].win.key) })
	sw.u(uint64(len(order)))
	for _, j := range order {
		p := &accs[j].p
		sw.u(accs[j].win.key)
		sw.i(p.first)
		sw.i(p.last)
		sw.u(uint64(p.events))
		for _, at := range p.lastAt {
			sw.i(at)
		}
		sw.f(p.paySum)
		sw.f(p.payCnt)
		sw.i(p.payTS)
		sw.f(p.lat)
		sw.f(p.lon)
		sw.i(p.geoTS)
		sw.u(uint64(len(p.seen)))
		for _, h := range p.seen {
			sw.u(h)
		}
	}

	sw.u(uint64(len(st.groups)))
	for g := range st.groups {
		var ents []*entity
		if g == st.set.accGroup {
			for j := range accs {
				if accs[j].hasWin {
					ents = append(ents, &accs[j].win)
				}
			}
		} else {
			vals := st.groups[g].vals
			ents = make([]*entity, len(vals))
			for j := range vals {
				ents[j] = &vals[j]
			}
		}
		slices.SortFunc(ents, func(a, b *entity) int { return cmp.Compare(a.key, b.key) })
		sw.u(uint64(len(ents)))
		for _, e := range ents {
			sw.u(e.key)
			sw.i(e.last)
			sw.u(uint64(len(e.items)))
			for _, c := range e.items {
				sw.u(c.x)
				sw.u(uint64(c.b))
				sw.u(uint64(c.fn))
			}
		}
	}
	if err := sw.w.Flush(); err != nil {
		return fmt.Errorf("features snapshot: %w", err)
	}
	return nil
}

type snapReader struct {
	r   *bufio.Reader
	err error
}

func (s *snapReader) u() uint64 {
	if s.err != nil {
		return 0
	}
	x, err := binary.ReadUvarint(s.r)
	if err != nil {
		s.err = err
	}
	return x
}
func (s *snapReader) i() int64 {
	if s.err != nil {
		return 0
	}
	x, err := binary.ReadVarint(s.r)
	if err != nil {
		s.err = err
	}
	return x
}
func (s *snapReader) f() float64 { return math.Float64frombits(s.u()) }

// count reads a length and checks it against a sanity bound so a corrupt
// snapshot cannot make Restore allocate without limit.
func (s *snapReader) count(bound uint64, what string) int {
	n := s.u()
	if s.err == nil && n > bound {
		s.err = fmt.Errorf("%s count %d exceeds %d", what, n, bound)
		return 0
	}
	return int(n)
}

// Restore reads a Store written by Store.Snapshot. The snapshot must come
// from a Set with the same definitions and bucket layout; otherwise it
// fails with an error wrapping ErrSnapshot.
func (s *Set) Restore(r io.Reader) (*Store, error) {
	sr := &snapReader{r: bufio.NewReader(r)}
	var magic [4]byte
	if _, err := io.ReadFull(sr.r, magic[:]); err != nil {
		return nil, fmt.Errorf("%w: read header: %v", ErrSnapshot, err)
	}
	if string(magic[:]) != snapMagic {
		return nil, fmt.Errorf("%w: bad magic %q, not a features snapshot", ErrSnapshot, magic[:])
	}
	if v := sr.u(); sr.err == nil && v != snapVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads version %d", ErrSnapshot, v, snapVersion)
	}
	if fp := sr.u(); sr.err == nil && fp != s.fingerprint {
		return nil, fmt.Errorf("%w: taken with different feature definitions or buckets; start with empty state or restore with the old definitions", ErrSnapshot)
	}
	st := s.NewStore()
	nf := uint64(len(s.feats))
	maxSeen := uint64(s.cfg.MaxSeen)
	n := sr.count(1<<40, "profile")
	for j := 0; j < n && sr.err == nil; j++ {
		k := sr.u()
		var p profile
		p.first, p.last = sr.i(), sr.i()
		p.events = uint32(sr.u())
		for i := range p.lastAt {
			p.lastAt[i] = sr.i()
		}
		p.paySum, p.payCnt, p.payTS = sr.f(), sr.f(), sr.i()
		p.lat, p.lon, p.geoTS = sr.f(), sr.f(), sr.i()
		ns := sr.count(maxSeen, "first-seen")
		p.seen = make([]uint64, ns)
		for i := range p.seen {
			p.seen[i] = sr.u()
		}
		a, _ := st.accounts.upsert(k)
		a.win.key = k
		if !a.hasProfile {
			st.nProf++
		}
		a.p, a.hasProfile = p, true
	}
	if g := sr.count(uint64(len(s.groups)), "group"); sr.err == nil && g != len(s.groups) {
		sr.err = fmt.Errorf("group count %d, want %d", g, len(s.groups))
	}
	maxItems := nf*uint64(s.cfg.Buckets) + nf*uint64(s.cfg.MaxDistinct)
	for g := 0; g < len(s.groups) && sr.err == nil; g++ {
		n := sr.count(1<<40, "entity")
		for j := 0; j < n && sr.err == nil; j++ {
			e := entity{key: sr.u(), last: sr.i()}
			ni := sr.count(maxItems, "item")
			if ni > 0 {
				e.items = make([]item, ni)
			}
			for i := range e.items {
				e.items[i] = item{x: sr.u(), b: uint32(sr.u()), fn: uint32(sr.u())}
				if f := e.items[i].f(); sr.err == nil && uint64(f) >= nf {
					sr.err = fmt.Errorf("item feature %d out of range", f)
				}
			}
			if g == s.accGroup {
				a, _ := st.accounts.upsert(e.key)
				if !a.hasWin {
					st.nAccWin++
				}
				a.win, a.hasWin = e, true
			} else {
				p, _ := st.groups[g].upsert(e.key)
				*p = e
			}
		}
	}
	if sr.err != nil {
		if errors.Is(sr.err, io.EOF) {
			sr.err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: %v", ErrSnapshot, sr.err)
	}
	return st, nil
}
