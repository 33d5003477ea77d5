package streams

import (
	"strconv"
	"sync"
)

// partitionOffsets tracks the messages of one partition from fetch until
// everything they produced is durable, and says how far the partition may
// be committed: up to the first message that is not durable yet. Offsets
// are added in fetch order (increasing) but finish in any order, because
// a partition's accounts spread over several shards.
type partitionOffsets struct {
	mu sync.Mutex
	// pending holds fetched offsets in order from head; done marks the
	// finished ones. seq numbers are positions in this stream of adds, so
	// a message finds its slot without searching.
	pending []pendingOffset
	head    int    // index in pending of the oldest unfinished entry
	headSeq uint64 // seq of pending[head]
	nextSeq uint64
	// next is the offset to commit: one past the last offset whose
	// message and every earlier one are durable. -1 until one is.
	next int64
}

type pendingOffset struct {
	offset int64
	done   bool
}

func newPartitionOffsets() *partitionOffsets { return &partitionOffsets{next: -1} }

// add records a fetched offset and returns its ticket for finish.
func (p *partitionOffsets) add(offset int64) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head > 0 && p.head >= len(p.pending)/2 { // reclaim the finished front
		n := copy(p.pending, p.pending[p.head:])
		p.pending = p.pending[:n]
		p.head = 0
	}
	p.pending = append(p.pending, pendingOffset{offset: offset})
	seq := p.nextSeq
	p.nextSeq++
	return seq
}

// finish marks the message with ticket seq durable and advances the
// commit point over every finished message at the front.
func (p *partitionOffsets) finish(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.head + int(seq-p.headSeq)
	if seq < p.headSeq || i >= len(p.pending) {
		return // finished twice, or not ours: never move the commit point for it
	}
	p.pending[i].done = true
	for p.head < len(p.pending) && p.pending[p.head].done {
		p.next = p.pending[p.head].offset + 1
		p.head++
		p.headSeq++
	}
}

// committable returns the offset to commit (the next one to read) and
// how many messages are still in flight; next is -1 before any finished.
func (p *partitionOffsets) committable() (next int64, inFlight int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next, len(p.pending) - p.head
}

func itoa(i int) string { return strconv.Itoa(i) }
