package engine

import (
	"iter"
	"math/bits"
	"slices"

	"riskd/rules"
)

// dedupe remembers the event ids a shard decided recently, with the action
// taken and a fingerprint of the event's content, so a redelivered event
// repeats its decision instead of counting in the features twice, and an
// event that reuses an id with another body is told apart from one. It is bounded: two generations of at most capacity
// entries each; when the current one fills, the older is dropped. An id is
// therefore remembered for at least capacity later events of the shard, and
// for at most 2*capacity.
//
// The ids are the 64-bit hashes of event ids, kept by open addressing
// (linear probing) rather than in Go maps: every fresh event misses, and a
// miss in a map of a million entries costs several cache misses. Both
// generations share one array, interleaved: slot i of generation g is
// keys[2*i+g]. An id hashes to the same slot in both, so the lookup of a
// fresh id, which must check both generations, usually reads one cache
// line. The checkpoint reads and writes it only through len, all and record.
type dedupe struct {
	capacity int
	keys     []uint64       // 2 per slot; 0 marks an empty entry
	acts     []rules.Action // the action of keys[j]
	sums     []uint32       // the content fingerprint of keys[j]; 0 is unknown
	// tags is the input partition of keys[j]'s event plus one, 0 for none
	// (the decide API): the entries of a partition that moves to another
	// instance change there and here (adopt, forget).
	tags  []uint16
	shift uint   // 64 - log2(slots): the slot is the top bits of the mixed id
	cur   int    // the generation record writes to, 0 or 1
	n     [2]int // ids held per generation, the zero id included
	// The id 0 cannot be stored in keys (it marks empty), so it lives here.
	hasZero [2]bool
	zeroAct [2]rules.Action
	zeroSum [2]uint32
	zeroTag [2]uint16
}

// newDedupe makes a dedupe of capacity ids per generation, or none (nil,
// which remembers nothing: every method is a no-op) for a negative
// capacity (NoDedupe).
func newDedupe(capacity int) *dedupe {
	if capacity < 0 {
		return nil
	}
	if capacity < 1 {
		capacity = 1
	}
	// At least 1.5 slots per id a generation may hold keeps the load of a
	// full generation at most 2/3 and probe runs short.
	slots := 1 << bits.Len(uint(capacity+capacity/2-1))
	if slots < 8 {
		slots = 8
	}
	return &dedupe{
		capacity: capacity,
		keys:     make([]uint64, 2*slots),
		acts:     make([]rules.Action, 2*slots),
		sums:     make([]uint32, 2*slots),
		tags:     make([]uint16, 2*slots),
		shift:    uint(64 - bits.TrailingZeros(uint(slots))),
	}
}

func (d *dedupe) clone() *dedupe {
	if d == nil {
		return nil
	}
	c := *d
	c.keys, c.acts, c.sums, c.tags = slices.Clone(d.keys), slices.Clone(d.acts), slices.Clone(d.sums), slices.Clone(d.tags)
	return &c
}

// slot is where id's probe sequence starts. The ids are FNV-1a hashes whose
// low bits mix poorly; multiplying by 2^64/phi and taking the top bits
// spreads every input bit over the index.
func (d *dedupe) slot(id uint64) int {
	return int((id * 0x9e3779b97f4a7c15) >> d.shift)
}

// find returns the index in keys of id in generation g, or -1.
func (d *dedupe) find(id uint64, g int) int {
	mask := len(d.keys)/2 - 1
	for i := d.slot(id); ; i = (i + 1) & mask {
		switch d.keys[2*i+g] {
		case id:
			return 2*i + g
		case 0:
			return -1
		}
	}
}

// seen reports the action and fingerprint recorded for id, if it was
// decided recently. The current generation wins if both hold id (only a
// restore can do that).
func (d *dedupe) seen(id uint64) (rules.Action, uint32, bool) {
	if d == nil {
		return 0, 0, false
	}
	for _, g := range [2]int{d.cur, 1 - d.cur} {
		if id == 0 {
			if d.hasZero[g] {
				return d.zeroAct[g], d.zeroSum[g], true
			}
			continue
		}
		if j := d.find(id, g); j >= 0 {
			return d.acts[j], d.sums[j], true
		}
	}
	return 0, 0, false
}

