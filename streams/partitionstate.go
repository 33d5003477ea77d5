package streams

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/streams/snapshots"
)

// Partition state across the fleet.
//
// The engine tags the state of every account with its input partition
// (engine.RestorePartitions), so at the start of each generation an
// instance gives up the accounts of the partitions it no longer holds and
// takes over, from the newest snapshot a member of the group saved that
// fits, the accounts of each partition assigned to it whose state here
// stands behind the group's committed offset. It then reads that
// partition from the snapshot's offsets, deciding the messages up to the
// committed offset again without outputs (assignedInput), instead of
// replaying the partition's log from its start. A partition no snapshot
// fits is rebuilt from its log as before (Config.RebuildUnknown). The
// accounts of a partition given up stay a while (Config.PartitionLinger)
// before they are dropped, so that the snapshots the new owner may load
// still hold them.

// DefaultPartitionLinger is Config.PartitionLinger's default: enough for
// a new owner to list the group's snapshots and load a large one, while
// this instance's snapshots (two slots, DefaultSnapshotInterval apart)
// would keep a partition dropped at once for one interval at most.
const DefaultPartitionLinger = 30 * time.Second

// PartitionStates reads the state snapshots the members of the group
// saved (cmd/riskd: the state topic), for the partitions that move here.
type PartitionStates interface {
	// Saved lists the newest snapshot of each member, with the offsets it
	// reflects and without its data.
	Saved(ctx context.Context) ([]snapshots.Saved, error)
	// Load reads the newest usable snapshot saved under name.
	Load(ctx context.Context, name string) (snapshots.Snapshot, error)
}

// takePartitions lets go of the state of the partitions not assigned in
// this generation (see leavePartitions) and restores that of the assigned
// ones whose state here stands behind the committed offset, given the
// assignment's committed offsets by partition. Without
// Config.PartitionStates it does nothing: the state of a partition that
// moves away stays, for when it comes back.
func (p *Pipeline) takePartitions(ctx context.Context, assignments map[string][]kafka.PartitionAssignment) {
	if p.cfg.PartitionStates == nil {
		return
	}
	committed := map[topicPartition]int64{}
	assigned := map[int]bool{}
	for topic, as := range assignments {
		for _, a := range as {
			committed[topicPartition{topic, a.ID}] = a.Offset
			assigned[a.ID] = true
		}
	}
	if !p.cfg.Standby { // a standby keeps every partition's state
		p.leavePartitions(ctx, assigned, time.Now())
	}
	p.restorePartitions(ctx, committed)
}

// leavePartitions starts the linger (Config.PartitionLinger) of every
// partition whose accounts' state the engine holds but that is not
// assigned here, ends it for those assigned here again, and drops the
// state of those whose linger is over. While a partition lingers its
// state stays unchanged (no event of its accounts is decided here) and
// every snapshot this instance saves holds it at where it stands, so the
// partition's new owner finds it in whichever of this instance's
// snapshots it loads; dropping it at once would let a snapshot saved
// between the new owner's listing and its load leave the partition out.
func (p *Pipeline) leavePartitions(ctx context.Context, assigned map[int]bool, now time.Time) {
	var moved []int
	for tp := range p.stateAt {
		n := tp.partition
		if assigned[n] {
			delete(p.leaving, n)
			continue
		}
		if _, lingering := p.leaving[n]; !lingering {
			p.leaving[n] = now.Add(p.cfg.PartitionLinger)
			moved = append(moved, n)
		}
	}
	p.leaveAt = earliest(p.leaving)
	if len(moved) > 0 {
		slices.Sort(moved)
		p.log.Info("partitions moved to other instances; their state stays here, and in this instance's snapshots, until their new owners have had time to load it",
			"partitions", moved, "drop_in", p.cfg.PartitionLinger)
	}
	p.dropLeft(ctx, now)
}

