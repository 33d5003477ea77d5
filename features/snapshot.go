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

// Snapshot formats (all integers varint/uvarint, floats as uvarint bits).
// A Store:
//
//	magic "RSKF" | version | set fingerprint
//	profiles: count, then per profile key and fields
//	account windows: count, then per account an entity (below)
//	entities: 0, or 1 and an entity part when the Store owns its Shared
//
// A Shared (Shared.Snapshot), written once for all the Stores using it:
//
//	magic "RSKS" | version | set fingerprint | entity part
//
// An entity part is the stripe count and the group count, then per stripe
// and per group (the account group's always empty) an entity count and the
// entities; an entity is key, last, then its items (x, b, f<<24|n):
// counters and distinct values in the entity's order. For a distinct
// value n is its span, the buckets between its first and its latest
// sighting (snapshots written before spans were kept hold 0: the value
// reads as seen in its latest bucket only).
//
// Keys are written in ascending order (within a stripe) so equal states
// give equal bytes. Version 2 kept one item list per entity (version 1
// kept counters and distinct values apart); version 3 splits the account
// state from the other groups, which a Shared may hold for several Stores.
const (
	snapMagic       = "RSKF"
	sharedSnapMagic = "RSKS"
	snapVersion     = 3
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

// Snapshot writes the Store's state to w: its accounts and, when it owns
// its Shared (Set.NewStore), the other groups' entities too. The Stores of
// an engine leave those to one Shared.Snapshot.
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

	var ents []*entity
	for j := range accs {
		if accs[j].hasWin {
			ents = append(ents, &accs[j].win)
		}
	}
	buf := appendEntities(nil, ents)
	sw.w.Write(buf)
	if st.ownShared {
		sw.u(1)
		if err := st.shared.writeParts(sw.w, buf[:0]); err != nil {
			return fmt.Errorf("features snapshot: %w", err)
		}
	} else {
		sw.u(0)
	}
	if err := sw.w.Flush(); err != nil {
		return fmt.Errorf("features snapshot: %w", err)
	}
	return nil
}

