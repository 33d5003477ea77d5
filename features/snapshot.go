package features

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
)

// Snapshot formats (all integers varint/uvarint, floats as uvarint bits,
// strings as a uvarint length and the bytes). A Store:
//
//	magic "RSKF" | version | layout
//	profiles: count, then per profile key and fields
//	account windows: count, then per account an entity (below)
//	partitions: count, then per account with one (SetPartition) key and
//	the partition plus one, in key order
//	entities: 0, or 1 and an entity part when the Store owns its Shared
//
// A Shared (Shared.Snapshot), written once for all the Stores using it:
//
//	magic "RSKS" | version | layout | entity part
//
// The layout describes the Set that wrote the snapshot, so that a Set
// with other window features can restore it (see Set.Restore): the
// Config's buckets, max_distinct and max_seen; the profile layout
// (profileLayout, then the count of last-event times); the groups (count,
// then each group's By field, canonical); the window features (count,
// then per feature its name, kind, of, group index, window ms, bucket
// width ms, where text, and 0, or 1 and the event time until which it is
// warming: it started empty at a restore and its window has not filled).
//
// An entity part is the stripe count and the group count, then per stripe
// and per group (the account group's always empty) an entity count and the
// entities; an entity is key, last, then its items (x, b, f<<24|n), f the
// feature's index in the layout: counters and distinct values in the
// entity's order. For a distinct value n is its span, the buckets between
// its first and its latest sighting.
//
// Keys are written in ascending order (within a stripe) so equal states
// give equal bytes. Version 2 kept one item list per entity (version 1
// kept counters and distinct values apart); version 3 split the account
// state from the other groups, which a Shared may hold for several Stores;
// version 4 replaced the fingerprint of the whole Set by the layout;
// version 5 added the accounts' partitions (a Store of version 4 is still
// read, its accounts of no partition).
const (
	snapMagic       = "RSKF"
	sharedSnapMagic = "RSKS"
	snapVersion     = 5
	// oldestSnapVersion is the oldest version restore reads.
	oldestSnapVersion = 4
	// profileLayout numbers the fields a profile is written with (see
	// Store.Snapshot); it changes whenever they do, so that a snapshot of
	// other profile fields is refused.
	profileLayout = 1
)

// ErrSnapshot wraps every problem Restore finds with the snapshot itself
// (wrong magic or version, another Config or profile layout, damage).
var ErrSnapshot = errors.New("features snapshot")

type snapWriter struct {
	w   *bufio.Writer
	buf [binary.MaxVarintLen64]byte
}

func (s *snapWriter) u(x uint64) {
	n := binary.PutUvarint(s.buf[:], x)
	s.w.Write(s.buf[:n])
}

