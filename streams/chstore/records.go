package chstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// RuleSetRow is one load of a rule-set version.
type RuleSetRow struct {
	// Version is "SEQ-HASH8", as decisions record it in ruleset_version.
	Version string
	// Seq is the rule set's sequence number; Hash its content hash (the
	// full hash; Version carries the first 8 hex digits).
	Seq  uint64
	Hash string
	// LoadedAt is when the set went live; zero means now.
	LoadedAt time.Time
	// RuleCount is the number of rules in the set, shadow rules included.
	RuleCount int
	// Source says where the set came from, e.g. "dir:/etc/riskd/rules" or
	// "api:alice".
	Source string
}

// LockRow is a lock or unlock done outside the rules: by a support agent
// after verifying the owner, or through the API.
type LockRow struct {
	AccountID string
	// Action is "lock" or "unlock".
	Action string
	// Reason is the audited reason the actor gave.
	Reason string
	// Until is when a lock ends; zero for an unlock or an open-ended lock.
	Until time.Time
	// Actor identifies who did it ("support:agent-17", "api:ops").
	Actor string
	// At is when it was done; zero means now. Give it explicitly when the
	// caller may retry the same call, so the retry collapses.
	At time.Time
	// RequestID is the idempotency key stored in event_id; empty means one
	// derived from account, action and At (in ms).
	RequestID string
}

// WriteRuleSet records that a rule-set version was loaded, retrying like
// WriteDecisions.
func (s *Store) WriteRuleSet(ctx context.Context, r RuleSetRow) error {
	if r.Version == "" {
		return errors.New("chstore: write ruleset: empty version")
	}
	at := r.LoadedAt
	if at.IsZero() {
		at = time.Now()
	}
	in := insert{table: "rulesets", columns: "version, seq, hash, loaded_at, loaded_at_ms, rule_count, source",
		rows: [][]any{{r.Version, r.Seq, r.Hash, dateTime(at), at.UnixMilli(), uint32(max(r.RuleCount, 0)), r.Source}}}
	return s.retry(ctx, "write ruleset "+r.Version, func(ctx context.Context) error { return s.send(ctx, in) })
}

// WriteLock records a lock or unlock by support or the API, retrying like
// WriteDecisions. It records; enforcing the lock is the engine's job.
func (s *Store) WriteLock(ctx context.Context, r LockRow) error {
	if r.AccountID == "" {
		return errors.New("chstore: write lock: empty account id")
	}
	if r.Action != "lock" && r.Action != "unlock" {
		return fmt.Errorf("chstore: write lock %s: action %q: want lock or unlock", r.AccountID, r.Action)
	}
	at := r.At
	if at.IsZero() {
		at = time.Now()
	}
	id := r.RequestID
	if id == "" {
		id = "manual:" + r.AccountID + ":" + r.Action + ":" + strconv.FormatInt(at.UnixMilli(), 10)
	}
	in := insert{table: "account_locks", columns: lockColumns,
		rows: [][]any{{r.AccountID, dateTime(at), at.UnixMilli(), r.Action, r.Reason, dateTime(r.Until), r.Actor, id, ""}}}
	return s.retry(ctx, "write "+r.Action+" "+r.AccountID, func(ctx context.Context) error { return s.send(ctx, in) })
}
