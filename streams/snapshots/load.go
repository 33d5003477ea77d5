package snapshots

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Fetch settings of Load. A fetch asks for several chunks at a time; the
// broker returns at least one record batch even when it is larger.
// Records up to the partition's end exist, so the broker answers a fetch
// at once and MaxWait only matters if it misbehaves.
const (
	fetchMaxBytes = 8 << 20
	fetchMaxWait  = 500 * time.Millisecond
	// maxIdleFetches is how many fetches in a row may return nothing
	// before the end offset before Load gives up rather than loop: only
	// empty batches left by compaction of idempotent or transactional
	// writes (which riskd does not make) can cause it.
	maxIdleFetches = 3
)

// Load returns the newest complete, verified snapshot saved under the Name.
//
// It reads the topic's partition from its start to its end offset as they
// stand when Load begins, keeping the newest value per key as compaction
// would (a tombstone removes the key; other Names' records are skipped),
// and from that only chunk headers and manifests. It then takes the
// snapshots with a manifest, newest Seq first: every chunk the manifest
// names must be present, of its Seq and save, of the right index and
// length, and pass its checksum; then the chunks are read again into the
// Data buffer and the SHA-256 of the whole must match the manifest. The
// first snapshot that passes is returned; the newer ones refused (and
// saves that wrote chunks but no manifest) are listed in LoadStats.Refused.
// At most one snapshot's Data is held at a time.
//
// Nothing under the Name gives ErrNoSnapshot; records under the Name but
// no snapshot that passes gives an error wrapping ErrNoUsableSnapshot and
// every reason. Other errors are the broker's. Load logs nothing: what it
// refused is in its results.
func (s *Store) Load(ctx context.Context) (Snapshot, LoadStats, error) {
	start := time.Now()
	var st LoadStats
	fail := func(err error) (Snapshot, LoadStats, error) {
		st.Duration = time.Since(start)
		return Snapshot{}, st, err
	}
	where := fmt.Sprintf("snapshots: load %s from %s", s.cfg.Name, s.cfg.Topic)
	client, done := s.client()
	defer done()

	first, err := listOffset(ctx, client, s.cfg.Topic, kafka.FirstOffsetOf)
	if errors.Is(err, kafka.UnknownTopicOrPartition) {
		s.setNewest(0)
		return fail(fmt.Errorf("%s: the topic does not exist: %w", where, ErrNoSnapshot))
	} else if err != nil {
		return fail(fmt.Errorf("%s: start offset: %w", where, err))
	}
	end, err := listOffset(ctx, client, s.cfg.Topic, kafka.LastOffsetOf)
	if err != nil {
		return fail(fmt.Errorf("%s: end offset: %w", where, err))
	}
	idx := &index{name: s.cfg.Name}
	if err := s.scan(ctx, client, &st, first, end, idx.add); err != nil {
		return fail(fmt.Errorf("%s: %w", where, err))
	}
	s.mu.Lock()
	for slot := range s.chunkKeys {
		s.chunkKeys[slot] = max(s.chunkKeys[slot], idx.slots[slot].chunkKeys())
	}
	s.mu.Unlock()
	if idx.empty() {
		s.setNewest(0)
		return fail(fmt.Errorf("%s (offsets %d..%d): %w", where, first, end, ErrNoSnapshot))
	}

	var refused []error
	for _, c := range idx.candidates() {
		if c.reason != nil {
			refused = append(refused, c.reason)
			continue
		}
		snap, reason, err := s.assemble(ctx, client, &st, c)
		if err != nil {
			return fail(fmt.Errorf("%s: snapshot %d: %w", where, c.m.Seq, err))
		}
		if reason != nil {
			refused = append(refused, reason)
			continue
		}
		st.Refused = refused
		st.Duration = time.Since(start)
		s.setNewest(snap.Seq)
		return snap, st, nil
	}
	s.setNewest(0)
	return fail(&noUsableError{where: where, reasons: refused})
}

