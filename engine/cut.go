package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"riskd/features"
)

// Cut takes the engine's state as of one point of the stream: it reflects
// every stream message submitted before the call and none submitted after,
// so it can be saved with the input offsets of those messages and restored
// later to resume exactly there (see streams' snapshots). The format is the
// Checkpoint's, so Restore reads it.
//
// How: under the submission lock a marker is queued on every shard, behind
// the shard's earlier messages, and the shared entity windows are given a
// turn of their own (see turnstile) right after the last message before
// the cut. Each shard freezes its state (features.Store.Freeze) when it
// reaches its marker; shard 0 also freezes the shared windows in the
// marker's turn, when every earlier message has observed them and no
// later one has. A freeze copies nothing then: it installs a
// copy-on-write guard on each table (see features' freeze.go), so a shard
// is held for microseconds plus the encoding of its locks, decided ids
// and throttle (CutResult.Paused; a few milliseconds for a million
// accounts), not for the copy of its state (a third of a second and
// more). Until the copy is complete, a shard's first write to a value (an
// account, a device's windows...) not yet copied copies that value first;
// a goroutine of the cut's own copies all the others meanwhile, takes the
// guards off (CutResult.Copying) and then encodes the copies, beside the
// shards. Intake goes on throughout: messages after the cut queue behind
// the markers only while the shards pass them.
//
// One cut is taken at a time: StartCut waits (or gives up when ctx ends)
// until the copy of the one before is complete, so two copies never guard
// the same tables.
//
// Messages of the decide API are not part of the stream's order; the cut
// holds those that reached a shard before its marker.
//
// The returned channel receives one result once every shard has frozen
// its part and the whole is encoded (or the engine stopped first:
// ErrStopped). The caller must be the only one submitting stream messages
// while StartCut runs if it needs to know the offsets at the cut (the
// pipeline's merger is).
func (e *Engine) StartCut(ctx context.Context) (<-chan CutResult, error) {
	select {
	case e.cutting <- struct{}{}: // given back once this cut's copy is complete
	case <-ctx.Done():
		return nil, fmt.Errorf("engine cut: waiting for the cut before: %w", ctx.Err())
	}
	e.gate.RLock()
	defer e.gate.RUnlock()
	if e.stopped {
		<-e.cutting
		return nil, ErrStopped
	}
	e.swapMu.Lock() // the markers queue behind any swap's, and c.ents is the Set they see
	defer e.swapMu.Unlock()
	c := &cut{ents: e.shared(), parts: make([]frozenShard, len(e.shards)), result: make(chan CutResult, 1),
		sizeHint: &e.lastCutSize, copied: func() { <-e.cutting }}
	c.pending.Add(len(e.shards))
	t := e.turns
	t.seqMu.Lock()
	defer t.seqMu.Unlock()
	for i, sh := range e.shards {
		m := Message{cut: c, Done: func(_ *Decision, err error) { c.shardDone(i, frozenShard{}, err) }}
		if i == 0 {
			m.seq = t.number(0)
		}
		if err := enqueue(ctx, sh.queue, m); err != nil {
			// Markers already queued still run and report; the cut fails.
			for range len(e.shards) - i {
				c.shardDone(-1, frozenShard{}, err)
			}
			break
		}
		if i == 0 {
			t.commit(m.seq)
		}
	}
	go func() {
		c.pending.Wait()
		c.result <- c.assemble()
	}()
	return c.result, nil
}

// CutResult is what StartCut's channel receives: the state in Checkpoint's
// format, or why it could not be taken.
type CutResult struct {
	Data []byte
	Err  error
	// Paused is the longest time a shard spent on its marker (freezing
	// its state, and for shard 0 the shared windows): what the cut added
	// to the wait of the events behind it.
	Paused time.Duration
	// Copying is how long the copy of the state was in progress, from
	// the first shard's freeze to the guards' removal: meanwhile a
	// shard's first write to a value copied it.
	Copying time.Duration
}

