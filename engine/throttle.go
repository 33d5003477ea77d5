package engine

import (
	"maps"
	"math"
	"time"
)

// DefaultAlertThrottle is Config.AlertThrottle's default: a rule alerts one
// account at most once per 10 minutes of event time.
const DefaultAlertThrottle = 10 * time.Minute

// alertThrottle holds back repeats of a user alert. Once a rule's alert
// has gone out to an account at event time s, every later alert of the same
// rule for the same account dated before s+window is throttled: recorded
// in Decision.ThrottledAlerts, sent nowhere. The first one dated s+window
// or later goes out and opens the next window. Each rule has its own
// window, so two rules alerting one account are throttled independently.
//
// The clock is the event's own time (ev.TS), not the wall clock. The
// throttle then depends only on the events and their order per account,
// like the feature windows and the locks: a replay, a restart from a
// checkpoint, or the same stream decided by 1 or N shards sends the same
// alerts and throttles the same ones, so every output (the alerts topic,
// the alerts table, webhooks, the live stream) agrees with the decision
// that made it. A wall-clock throttle would not: how many alerts a burst
// sends would depend on how fast it was read, and a backlog read after an
// outage would collapse into one alert. The price is that an event dated
// far in the future opens a window that far ahead, suppressing that rule's
// alerts for the account until event time catches up; bounding how far
// ahead of now an event may claim to be is the intake's job, not this
// table's. An event dated before the alert that opened the window (a late
// one) is inside it and throttled too: the user has just been told.
//
// State: one entry per account and rule whose last alert went out, 24
// bytes of key and time in a map. The shard's sweep (Scorer, every
// expireEvery events, on the sweeping event's time like the feature store)
// drops entries whose window has ended, so the table holds at most the
// (account, rule) pairs that alerted within one window of the shard's
// event time. An event of that account dated before a dropped window's end
// but decided after the sweep (more than a window behind events the shard
// has already decided) alerts again; feature windows have the same bound.
// The hot path (an event whose matched rules carry no alert) never touches
// the table; a checked alert is one map lookup, and a sent one one store.
// Not safe for concurrent use: its Scorer's goroutine owns it.
type alertThrottle struct {
	// windowMs is the throttle window in milliseconds; 0 turns it off.
	windowMs int64
	// sent holds, per account and rule, the event time (Unix ms) of the
	// last alert that went out.
	sent map[alertKey]int64
}

// alertKey is an account and a rule, both as keyhash values.
type alertKey struct {
	account, rule uint64
}

func (t *alertThrottle) clone() *alertThrottle {
	return &alertThrottle{windowMs: t.windowMs, sent: maps.Clone(t.sent)}
}

func newAlertThrottle(window time.Duration) *alertThrottle {
	return &alertThrottle{windowMs: max(window.Milliseconds(), 0), sent: make(map[alertKey]int64)}
}

// allow reports whether rule's alert for account, at event time tsMs, goes
// out, and records it when it does. When it does not, sentMs is the event
// time of the alert that opened the window holding it back.
func (t *alertThrottle) allow(account, rule uint64, tsMs int64) (sentMs int64, ok bool) {
	if t.windowMs == 0 {
		return 0, true
	}
	k := alertKey{account, rule}
	if s, found := t.sent[k]; found && tsMs < t.end(s) {
		return s, false
	}
	t.sent[k] = tsMs
	return 0, true
}

// end is the event time at which the window opened at sentMs ends; it
// saturates instead of wrapping for an event dated near the end of time.
func (t *alertThrottle) end(sentMs int64) int64 {
	if sentMs > math.MaxInt64-t.windowMs {
		return math.MaxInt64
	}
	return sentMs + t.windowMs
}

// expire drops the entries whose window has ended by event time nowMs and
// returns how many it dropped.
func (t *alertThrottle) expire(nowMs int64) int {
	n := 0
	for k, s := range t.sent {
		if t.end(s) <= nowMs {
			delete(t.sent, k)
			n++
		}
	}
	return n
}

// len is the number of (account, rule) pairs remembered.
func (t *alertThrottle) len() int { return len(t.sent) }