// Snapshot writes the Shared's entities to w, one stripe at a time under
// its lock: consistent per stripe while the Stores run, and as a whole
// when they are paused (an engine checkpoint after the intake drained).
func (sh *Shared) Snapshot(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(sharedSnapMagic)
	var hdr []byte
	hdr = binary.AppendUvarint(hdr, snapVersion)
	hdr = binary.AppendUvarint(hdr, sh.set.fingerprint)
	bw.Write(hdr)
	if err := sh.writeParts(bw, nil); err != nil {
		return fmt.Errorf("features shared snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("features shared snapshot: %w", err)
	}
	return nil
}

// writeParts writes the entity part. Each stripe is encoded into buf
// under its lock and written to w after unlocking, so a slow writer
// holds up no shard.
func (sh *Shared) writeParts(w *bufio.Writer, buf []byte) error {
	buf = binary.AppendUvarint(buf[:0], uint64(len(sh.stripes)))
	buf = binary.AppendUvarint(buf, uint64(len(sh.set.groups)))
	var ents []*entity
	for i := range sh.stripes {
		sp := &sh.stripes[i]
		sp.mu.Lock()
		for g := range sp.groups {
			vals := sp.groups[g].vals
			ents = ents[:0]
			for j := range vals {
				ents = append(ents, &vals[j])
			}
			buf = appendEntities(buf, ents)
		}
		sp.mu.Unlock()
		clear(ents) // hold no pointer into a table past its lock
		if _, err := w.Write(buf); err != nil {
			return err
		}
		buf = buf[:0]
	}
	return nil
}

// appendEntities appends the count of ents and each entity in ascending
// key order (it sorts ents).
func appendEntities(b []byte, ents []*entity) []byte {
	slices.SortFunc(ents, func(a, b *entity) int { return cmp.Compare(a.key, b.key) })
	b = binary.AppendUvarint(b, uint64(len(ents)))
	for _, e := range ents {
		b = binary.AppendUvarint(b, e.key)
		b = binary.AppendVarint(b, e.last)
		b = binary.AppendUvarint(b, uint64(len(e.items)))
		for _, c := range e.items {
			b = binary.AppendUvarint(b, c.x)
			b = binary.AppendUvarint(b, uint64(c.b))
			b = binary.AppendUvarint(b, uint64(c.fn))
		}
	}
	return b
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

// Restore reads a Store written by Store.Snapshot of a Store made with
// Set.NewStore (one that owns its Shared). The snapshot must come from a
// Set with the same definitions and bucket layout; otherwise, or when it
// is a shard's snapshot without the entities, it fails with an error
// wrapping ErrSnapshot.
func (s *Set) Restore(r io.Reader) (*Store, error) {
	return s.restore(r, nil)
}

// Restore reads a shard's Store written by Store.Snapshot into a new
// Store of sh (see Set.Restore for the errors). Restore sh itself first,
// with Set.RestoreShared.
func (sh *Shared) Restore(r io.Reader) (*Store, error) {
	return sh.set.restore(r, sh)
}

// RestoreShared reads a Shared written by Shared.Snapshot; make the
// shards' Stores with its Restore. It fails like Set.Restore.
func (s *Set) RestoreShared(r io.Reader) (*Shared, error) {
	sr := &snapReader{r: bufio.NewReader(r)}
	if err := s.readHeader(sr, sharedSnapMagic); err != nil {
		return nil, err
	}
	sh := s.NewShared()
	sh.readParts(sr)
	if err := sr.done(); err != nil {
		return nil, err
	}
	return sh, nil
}

func (s *Set) readHeader(sr *snapReader, magicWant string) error {
	var magic [4]byte
	if _, err := io.ReadFull(sr.r, magic[:]); err != nil {
		return fmt.Errorf("%w: read header: %v", ErrSnapshot, err)
	}
	if string(magic[:]) != magicWant {
		what := "features"
		if magicWant == sharedSnapMagic {
			what = "shared entities"
		}
		return fmt.Errorf("%w: bad magic %q, not a %s snapshot", ErrSnapshot, magic[:], what)
	}
	if v := sr.u(); sr.err == nil && v != snapVersion {
		return fmt.Errorf("%w: version %d, this build reads version %d", ErrSnapshot, v, snapVersion)
	}
	if fp := sr.u(); sr.err == nil && fp != s.fingerprint {
		return fmt.Errorf("%w: taken with different feature definitions or buckets; start with empty state or restore with the old definitions", ErrSnapshot)
	}
	return nil
}

func (sr *snapReader) done() error {
	if sr.err == nil {
		return nil
	}
	if errors.Is(sr.err, io.EOF) {
		sr.err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %v", ErrSnapshot, sr.err)
}

// restore reads a Store snapshot; into a Store of sh, or of a Shared of
// its own read from the snapshot when sh is nil.
func (s *Set) restore(r io.Reader, sh *Shared) (*Store, error) {
	sr := &snapReader{r: bufio.NewReader(r)}
	if err := s.readHeader(sr, snapMagic); err != nil {
		return nil, err
	}
	var st *Store
	if sh == nil {
		st = s.NewStore()
	} else {
		st = sh.NewStore()
	}
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
	n = sr.count(1<<40, "account window")
	if n > 0 && s.accGroup < 0 && sr.err == nil {
		sr.err = fmt.Errorf("%d account windows but no feature by account", n)
	}
	for j := 0; j < n && sr.err == nil; j++ {
		e := s.readEntity(sr)
		a, _ := st.accounts.upsert(e.key)
		if !a.hasWin {
			st.nAccWin++
		}
		a.win, a.hasWin = e, true
	}
	switch has := sr.u(); {
	case sr.err != nil:
	case has > 1:
		sr.err = fmt.Errorf("bad entities flag %d", has)
	case has == 1 && sh != nil:
		sr.err = errors.New("the snapshot holds its own entities (a Store made with Set.NewStore); restore it with Set.Restore")
	case has == 0 && sh == nil:
		sr.err = errors.New("the snapshot is a shard's and holds no entities but accounts'; restore it with Shared.Restore after Set.RestoreShared")
	case has == 1:
		st.shared.readParts(sr)
	}
	if err := sr.done(); err != nil {
		return nil, err
	}
	return st, nil
}

// readEntity reads one entity, checking its items' features.
func (s *Set) readEntity(sr *snapReader) entity {
	nf := uint64(len(s.feats))
	maxItems := nf*uint64(s.cfg.Buckets) + nf*uint64(s.cfg.MaxDistinct)
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
	return e
}

// readParts reads an entity part into sh, which nothing else uses yet.
// Each entity goes to the stripe its key belongs to here, whatever the
// stripe count of the writer.
func (sh *Shared) readParts(sr *snapReader) {
	s := sh.set
	parts := sr.count(1<<16, "stripe")
	if g := sr.count(uint64(len(s.groups)), "group"); sr.err == nil && g != len(s.groups) {
		sr.err = fmt.Errorf("group count %d, want %d", g, len(s.groups))
	}
	for range parts {
		for g := 0; g < len(s.groups) && sr.err == nil; g++ {
			n := sr.count(1<<40, "entity")
			if n > 0 && g == s.accGroup && sr.err == nil {
				sr.err = fmt.Errorf("%d shared entities in the account group", n)
			}
			for j := 0; j < n && sr.err == nil; j++ {
				e := s.readEntity(sr)
				p, _ := sh.stripes[sh.stripeOf(e.key)].groups[g].upsert(e.key)
				*p = e
			}
		}
	}
}
