package notify

import "time"

// throttle remembers, per key, until when repeats are suppressed. Its
// memory is bounded: keys expire in the order they were recorded (every key
// gets the same interval), so a FIFO of recordings finds the expired ones in
// amortised O(1), and when the map is full the oldest key is forgotten
// early. Not safe for concurrent use; the Notifier's mutex guards it.
type throttle struct {
	every time.Duration
	limit int
	until map[string]time.Time
	fifo  []throttleEntry // recordings, oldest first, from head
	head  int
}

type throttleEntry struct {
	key   string
	until time.Time
}

func newThrottle(every time.Duration, limit int) *throttle {
	return &throttle{every: every, limit: limit, until: map[string]time.Time{}}
}

// allow reports whether key may pass at now, and if so records it.
func (t *throttle) allow(key string, now time.Time) bool {
	t.expire(now)
	if u, ok := t.until[key]; ok && now.Before(u) {
		return false
	}
	for len(t.until) >= t.limit && t.head < len(t.fifo) {
		t.pop()
	}
	u := now.Add(t.every)
	t.until[key] = u
	t.fifo = append(t.fifo, throttleEntry{key, u})
	return true
}

// expire forgets keys whose interval is over.
func (t *throttle) expire(now time.Time) {
	for t.head < len(t.fifo) && !now.Before(t.fifo[t.head].until) {
		t.pop()
	}
	// Reclaim the consumed front once it is most of the slice.
	if t.head > 1024 && t.head*2 > len(t.fifo) {
		t.fifo = append(t.fifo[:0], t.fifo[t.head:]...)
		t.head = 0
	}
}

// pop drops the oldest recording, and its key unless the key was recorded
// again since (a clock that stepped back can do that).
func (t *throttle) pop() {
	e := t.fifo[t.head]
	t.fifo[t.head] = throttleEntry{}
	t.head++
	if u, ok := t.until[e.key]; ok && u.Equal(e.until) {
		delete(t.until, e.key)
	}
}

// size is the number of keys remembered.
func (t *throttle) size() int { return len(t.until) }
