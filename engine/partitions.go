package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"riskd/features"
)

// Partition state.
//
// An account's events all come from one partition number of the
// co-partitioned input topics, so the state an instance keeps of a
// partition's accounts (profiles, account windows, the locks its rules set,
// its decided event ids, its alert throttle) can move on its own when the
// partition moves: every piece of it is tagged with the partition of the
// event that made it (Source.Partition). DropPartitions forgets the
// partitions an instance no longer decides; RestorePartitions takes over a
// partition's state from a checkpoint another instance (or this one, earlier)
// wrote. What belongs to no partition stays: the shared entity windows,
// which every instance keeps whole, and what support set (locks,
// suppressions), which every instance applies from risk.actions.

// partitionTag is the tag of partition p: p+1, or 0 for none (the decide
// API, or a partition past features.MaxPartition).
func partitionTag(p int) uint16 {
	if p < 0 || p > features.MaxPartition {
		return 0
	}
	return uint16(p + 1)
}

// PartitionStats counts what DropPartitions or RestorePartitions changed.
type PartitionStats struct {
	Accounts int // account states removed or taken over
	Locks    int // rule locks
	EventIDs int // decided event ids forgotten or taken over
	Alerts   int // alert throttle entries
	// Partial is set when RestorePartitions failed after some shards had
	// taken the checkpoint's state over (the engine stopping): the caller
	// drops the partitions and rebuilds them another way.
	Partial bool
}

func (a *PartitionStats) add(b PartitionStats) {
	a.Accounts += b.Accounts
	a.Locks += b.Locks
	a.EventIDs += b.EventIDs
	a.Alerts += b.Alerts
}

// partSet is a set of partition numbers as a predicate.
func partSet(parts []int) func(int) bool {
	in := make(map[int]bool, len(parts))
	for _, p := range parts {
		in[p] = true
	}
	return func(p int) bool { return in[p] }
}

// PartitionTagged reports whether every piece of the state is tagged with
// its partition: false after a Restore of a checkpoint written before the
// tags (version 7), whose accounts, rule locks and ids belong to no
// partition, so DropPartitions would leave them and a partition rebuilt
// from its log would count its events in them twice. A fleet that moves
// partitions by their state must not start from such a checkpoint.
func (e *Engine) PartitionTagged() bool { return !e.untagged }

// DropPartitions forgets the state of the accounts of parts, whose
// partitions another instance decides now. Their decided event ids stay
// remembered as seen in the shared entity windows (which still hold their
// events), so that if a partition comes back its events are decided again
// for their accounts' part only.
func (e *Engine) DropPartitions(ctx context.Context, parts []int) (PartitionStats, error) {
	in := partSet(parts)
	var total PartitionStats
	for i, sh := range e.shards {
		var st PartitionStats
		if err := sh.do(ctx, func(s *Scorer) { st = s.dropPartitions(in) }); err != nil {
			return total, fmt.Errorf("drop partitions on shard %d: %w", i, err)
		}
		total.add(st)
	}
	return total, nil
}

// dropPartitions removes the state of the accounts of the partitions in
// in from both worlds.
func (s *Scorer) dropPartitions(in func(int) bool) PartitionStats {
	st := s.world.dropPartitions(s.store, in)
	if s.twin != nil && !s.mirrored {
		s.twin.dropPartitions(s.store, in)
	}
	st.Accounts = s.store.DropPartitions(in)
	return st
}

// dropPartitions removes w's rule locks and alert throttle entries of
// the accounts of in (looked up in store, which still holds them) and
// forgets the decisions of their events.
func (w *world) dropPartitions(store *features.Store, in func(int) bool) PartitionStats {
	var st PartitionStats
	for h, l := range w.locks.byAccount {
		if l.tag != 0 && in(int(l.tag)-1) {
			delete(w.locks.byAccount, h)
			st.Locks++
		}
	}
	for k := range w.throttle.sent {
		if p := store.PartitionOf(k.account); p >= 0 && in(p) {
			delete(w.throttle.sent, k)
			st.Alerts++
		}
	}
	st.EventIDs = w.dedupe.forget(in)
	return st
}