// earliest returns the earliest of the times in m, zero when m is empty.
func earliest(m map[int]time.Time) time.Time {
	var first time.Time
	for _, at := range m {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	return first
}

// dropLeft drops the state of the accounts of every partition whose
// linger ended by now. The merger calls it between two submissions.
func (p *Pipeline) dropLeft(ctx context.Context, now time.Time) {
	if p.leaveAt.IsZero() || now.Before(p.leaveAt) {
		return
	}
	var due []int
	for n, at := range p.leaving {
		if !now.Before(at) {
			due = append(due, n)
			delete(p.leaving, n)
		}
	}
	p.leaveAt = earliest(p.leaving)
	slices.Sort(due)
	st, err := p.eng.DropPartitions(ctx, due)
	if err != nil {
		p.log.Warn("dropping the state of partitions moved away failed; it stays, unused", "partitions", due, "err", err)
		return
	}
	for tp := range p.stateAt {
		if slices.Contains(due, tp.partition) {
			delete(p.stateAt, tp)
		}
	}
	p.m.PartitionDropped.Add(float64(st.Accounts))
	p.log.Info("state of partitions moved to other instances dropped", "partitions", due, "accounts", st.Accounts,
		"rule_locks", st.Locks, "event_ids", st.EventIDs)
}

// restorePartitions restores, for each assigned partition whose state
// here stands behind the committed offset, the state of its accounts
// from the newest fitting snapshot of the group (see fits), and notes
// where it stands now.
func (p *Pipeline) restorePartitions(ctx context.Context, committed map[topicPartition]int64) {
	behind := map[int]bool{}
	for tp, c := range committed {
		if at, known := p.stateAt[tp]; c >= 0 && (!known || at < c) {
			behind[tp.partition] = true
		}
	}
	if len(behind) == 0 {
		return
	}
	saved, err := p.cfg.PartitionStates.Saved(ctx)
	if err != nil {
		p.log.Warn("listing the group's state snapshots failed; the partitions moved here are rebuilt from their logs", "err", err)
		return
	}
	// The snapshot each partition is restored from: the one that stands
	// furthest (the sum of its offsets for the partition) among those
	// that fit.
	from := map[string][]int{}
	for _, n := range slices.Sorted(maps.Keys(behind)) {
		best, bestAt := "", int64(-1)
		for _, s := range saved {
			if at, ok := p.fits(s.Offsets, n, committed); ok && at > bestAt {
				best, bestAt = s.Name, at
			}
		}
		if best == "" {
			p.m.PartitionRestores.WithLabelValues("none").Inc()
			p.log.Info("no saved state fits a partition moved here; it is rebuilt from its log", "partition", n)
			continue
		}
		from[best] = append(from[best], n)
	}
	for _, name := range slices.Sorted(maps.Keys(from)) {
		p.restoreFrom(ctx, name, from[name], committed)
	}
}

// restoreFrom restores the state of the accounts of parts from the
// snapshot saved under name.
func (p *Pipeline) restoreFrom(ctx context.Context, name string, parts []int, committed map[topicPartition]int64) {
	start := time.Now()
	snap, err := p.cfg.PartitionStates.Load(ctx, name)
	if err != nil {
		p.m.PartitionRestores.WithLabelValues("refused").Add(float64(len(parts)))
		p.log.Warn("loading a saved state for partitions moved here failed; they are rebuilt from their logs", "snapshot", name, "partitions", parts, "err", err)
		return
	}
	// Load may have fallen back to an older snapshot than the one listed.
	fit := parts[:0:0]
	for _, n := range parts {
		if _, ok := p.fits(snap.Offsets, n, committed); ok {
			fit = append(fit, n)
		}
	}
	if len(fit) < len(parts) {
		p.m.PartitionRestores.WithLabelValues("none").Add(float64(len(parts) - len(fit)))
		p.log.Info("the saved state loaded no longer fits some partitions moved here (its owner saved another since it was listed); they are rebuilt from their logs",
			"snapshot", name, "seq", snap.Seq, "partitions", slices.DeleteFunc(slices.Clone(parts), func(n int) bool { return slices.Contains(fit, n) }))
	}
	if len(fit) == 0 {
		return
	}
	st, err := p.eng.RestorePartitions(ctx, bytes.NewReader(snap.Data), fit, snap.CreatedAt)
	if err != nil {
		p.m.PartitionRestores.WithLabelValues("refused").Add(float64(len(fit)))
		p.log.Warn("a saved state for partitions moved here was refused; they are caught up from where this instance's state stands, or rebuilt from their logs",
			"snapshot", name, "seq", snap.Seq, "partitions", fit, "err", err)
		if !st.Partial {
			return // nothing changed
		}
		// Some shards took it over: start those partitions clean.
		if _, derr := p.eng.DropPartitions(ctx, fit); derr != nil {
			p.log.Error("dropping a partly restored partition state failed", "partitions", fit, "err", derr)
		}
		for tp := range committed {
			if slices.Contains(fit, tp.partition) {
				delete(p.stateAt, tp)
			}
		}
		return
	}
	for tp := range committed {
		if slices.Contains(fit, tp.partition) {
			p.stateAt[tp] = snap.Offsets[tp.topic][tp.partition]
		}
	}
	took := time.Since(start)
	p.m.PartitionRestores.WithLabelValues("restored").Add(float64(len(fit)))
	p.m.PartitionRestoreSeconds.Observe(took.Seconds())
	p.log.Info("state of partitions moved here restored from a saved snapshot; each is read from where that state stands",
		"snapshot", name, "seq", snap.Seq, "cut_at", snap.CreatedAt, "partitions", fit, "accounts", st.Accounts,
		"rule_locks", st.Locks, "event_ids", st.EventIDs, "bytes", len(snap.Data), "took", took)
}

// fits reports whether a snapshot whose state stands at offsets can give
// partition n's accounts here, and how far it stands (the sum of its
// offsets of n): it must hold n for every topic assigned (both inputs,
// co-partitioned: an account's events are in one partition number of
// each), stand at or behind the committed offsets (a snapshot is saved
// only once its offsets are committed, so one ahead belongs to another
// history of the group, after a reset of its offsets), and not behind
// the state here for any of them.
func (p *Pipeline) fits(offsets map[string]map[int]int64, n int, committed map[topicPartition]int64) (int64, bool) {
	var sum int64
	better := false
	for tp, c := range committed {
		if tp.partition != n {
			continue
		}
		o, ok := offsets[tp.topic][n]
		if !ok || o > max(c, 0) {
			return 0, false
		}
		if at, known := p.stateAt[tp]; known && o < at {
			return 0, false
		} else if !known || o > at {
			better = true
		}
		sum += max(o, 0)
	}
	return sum, better
}
