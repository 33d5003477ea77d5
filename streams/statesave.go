package streams

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"riskd/engine"
	"riskd/streams/snapshots"
)

// Engine state in Kafka.
//
// Every Config.SnapshotInterval the merger cuts the engine's state between
// two submissions (engine.StartCut), so the cut reflects exactly the
// messages submitted before it: for each partition, every offset below the
// one noted at the cut. The cut is saved to the state topic once those
// offsets are committed, that is once every output of the messages it
// reflects is durable. So a saved snapshot's offsets are never ahead of
// the group's committed ones, and a restart (after a crash too) restores
// it, reads each partition again from the snapshot's offset, and decides
// the messages up to the committed offset once more without making their
// outputs again: the engine is deterministic, so that rebuilds the state
// the first run had, and the committed messages after it are decided as
// the first run would have. On a clean stop a last snapshot is saved at
// the committed offsets, so the next start replays nothing.

// SnapshotStore keeps engine state snapshots (streams/snapshots.Store).
type SnapshotStore interface {
	Save(ctx context.Context, snap snapshots.Snapshot) (snapshots.SaveStats, error)
}

// DefaultSnapshotInterval is Config.SnapshotInterval's default. A crash
// replays about this much traffic (plus what was not committed), at the
// engine's own speed since nothing is output; each cut holds the shards
// for a few milliseconds, then copies and encodes the state beside them,
// about 4.4 s of a core for a million accounts on this project's 2-core
// machine (bench/RESULTS.md), so cutting more often costs throughput on
// large states.
const DefaultSnapshotInterval = 2 * time.Minute

// pendingCut is a cut waiting to be saved.
type pendingCut struct {
	state <-chan engine.CutResult
	// offsets is where the state stands for every partition it holds,
	// shared where its shared entity windows stand, live those of the
	// partitions assigned at the cut, which must be committed before it
	// is saved.
	offsets, shared, live map[string]map[int]int64
	at                    time.Time
}

func byTopic(m map[topicPartition]int64) map[string]map[int]int64 {
	out := map[string]map[int]int64{}
	for tp, next := range m {
		if out[tp.topic] == nil {
			out[tp.topic] = map[int]int64{}
		}
		out[tp.topic][tp.partition] = next
	}
	return out
}

// cutDue starts a cut of the engine's state when one is due and none is
// waiting to be saved; the merger calls it between two submissions.
func (p *Pipeline) cutDue(ctx context.Context, ins []*mergeInput, now time.Time) {
	if p.cfg.Snapshots == nil || now.Before(p.nextCut) || len(p.cuts) > 0 {
		return
	}
	p.nextCut = now.Add(p.cfg.SnapshotInterval)
	// Every partition whose accounts the state holds: the assigned ones
	// where the merger stands, the others where they were left; and where
	// the shared entity windows stand for every partition read.
	at, shared := maps.Clone(p.stateAt), maps.Clone(p.sharedAt)
	live := map[string]map[int]int64{}
	for _, in := range ins {
		tp := topicPartition{in.topic, in.partition}
		shared[tp] = in.next
		if !in.owned && in.standby == nil {
			continue
		}
		// A standby partition's too: the cut is saved once its owner has
		// committed past it, so a restart never stands ahead of a commit
		// with the decisions between lost (standby.go).
		at[tp] = in.accountAt()
		if live[in.topic] == nil {
			live[in.topic] = map[int]int64{}
		}
		live[in.topic][in.partition] = in.next
		if !in.owned {
			live[in.topic][in.partition] = at[tp]
		}
	}
	state, err := p.eng.StartCut(ctx)
	if err != nil {
		return // the engine is stopping
	}
	p.cuts <- pendingCut{state: state, offsets: byTopic(at), shared: byTopic(shared), live: live, at: now}
}

// runSnapshots saves the cuts the merger takes, one at a time, until ctx
// ends.
func (p *Pipeline) runSnapshots(ctx context.Context) {
	for {
		select {
		case c := <-p.cuts:
			p.saveCut(ctx, c)
		case <-ctx.Done():
			return
		}
	}
}

