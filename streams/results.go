package streams

import "sync"

// resultQueue takes decisions to the output stage. put never waits: the
// shards call it from their Done callbacks, and a shard waiting on the
// output stage would answer no decide call meanwhile. What the queue holds
// is bounded by the tokens its senders hold until a result is durable (a
// stream message's in-flight slot, a decide call's decide token), not by
// the queue itself, which grows only while the output stage is behind.
type resultQueue struct {
	mu    sync.Mutex
	items []result
	head  int // items[:head] are taken
	// ready holds a signal while results wait to be taken.
	ready chan struct{}
}

func newResultQueue() *resultQueue {
	return &resultQueue{ready: make(chan struct{}, 1)}
}

// put queues r for the output stage.
func (q *resultQueue) put(r result) {
	q.mu.Lock()
	q.items = append(q.items, r)
	q.mu.Unlock()
	q.signal()
}

func (q *resultQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default: // one pending signal is enough
	}
}

// take appends up to n queued results to batch, oldest first, and
// returns it; ready is signalled again when some are left.
func (q *resultQueue) take(batch []result, n int) []result {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.items)-q.head)
	taken := q.items[q.head : q.head+n]
	batch = append(batch, taken...)
	clear(taken) // the batch holds them now
	q.head += n
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head > len(q.items)/2: // move what is left to the front, so appends reuse the room
		left := copy(q.items, q.items[q.head:])
		clear(q.items[left:])
		q.items, q.head = q.items[:left], 0
	}
	if q.head < len(q.items) {
		q.signal()
	}
	return batch
}
