package features

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"riskd/event"
)

// A sequence feature is 1 for an event that completes its steps: the
// event matches the last step, and earlier events of the same entity
// matched the earlier steps in order, each dated strictly before the next
// (the last before the current event), the first no more than within
// before the current event, and those of them (and the current event)
// that carry the link field agree on its value. 0 otherwise.
//
// State: each event not late for its entity that matches an earlier step
// (its type, or "*", and the where clause) is kept as an occurrence of
// that step, after the read (an event is never its own earlier step):
// a time item (x: event time ms, tag seqTime|step) followed, when the
// link is set and the event carries it, by a link item (x: hash of the
// value, tag step). Per step the seqKeep latest occurrences by event
// time are kept; the items of a feature keep their order, so a link item
// is the item of its feature just after its time item (as for last).
//
// The feature's buckets are sized so that whatever the entity holds
// covers within plus Config.LateTolerance behind its latest time: every
// occurrence an event not late for its entity may need is still there.
// A read then is exact unless a step had more than seqKeep occurrences
// dated from the current event's time minus within on (counting those
// dated after it, which an as-of read skips): the earliest of them are
// forgotten, and a chain through them (an older occurrence with the
// right link, or one before an as-of read's time) is missed. Nothing is
// ever found that did not happen (up to 64-bit hash collisions of link
// values). An event late for its entity is not kept and reads what the
// entity still holds, which may lack the oldest steps it needs.

// seqKeep is how many occurrences of each step an entity keeps per
// sequence feature.
const seqKeep = 4

// seqTime tags a time item; the low two bits of a tag are the step.
const seqTime = 4

// seqSpec is a compiled sequence.
type seqSpec struct {
	steps    []string
	any      uint8 // steps of type "*"
	last     uint8 // the bit of the last step
	link     int   // index of the link field in Set.fields, -1: none
	withinMs int64
}

// seqOcc is one kept occurrence of a step, read out of an entity's items.
type seqOcc struct {
	ts   int64
	link uint64 // 0: the event did not carry the link field
	step uint8
}

// compileSequence compiles d's steps and picks the bucket width: the
// entity keeps the buckets (floor(t/width) - Buckets, floor(t/width)]
// as of its latest time t, which cover at least (Buckets-1)*width, and
// that must reach within plus the late tolerance back.
func compileSequence(d Definition, cfg Config) (*seqSpec, int64, error) {
	if cfg.Buckets < 2 {
		return nil, 0, fmt.Errorf("a sequence needs features buckets of 2 or more, not %d", cfg.Buckets)
	}
	sp := &seqSpec{steps: append([]string(nil), d.Steps...), link: -1, withinMs: d.Window.Milliseconds(),
		last: 1 << (len(d.Steps) - 1)}
	if sp.withinMs <= 0 {
		return nil, 0, fmt.Errorf("bad within %v: must be at least a millisecond", d.Window)
	}
	for k, t := range d.Steps {
		if t == "*" {
			sp.any |= 1 << k
		}
	}
	reach := sp.withinMs + cfg.LateTolerance.Milliseconds()
	n := int64(cfg.Buckets - 1)
	return sp, (reach + n - 1) / n, nil
}

// sequenceID is what a snapshot records as a sequence's "of": its steps,
// each prefixed with its length so that no two lists read the same, and
// its link, canonical. Steps and link are bounded (maxStepName), so it
// stays within what a snapshot's reader accepts.
func sequenceID(d Definition) string {
	var b strings.Builder
	for k, t := range d.Steps {
		if k > 0 {
			b.WriteString(" > ")
		}
		b.WriteString(strconv.Itoa(len(t)))
		b.WriteByte(':')
		b.WriteString(t)
	}
	if d.Link != "" {
		b.WriteString(" link ")
		b.WriteString(event.CanonicalField(d.Link))
	}
	return b.String()
}

// stepsOf returns the steps ev matches by type (bit k: step k).
func (sp *seqSpec) stepsOf(ev *event.Event) uint8 {
	m := sp.any
	for k, t := range sp.steps {
		if t == ev.Type {
			m |= 1 << k
		}
	}
	return m
}