// cut collects the parts of one StartCut.
type cut struct {
	ents    *features.Shared
	pending sync.WaitGroup
	mu      sync.Mutex
	shared  *features.Shared // frozen
	parts   []frozenShard
	paused  time.Duration
	err     error
	result  chan CutResult
	// sizeHint is the size of the engine's last cut, to size this one's
	// buffer once instead of growing (copying) it step by step.
	sizeHint *atomic.Int64
	// frozenAt is when the first shard froze its part (under mu);
	// copied lets the next cut start once the copy is complete or
	// dropped.
	frozenAt time.Time
	copied   func()
}

// frozenShard is one shard's state at a cut: its features frozen, and the
// rest of its part (writeRest) already encoded.
type frozenShard struct {
	store *features.Store
	rest  []byte
}

// shardDone records shard i's part (i < 0: a marker never queued).
func (c *cut) shardDone(i int, part frozenShard, err error) {
	c.mu.Lock()
	if err != nil && c.err == nil {
		c.err = err
	}
	if i >= 0 && err == nil {
		c.parts[i] = part
	}
	c.mu.Unlock()
	c.pending.Done()
}

// writeCut runs on shard sh's goroutine when it reaches the marker m of
// cut c: it freezes the shard's state (copying nothing yet) and encodes
// the rest of its part and, for the marker with a turn, freezes the
// shared entity windows in that turn.
func (sh *shard) writeCut(m Message) {
	start := time.Now()
	c := m.cut
	c.mu.Lock()
	if c.frozenAt.IsZero() || start.Before(c.frozenAt) {
		c.frozenAt = start
	}
	c.mu.Unlock()
	part := frozenShard{store: sh.scorer.store.Freeze()}
	rest := bytes.NewBuffer(make([]byte, 0, sh.lastRest+sh.lastRest/8)) // see assemble
	sh.scorer.writeRest(rest)
	part.rest, sh.lastRest = rest.Bytes(), rest.Len()
	if m.seq != 0 {
		sh.scorer.turns.enter(m.seq, sh.index)
		ents := c.ents.Freeze()
		sh.scorer.turns.leave(m.seq)
		c.mu.Lock()
		c.shared = ents
		c.mu.Unlock()
	}
	paused := time.Since(start)
	c.mu.Lock()
	c.paused = max(c.paused, paused)
	c.mu.Unlock()
	c.shardDone(sh.index, part, nil)
}

// assemble completes the frozen parts' copies, so the shards stop paying
// for them, then encodes them as Checkpoint lays them out, each part's
// copy dropped once written so that the copy and the encoding are not
// both whole in memory at the end.
func (c *cut) assemble() CutResult {
	if c.err != nil {
		if c.shared != nil {
			c.shared.Discard()
		}
		for i := range c.parts {
			if st := c.parts[i].store; st != nil {
				st.Discard()
			}
		}
		c.copied()
		return CutResult{Err: fmt.Errorf("engine cut: %w", c.err)}
	}
	c.shared.Complete()
	for i := range c.parts {
		c.parts[i].store.Complete()
	}
	copying := time.Since(c.frozenAt)
	c.copied()
	// Sized once, by make: bytes.Buffer.Grow clears the memory it adds in
	// one call the scheduler cannot preempt (hundreds of megabytes here,
	// up to a second with the page faults), and a collection that starts
	// meanwhile stops every shard until that call ends; make clears a
	// large buffer in preemptible steps.
	hint := c.sizeHint.Load()
	b := bytes.NewBuffer(make([]byte, 0, hint+hint/8))
	b.WriteString(checkpointMagic)
	le := binary.LittleEndian
	b.Write(le.AppendUint16(nil, checkpointVersion))
	b.Write(le.AppendUint32(nil, uint32(len(c.parts))))
	at := b.Len()
	b.Write(make([]byte, 8))
	if err := c.shared.Snapshot(b); err != nil {
		return CutResult{Err: fmt.Errorf("engine cut: shared entities: %w", err)}
	}
	le.PutUint64(b.Bytes()[at:], uint64(b.Len()-at-8))
	c.shared = nil
	for i := range c.parts {
		if err := writeFeatures(b, c.parts[i].store); err != nil {
			return CutResult{Err: fmt.Errorf("engine cut: shard %d: %w", i, err)}
		}
		b.Write(c.parts[i].rest)
		c.parts[i] = frozenShard{}
	}
	c.sizeHint.Store(int64(b.Len()))
	return CutResult{Data: b.Bytes(), Paused: c.paused, Copying: copying}
}
