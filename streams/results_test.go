package streams

import (
	"testing"

	"riskd/engine"
	"riskd/internal/alone"
)

// TestResultQueueTakesInOrderAndSignalsWhatIsLeft puts more results than
// one take moves and checks that takes return them oldest first, that
// ready is signalled while some are left (and only then), and that puts
// after a partial take keep their place behind the ones left.
func TestResultQueueTakesInOrderAndSignalsWhatIsLeft(t *testing.T) {
	q := newResultQueue()
	put := func(from, to int) {
		for i := from; i < to; i++ {
			q.put(result{ticket: uint64(i)})
		}
	}
	var got []uint64
	take := func(n int) {
		t.Helper()
		select {
		case <-q.ready:
		default:
			t.Fatalf("nothing signalled with %d results queued", len(q.items)-q.head)
		}
		for _, r := range q.take(nil, n) {
			got = append(got, r.ticket)
		}
	}
	put(0, 10)
	take(3)
	take(3)
	put(10, 14) // behind the four left
	take(5)
	take(100)
	select {
	case <-q.ready:
		t.Fatal("ready signalled with nothing queued")
	default:
	}
	for i, ticket := range got {
		if ticket != uint64(i) {
			t.Fatalf("taken in order %v", got)
		}
	}
	if len(got) != 14 {
		t.Fatalf("took %d of 14", len(got))
	}
}

// TestResultQueuePutDoesNotAllocateOnceGrown checks that a queue emptied
// by takes reuses its room: the output stage's steady state allocates
// nothing per result.
func TestResultQueuePutDoesNotAllocateOnceGrown(t *testing.T) {
	if !alone.Process(t) {
		return
	}
	q := newResultQueue()
	d := &engine.Decision{}
	batch := make([]result, 0, 64)
	cycle := func() {
		for range 64 {
			q.put(result{d: d})
		}
		<-q.ready
		batch = q.take(batch[:0], 64)
	}
	cycle()
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Errorf("%.1f allocations per 64 puts and a take, want 0", n)
	}
}
