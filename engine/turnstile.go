package engine

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// turnstile makes the shards read and update the shared entity windows
// (device, IP, payee, ...) in the order stream messages were submitted,
// whatever the number of shards and however fast each one runs.
//
// Why: events are sharded by account, but a device's or payee's window
// counts the events of many accounts, so it sees the events of several
// shards. Without an order, two shards that each have a backlog update a
// device window in whatever order their goroutines get there, and the same
// stream gives different features from run to run and with another shard
// count. With it, the shared windows change exactly as they would with one
// shard, so decisions are a function of the submitted order alone (the
// pipeline submits the partitions merged in event-time order).
//
// Each stream message gets a sequence number when it is queued (Submit,
// under seqMu, so numbers follow queue order on every shard). A shard
// decodes message s and then scores it only when every message before s
// has left the turnstile; waiting, observing the features and leaving cost
// one atomic load and one short mutex section when the shards keep pace.
// While it waits, the shard decides its urgent messages (shard.awaitTurn):
// a decide call is not held up by another shard's backlog. A message that
// never reaches the features (undecodable, refused, a repeated event id)
// passes without waiting, so it never holds the others up. Messages of
// the decide API carry no number: they are answered at once, under the
// stripe locks alone, since their order against the stream is arrival
// order anyway.
//
// No shard can wait for ever: the oldest message not yet through is at the
// head of its shard's queue or being scored, and never waits itself.
type turnstile struct {
	next atomic.Uint64 // the number whose turn it is

	mu   sync.Mutex
	done []bool // by number mod len: left before its turn came
	// owner is the shard of each queued number, so the leaver wakes the
	// shard whose turn comes next.
	owner []atomic.Int32
	wake  []chan struct{} // by shard; one pending wake is enough
	mask  uint64

	issued uint64     // the last number handed out
	seqMu  sync.Mutex // held from numbering to queueing (Submit)
}

// newTurnstile sizes the rings for every number that can be outstanding at
// once: a full queue and one message being scored per shard.
func newTurnstile(shards, queueSize int) *turnstile {
	need := uint64(shards * (queueSize + 2))
	size := uint64(1) << bits.Len64(need)
	t := &turnstile{
		done:  make([]bool, size),
		owner: make([]atomic.Int32, size),
		wake:  make([]chan struct{}, shards),
		mask:  size - 1,
	}
	for i := range t.wake {
		t.wake[i] = make(chan struct{}, 1)
	}
	t.next.Store(1)
	return t
}

// number returns the sequence number the next queued stream message gets
// on shard; call with seqMu held, and commit it once the message is queued.
func (t *turnstile) number(shard int) uint64 {
	s := t.issued + 1
	t.owner[s&t.mask].Store(int32(shard))
	return s
}

func (t *turnstile) commit(s uint64) { t.issued = s }

// enter waits until it is message s's turn. The caller is shard.
func (t *turnstile) enter(s uint64, shard int) {
	for t.next.Load() != s {
		<-t.wake[shard]
	}
}

// leave ends message s's turn, or records that s passed without taking it,
// and wakes the shard whose turn comes next.
func (t *turnstile) leave(s uint64) {
	t.mu.Lock()
	if s != t.next.Load() {
		t.done[s&t.mask] = true
		t.mu.Unlock()
		return
	}
	n := s + 1
	for t.done[n&t.mask] {
		t.done[n&t.mask] = false
		n++
	}
	t.next.Store(n)
	shard := t.owner[n&t.mask].Load()
	t.mu.Unlock()
	// The owner slot of a number not yet handed out is stale: the wake is
	// spurious and its receiver looks at next again.
	select {
	case t.wake[shard] <- struct{}{}:
	default:
	}
}
