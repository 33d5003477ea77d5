package engine

import (
	"math/rand/v2"
	"testing"

	"riskd/internal/alone"
	"riskd/rules"
)

// TestDedupeAgreesWithTwoMaps drives the open-addressing dedupe and a
// reference built from two Go maps (the previous implementation) with the
// same random ids, including 0 and repeats, and requires the same answers.
func TestDedupeAgreesWithTwoMaps(t *testing.T) {
	for _, capacity := range []int{1, 3, 8, 100, 1000} {
		d := newDedupe(capacity)
		ref := newMapDedupe(capacity)
		r := rand.New(rand.NewPCG(1, uint64(capacity)))
		for i := range 20 * capacity {
			id := r.Uint64N(uint64(4 * capacity)) // small range: many repeats and id 0
			if i%7 == 0 {
				id = r.Uint64() // and full-width hashes
			}
			a, sum, ok := d.seen(id)
			ra, rsum, rok := ref.seen(id)
			if a != ra || sum != rsum || ok != rok {
				t.Fatalf("capacity %d step %d: seen(%d) = %v,%x,%v; two maps say %v,%x,%v", capacity, i, id, a, sum, ok, ra, rsum, rok)
			}
			if !ok {
				act, sum := rules.Action(r.IntN(6)), r.Uint32()
				d.record(id, act, sum, 0)
				ref.record(id, act, sum, 0)
			}
			if d.len() != len(ref.current)+len(ref.previous) {
				t.Fatalf("capacity %d step %d: len %d, two maps hold %d", capacity, i, d.len(), len(ref.current)+len(ref.previous))
			}
		}
	}
}

func TestDedupeAllRebuildsTheSameGenerations(t *testing.T) {
	d := newDedupe(5)
	for id := uint64(0); id < 8; id++ { // 0..4 then rotation: 5..7 current
		d.record(id, rules.Action(id%6), uint32(id+100), 0)
	}
	again := newDedupe(5)
	for e := range d.all() {
		again.record(e.id, e.action, e.sum, 0)
	}
	if again.len() != d.len() || again.n[again.cur] != d.n[d.cur] {
		t.Fatalf("rebuilt %d ids (%d current), want %d (%d current)", again.len(), again.n[again.cur], d.len(), d.n[d.cur])
	}
	for id := uint64(0); id < 8; id++ {
		if a, sum, ok := again.seen(id); !ok || a != rules.Action(id%6) || sum != uint32(id+100) {
			t.Errorf("id %d: seen=%v action=%v fingerprint=%d after rebuild", id, ok, a, sum)
		}
	}
	for range d.all() {
		break // stopping early must not panic
	}
}

func TestDedupeRecordDoesNotAllocate(t *testing.T) {
	if !alone.Process(t) { // it counts allocations
		return
	}
	d := newDedupe(1000)
	id := uint64(1)
	if n := testing.AllocsPerRun(10_000, func() {
		id++
		d.seen(id * 0x9e3779b97f4a7c15)
		d.record(id*0x9e3779b97f4a7c15, rules.Allow, 1, 0)
	}); n != 0 {
		t.Errorf("%v allocations per record, want 0", n)
	}
}

// mapDedupe is the earlier two-map dedupe, kept as the reference.
type mapDedupe struct {
	capacity          int
	current, previous map[uint64]mapEntry
}

type mapEntry struct {
	action rules.Action
	sum    uint32
}

func newMapDedupe(capacity int) *mapDedupe {
	return &mapDedupe{capacity: capacity, current: map[uint64]mapEntry{}, previous: map[uint64]mapEntry{}}
}

func (d *mapDedupe) seen(id uint64) (rules.Action, uint32, bool) {
	if e, ok := d.current[id]; ok {
		return e.action, e.sum, true
	}
	e, ok := d.previous[id]
	return e.action, e.sum, ok
}

func (d *mapDedupe) record(id uint64, a rules.Action, sum uint32, _ uint16) {
	if len(d.current) >= d.capacity {
		clear(d.previous)
		d.previous, d.current = d.current, d.previous
	}
	d.current[id] = mapEntry{a, sum}
}

// BenchmarkDedupe measures one miss-then-record, the path of every fresh
// event, at the reference benchmark's capacity, for the table and for the
// two maps it replaced.
func BenchmarkDedupe(b *testing.B) {
	type recorder interface {
		seen(uint64) (rules.Action, uint32, bool)
		record(uint64, rules.Action, uint32, uint16)
	}
	for _, tc := range []struct {
		name string
		d    recorder
	}{
		{"table", newDedupe(1 << 20)},
		{"two_maps", newMapDedupe(1 << 20)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := uint64(14695981039346656037)
			for i := range 3 << 20 { // fill both generations
				tc.d.record(h^uint64(i)*1099511628211, rules.Allow, 1, 0)
			}
			b.ReportAllocs()
			i := uint64(3 << 20)
			for b.Loop() {
				id := h ^ i*1099511628211
				if _, _, ok := tc.d.seen(id); !ok {
					tc.d.record(id, rules.Allow, 1, 0)
				}
				i++
			}
		})
	}
}

// TestDedupeAdoptTakesEveryGeneration: an id held in both generations (seen
// as another instance's, then decided here after a rotation) and forgotten
// when its partition moved away reads as decided once its partition's
// state is taken over again, whichever generation seen looks at first.
func TestDedupeAdoptTakesEveryGeneration(t *testing.T) {
	d := newDedupe(2)
	const id, tag = 77, 3 // partition 2
	d.record(id, observedOnly, 9, tag)
	d.record(1, rules.Allow, 1, tag)
	d.record(2, rules.Allow, 1, tag) // rotates: id is in the older generation
	d.record(id, rules.Block, 9, tag)
	if n := d.forget(func(p int) bool { return p == 2 }); n == 0 {
		t.Fatal("forget changed nothing")
	}
	if a, _, _ := d.seen(id); a != observedOnly {
		t.Fatalf("after forget the id reads %v, want observed only", a)
	}
	if !d.adopt(remembered{id: id, action: rules.Block, sum: 9, tag: tag}) {
		t.Fatal("adopt found no observed-only entry")
	}
	for g := range 2 {
		if j := d.find(id, g); j >= 0 && d.acts[j] != rules.Block {
			t.Fatalf("generation %d still holds the id as %v", g, d.acts[j])
		}
	}
	if a, _, _ := d.seen(id); a != rules.Block {
		t.Fatalf("after adopt the id reads %v, want block", a)
	}
}
