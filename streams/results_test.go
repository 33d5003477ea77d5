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

// BenchmarkDecisionObservations times the three latency observations of a
// decision (Kafka to decision, queue, score) on riskd's histograms from one
// goroutine, as the output stage makes them (observeDecided), and from two
// at once, as the shards made them before: the histograms' counters then
// move between the cores with every observation.
//
//	go test -run '^$' -bench BenchmarkDecisionObservations -count 3 ./streams/
func BenchmarkDecisionObservations(b *testing.B) {
	m := NewMetrics(nil)
	stages := m.stageObservers()
	observe := func() {
		m.KafkaToDecision.Observe(0.004)
		stages[stageQueue].Observe(0.0002)
		stages[stageScore].Observe(0.00001)
	}
	b.Run("one_goroutine", func(b *testing.B) {
		for b.Loop() {
			observe()
		}
	})
	b.Run("two_goroutines", func(b *testing.B) {
		b.SetParallelism(1) // GOMAXPROCS goroutines: two on riskd's two-core reference machine
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				observe()
			}
		})
	})
}
