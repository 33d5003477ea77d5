package streams

import "testing"

func TestPartitionOffsetsCommitsOnlyContiguousDurable(t *testing.T) {
	p := newPartitionOffsets()
	offsets := []int64{10, 11, 13, 14, 20} // gaps: compaction or transaction markers
	tickets := make([]uint64, len(offsets))
	for i, o := range offsets {
		tickets[i] = p.add(o)
	}
	steps := []struct {
		finish       int
		wantNext     int64
		wantInFlight int
	}{
		{finish: 1, wantNext: -1, wantInFlight: 5}, // 11 done, 10 not: nothing committable
		{finish: 3, wantNext: -1, wantInFlight: 5},
		{finish: 0, wantNext: 12, wantInFlight: 3}, // 10 and 11 done
		{finish: 2, wantNext: 15, wantInFlight: 1}, // 13 and 14 done
		{finish: 2, wantNext: 15, wantInFlight: 1}, // a second finish changes nothing
		{finish: 4, wantNext: 21, wantInFlight: 0},
	}
	for i, s := range steps {
		p.finish(tickets[s.finish])
		next, inFlight := p.committable()
		if next != s.wantNext || inFlight != s.wantInFlight {
			t.Fatalf("step %d: committable = %d, %d in flight; want %d, %d", i, next, inFlight, s.wantNext, s.wantInFlight)
		}
	}
}

func TestPartitionOffsetsReclaimsSpace(t *testing.T) {
	p := newPartitionOffsets()
	for o := int64(0); o < 10_000; o++ {
		p.finish(p.add(o))
	}
	if next, inFlight := p.committable(); next != 10_000 || inFlight != 0 {
		t.Fatalf("committable = %d, %d; want 10000, 0", next, inFlight)
	}
	if len(p.pending) > 2 {
		t.Fatalf("pending kept %d entries after all finished", len(p.pending))
	}
	// Out-of-order finishes across a reclaim keep their tickets valid.
	a, b, c := p.add(10_000), p.add(10_001), p.add(10_002)
	p.finish(c)
	p.finish(a)
	p.finish(b)
	if next, _ := p.committable(); next != 10_003 {
		t.Fatalf("next = %d, want 10003", next)
	}
}