// record stores id's action in the current generation, first dropping the
// older generation and making it current if the current one is full.
// Dropping clears every other word of the arrays, once per capacity events;
// nothing is allocated after newDedupe.
func (d *dedupe) record(id uint64, a rules.Action, sum uint32, tag uint16) {
	if d == nil {
		return
	}
	if d.n[d.cur] >= d.capacity {
		d.cur = 1 - d.cur
		d.drop(d.cur)
	}
	g := d.cur
	if id == 0 {
		if !d.hasZero[g] {
			d.n[g]++
		}
		d.hasZero[g], d.zeroAct[g], d.zeroSum[g], d.zeroTag[g] = true, a, sum, tag
		return
	}
	mask := len(d.keys)/2 - 1
	for i := d.slot(id); ; i = (i + 1) & mask {
		j := 2*i + g
		switch d.keys[j] {
		case id:
			d.acts[j], d.sums[j], d.tags[j] = a, sum, tag
			return
		case 0: // n < capacity < slots, so an empty entry exists
			d.keys[j], d.acts[j], d.sums[j], d.tags[j] = id, a, sum, tag
			d.n[g]++
			return
		}
	}
}

// drop empties generation g.
func (d *dedupe) drop(g int) {
	for j := g; j < len(d.keys); j += 2 {
		d.keys[j], d.acts[j], d.sums[j], d.tags[j] = 0, 0, 0, 0
	}
	d.n[g], d.hasZero[g], d.zeroAct[g], d.zeroSum[g], d.zeroTag[g] = 0, false, 0, 0, 0
}

// len returns how many ids are remembered (both generations; an id recorded
// again after a rotation counts twice until the older copy is dropped).
func (d *dedupe) len() int {
	if d == nil {
		return 0
	}
	return d.n[0] + d.n[1]
}

// observedOnly is the action remembered for an event added to the shared
// entity windows only (Part PartShared): seen, not decided here.
const observedOnly rules.Action = 0xff

// remembered is one entry of the table, as the checkpoint stores it.
type remembered struct {
	id     uint64
	action rules.Action
	sum    uint32
	tag    uint16
}

// all yields every remembered entry, older generation first, so recording
// them in that order into an empty dedupe of the same capacity rebuilds the
// same two generations.
func (d *dedupe) all() iter.Seq[remembered] {
	return func(yield func(remembered) bool) {
		if d == nil {
			return
		}
		for _, g := range [2]int{1 - d.cur, d.cur} {
			if d.hasZero[g] && !yield(remembered{0, d.zeroAct[g], d.zeroSum[g], d.zeroTag[g]}) {
				return
			}
			for j := g; j < len(d.keys); j += 2 {
				if d.keys[j] != 0 && !yield(remembered{d.keys[j], d.acts[j], d.sums[j], d.tags[j]}) {
					return
				}
			}
		}
	}
}

// forget turns the decisions of the events of the partitions in parts
// into observedOnly entries: the partition moved to another instance,
// this one keeps its events in the shared entity windows only, and should
// the partition come back its events are decided here again for the
// account's part (engine.PartAccount). It returns how many it changed.
func (d *dedupe) forget(parts func(p int) bool) int {
	if d == nil {
		return 0
	}
	n := 0
	for g := range 2 {
		if d.hasZero[g] && d.zeroTag[g] != 0 && d.zeroAct[g] != observedOnly && parts(int(d.zeroTag[g])-1) {
			d.zeroAct[g] = observedOnly
			n++
		}
	}
	for j, t := range d.tags {
		if t != 0 && d.keys[j] != 0 && d.acts[j] != observedOnly && parts(int(t)-1) {
			d.acts[j] = observedOnly
			n++
		}
	}
	return n
}

// adopt records the decision another instance made of an event this one
// holds as observedOnly (its partition moved here with that instance's
// state): a redelivery of it is then a duplicate, as it was there. An id
// this one does not hold is not added: the shared entity windows here may
// not hold its event yet, and an entry would keep them from adding it.
func (d *dedupe) adopt(r remembered) bool {
	if d == nil {
		return false
	}
	// Every generation that holds it: seen reads the current one first,
	// and a rotation can leave the id in both.
	adopted := false
	for g := range 2 {
		if r.id == 0 {
			if d.hasZero[g] && d.zeroAct[g] == observedOnly {
				d.zeroAct[g], d.zeroTag[g] = r.action, r.tag
				adopted = true
			}
			continue
		}
		if j := d.find(r.id, g); j >= 0 && d.acts[j] == observedOnly {
			d.acts[j], d.tags[j] = r.action, r.tag
			adopted = true
		}
	}
	return adopted
}