// Snapshot writes the Store's state to w: its accounts and, when it owns
// its Shared (Set.NewStore), the other groups' entities too. The Stores of
// an engine leave those to one Shared.Snapshot.
//
// A copy made by Freeze is completed first (Complete).
func (st *Store) Snapshot(w io.Writer) error {
	st.Complete()
	sw := &snapWriter{w: bufio.NewWriter(w)}
	sw.w.WriteString(snapMagic)
	sw.w.Write(st.set.appendLayout(binary.AppendUvarint(nil, snapVersion), st.shared))

	accs := st.accounts.vals
	// Profiles in key order, sorted by the keys beside the positions (see
	// sortEntities), encoded in pieces (see writeEntities).
	order := make([]keyedPos, 0, len(accs))
	for j := range accs {
		if accs[j].hasProfile {
			order = append(order, keyedPos{accs[j].win.key, j})
		}
	}
	slices.SortFunc(order, func(a, b keyedPos) int { return cmp.Compare(a.key, b.key) })
	buf := binary.AppendUvarint(nil, uint64(len(order)))
	for _, o := range order {
		p := &accs[o.pos].p
		buf = binary.AppendUvarint(buf, o.key)
		buf = binary.AppendVarint(buf, p.first)
		buf = binary.AppendVarint(buf, p.last)
		buf = binary.AppendUvarint(buf, uint64(p.events))
		for _, at := range p.lastAt {
			buf = binary.AppendVarint(buf, at)
		}
		buf = binary.AppendUvarint(buf, math.Float64bits(p.paySum))
		buf = binary.AppendUvarint(buf, math.Float64bits(p.payCnt))
		buf = binary.AppendVarint(buf, p.payTS)
		buf = binary.AppendUvarint(buf, math.Float64bits(p.lat))
		buf = binary.AppendUvarint(buf, math.Float64bits(p.lon))
		buf = binary.AppendVarint(buf, p.geoTS)
		buf = binary.AppendUvarint(buf, uint64(p.seen.len()))
		for _, h := range st.accSeen.view(p.seen) {
			buf = binary.AppendUvarint(buf, h)
		}
		if len(buf) >= entityChunk {
			sw.w.Write(buf)
			buf = buf[:0]
		}
	}
	sw.w.Write(buf)

	var ents []*entity
	for j := range accs {
		if accs[j].hasWin {
			ents = append(ents, &accs[j].win)
		}
	}
	buf, err := writeEntities(sw.w, buf[:0], ents, &st.accItems)
	if err != nil {
		return fmt.Errorf("features snapshot: %w", err)
	}
	order = order[:0]
	for j := range accs {
		if accs[j].part != 0 {
			order = append(order, keyedPos{accs[j].win.key, j})
		}
	}
	slices.SortFunc(order, func(a, b keyedPos) int { return cmp.Compare(a.key, b.key) })
	buf = binary.AppendUvarint(buf[:0], uint64(len(order)))
	for _, o := range order {
		buf = binary.AppendUvarint(buf, o.key)
		buf = binary.AppendUvarint(buf, uint64(accs[o.pos].part))
		if len(buf) >= entityChunk {
			sw.w.Write(buf)
			buf = buf[:0]
		}
	}
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
// A copy made by Freeze is completed first (Complete).
func (sh *Shared) Snapshot(w io.Writer) error {
	sh.Complete()
	bw := bufio.NewWriter(w)
	bw.WriteString(sharedSnapMagic)
	bw.Write(sh.set.appendLayout(binary.AppendUvarint(nil, snapVersion), sh))
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
			buf = appendEntities(buf, ents, &sp.items)
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
// key order (it sorts ents); their items are in ar.
func appendEntities(b []byte, ents []*entity, ar *arena[item]) []byte {
	sortEntities(ents)
	b = binary.AppendUvarint(b, uint64(len(ents)))
	for _, e := range ents {
		b = appendEntity(b, e, ar)
	}
	return b
}

// writeEntities writes what appendEntities appends, through buf in pieces
// of about entityChunk bytes: the accounts' windows of a large Store would
// otherwise be one buffer of hundreds of megabytes, grown (copied and
// cleared) a dozen times while the shard is paused for a cut. It returns
// buf for reuse.
func writeEntities(w *bufio.Writer, buf []byte, ents []*entity, ar *arena[item]) ([]byte, error) {
	sortEntities(ents)
	buf = binary.AppendUvarint(buf[:0], uint64(len(ents)))
	for _, e := range ents {
		buf = appendEntity(buf, e, ar)
		if len(buf) >= entityChunk {
			if _, err := w.Write(buf); err != nil {
				return buf, err
			}
			buf = buf[:0]
		}
	}
	_, err := w.Write(buf)
	return buf[:0], err
}

const entityChunk = 64 << 10

func appendEntity(b []byte, e *entity, ar *arena[item]) []byte {
	b = binary.AppendUvarint(b, e.key)
	b = binary.AppendVarint(b, e.last)
	b = binary.AppendUvarint(b, uint64(e.items.len()))
	for _, c := range ar.view(e.items) {
		b = binary.AppendUvarint(b, c.x)
		b = binary.AppendUvarint(b, uint64(c.b))
		b = binary.AppendUvarint(b, uint64(c.fn))
	}
	return b
}

// sortEntities puts ents in ascending key order (a snapshot is the same
// bytes for the same state). It sorts the keys beside the pointers, in one
// contiguous slice, rather than comparing through the pointers: with a
// million entities spread over a large table, each comparison through a
// pointer is a cache miss.
func sortEntities(ents []*entity) {
	if len(ents) < 2 {
		return
	}
	ks := make([]keyedEntity, len(ents))
	for i, e := range ents {
		ks[i] = keyedEntity{e.key, e}
	}
	slices.SortFunc(ks, func(a, b keyedEntity) int { return cmp.Compare(a.key, b.key) })
	for i := range ks {
		ents[i] = ks[i].e
	}
}

type keyedEntity struct {
	key uint64
	e   *entity
}

type keyedPos struct {
	key uint64
	pos int
}

// appendLayout appends the layout of the Set (see the formats above), with
// the warming ends sh keeps.
func (s *Set) appendLayout(b []byte, sh *Shared) []byte {
	b = binary.AppendUvarint(b, uint64(s.cfg.Buckets))
	b = binary.AppendUvarint(b, uint64(s.cfg.MaxDistinct))
	b = binary.AppendUvarint(b, uint64(s.cfg.MaxSeen))
	b = binary.AppendUvarint(b, profileLayout)
	b = binary.AppendUvarint(b, numLast)
	b = binary.AppendUvarint(b, uint64(len(s.groups)))
	for g := range s.groups {
		b = appendString(b, s.groups[g].by)
	}
	b = binary.AppendUvarint(b, uint64(len(s.feats)))
	for i := range s.feats {
		id := &s.ids[i]
		b = appendString(b, s.defs[i].Name)
		b = appendString(b, string(id.kind))
		b = appendString(b, id.of)
		b = binary.AppendUvarint(b, uint64(s.feats[i].group))
		b = binary.AppendVarint(b, id.windowMs)
		b = binary.AppendVarint(b, id.widthMs)
		b = appendString(b, id.where)
		if u := sh.warmUntil[i]; u != never {
			b = binary.AppendUvarint(b, 1)
			b = binary.AppendVarint(b, u)
		} else {
			b = binary.AppendUvarint(b, 0)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

type snapReader struct {
	r   *bufio.Reader
	err error
	// items and seen are the scratch of one entity's items and one
	// profile's first-seen set, copied into their arenas from there.
	items []item
	seen  []uint64
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

// str reads a string of at most bound bytes.
func (s *snapReader) str(bound uint64, what string) string {
	n := s.count(bound, what+" length")
	if s.err != nil || n == 0 {
		return ""
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.r, b); err != nil {
		s.err = err
		return ""
	}
	return string(b)
}

// Restore reads a Store written by Store.Snapshot of a Store made with
// Set.NewStore (one that owns its Shared).
//
// The snapshot may come from a Set with other window features. Each
// stored feature's state goes to the Set's feature with the same
// definition (featureID: kind, of, by, window, bucket width and where,
// not the name, so a renamed feature keeps its state); the state of
// stored features the Set lacks is dropped, and so are the entities of a
// group (By field) no feature uses any more. A Set feature the snapshot
// lacks starts empty and is warming (see Shared.Warming) until event time
// has passed the latest event time in the restored state plus its window.
// Account profiles are kept as they are. Shared.Restored reports what was
// kept, started empty and dropped.
//
// Refused, with an error wrapping ErrSnapshot: a snapshot of another
// Config (buckets, max_distinct or max_seen: bucket numbers and bounds
// would not mean the same), of another profile layout or version, a
// damaged one, and a shard's snapshot without the entities.
func (s *Set) Restore(r io.Reader) (*Store, error) {
	return s.restore(r, nil)
}

// Restore reads a shard's Store written by Store.Snapshot into a new
// Store of sh (see Set.Restore for what is kept and refused). Restore sh
// itself first, with Set.RestoreShared, then each of its Stores before
// any of them observes an event: each restore may move the warming ends.
// The shard's snapshot must have the window features of sh's.
func (sh *Shared) Restore(r io.Reader) (*Store, error) {
	return sh.set.restore(r, sh)
}

// RestoreShared reads a Shared written by Shared.Snapshot; make the
// shards' Stores with its Restore. It keeps and refuses like Set.Restore.
func (s *Set) RestoreShared(r io.Reader) (*Shared, error) {
	sr := &snapReader{r: bufio.NewReader(r)}
	m, err := s.readHeader(sr, sharedSnapMagic)
	if err != nil {
		return nil, err
	}
	sh := s.NewShared()
	wm := sh.readParts(sr, m)
	if err := sr.done(); err != nil {
		return nil, err
	}
	if err := sh.noteRestore(m, wm); err != nil {
		return nil, err
	}
	return sh, nil
}

// readHeader reads the magic, the version and the layout, refuses what
// cannot be restored into s, and maps the rest onto s.
func (s *Set) readHeader(sr *snapReader, magicWant string) (*layoutMap, error) {
	var magic [4]byte
	if _, err := io.ReadFull(sr.r, magic[:]); err != nil {
		return nil, fmt.Errorf("%w: read header: %v", ErrSnapshot, err)
	}
	if string(magic[:]) != magicWant {
		what := "features"
		if magicWant == sharedSnapMagic {
			what = "shared entities"
		}
		return nil, fmt.Errorf("%w: bad magic %q, not a %s snapshot", ErrSnapshot, magic[:], what)
	}
	v := sr.u()
	if sr.err == nil && (v < oldestSnapVersion || v > snapVersion) {
		return nil, fmt.Errorf("%w: version %d, this build reads versions %d to %d", ErrSnapshot, v, oldestSnapVersion, snapVersion)
	}
	lay, err := s.readLayout(sr)
	if err != nil {
		return nil, err
	}
	m := s.mapLayout(lay)
	m.version = v
	return m, nil
}

// snapLayout is a snapshot's layout: its groups' By fields and its window
// features, by index.
type snapLayout struct {
	groups []string
	feats  []snapFeature
}

type snapFeature struct {
	name  string
	id    featureID
	group int
	until int64 // warming until (event time, ms); never: not warming
}

// sameFeatures reports whether a and b have the same groups and window
// features (warming ends aside).
func (a *snapLayout) sameFeatures(b *snapLayout) bool {
	if !slices.Equal(a.groups, b.groups) || len(a.feats) != len(b.feats) {
		return false
	}
	for k := range a.feats {
		x, y := &a.feats[k], &b.feats[k]
		if x.name != y.name || x.id != y.id || x.group != y.group {
			return false
		}
	}
	return true
}

// readLayout reads a layout and refuses one whose Config or profile
// layout differs from s's, naming what differs.
func (s *Set) readLayout(sr *snapReader) (*snapLayout, error) {
	buckets := sr.u()
	maxDistinct := sr.u()
	maxSeen := sr.u()
	pl := sr.u()
	nl := sr.u()
	cfg := [...]struct {
		key       string
		got, want uint64
	}{
		{"buckets", buckets, uint64(s.cfg.Buckets)},
		{"max_distinct", maxDistinct, uint64(s.cfg.MaxDistinct)},
		{"max_seen", maxSeen, uint64(s.cfg.MaxSeen)},
	}
	if sr.err != nil {
		return nil, sr.done()
	}
	for _, c := range cfg {
		if c.got != c.want {
			return nil, fmt.Errorf("%w: taken with features.%s %d, this configuration has %d: the state does not read the same under another %s; start with empty state, or restore with features.%s %d",
				ErrSnapshot, c.key, c.got, c.want, c.key, c.key, c.got)
		}
	}
	if pl != profileLayout || nl != numLast {
		return nil, fmt.Errorf("%w: account profiles of layout %d (%d event times), this build reads layout %d (%d); start with empty state",
			ErrSnapshot, pl, nl, profileLayout, numLast)
	}
	lay := &snapLayout{}
	ng := sr.count(MaxWindows, "group")
	for range ng {
		by := sr.str(1<<10, "group field")
		if sr.err == nil && slices.Contains(lay.groups, by) {
			sr.err = fmt.Errorf("group %q twice", by)
		}
		lay.groups = append(lay.groups, by)
	}
	nf := sr.count(MaxWindows, "window feature")
	for k := 0; k < nf && sr.err == nil; k++ {
		f := snapFeature{name: sr.str(1<<10, "feature name"), until: never}
		f.id.kind = Kind(sr.str(16, "kind"))
		f.id.of = sr.str(1<<10, "feature of")
		f.group = sr.count(uint64(max(ng-1, 0)), "group index")
		f.id.windowMs, f.id.widthMs = sr.i(), sr.i()
		f.id.where = sr.str(1<<16, "where")
		switch warming := sr.u(); {
		case sr.err != nil:
		case warming == 1:
			f.until = sr.i()
		case warming != 0:
			sr.err = fmt.Errorf("feature %s: bad warming flag %d", f.name, warming)
		}
		if sr.err != nil {
			break
		}
		if !isKind(f.id.kind) || f.id.windowMs <= 0 || f.id.widthMs <= 0 || ng == 0 {
			sr.err = fmt.Errorf("feature %s: bad definition", f.name)
			break
		}
		f.id.by = lay.groups[f.group]
		lay.feats = append(lay.feats, f)
	}
	if sr.err != nil {
		return nil, sr.done()
	}
	return lay, nil
}

// layoutMap maps a snapshot's layout onto the Set restoring it.
type layoutMap struct {
	lay     *snapLayout
	version uint64 // the snapshot format's
	// same: the snapshot's groups and features are the Set's, at the same
	// indexes, so items keep their feature index.
	same bool
	nf   int // stored features
	// feat is the Set feature taking stored feature k's state (-1: none,
	// its state is dropped); extra the further Set features that copy it
	// (several with one definition). fgroup is k's stored group.
	feat   [MaxWindows]int8
	extra  [MaxWindows]uint64
	fgroup [MaxWindows]uint8
	// group is the Set group of stored group g, -1 when the Set has
	// none: its entities are dropped. acc is the stored account group.
	group []int
	acc   int
	// src is the stored feature whose state Set feature i keeps, -1 when
	// it starts empty.
	src [MaxWindows]int8
	// maxItems bounds the items of one stored entity (see itemBound).
	maxItems uint64
}

// itemBound is how many items one feature of kind k may hold per entity,
// loosely (a bucket count and a distinct set for any kind, plus what the
// kinds with more items per bucket or per record hold): what a snapshot's
// entity may not exceed.
func itemBound(k Kind, cfg Config) uint64 {
	n := uint64(cfg.Buckets) + uint64(cfg.MaxDistinct)
	switch k {
	case KindStddev:
		n += 2 * uint64(cfg.Buckets)
	case KindLast:
		n += 2 * (maxRecords + 1)
	case KindTimeSince:
		n += maxRecords + 1
	case KindSequence:
		n += 2 * (MaxSteps - 1) * seqKeep
	case KindPercentile:
		n += maxQuantileItems
	}
	return n
}

func (s *Set) mapLayout(lay *snapLayout) *layoutMap {
	m := &layoutMap{lay: lay, nf: len(lay.feats), acc: -1, group: make([]int, len(lay.groups))}
	for g, by := range lay.groups {
		m.group[g] = -1
		for j := range s.groups {
			if s.groups[j].by == by {
				m.group[g] = j
			}
		}
		if by == "account_id" {
			m.acc = g
		}
	}
	for k := range lay.feats {
		m.feat[k], m.fgroup[k] = -1, uint8(lay.feats[k].group)
		m.maxItems += itemBound(lay.feats[k].id.kind, s.cfg)
	}
	for i := range s.feats {
		// The stored feature of the same definition, by the same name if
		// there is one.
		m.src[i] = -1
		for k := range lay.feats {
			if lay.feats[k].id != s.ids[i] {
				continue
			}
			if m.src[i] < 0 || lay.feats[k].name == s.defs[i].Name && lay.feats[m.src[i]].name != s.defs[i].Name {
				m.src[i] = int8(k)
			}
		}
		if k := m.src[i]; k >= 0 && m.feat[k] < 0 {
			m.feat[k] = int8(i)
		} else if k >= 0 {
			m.extra[k] |= 1 << i
		}
	}
	m.same = len(lay.feats) == len(s.feats) && len(lay.groups) == len(s.groups)
	for k := range lay.feats {
		m.same = m.same && m.feat[k] == int8(k) && m.extra[k] == 0
	}
	for g := range lay.groups {
		m.same = m.same && m.group[g] == g
	}
	return m
}

// remap checks the items of an entity of stored group g and moves them
// to the Set's features: items of a stored feature the Set lacks are
// dropped, the others keep their order.
func (m *layoutMap) remap(sr *snapReader, items []item, g int) []item {
	for j := range items {
		if f := items[j].fn >> 24; f >= uint32(m.nf) || int(m.fgroup[f]) != g {
			sr.err = fmt.Errorf("item of feature %d in group %d: out of range", f, g)
			return nil
		}
	}
	if m.same {
		return items
	}
	k := 0
	var extra []item
	for _, c := range items {
		f := c.fn >> 24
		to := m.feat[f]
		if to < 0 {
			continue
		}
		n := c.fn & cellMaxN
		c.fn = uint32(to)<<24 | n
		items[k] = c
		k++
		for x := m.extra[f]; x != 0; x &= x - 1 {
			c.fn = uint32(bits.TrailingZeros64(x))<<24 | n
			extra = append(extra, c)
		}
	}
	if k == 0 && len(extra) == 0 {
		return nil
	}
	return append(items[:k], extra...)
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
	m, err := s.readHeader(sr, snapMagic)
	if err != nil {
		return nil, err
	}
	var st *Store
	if sh == nil {
		st = s.NewStore()
	} else {
		st = sh.NewStore()
	}
	wm := int64(never) // the latest event time read
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
		seen := sr.seen[:0]
		for range ns {
			seen = append(seen, sr.u())
		}
		sr.seen = seen
		wm = max(wm, p.last)
		a, _ := st.accounts.upsert(k)
		a.win.key = k
		if !a.hasProfile {
			st.nProf++
		}
		p.seen = a.p.seen
		st.accSeen.set(&p.seen, seen)
		a.p, a.hasProfile = p, true
	}
	n = sr.count(1<<40, "account window")
	if n > 0 && m.acc < 0 && sr.err == nil {
		sr.err = fmt.Errorf("%d account windows but no feature by account", n)
	}
	for j := 0; j < n && sr.err == nil; j++ {
		key, last, items := s.readEntity(sr, m, m.acc)
		wm = max(wm, last)
		if s.accGroup < 0 {
			continue // no feature by account any more
		}
		a, _ := st.accounts.upsert(key)
		if !a.hasWin {
			st.nAccWin++
		}
		a.win.key, a.win.last, a.hasWin = key, last, true
		st.accItems.set(&a.win.items, items)
	}
	if m.version >= 5 {
		n = sr.count(1<<40, "account partition")
		for j := 0; j < n && sr.err == nil; j++ {
			k, part := sr.u(), sr.u()
			if part > math.MaxUint16 {
				sr.err = fmt.Errorf("account partition %d out of range", part)
				break
			}
			if a := st.accounts.getForWrite(k); a != nil {
				a.part = uint16(part) // none when its state was dropped above
			}
		}
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
		wm = max(wm, st.shared.readParts(sr, m))
	}
	if err := sr.done(); err != nil {
		return nil, err
	}
	if err := st.shared.noteRestore(m, wm); err != nil {
		return nil, err
	}
	return st, nil
}

// readEntity reads one entity of stored group g, checking its items'
// features and moving them to the Set's (see layoutMap.remap). The items
// are sr's scratch, valid until the next read.
func (s *Set) readEntity(sr *snapReader, m *layoutMap, g int) (key uint64, last int64, items []item) {
	key, last = sr.u(), sr.i()
	ni := sr.count(m.maxItems, "item")
	items = sr.items[:0]
	for range ni {
		items = append(items, item{x: sr.u(), b: uint32(sr.u()), fn: uint32(sr.u())})
	}
	if sr.err == nil && ni > 0 {
		items = m.remap(sr, items, g)
	}
	sr.items = items[:0]
	return key, last, items
}

// readParts reads an entity part into sh, which nothing else uses yet,
// and returns the latest event time of its entities (never if none).
// Each entity goes to the stripe its key belongs to here, whatever the
// stripe count of the writer, and to the Set's group of its By field;
// the entities of a group the Set lacks are dropped.
func (sh *Shared) readParts(sr *snapReader, m *layoutMap) int64 {
	s := sh.set
	wm := int64(never)
	ng := len(m.lay.groups)
	parts := sr.count(1<<16, "stripe")
	if g := sr.count(uint64(ng), "group"); sr.err == nil && g != ng {
		sr.err = fmt.Errorf("group count %d, want %d", g, ng)
	}
	for range parts {
		for g := 0; g < ng && sr.err == nil; g++ {
			n := sr.count(1<<40, "entity")
			if n > 0 && g == m.acc && sr.err == nil {
				sr.err = fmt.Errorf("%d shared entities in the account group", n)
			}
			to := m.group[g]
			for j := 0; j < n && sr.err == nil; j++ {
				key, last, items := s.readEntity(sr, m, g)
				wm = max(wm, last)
				if to < 0 {
					continue
				}
				sp := &sh.stripes[sh.stripeOf(key)]
				p, _ := sp.groups[to].upsert(key)
				p.key, p.last = key, last
				sp.items.set(&p.items, items)
			}
		}
	}
	return wm
}
