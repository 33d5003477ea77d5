package engine

import (
	"maps"
	"math"
	"time"

	"riskd/internal/keyhash"
)

// lockTable holds the accounts a shard has locked. Expiry runs on the wall
// clock (the Scorer's Config.Now), for support's locks and rules' locks
// alike: a rule lock lasts lock_for from when it was decided. On event time
// one event dated ahead (a wrong clock, or a fraudster's) would lift any
// lock. The price: a replay of old events does not lock and unlock at the
// same points as the first run did.
type lockTable struct {
	byAccount map[uint64]lockEntry
	// lifted is when support last unlocked each account (wall clock, Unix
	// ms), for liftedKeep: a partition's state restored from a snapshot
	// cut before an unlock must not bring the lock back
	// (RestorePartitions).
	lifted map[uint64]int64
}

// liftedKeep is how long an unlock is remembered against restored locks:
// longer than any snapshot a restore would still use.
const liftedKeep = 24 * time.Hour

// noteLifted records that support unlocked account at nowMs, forgetting
// unlocks older than liftedKeep once the table has grown.
func (t *lockTable) noteLifted(account uint64, nowMs int64) {
	if t.lifted == nil {
		t.lifted = map[uint64]int64{}
	}
	if len(t.lifted) >= 4096 {
		for h, at := range t.lifted {
			if at < nowMs-liftedKeep.Milliseconds() {
				delete(t.lifted, h)
			}
		}
	}
	t.lifted[account] = nowMs
}

// liftedSince reports whether support unlocked account at or after
// sinceMs.
func (t *lockTable) liftedSince(account uint64, sinceMs int64) bool {
	at, ok := t.lifted[account]
	return ok && at >= sinceMs
}

type lockEntry struct {
	// untilMs is the wall-clock time (Unix ms) at which the lock ends;
	// IndefiniteMs for a lock that lasts until support unlocks.
	untilMs int64
	// ruleID is the rule (or "support") that set the lock.
	ruleID string
	// tag is the input partition, plus one, of the event whose decision
	// set the lock; 0 for a lock support set, which every instance of a
	// fleet holds already (they all follow risk.actions), so it does not
	// move with the account's partition.
	tag uint16
}

// IndefiniteMs is the untilMs of a lock without an end (a rule's
// lock_for: indefinite, support's "indefinite": true): no wall clock
// reaches it, so only an unlock lifts it, and it outlasts any other lock.
// The checkpoint stores it like any other until.
const IndefiniteMs = int64(math.MaxInt64)

// IndefiniteUntil is what a Decision's LockUntil holds for an indefinite
// lock: the last millisecond of year 9999, the latest time JSON (RFC 3339)
// can carry, so the decide answer and the stored decision stay readable.
// LockState.Indefinite says it exactly.
var IndefiniteUntil = time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)

// lockTime is the wall-clock time of a lock's untilMs, IndefiniteUntil for
// an indefinite one.
func lockTime(untilMs int64) time.Time {
	if untilMs == IndefiniteMs {
		return IndefiniteUntil
	}
	return time.UnixMilli(untilMs).UTC()
}

func newLockTable() *lockTable { return &lockTable{byAccount: make(map[uint64]lockEntry)} }

func (t *lockTable) clone() *lockTable {
	return &lockTable{byAccount: maps.Clone(t.byAccount), lifted: maps.Clone(t.lifted)}
}

// lockedUntil reports the end of an account's lock if it is in force at
// nowMs (wall clock), and drops an expired one.
func (t *lockTable) lockedUntil(account uint64, nowMs int64) (int64, bool) {
	e, ok := t.byAccount[account]
	if !ok {
		return 0, false
	}
	if nowMs >= e.untilMs {
		delete(t.byAccount, account)
		return 0, false
	}
	return e.untilMs, true
}

// lock sets or extends a lock; a shorter new lock never shortens a longer one.
func (t *lockTable) lock(account uint64, untilMs int64, ruleID string, tag uint16) int64 {
	if e, ok := t.byAccount[account]; ok && e.untilMs >= untilMs {
		return e.untilMs
	}
	t.byAccount[account] = lockEntry{untilMs: untilMs, ruleID: ruleID, tag: tag}
	return untilMs
}

// unlock removes a lock (support verified the owner) and reports whether
// there was one.
func (t *lockTable) unlock(account uint64) bool {
	_, ok := t.take(account)
	return ok
}

// take removes a lock and returns it, expired or not; false when there
// was none.
func (t *lockTable) take(account uint64) (lockEntry, bool) {
	e, ok := t.byAccount[account]
	delete(t.byAccount, account)
	return e, ok
}

// LockState is an account's lock in force, as the engine enforces it: what
// support sees as "locked now" beside the stored history.
type LockState struct {
	// Until is when the lock ends, on the wall clock; zero for an
	// indefinite lock.
	Until time.Time `json:"until,omitzero"`
	// Indefinite marks a lock without an end: only an unlock lifts it.
	Indefinite bool `json:"indefinite,omitempty"`
	// By is the rule id that locked, or "support:<token name>".
	By string `json:"by"`
}

// stateOf is the LockState of a lock entry.
func stateOf(e lockEntry) LockState {
	if e.untilMs == IndefiniteMs {
		return LockState{Indefinite: true, By: e.ruleID}
	}
	return LockState{Until: time.UnixMilli(e.untilMs).UTC(), By: e.ruleID}
}

// LockState reports the lock in force on accountID now (the Scorer's wall
// clock); false when there is none. Like Lock it runs on the owning shard
// (Engine.Do), and drops the lock if it has expired.
func (s *Scorer) LockState(accountID string) (LockState, bool) {
	h := keyhash.String(accountID)
	if _, ok := s.locks.lockedUntil(h, s.now().UnixMilli()); !ok {
		return LockState{}, false
	}
	return stateOf(s.locks.byAccount[h]), true
}
