package features

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every length up to past the largest chunk gets the smallest class that
// holds it, and a class wastes less than an eighth of its slot.
func TestClassForIsTheSmallestThatHolds(t *testing.T) {
	for c := 2; c < numClasses; c++ {
		if classCap[c] <= classCap[c-1] {
			t.Fatalf("class %d holds %d, class %d %d: not ascending", c, classCap[c], c-1, classCap[c-1])
		}
	}
	for n := 1; n <= 4*maxChunk; n++ {
		c := classFor(n)
		if classCap[c] < uint32(n) || classCap[c-1] >= uint32(n) && c > 1 {
			t.Fatalf("classFor(%d) = %d (holds %d; the class below holds %d)", n, c, classCap[c], classCap[c-1])
		}
		if n >= 8 && float64(classCap[c]-uint32(n)) >= 0.125*float64(classCap[c]) {
			t.Fatalf("classFor(%d) holds %d: an eighth or more unused", n, classCap[c])
		}
	}
}

// Lists appended, truncated, replaced and released at random in one arena
// hold what slices given the same changes hold, and a released slot is
// reused rather than new memory cut: the arena's chunks stop growing once
// the lists stop growing. A list longer than a chunk gets a chunk of its
// own, which its release drops.
func TestArenaListsHoldWhatSlicesHold(t *testing.T) {
	var a arena[uint64]
	r := rand.New(rand.NewPCG(1, 2))
	const lists = 300
	ls := make([]list, lists)
	want := make([][]uint64, lists)
	step := func() {
		i := r.IntN(lists)
		switch op := r.IntN(10); {
		case op < 6:
			v := r.Uint64()
			a.appendTo(&ls[i], a.view(ls[i]), v)
			want[i] = append(want[i], v)
		case op < 8:
			k := r.IntN(len(want[i]) + 1)
			ls[i].setLen(k)
			want[i] = want[i][:k]
		case op < 9:
			vs := make([]uint64, r.IntN(40))
			for j := range vs {
				vs[j] = r.Uint64()
			}
			a.set(&ls[i], vs)
			want[i] = vs
		default:
			a.release(&ls[i])
			want[i] = nil
		}
	}
	check := func() {
		t.Helper()
		for i := range ls {
			if got := a.view(ls[i]); !slices.Equal(got, want[i]) {
				t.Fatalf("list %d holds %v, want %v", i, got, want[i])
			}
		}
	}
	for range 20_000 {
		step()
	}
	check()
	chunks := len(a.chunks)
	for range 20_000 { // as many lists of about the same lengths
		step()
	}
	check()
	if n := len(a.chunks); n > chunks+chunks/2 {
		t.Fatalf("%d chunks after a second round of the same changes, %d after the first: freed slots are not reused", n, chunks)
	}

	var big list
	vs := make([]uint64, maxChunk+1)
	for j := range vs {
		vs[j] = uint64(j)
	}
	a.set(&big, vs)
	if got := a.view(big); !slices.Equal(got, vs) {
		t.Fatal("a list longer than a chunk does not hold what it was given")
	}
	at := big.chunk
	a.release(&big)
	if a.chunks[at] != nil {
		t.Fatal("releasing a list longer than a chunk kept its chunk")
	}
	a.set(&big, vs[:maxChunk])
	check()
}

// A list's view has its slot's capacity, never more: an append past it
// through the view cannot reach the next slot.
func TestArenaViewIsBoundedByItsSlot(t *testing.T) {
	var a arena[item]
	var l1, l2 list
	a.appendTo(&l1, nil, item{x: 1})
	a.appendTo(&l2, nil, item{x: 2})
	v := a.view(l1)
	if cap(v) != int(classCap[l1.class()]) {
		t.Fatalf("view cap %d, slot %d", cap(v), classCap[l1.class()])
	}
	_ = append(v[:cap(v)], item{x: 9}) // past the slot: a copy
	if got := a.view(l2); got[0].x != 2 {
		t.Fatalf("an append past one slot changed the next: %v", got)
	}
}

// An arena that would need more than maxChunks chunks refuses with a
// panic that says so, rather than wrapping list.chunk around.
func TestArenaBoundsItsChunks(t *testing.T) {
	var a arena[uint64]
	a.publish(make([][]uint64, maxChunks)) // as if full
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "arena of 65536 chunks") {
			t.Fatalf("recovered %v, want the arena's bound", r)
		}
	}()
	a.alloc(1)
}

// The arenas' reuse of freed slots changes no value: the drift stream
// (accounts coming and going, expiry, resets, a partition dropped, both
// scopes) observed by one Store throughout, and by a Store restored from
// its own snapshot every 3,000 events (fresh arenas, with no freed slot
// to reuse), reads the same Values at every event and ends in the same
// snapshot.
func TestArenaReuseChangesNoValue(t *testing.T) {
	s := mustSet(t, driftYAML, func(c *Config) { c.ProfileTTL = time.Hour })
	evs := driftEvents(30_000)
	through, restored := newDriftRig(s, true), newDriftRig(s, true)
	for i := range evs {
		if i > 0 && i%3000 == 0 {
			var buf bytes.Buffer
			if err := restored.stores[0].Snapshot(&buf); err != nil {
				t.Fatal(err)
			}
			st, err := s.Restore(&buf)
			if err != nil {
				t.Fatal(err)
			}
			restored.stores[0] = st
		}
		through.observe(i, evs)
		restored.observe(i, evs)
		if through.v != restored.v {
			t.Fatalf("event %d: the restored Store read %+v, the other %+v", i, restored.v, through.v)
		}
	}
	if !bytes.Equal(through.snapshot(t), restored.snapshot(t)) {
		t.Fatal("the two Stores end in different snapshots")
	}
}