// setNewest records the newest complete Seq under the Name (0: none) for
// Save's check.
func (s *Store) setNewest(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.newestKnown || seq > s.newest { // a Save may have finished meanwhile
		s.newest, s.newestKnown = seq, true
	}
}

// noUsableError is Load's error when no snapshot passes: it wraps
// ErrNoUsableSnapshot and each reason, and prints them on one line.
type noUsableError struct {
	where   string
	reasons []error
}

func (e *noUsableError) Error() string {
	return fmt.Sprintf("%s: no usable snapshot: %s", e.where, joinErrors(e.reasons))
}

func (e *noUsableError) Unwrap() []error {
	return append([]error{ErrNoUsableSnapshot}, e.reasons...)
}

func joinErrors(errs []error) string {
	s := make([]string, len(errs))
	for i, err := range errs {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

// errStop ends a scan early without error.
var errStop = errors.New("stop")

// scan calls fn with every record of partition 0 at offsets from..end-1,
// in order, and counts them in st. A record is valid only during its call.
func (s *Store) scan(ctx context.Context, client *kafka.Client, st *LoadStats, from, end int64, fn func(*kafka.Record) error) error {
	next, idle := from, 0
	for next < end {
		resp, err := client.Fetch(ctx, &kafka.FetchRequest{
			Topic: s.cfg.Topic, Partition: 0, Offset: next,
			MinBytes: 1, MaxBytes: fetchMaxBytes, MaxWait: fetchMaxWait,
		})
		if err == nil {
			err = resp.Error
		}
		if err != nil {
			return fmt.Errorf("fetch at offset %d: %w", next, err)
		}
		before := next
	records:
		for next < end {
			rec, err := resp.Records.ReadRecord()
			switch {
			case errors.Is(err, io.EOF):
				break records
			case err != nil && next > before:
				break records // a truncated batch at the end of the response: fetch the rest
			case err != nil:
				return fmt.Errorf("read records at offset %d: %w", next, err)
			case rec.Offset < next: // a batch may start before the offset asked for
				closeRecord(rec)
				continue
			case rec.Offset >= end:
				closeRecord(rec)
				next = end
				break records
			}
			next = rec.Offset + 1
			st.Records++
			st.Bytes += int64(bytesLen(rec.Key) + bytesLen(rec.Value))
			err = fn(rec)
			closeRecord(rec)
			if errors.Is(err, errStop) {
				return nil
			} else if err != nil {
				return err
			}
		}
		if next > before {
			idle = 0
		} else if idle++; idle >= maxIdleFetches {
			return fmt.Errorf("the broker returns no records at offset %d though the partition ends at %d", next, end)
		}
	}
	return nil
}

func bytesLen(b kafka.Bytes) int {
	if b == nil {
		return 0
	}
	return b.Len()
}

// closeRecord releases a fetched record's key and value.
func closeRecord(rec *kafka.Record) {
	if rec.Key != nil {
		rec.Key.Close()
	}
	if rec.Value != nil {
		rec.Value.Close()
	}
}

// index is what the first pass keeps of the Name's records: per slot, the
// newest manifest (decoded) and, per chunk key, the newest chunk's header,
// length and checksum verdict, but not its payload.
type index struct {
	name  string
	slots [2]slotIndex
}

type slotIndex struct {
	manifest *manifestEntry
	chunks   map[int]chunkEntry
}

type manifestEntry struct {
	offset int64
	m      manifest
	err    error // why the manifest cannot be used; m is then empty
}

type chunkEntry struct {
	offset int64
	hdr    chunkHeader
	size   int   // payload bytes
	err    error // a damaged or foreign value; hdr is then not to be trusted
}

// add files one record.
func (x *index) add(rec *kafka.Record) error {
	if rec.Key == nil {
		return nil
	}
	key, err := kafka.ReadAll(rec.Key)
	if err != nil {
		return fmt.Errorf("read key at offset %d: %w", rec.Offset, err)
	}
	slot, i, ok := parseKey(x.name, key)
	if !ok {
		return nil
	}
	sl := &x.slots[slot]
	switch {
	case rec.Value == nil: // a tombstone: compaction will remove the key
		if i < 0 {
			sl.manifest = nil
		} else {
			delete(sl.chunks, i)
		}
	case i < 0:
		value, err := kafka.ReadAll(rec.Value)
		if err != nil {
			return fmt.Errorf("read manifest at offset %d: %w", rec.Offset, err)
		}
		m, err := decodeManifest(x.name, value)
		sl.manifest = &manifestEntry{offset: rec.Offset, m: m, err: err}
	default:
		e, err := readChunkMeta(rec.Offset, rec.Value)
		if err != nil {
			return err
		}
		if sl.chunks == nil {
			sl.chunks = map[int]chunkEntry{}
		}
		sl.chunks[i] = e
	}
	return nil
}

// readChunkMeta reads a chunk value through, checking its header and
// checksum, and keeps neither payload nor copy.
func readChunkMeta(offset int64, value kafka.Bytes) (chunkEntry, error) {
	e := chunkEntry{offset: offset}
	var hdr [chunkHeaderLen]byte
	n, err := io.ReadFull(value, hdr[:])
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		e.err = fmt.Errorf("%d bytes, too short for a chunk header", n)
		return e, nil
	} else if err != nil {
		return e, fmt.Errorf("read chunk at offset %d: %w", offset, err)
	}
	if e.hdr, e.err = parseChunkHeader(hdr[:]); e.err != nil {
		return e, nil
	}
	crc := crc32.New(castagnoli)
	crc.Write(hdr[:crcCovered])
	size, err := io.Copy(crc, value)
	if err != nil {
		return e, fmt.Errorf("read chunk at offset %d: %w", offset, err)
	}
	e.size = int(size)
	if crc.Sum32() != e.hdr.crc {
		e.err = errChecksum
	}
	return e, nil
}

func (x *index) empty() bool {
	for _, sl := range x.slots {
		if sl.manifest != nil || len(sl.chunks) > 0 {
			return false
		}
	}
	return true
}

// chunkKeys is one past the highest chunk index with a live record.
func (sl slotIndex) chunkKeys() int {
	n := 0
	for i := range sl.chunks {
		n = max(n, i+1)
	}
	return n
}

// newestChunkSeq is the highest Seq among the slot's sound chunks that
// belong in it, 0 if none.
func (sl slotIndex) newestChunkSeq(slot int) uint64 {
	var seq uint64
	for _, e := range sl.chunks {
		if e.err == nil && int(e.hdr.seq%2) == slot {
			seq = max(seq, e.hdr.seq)
		}
	}
	return seq
}

// candidate is a snapshot Load may return: a manifest whose chunks look
// right in the first pass (reason nil), or one already refused.
type candidate struct {
	seq     uint64 // 0 when unknown: a damaged manifest
	m       manifest
	saveID  uint64
	chunks  map[int]chunkEntry
	reason  error
	unknown bool
}

// candidates lists the slots' snapshots, newest first, those of unknown
// Seq before all.
func (x *index) candidates() []candidate {
	var cs []candidate
	for slot, sl := range x.slots {
		newestChunk := sl.newestChunkSeq(slot)
		var manifestSeq uint64
		switch me := sl.manifest; {
		case me == nil:
		case me.err != nil:
			reason := fmt.Sprintf("slot %d: manifest: %v", slot, me.err)
			if newestChunk > 0 {
				reason += fmt.Sprintf(" (the slot's newest chunks are of snapshot %d)", newestChunk)
			}
			cs = append(cs, candidate{unknown: true, reason: errors.New(reason)})
			continue
		default:
			manifestSeq = me.m.Seq
			cs = append(cs, checkManifest(slot, me.m, sl.chunks))
		}
		switch {
		case newestChunk > manifestSeq:
			cs = append(cs, candidate{seq: newestChunk,
				reason: fmt.Errorf("snapshot %d: no manifest (save interrupted?)", newestChunk)})
		case sl.manifest == nil && len(sl.chunks) > 0:
			cs = append(cs, candidate{unknown: true,
				reason: fmt.Errorf("slot %d: %d chunk records, none sound, and no manifest", slot, len(sl.chunks))})
		}
	}
	slices.SortStableFunc(cs, func(a, b candidate) int {
		switch {
		case a.unknown != b.unknown:
			if a.unknown {
				return -1
			}
			return 1
		case a.seq > b.seq:
			return -1
		case a.seq < b.seq:
			return 1
		}
		return 0
	})
	return cs
}

// checkManifest checks, from the first pass, that every chunk m names is
// there and sound.
func checkManifest(slot int, m manifest, chunks map[int]chunkEntry) candidate {
	c := candidate{seq: m.Seq, m: m, chunks: chunks}
	if int(m.Seq%2) != slot {
		c.reason = fmt.Errorf("snapshot %d: manifest found in slot %d, want slot %d", m.Seq, slot, m.Seq%2)
		return c
	}
	c.saveID, _ = parseSaveID(m.SaveID) // decodeManifest checked it
	var first error
	bad := 0
	for i := range m.Chunks {
		e, ok := chunks[i]
		if err := c.chunkProblem(i, e, ok); err != nil {
			if bad++; first == nil {
				first = fmt.Errorf("chunk %d: %w", i, err)
			}
		}
	}
	switch {
	case bad == 1:
		c.reason = fmt.Errorf("snapshot %d: %w", m.Seq, first)
	case bad > 1:
		c.reason = fmt.Errorf("snapshot %d: %w (and %d more bad chunks)", m.Seq, first, bad-1)
	}
	return c
}

// chunkProblem says what is wrong with e as chunk i of c, nil if nothing
// the first pass can see.
func (c candidate) chunkProblem(i int, e chunkEntry, ok bool) error {
	switch {
	case !ok:
		return errors.New("missing")
	case e.err != nil:
		return e.err
	case e.hdr.seq > c.m.Seq:
		return fmt.Errorf("belongs to snapshot %d (overwritten by a later save)", e.hdr.seq)
	case e.hdr.seq < c.m.Seq:
		return fmt.Errorf("belongs to snapshot %d (stale, from an earlier save)", e.hdr.seq)
	case e.hdr.saveID != c.saveID:
		return fmt.Errorf("from another save of snapshot %d", c.m.Seq)
	case int(e.hdr.index) != i:
		return fmt.Errorf("holds chunk %d", e.hdr.index)
	case e.size != c.m.chunkLen(i):
		return fmt.Errorf("%d bytes, want %d", e.size, c.m.chunkLen(i))
	}
	return nil
}

// assemble reads c's chunks again, into the Data buffer, checking each
// one's header and checksum again (the records are the ones the first
// pass saw, unless compaction removed them meanwhile) and the SHA-256 of
// the whole. reason says why c is refused; err is a broker error.
func (s *Store) assemble(ctx context.Context, client *kafka.Client, st *LoadStats, c candidate) (snap Snapshot, reason, err error) {
	m := c.m
	data := make([]byte, m.Length)
	at := make(map[int64]int, m.Chunks) // offset -> chunk index
	lo, hi := int64(-1), int64(-1)
	for i := range m.Chunks {
		off := c.chunks[i].offset
		at[off] = i
		if lo < 0 || off < lo {
			lo = off
		}
		hi = max(hi, off)
	}
	if m.Chunks > 0 {
		err = s.scan(ctx, client, st, lo, hi+1, func(rec *kafka.Record) error {
			i, ok := at[rec.Offset]
			if !ok {
				return nil
			}
			delete(at, rec.Offset)
			if err := c.readChunk(i, rec.Value, data); err != nil {
				reason = fmt.Errorf("snapshot %d: chunk %d: %w", m.Seq, i, err)
				return errStop
			}
			return nil
		})
		if err != nil {
			return Snapshot{}, nil, err
		}
		if reason != nil {
			return Snapshot{}, reason, nil
		}
		for off, i := range at {
			return Snapshot{}, fmt.Errorf("snapshot %d: chunk %d: the record at offset %d is gone (compacted while loading?)", m.Seq, i, off), nil
		}
	}
	sum := sha256.Sum256(data)
	if want, _ := hex.DecodeString(m.SHA256); !bytes.Equal(sum[:], want) {
		return Snapshot{}, fmt.Errorf("snapshot %d: SHA-256 of the data does not match the manifest", m.Seq), nil
	}
	return Snapshot{Seq: m.Seq, Offsets: m.Offsets, SharedOffsets: m.SharedOffsets, Meta: m.Meta, Data: data, CreatedAt: m.CreatedAt}, nil, nil
}

// readChunk reads value, chunk i of c, into its place in data, checking it
// as the first pass did.
func (c candidate) readChunk(i int, value kafka.Bytes, data []byte) error {
	size := c.m.chunkLen(i)
	if value == nil || value.Len() != chunkHeaderLen+size {
		return fmt.Errorf("%d bytes, want %d (changed while loading?)", bytesLen(value), chunkHeaderLen+size)
	}
	var raw [chunkHeaderLen]byte
	if _, err := io.ReadFull(value, raw[:]); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	hdr, err := parseChunkHeader(raw[:])
	if err != nil {
		return err
	}
	payload := data[int64(i)*int64(c.m.ChunkBytes):][:size]
	if _, err := io.ReadFull(value, payload); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if crc32.Update(crc32.Checksum(raw[:crcCovered], castagnoli), castagnoli, payload) != hdr.crc {
		return errChecksum
	}
	return c.chunkProblem(i, chunkEntry{hdr: hdr, size: size}, true)
}

// Saved is one name's newest manifest in the topic, as Names lists it.
type Saved struct {
	Name      string
	Seq       uint64
	CreatedAt time.Time
	// Offsets are the newest manifest's (Snapshot.Offsets): where its
	// state stands, so a reader can pick a snapshot before loading it.
	Offsets map[string]map[int]int64
}

// Names lists the names under which snapshots are saved in the topic
// whose names start with prefix, each with its newest readable manifest,
// newest first. It reads the topic through but keeps no data: a new member
// of a group uses it to find another member's snapshot to start from
// (Config.Name another Store's, then Load).
func (s *Store) Names(ctx context.Context, prefix string) ([]Saved, error) {
	where := fmt.Sprintf("snapshots: names in %s", s.cfg.Topic)
	client, done := s.client()
	defer done()
	first, err := listOffset(ctx, client, s.cfg.Topic, kafka.FirstOffsetOf)
	if errors.Is(err, kafka.UnknownTopicOrPartition) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("%s: start offset: %w", where, err)
	}
	end, err := listOffset(ctx, client, s.cfg.Topic, kafka.LastOffsetOf)
	if err != nil {
		return nil, fmt.Errorf("%s: end offset: %w", where, err)
	}
	newest := map[string]Saved{}
	suffix := "/" + manifestKeyword
	var st LoadStats
	err = s.scan(ctx, client, &st, first, end, func(rec *kafka.Record) error {
		if rec.Key == nil || rec.Value == nil {
			return nil
		}
		key, err := kafka.ReadAll(rec.Key)
		if err != nil {
			return fmt.Errorf("read key at offset %d: %w", rec.Offset, err)
		}
		k := string(key)
		if !strings.HasPrefix(k, prefix) || !strings.HasSuffix(k, suffix) || len(k) < len(suffix)+2 {
			return nil
		}
		name := k[:len(k)-len(suffix)-2] // less "/<slot>"
		value, err := kafka.ReadAll(rec.Value)
		if err != nil {
			return fmt.Errorf("read manifest at offset %d: %w", rec.Offset, err)
		}
		m, err := decodeManifest(name, value)
		if err != nil {
			return nil // a damaged manifest: Load of that name says why
		}
		if have, ok := newest[name]; !ok || m.Seq > have.Seq {
			newest[name] = Saved{Name: name, Seq: m.Seq, CreatedAt: m.CreatedAt, Offsets: m.Offsets}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	out := slices.Collect(maps.Values(newest))
	slices.SortFunc(out, func(a, b Saved) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}