// RestorePartitions replaces the state of the accounts of parts with
// theirs in the checkpoint read from r (Checkpoint's format, of the same
// shard count and window features), so that the partitions' events after
// the offsets the checkpoint reflects can be decided here as the
// instance that wrote it would have. The checkpoint's shared entity windows
// are not read: this engine's stand where they stand. A decided event id
// is taken over only where this engine holds the event as seen in its
// shared windows (see dedupe.adopt). Nothing changes when the checkpoint
// is refused; a failure while the shards take it over (the engine
// stopping) leaves the earlier ones restored and says so (Partial).
//
// cutAt is when the checkpoint was cut (wall clock): a rule lock of an
// account support unlocked since then is not taken over (and what the
// unlock clears is cleared), as this engine applied the unlock already.
func (e *Engine) RestorePartitions(ctx context.Context, r io.Reader, parts []int, cutAt time.Time) (PartitionStats, error) {
	e.swapMu.Lock() // one feature Set from the read to the adoption
	defer e.swapMu.Unlock()
	var total PartitionStats
	br := bufio.NewReader(r)
	version, err := readCheckpointHeader(br, len(e.shards))
	if err != nil {
		return total, err
	}
	var n64 uint64
	if err := binary.Read(br, binary.LittleEndian, &n64); err != nil {
		return total, fmt.Errorf("%w: shared entities: %v", ErrCheckpointFormat, err)
	}
	if _, err := io.CopyN(io.Discard, br, int64(n64)); err != nil {
		return total, fmt.Errorf("%w: shared entities: %v", ErrCheckpointFormat, err)
	}
	// Every shard's part is read before any is taken over, so a refused
	// checkpoint changes nothing; only what a shard kept of it (the
	// partitions' accounts) stays in memory meanwhile.
	set := e.shared().Set()
	in := partSet(parts)
	got := make([]partitionState, len(e.shards))
	for i := range e.shards {
		ps, err := readPartitionState(br, version, set, in)
		if err != nil {
			return total, fmt.Errorf("%w: shard %d: %w", ErrCheckpointFormat, i, err)
		}
		got[i] = ps
	}
	for i, sh := range e.shards {
		var st PartitionStats
		var aerr error
		if err := sh.do(ctx, func(s *Scorer) { st, aerr = s.adoptPartitions(got[i], in, cutAt.UnixMilli()) }); err != nil {
			total.Partial = i > 0
			return total, fmt.Errorf("restore partitions on shard %d: %w", i, err)
		}
		if aerr != nil {
			total.Partial = true
			return total, fmt.Errorf("restore partitions on shard %d: %w", i, aerr)
		}
		got[i] = partitionState{}
		total.add(st)
	}
	return total, nil
}

// partitionState is one shard's state of some partitions, read from a
// checkpoint.
type partitionState struct {
	store    *features.Store
	locks    map[uint64]lockEntry
	ids      []remembered
	throttle map[alertKey]int64
}

// readPartitionState reads one shard's part of a checkpoint, keeping what
// belongs to the partitions of in.
func readPartitionState(r *bufio.Reader, version uint16, set *features.Set, in func(int) bool) (partitionState, error) {
	blob, err := readFeatures(r)
	if err != nil {
		return partitionState{}, err
	}
	all, err := set.RestoreAccounts(bytes.NewReader(blob))
	if err != nil {
		return partitionState{}, fmt.Errorf("features: %w", err)
	}
	// Keep the partitions' accounts only; the rest of the shard's is
	// garbage once this returns.
	store := set.NewShared().NewStore()
	if _, err := store.AdoptPartitions(all, in); err != nil {
		return partitionState{}, fmt.Errorf("features: %w", err)
	}
	ps := partitionState{store: store, locks: map[uint64]lockEntry{}, throttle: map[alertKey]int64{}}
	err = readShardTables(r, version, shardTables{
		lock: func(h uint64, l lockEntry) {
			if l.tag != 0 && in(int(l.tag)-1) {
				ps.locks[h] = l
			}
		},
		id: func(e remembered) {
			if e.tag != 0 && e.action != observedOnly && in(int(e.tag)-1) {
				ps.ids = append(ps.ids, e)
			}
		},
		throttle: func(k alertKey, sent int64) {
			if p := store.PartitionOf(k.account); p >= 0 && in(p) {
				ps.throttle[k] = sent
			}
		},
		suppress: func(uint64, []suppression) {}, // support's: held here already
	})
	return ps, err
}

// adoptPartitions replaces the live world's state of the partitions of in
// with got, read from a checkpoint cut at cutAtMs. A backtest's twin world
// (no fleet runs one) drops its state of them.
func (s *Scorer) adoptPartitions(got partitionState, in func(int) bool, cutAtMs int64) (PartitionStats, error) {
	s.dropPartitions(in)
	var st PartitionStats
	n, err := s.store.AdoptPartitions(got.store, in)
	if err != nil {
		return st, err
	}
	st.Accounts = n
	for k, sent := range got.throttle {
		s.throttle.sent[k] = sent
		st.Alerts++
	}
	for h, l := range got.locks {
		if s.locks.liftedSince(h, cutAtMs) {
			s.clearAfterUnlock(h, l.ruleID) // the unlock applied here found no lock
			continue
		}
		s.locks.lock(h, l.untilMs, l.ruleID, l.tag) // a longer support lock stays
		st.Locks++
	}
	for _, e := range got.ids {
		if s.dedupe.adopt(e) {
			st.EventIDs++
		}
	}
	return st, nil
}
