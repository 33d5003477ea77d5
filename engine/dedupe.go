package engine

import "riskd/rules"

// dedupe remembers the event ids a shard decided recently, with the action
// taken, so a redelivered event repeats its decision instead of counting in
// the features twice. It is bounded: two generations of at most capacity
// entries each; when the current one fills, the older is dropped. An id is
// therefore remembered for at least capacity later events of the shard.
type dedupe struct {
	capacity int
	current  map[uint64]rules.Action
	previous map[uint64]rules.Action
}

func newDedupe(capacity int) *dedupe {
	if capacity < 1 {
		capacity = 1
	}
	return &dedupe{
		capacity: capacity,
		current:  make(map[uint64]rules.Action, capacity),
		previous: make(map[uint64]rules.Action, capacity),
	}
}

// seen reports the action recorded for id, if it was decided recently.
func (d *dedupe) seen(id uint64) (rules.Action, bool) {
	if a, ok := d.current[id]; ok {
		return a, true
	}
	a, ok := d.previous[id]
	return a, ok
}

// record stores id's action, rotating generations when the current is full.
// Rotation reuses the older map's storage, so steady state does not allocate.
func (d *dedupe) record(id uint64, a rules.Action) {
	if len(d.current) >= d.capacity {
		clear(d.previous)
		d.previous, d.current = d.current, d.previous
	}
	d.current[id] = a
}
