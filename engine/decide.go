package engine

import (
	"context"
	"errors"
	"fmt"
)

// errDoneSet is returned by Decide for a message that already has a Done.
var errDoneSet = errors.New("decide: Message.Done must be nil: Decide sets it and waits for it")

// Decide submits m and waits for its decision: it returns what the engine
// hands to m's Done, the decision (the caller's to keep) or the error (an
// *event.Error for a message that cannot be decoded, ErrStopped on
// shutdown). m.Done must be nil; Decide sets it.
//
// It returns ctx's error if ctx ends first. When that happens after the
// message was queued, the shard still decides it later (and nobody hears
// the result), so m.Value then stays the engine's: the caller must not
// reuse that buffer.
func (e *Engine) Decide(ctx context.Context, m Message) (*Decision, error) {
	if m.Done != nil {
		return nil, errDoneSet
	}
	type result struct {
		d   *Decision
		err error
	}
	// Buffered, so a Done that comes after Decide gave up does not block
	// the shard goroutine.
	ch := make(chan result, 1)
	m.Done = func(d *Decision, err error) { ch <- result{d, err} }
	if err := e.Submit(ctx, m); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.d, r.err
	case <-ctx.Done():
		select { // a decision that is already there wins
		case r := <-ch:
			return r.d, r.err
		default:
		}
		return nil, fmt.Errorf("decide: %w", ctx.Err())
	}
}
