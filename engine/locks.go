package engine

import (
	"maps"
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
}

type lockEntry struct {
	// untilMs is the wall-clock time (Unix ms) at which the lock ends.
	untilMs int64
	// ruleID is the rule (or "support") that set the lock.
	ruleID string
}

func newLockTable() *lockTable { return &lockTable{byAccount: make(map[uint64]lockEntry)} }

func (t *lockTable) clone() *lockTable { return &lockTable{byAccount: maps.Clone(t.byAccount)} }

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
func (t *lockTable) lock(account uint64, untilMs int64, ruleID string) int64 {
	if e, ok := t.byAccount[account]; ok && e.untilMs >= untilMs {
		return e.untilMs
	}
	t.byAccount[account] = lockEntry{untilMs: untilMs, ruleID: ruleID}
	return untilMs
}

// unlock removes a lock (support verified the owner) and reports whether
// there was one.
func (t *lockTable) unlock(account uint64) bool {
	_, ok := t.byAccount[account]
	delete(t.byAccount, account)
	return ok
}

// LockState is an account's lock in force, as the engine enforces it: what
// support sees as "locked now" beside the stored history.
type LockState struct {
	// Until is when the lock ends, on the wall clock.
	Until time.Time
	// By is the rule id that locked, or "support:<token name>".
	By string
}

// LockState reports the lock in force on accountID now (the Scorer's wall
// clock); false when there is none. Like Lock it runs on the owning shard
// (Engine.Do), and drops the lock if it has expired.
func (s *Scorer) LockState(accountID string) (LockState, bool) {
	h := keyhash.String(accountID)
	until, ok := s.locks.lockedUntil(h, s.now().UnixMilli())
	if !ok {
		return LockState{}, false
	}
	return LockState{Until: time.UnixMilli(until).UTC(), By: s.locks.byAccount[h].ruleID}, true
}
