package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"riskd/features"
	"riskd/rules"
)

// checkpointMagic starts every engine checkpoint; checkpointVersion changes
// whenever the layout below does, and Restore refuses other versions.
const (
	checkpointMagic   = "RISKDENG"
	checkpointVersion = uint16(8)
	// oldestCheckpointVersion is the oldest version Restore reads.
	oldestCheckpointVersion = uint16(7)
)

// ErrCheckpointFormat is wrapped when a checkpoint is not one this build can read.
var ErrCheckpointFormat = errors.New("unreadable engine checkpoint")

// Checkpoint writes the state of every shard (feature store, locks, recent
// event ids, alert throttle) and, once, the entity windows the shards
// share, to w. Each shard serialises itself between two events and the
// shared entities are written a lock stripe at a time, so the checkpoint is
// consistent per shard and per stripe; callers that need it consistent as a
// whole, or with Kafka offsets, pause intake first.
//
// Layout: magic, version u16, shard count u32, shared entity snapshot (u64
// length + bytes), then per shard: feature snapshot of its accounts (u64
// length + bytes), locks (u32 count, then hash u64, until i64 in wall-clock
// Unix ms, rule id u16 length + bytes, partition tag u16), event ids (u32
// count, then hash u64, action u8, content fingerprint u32, partition tag
// u16), alert throttle (u32 count, then account hash
// u64, rule id hash u64, event time of the last alert sent i64),
// suppressions (u32 account count, then per account: hash u64, u16 entry
// count, then per entry: until i64 in wall-clock Unix ms, rule id and
// who suppressed it, each u16 length + bytes). Version 1
// had no shared part: each shard's snapshot held its own entities; version
// 2 had no fingerprints; version 3 had no alert throttle; version 4 had
// rule locks' until on event time; version 5 held feature snapshots of
// version 3, which only the same feature definitions could restore;
// version 6 had no suppressions; version 7 had no partition tags (it is
// still read, its locks and ids of no partition).
//
// The feature snapshots record the window features' definitions, so a
// Set with other definitions restores the checkpoint: see Restore.
func (e *Engine) Checkpoint(ctx context.Context, w io.Writer) error {
	e.swapMu.Lock() // the shared part and the shards' of one feature Set
	defer e.swapMu.Unlock()
	bw := bufio.NewWriter(w)
	bw.WriteString(checkpointMagic)
	binary.Write(bw, binary.LittleEndian, checkpointVersion)
	binary.Write(bw, binary.LittleEndian, uint32(len(e.shards)))
	var ents bytes.Buffer
	if err := e.shared().Snapshot(&ents); err != nil {
		return fmt.Errorf("checkpoint shared entities: %w", err)
	}
	binary.Write(bw, binary.LittleEndian, uint64(ents.Len()))
	bw.Write(ents.Bytes())
	for i, sh := range e.shards {
		var buf bytes.Buffer
		var serr error
		if err := sh.do(ctx, func(s *Scorer) { serr = s.writeState(&buf) }); err != nil {
			return fmt.Errorf("checkpoint shard %d: %w", i, err)
		}
		if serr != nil {
			return fmt.Errorf("checkpoint shard %d: %w", i, serr)
		}
		if _, err := bw.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("checkpoint shard %d: %w", i, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// writeState writes the shard's part of a checkpoint.
func (s *Scorer) writeState(w *bytes.Buffer) error {
	if err := writeFeatures(w, s.store); err != nil {
		return err
	}
	s.writeRest(w)
	return nil
}

// writeFeatures writes a shard's feature snapshot: its length, then st's
// snapshot. The length goes before them: written straight into w behind a
// placeholder, then patched, rather than into a buffer of their own copied
// over (hundreds of megabytes for a large state).
func writeFeatures(w *bytes.Buffer, st *features.Store) error {
	le := binary.LittleEndian
	at := w.Len()
	w.Write(make([]byte, 8))
	if err := st.Snapshot(w); err != nil {
		return fmt.Errorf("features: %w", err)
	}
	le.PutUint64(w.Bytes()[at:], uint64(w.Len()-at-8))
	return nil
}

// writeRest writes what follows the features in a shard's part: locks,
// decided ids, alert throttle and suppressions. They are small beside the
// features, so a cut writes them while the shard is paused.
func (s *Scorer) writeRest(w *bytes.Buffer) {
	le := binary.LittleEndian
	w.Write(le.AppendUint32(nil, uint32(len(s.locks.byAccount))))
	for h, l := range s.locks.byAccount {
		w.Write(le.AppendUint64(nil, h))
		w.Write(le.AppendUint64(nil, uint64(l.untilMs)))
		w.Write(le.AppendUint16(nil, uint16(len(l.ruleID))))
		w.WriteString(l.ruleID)
		w.Write(le.AppendUint16(nil, l.tag))
	}
	// Older generation first: readState records them in this order, which
	// rebuilds the same two generations when the capacity is unchanged.
	// Hundreds of thousands of them, the most of what a cut's marker
	// holds a shard for: appended to a block written whole rather than
	// written one by one.
	w.Write(le.AppendUint32(nil, uint32(s.dedupe.len())))
	const recLen = 15
	var block [4096 / recLen * recLen]byte
	n := 0
	for e := range s.dedupe.all() {
		rec := block[n : n+recLen]
		le.PutUint64(rec[:8], e.id)
		rec[8] = byte(e.action)
		le.PutUint32(rec[9:], e.sum)
		le.PutUint16(rec[13:], e.tag)
		if n += recLen; n == len(block) {
			w.Write(block[:])
			n = 0
		}
	}
	w.Write(block[:n])
	w.Write(le.AppendUint32(nil, uint32(s.throttle.len())))
	var tr [24]byte
	for k, sent := range s.throttle.sent {
		le.PutUint64(tr[:8], k.account)
		le.PutUint64(tr[8:16], k.rule)
		le.PutUint64(tr[16:], uint64(sent))
		w.Write(tr[:])
	}
	w.Write(le.AppendUint32(nil, uint32(len(s.suppressed.byAccount))))
	for h, es := range s.suppressed.byAccount {
		w.Write(le.AppendUint64(nil, h))
		w.Write(le.AppendUint16(nil, uint16(len(es)))) // at most MaxSuppressionsPerAccount
		for _, e := range es {
			w.Write(le.AppendUint64(nil, uint64(e.untilMs)))
			w.Write(le.AppendUint16(nil, uint16(len(e.rule)))) // at most MaxSuppressionRuleBytes
			w.WriteString(e.rule)
			w.Write(le.AppendUint16(nil, uint16(len(e.by)))) // Suppress refuses longer
			w.WriteString(e.by)
		}
	}
}

// Restore builds an Engine from a checkpoint written by Checkpoint. The
// shard count must match the checkpoint's: accounts are placed by hash
// modulo the count, so a different count would put state on the wrong shard.
//
// set may have other window features than the Set that wrote the
// checkpoint: the features whose definition is unchanged keep their state
// (renamed ones too), the others start empty and are warming until their
// window has filled (Decision.Warming, Engine.Warming), and the state of
// features set lacks is dropped; Engine.FeatureRestore says which. A
// checkpoint of another features Config (buckets, max_distinct, max_seen)
// or profile layout is refused, like a damaged one, with an error
// wrapping ErrCheckpointFormat and features.ErrSnapshot.
func Restore(cfg Config, set *features.Set, holder *rules.Holder, r io.Reader) (*Engine, error) {
	cfg = cfg.withDefaults()
	counted := &countingReader{r: r}
	br := bufio.NewReader(counted)
	version, err := readCheckpointHeader(br, cfg.Shards)
	if err != nil {
		return nil, err
	}
	var n64 uint64
	if err := binary.Read(br, binary.LittleEndian, &n64); err != nil {
		return nil, fmt.Errorf("%w: shared entities: %v", ErrCheckpointFormat, err)
	}
	blob, err := readBlob(br, n64)
	if err != nil {
		return nil, fmt.Errorf("%w: shared entities: %v", ErrCheckpointFormat, err)
	}
	ents, err := set.RestoreShared(bytes.NewReader(blob))
	if err != nil {
		return nil, fmt.Errorf("%w: shared entities: %w", ErrCheckpointFormat, err)
	}
	e := newEngine(cfg)
	e.untagged = version < 8
	e.ents.Store(ents)
	for i := range cfg.Shards {
		s, err := readShard(br, version, cfg, set, holder, ents)
		if err != nil {
			return nil, fmt.Errorf("%w: shard %d: %w", ErrCheckpointFormat, i, err)
		}
		e.addShard(cfg, s)
	}
	// The first cut after a restart encodes about as much as was restored:
	// sized from it, its buffer is made once instead of grown (see
	// cut.assemble).
	e.lastCutSize.Store(counted.n)
	return e, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readCheckpointHeader reads a checkpoint's magic, version and shard
// count, refusing a version this build cannot read or a shard count other
// than shards, and returns the version.
func readCheckpointHeader(br *bufio.Reader, shards int) (uint16, error) {
	magic := make([]byte, len(checkpointMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != checkpointMagic {
		return 0, fmt.Errorf("%w: bad magic", ErrCheckpointFormat)
	}
	var version uint16
	var n uint32
	if err := binary.Read(br, binary.LittleEndian, &version); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrCheckpointFormat, err)
	}
	if version < oldestCheckpointVersion || version > checkpointVersion {
		return 0, fmt.Errorf("%w: version %d, this build reads %d to %d", ErrCheckpointFormat, version, oldestCheckpointVersion, checkpointVersion)
	}
	if err := binary.Read(br, binary.LittleEndian, &n); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrCheckpointFormat, err)
	}
	if int(n) != shards {
		return 0, fmt.Errorf("checkpoint has %d shards but engine.shards is %d: set engine.shards to %d or start without the checkpoint", n, shards, n)
	}
	return version, nil
}

// readBlob reads a length-prefixed feature snapshot of n bytes.
func readBlob(r io.Reader, n uint64) ([]byte, error) {
	if n > 1<<34 {
		return nil, fmt.Errorf("feature snapshot of %d bytes is implausible", n)
	}
	blob := make([]byte, n)
	if _, err := io.ReadFull(r, blob); err != nil {
		return nil, err
	}
	return blob, nil
}

// readShard reads one shard's state written by writeState into a new
// Scorer whose Store uses ents.
func readShard(r *bufio.Reader, version uint16, cfg Config, set *features.Set, holder *rules.Holder, ents *features.Shared) (*Scorer, error) {
	blob, err := readFeatures(r)
	if err != nil {
		return nil, err
	}
	store, err := ents.Restore(bytes.NewReader(blob))
	if err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	s := newScorer(cfg, set, holder, store)
	err = readShardTables(r, version, shardTables{
		lock:     func(h uint64, l lockEntry) { s.locks.byAccount[h] = l },
		id:       func(e remembered) { s.dedupe.record(e.id, e.action, e.sum, e.tag) },
		throttle: func(k alertKey, sent int64) { s.throttle.sent[k] = sent },
		suppress: func(h uint64, es []suppression) { s.suppressed.byAccount[h] = es },
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// readFeatures reads the length-prefixed feature snapshot of a shard.
func readFeatures(r *bufio.Reader) ([]byte, error) {
	var n64 uint64
	if err := binary.Read(r, binary.LittleEndian, &n64); err != nil {
		return nil, err
	}
	blob, err := readBlob(r, n64)
	if err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	return blob, nil
}

// shardTables receives the entries of a shard's tables as readShardTables
// reads them.
type shardTables struct {
	lock     func(account uint64, l lockEntry)
	id       func(remembered)
	throttle func(alertKey, int64)
	suppress func(account uint64, es []suppression)
}

// readShardTables reads the tables writeState writes after the features,
// handing each entry to to.
func readShardTables(r *bufio.Reader, version uint16, to shardTables) error {
	if err := readLocksAndIDs(r, version, to); err != nil {
		return err
	}
	if err := readThrottle(r, to.throttle); err != nil {
		return fmt.Errorf("alert throttle: %w", err)
	}
	if err := readSuppressions(r, to.suppress); err != nil {
		return fmt.Errorf("suppressions: %w", err)
	}
	return nil
}

// readSuppressions reads the suppression table written by writeState,
// expired entries included (the first decision of the account drops them).
func readSuppressions(r *bufio.Reader, to func(uint64, []suppression)) error {
	le := binary.LittleEndian
	var n uint32
	if err := binary.Read(r, le, &n); err != nil {
		return err
	}
	str := func() (string, error) {
		var l uint16
		if err := binary.Read(r, le, &l); err != nil {
			return "", err
		}
		b := make([]byte, l)
		_, err := io.ReadFull(r, b)
		return string(b), err
	}
	for range n {
		var head struct {
			Hash  uint64
			Count uint16
		}
		if err := binary.Read(r, le, &head); err != nil {
			return err
		}
		if head.Count == 0 || head.Count > MaxSuppressionsPerAccount {
			return fmt.Errorf("%d entries for one account: want 1 to %d", head.Count, MaxSuppressionsPerAccount)
		}
		es := make([]suppression, head.Count)
		for i := range es {
			var until int64
			if err := binary.Read(r, le, &until); err != nil {
				return err
			}
			rule, err := str()
			if err != nil {
				return err
			}
			by, err := str()
			if err != nil {
				return err
			}
			es[i] = suppression{rule: rule, untilMs: until, by: by}
		}
		to(head.Hash, es)
	}
	return nil
}

// readThrottle reads the alert throttle's entries written by writeState.
// The window is the one configured now, not the one they were sent under.
func readThrottle(r *bufio.Reader, to func(alertKey, int64)) error {
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return err
	}
	for range n {
		var rec struct {
			Account, Rule uint64
			Sent          int64
		}
		if err := binary.Read(r, binary.LittleEndian, &rec); err != nil {
			return err
		}
		to(alertKey{rec.Account, rec.Rule}, rec.Sent)
	}
	return nil
}

func readLocksAndIDs(r *bufio.Reader, version uint16, to shardTables) error {
	le := binary.LittleEndian
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return err
	}
	for range n {
		var rec struct {
			Hash  uint64
			Until int64
			Len   uint16
		}
		if err := binary.Read(r, binary.LittleEndian, &rec); err != nil {
			return fmt.Errorf("locks: %w", err)
		}
		id := make([]byte, rec.Len)
		if _, err := io.ReadFull(r, id); err != nil {
			return fmt.Errorf("locks: %w", err)
		}
		var tag uint16
		if version >= 8 {
			if err := binary.Read(r, le, &tag); err != nil {
				return fmt.Errorf("locks: %w", err)
			}
		}
		to.lock(rec.Hash, lockEntry{untilMs: rec.Until, ruleID: string(id), tag: tag})
	}
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return fmt.Errorf("event ids: %w", err)
	}
	for range n {
		var rec struct {
			Hash   uint64
			Action uint8
			Sum    uint32
		}
		if err := binary.Read(r, binary.LittleEndian, &rec); err != nil {
			return fmt.Errorf("event ids: %w", err)
		}
		var tag uint16
		if version >= 8 {
			if err := binary.Read(r, le, &tag); err != nil {
				return fmt.Errorf("event ids: %w", err)
			}
		}
		to.id(remembered{rec.Hash, rules.Action(rec.Action), rec.Sum, tag})
	}
	return nil
}