// sequences reads group g's sequence features for ev into out and, when
// ev was not late for entity e (added), keeps it as an occurrence of the
// earlier steps it matches. It runs after fill, which has dropped what
// left the entity's buckets.
func (st *Store) sequences(e *window, g *group, ev *event.Event, added bool, out *Values) {
	s := st.set
	for m := g.seq; m != 0; m &= m - 1 {
		i := bits.TrailingZeros64(m)
		f := &s.feats[i]
		sp := f.seq
		steps := sp.stepsOf(ev)
		if steps == 0 || !f.match(ev, &st.vm) {
			continue
		}
		var link uint64
		if sp.link >= 0 {
			if h, ok := st.fieldHash(sp.link, ev); ok {
				link = max(h, 1) // 0 stands for no value
			}
		}
		if steps&sp.last != 0 && st.chain(e, uint32(i), sp, ev.TS, link) {
			out.Windows[i] = 1
		}
		if earlier := steps &^ sp.last; added && earlier != 0 {
			st.addSteps(e, uint32(i), earlier, uint32(st.bucket[s.lanes[i]]), ev.TS, link)
		}
	}
}

// chain reports whether entity e holds occurrences of feature i's
// earlier steps that the event at ts with link value link completes.
func (st *Store) chain(e *window, i uint32, sp *seqSpec, ts int64, link uint64) bool {
	from := ts - sp.withinMs
	occ := st.occ[:0]
	for j := range e.items {
		c := &e.items[j]
		if c.fn>>24 != i {
			continue
		}
		tag := c.fn & cellMaxN
		if tag&seqTime != 0 {
			occ = append(occ, seqOcc{ts: int64(c.x), step: uint8(tag & 3)})
		} else if len(occ) > 0 {
			occ[len(occ)-1].link = c.x
		}
	}
	st.occ = occ
	// Keep what the read may use: dated in [ts-within, ts).
	k := 0
	for _, o := range occ {
		if o.ts >= from && o.ts < ts {
			occ[k] = o
			k++
		}
	}
	occ = occ[:k]
	if link != 0 {
		return chainWith(occ, len(sp.steps), ts, link)
	}
	// The current event has no link value: the earlier steps' values must
	// agree among themselves; try each one seen, and none.
	for _, o := range occ {
		if o.link != 0 && chainWith(occ, len(sp.steps), ts, o.link) {
			return true
		}
	}
	return chainWith(occ, len(sp.steps), ts, 0)
}

// chainWith reports whether occ holds steps 0..n-2, each dated strictly
// before the next and the last before ts, whose link values are link or
// none (link 0: none only). Taking the latest fitting occurrence of each
// step from the last back is optimal: a later choice leaves every choice
// an earlier step had.
func chainWith(occ []seqOcc, n int, ts int64, link uint64) bool {
	bound := ts
	for k := n - 2; k >= 0; k-- {
		best, found := int64(0), false
		for _, o := range occ {
			if int(o.step) == k && o.ts < bound && (o.link == 0 || o.link == link) && (!found || o.ts > best) {
				best, found = o.ts, true
			}
		}
		if !found {
			return false
		}
		bound = best
	}
	return true
}

// addSteps keeps the event at ts as an occurrence of feature i's steps
// in mask, in bucket b, then forgets the earliest occurrence of each
// step beyond seqKeep (on equal times the one kept first).
func (st *Store) addSteps(e *window, i uint32, mask uint8, b uint32, ts int64, link uint64) {
	for m := mask; m != 0; m &= m - 1 {
		k := uint32(bits.TrailingZeros8(m))
		e.appendItem(item{x: uint64(ts), b: b, fn: i<<24 | seqTime | k})
		if link != 0 {
			e.appendItem(item{x: link, b: b, fn: i<<24 | k})
		}
	}
	drops := 0
	for m := mask; m != 0; m &= m - 1 {
		k := uint32(bits.TrailingZeros8(m))
		n, first := 0, -1
		for j := range e.items {
			c := &e.items[j]
			if c.fn == i<<24|seqTime|k {
				if n++; first < 0 || int64(c.x) < int64(e.items[first].x) {
					first = j
				}
			}
		}
		if n <= seqKeep {
			continue
		}
		e.items[first].fn = dropped
		drops++
		for j := first + 1; j < len(e.items); j++ {
			if c := &e.items[j]; c.fn>>24 == i {
				if c.fn&seqTime == 0 {
					c.fn = dropped // its link item
				}
				break
			}
		}
	}
	if drops == 0 {
		return
	}
	e.removeDropped()
}
