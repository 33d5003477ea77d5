package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"

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
// the cut. Each shard writes its state when it reaches its marker; shard 0
// also writes the shared windows in the marker's turn, when every earlier
// message has observed them and no later one has. Intake goes on
// meanwhile: messages after the cut queue behind the markers, and the
// shards take them up once their part is written.
//
// Messages of the decide API are not part of the stream's order; the cut
// holds those that reached a shard before its marker.
//
// The returned channel receives one result once every shard has written
// its part (or the engine stopped first: ErrStopped). The caller must be
// the only one submitting stream messages while StartCut runs if it needs
// to know the offsets at the cut (the pipeline's merger is).
func (e *Engine) StartCut(ctx context.Context) (<-chan CutResult, error) {
	e.gate.RLock()
	defer e.gate.RUnlock()
	if e.stopped {
		return nil, ErrStopped
	}
	e.swapMu.Lock() // the markers queue behind any swap's, and c.ents is the Set they see
	defer e.swapMu.Unlock()
	c := &cut{ents: e.shared(), parts: make([][]byte, len(e.shards)), result: make(chan CutResult, 1)}
	c.pending.Add(len(e.shards))
	t := e.turns
	t.seqMu.Lock()
	defer t.seqMu.Unlock()
	for i, sh := range e.shards {
		m := Message{cut: c, Done: func(_ *Decision, err error) { c.shardDone(i, nil, err) }}
		if i == 0 {
			m.seq = t.number(0)
		}
		if err := enqueue(ctx, sh.queue, m); err != nil {
			// Markers already queued still run and report; the cut fails.
			for range len(e.shards) - i {
				c.shardDone(-1, nil, err)
			}
			return c.result, nil
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
}

// cut collects the parts of one StartCut.
type cut struct {
	ents    *features.Shared
	pending sync.WaitGroup
	mu      sync.Mutex
	shared  []byte
	parts   [][]byte
	err     error
	result  chan CutResult
}

// shardDone records shard i's part (i < 0: a marker never queued).
func (c *cut) shardDone(i int, part []byte, err error) {
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
// cut c: it writes the shard's state and, for the marker with a turn, the
// shared entity windows in that turn.
func (sh *shard) writeCut(m Message) {
	c := m.cut
	// Sized as the last cut's part, so that a large state is not grown
	// (copied and cleared) step by step while the shard is paused.
	var buf bytes.Buffer
	buf.Grow(sh.lastCut + sh.lastCut/8)
	err := sh.scorer.writeState(&buf)
	sh.lastCut = buf.Len()
	if m.seq != 0 {
		sh.scorer.turns.enter(m.seq, sh.index)
		var ents bytes.Buffer
		ents.Grow(sh.lastShared + sh.lastShared/8)
		if serr := c.ents.Snapshot(&ents); serr != nil && err == nil {
			err = fmt.Errorf("shared entities: %w", serr)
		}
		sh.scorer.turns.leave(m.seq)
		sh.lastShared = ents.Len()
		c.mu.Lock()
		c.shared = ents.Bytes()
		c.mu.Unlock()
	}
	if err != nil {
		err = fmt.Errorf("shard %d: %w", sh.index, err)
	}
	c.shardDone(sh.index, buf.Bytes(), err)
}

// assemble lays the parts out as Checkpoint does.
func (c *cut) assemble() CutResult {
	if c.err != nil {
		return CutResult{Err: fmt.Errorf("engine cut: %w", c.err)}
	}
	var b bytes.Buffer
	size := len(checkpointMagic) + 14 + len(c.shared)
	for _, p := range c.parts {
		size += len(p)
	}
	b.Grow(size)
	b.WriteString(checkpointMagic)
	le := binary.LittleEndian
	b.Write(le.AppendUint16(nil, checkpointVersion))
	b.Write(le.AppendUint32(nil, uint32(len(c.parts))))
	b.Write(le.AppendUint64(nil, uint64(len(c.shared))))
	b.Write(c.shared)
	for _, p := range c.parts {
		b.Write(p)
	}
	return CutResult{Data: b.Bytes()}
}