// saveCut waits for c's state and for its offsets to be committed, then
// saves it. A cut whose offsets are not committed within cutCommitWait
// (its partitions moved to another instance, or outputs are stuck) is
// abandoned: the next one will do.
func (p *Pipeline) saveCut(ctx context.Context, c pendingCut) {
	var res engine.CutResult
	select {
	case res = <-c.state:
	case <-ctx.Done():
		return
	}
	if res.Err != nil {
		p.stateFailed("cutting the engine state", res.Err)
		return
	}
	p.m.StatePause.Observe(res.Paused.Seconds())
	deadline := time.Now().Add(cutCommitWait)
	for !p.committedCovers(c.live) {
		if time.Now().After(deadline) {
			p.m.StateSaves.WithLabelValues("abandoned").Inc()
			p.log.Warn("state snapshot abandoned: its offsets were not committed in time", "waited", cutCommitWait)
			return
		}
		select {
		case <-time.After(p.cfg.CommitInterval / 2):
		case <-ctx.Done():
			return
		}
	}
	p.save(ctx, c.offsets, c.shared, res.Data, c.at)
}

// cutCommitWait bounds how long a cut waits for its offsets to be committed.
const cutCommitWait = 2 * time.Minute

// save writes one snapshot and counts it.
func (p *Pipeline) save(ctx context.Context, offsets, shared map[string]map[int]int64, data []byte, cutAt time.Time) bool {
	snap := snapshots.Snapshot{Seq: p.snapSeq + 1, Offsets: offsets, SharedOffsets: shared, Data: data, CreatedAt: cutAt.UTC(),
		Meta: map[string]string{"group": p.cfg.Group, "bytes": strconv.Itoa(len(data))}}
	stats, err := p.cfg.Snapshots.Save(ctx, snap)
	if err != nil {
		p.stateFailed("saving the engine state", err)
		return false
	}
	p.snapSeq = snap.Seq
	p.m.StateSaves.WithLabelValues("saved").Inc()
	p.m.StateBytes.Add(float64(stats.Bytes))
	p.m.StateSize.Set(float64(len(data)))
	p.m.StateSeconds.Observe(time.Since(cutAt).Seconds())
	p.log.Debug("state snapshot saved", "seq", snap.Seq, "bytes", len(data), "took", stats.Duration)
	return true
}

func (p *Pipeline) stateFailed(what string, err error) {
	p.m.Errors.WithLabelValues("state").Inc()
	p.m.StateSaves.WithLabelValues("failed").Inc()
	p.log.Warn(what+" failed; the previous snapshot stays in use, and a restart replays more", "err", err)
}

// noteCommitted records offsets the group has committed, for cuts waiting
// on them.
func (p *Pipeline) noteCommitted(offsets map[string]map[int]int64) {
	p.committedMu.Lock()
	defer p.committedMu.Unlock()
	for topic, parts := range offsets {
		for part, next := range parts {
			p.committed[topicPartition{topic, part}] = next
		}
	}
}

// committedCovers reports whether every offset in want is committed.
func (p *Pipeline) committedCovers(want map[string]map[int]int64) bool {
	p.committedMu.Lock()
	defer p.committedMu.Unlock()
	for topic, parts := range want {
		for part, next := range parts {
			if next < 0 {
				continue // nothing of it was submitted
			}
			if got, ok := p.committed[topicPartition{topic, part}]; !ok || got < next {
				return false
			}
		}
	}
	return true
}

// saveFinal saves the state after a complete drain, when it stands at the
// committed offsets of the last generation: a clean stop then replays
// nothing. Run calls it once the generations are over.
func (p *Pipeline) saveFinal(ctx context.Context) error {
	if len(p.stateAt) == 0 {
		return nil
	}
	at := time.Now()
	state, err := p.eng.StartCut(ctx)
	if err != nil {
		return fmt.Errorf("final state snapshot: %w", err)
	}
	var res engine.CutResult
	select {
	case res = <-state:
	case <-ctx.Done():
		return fmt.Errorf("final state snapshot: %w", ctx.Err())
	}
	if res.Err != nil {
		return fmt.Errorf("final state snapshot: %w", res.Err)
	}
	if !p.save(ctx, byTopic(p.stateAt), byTopic(p.sharedAt), res.Data, at) {
		return errors.New("final state snapshot not saved")
	}
	p.log.Info("engine state saved at the committed offsets", "seq", p.snapSeq, "bytes", len(res.Data))
	return nil
}
