package engine

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"riskd/features"
)

// Changing the feature definitions while the engine runs.
//
// The shards share the entity windows, so the definitions change for all
// of them at one place in the stream: SwapFeatures queues a pause marker
// behind every message submitted so far on each shard, waits until every
// shard has reached its marker (and so decided everything before it),
// carries the state over to the new definitions, and lets the shards go
// on. The state is carried as a restore carries a snapshot across a
// change of definitions (features.Set.RestoreShared): each feature whose
// definition is unchanged keeps its state, new ones start empty and are
// warming until their window has filled, removed ones are dropped. The
// stream waits meanwhile: for as long as a snapshot and a restore of the
// state take (see bench/RESULTS.md); no event is skipped.

// pause holds the shards at a marker until SwapFeatures is done.
type pause struct {
	arrived sync.WaitGroup
	mu      sync.Mutex
	err     error // a marker the engine failed (shutting down)
	release chan struct{}
}

func (p *pause) arrive(err error) {
	if err != nil {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
	}
	p.arrived.Done()
}

// SwapFeatures replaces the engine's window feature definitions with set,
// between two submitted messages (see above), and runs during while every
// shard is held, so that what must change at the same place in the stream
// (the rule sets compiled against set's feature indexes) does. It returns
// what happened to each feature (the kept, new and dropped ones,
// features.RestoreReport). On an error the engine goes on with the old
// definitions and state, and during is not called. Callers must not
// submit from during.
func (e *Engine) SwapFeatures(ctx context.Context, set *features.Set, during func()) (features.RestoreReport, error) {
	e.swapMu.Lock()
	defer e.swapMu.Unlock()
	p := &pause{release: make(chan struct{})}
	defer close(p.release) // the shards go on, whatever happened
	if err := e.queuePause(ctx, p); err != nil {
		return features.RestoreReport{}, fmt.Errorf("swap features: %w", err)
	}
	all := make(chan struct{})
	go func() { p.arrived.Wait(); close(all) }() // ends once every queued marker has arrived
	select {
	case <-all:
	case <-ctx.Done():
		return features.RestoreReport{}, fmt.Errorf("swap features: waiting for the shards: %w", ctx.Err())
	}
	p.mu.Lock()
	failed := p.err
	p.mu.Unlock()
	if failed != nil {
		return features.RestoreReport{}, fmt.Errorf("swap features: %w", failed)
	}

	// Every shard is held: their state is this goroutine's until release.
	old := e.shared()
	var buf bytes.Buffer
	if err := old.Snapshot(&buf); err != nil {
		return features.RestoreReport{}, fmt.Errorf("swap features: shared entities: %w", err)
	}
	ents, err := set.RestoreShared(&buf)
	if err != nil {
		return features.RestoreReport{}, fmt.Errorf("swap features: shared entities: %w", err)
	}
	stores := make([]*features.Store, len(e.shards))
	for i, sh := range e.shards {
		buf.Reset()
		if err := sh.scorer.store.Snapshot(&buf); err != nil {
			return features.RestoreReport{}, fmt.Errorf("swap features: shard %d: %w", i, err)
		}
		if stores[i], err = ents.Restore(&buf); err != nil {
			return features.RestoreReport{}, fmt.Errorf("swap features: shard %d: %w", i, err)
		}
	}
	for i, sh := range e.shards {
		sh.scorer.store, sh.scorer.set = stores[i], set
	}
	e.ents.Store(ents)
	if during != nil {
		during()
	}
	return ents.Restored(), nil
}

// queuePause queues p's marker on every shard, behind the messages
// submitted so far. On an error the markers already queued still arrive,
// and go on once p is released.
func (e *Engine) queuePause(ctx context.Context, p *pause) error {
	e.gate.RLock()
	defer e.gate.RUnlock()
	if e.stopped {
		return ErrStopped
	}
	t := e.turns
	t.seqMu.Lock()
	defer t.seqMu.Unlock()
	for _, sh := range e.shards {
		p.arrived.Add(1)
		m := Message{pause: p, Done: func(_ *Decision, err error) { p.arrive(err) }}
		if err := enqueue(ctx, sh.queue, m); err != nil {
			p.arrived.Done()
			return err
		}
	}
	return nil
}

// hold runs on a shard's goroutine at a pause marker: it says it has
// arrived and waits until SwapFeatures lets it go.
func (sh *shard) hold(p *pause) {
	p.arrive(nil)
	<-p.release
}
