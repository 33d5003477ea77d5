package chstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Actions of an account_suppressions row.
const (
	// SuppressionSuppress: a rule was suppressed for the account until Until.
	SuppressionSuppress = "suppress"
	// SuppressionLift: a suppression was lifted before its end.
	SuppressionLift = "lift"
)

// SuppressionRow is one suppression of a rule for one account, or its
// early lift, by support or an analyst through the API.
type SuppressionRow struct {
	AccountID string
	// RuleID is the suppressed (or lifted) rule.
	RuleID string
	// Action is SuppressionSuppress or SuppressionLift.
	Action string
	// Until is when a suppression ends (wall clock, ms precision); zero
	// for a lift.
	Until time.Time
	// Reason is the audited reason the actor gave.
	Reason string
	// Actor identifies who did it ("api:alice").
	Actor string
	// At is when it was done (ms precision).
	At time.Time
	// RequestID is the idempotency key: a retried write of the same
	// request collapses into one row.
	RequestID string
}

const suppressionColumns = "account_id, time, ts_ms, rule_id, action, until, until_ms, reason, actor, request_id"

// WriteSuppression records a suppression or a lift, retrying like
// WriteDecisions. It records; enforcing it is the engine's job.
func (s *Store) WriteSuppression(ctx context.Context, r SuppressionRow) error {
	switch {
	case r.AccountID == "" || r.RuleID == "":
		return errors.New("chstore: write suppression: empty account or rule id")
	case r.Action != SuppressionSuppress && r.Action != SuppressionLift:
		return fmt.Errorf("chstore: write suppression %s/%s: action %q: want suppress or lift", r.AccountID, r.RuleID, r.Action)
	case r.At.IsZero() || r.RequestID == "":
		return fmt.Errorf("chstore: write suppression %s/%s: the time and request id are required (a retry must collapse)", r.AccountID, r.RuleID)
	}
	var untilMs int64
	if !r.Until.IsZero() {
		untilMs = r.Until.UnixMilli()
	}
	in := insert{table: "account_suppressions", columns: suppressionColumns,
		rows: [][]any{{r.AccountID, dateTime(r.At), r.At.UnixMilli(), r.RuleID, r.Action, dateTime(r.Until), untilMs,
			r.Reason, r.Actor, r.RequestID}}}
	return s.retry(ctx, "write "+r.Action+" "+r.AccountID+"/"+r.RuleID, func(ctx context.Context) error { return s.send(ctx, in) })
}

// SuppressionHistory returns an account's suppressions and lifts, newest
// first, at most limit of them.
func (s *Store) SuppressionHistory(ctx context.Context, accountID string, limit int) ([]SuppressionRow, error) {
	q := "SELECT rule_id, action, until_ms, reason, actor, ts_ms, request_id FROM " + s.table("account_suppressions") +
		" FINAL WHERE account_id = ? ORDER BY ts_ms DESC, action, rule_id, request_id LIMIT ?"
	rows, err := s.conn.Query(ctx, q, accountID, uint64(max(limit, 0)))
	if err != nil {
		return nil, fmt.Errorf("chstore: suppression history: %w", err)
	}
	defer rows.Close()
	var out []SuppressionRow
	for rows.Next() {
		r := SuppressionRow{AccountID: accountID}
		var untilMs, ms int64
		if err := rows.Scan(&r.RuleID, &r.Action, &untilMs, &r.Reason, &r.Actor, &ms, &r.RequestID); err != nil {
			return nil, fmt.Errorf("chstore: suppression history: %w", err)
		}
		r.Until, r.At = msTime(untilMs), time.UnixMilli(ms).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: suppression history: %w", err)
	}
	return out, nil
}

// ErrTooManySuppressions is returned by SupportSuppressions when the span
// holds more suppressions and lifts than the limit asked for.
var ErrTooManySuppressions = errors.New("too many suppressions")

// SupportSuppressions returns the suppressions and lifts with ts_ms in
// [fromMs, toMs), oldest first (in each millisecond by account, action,
// rule), at most limit of them; more is ErrTooManySuppressions. A backtest
// applies them between the events, as SupportLocks' rows.
func (s *Store) SupportSuppressions(ctx context.Context, fromMs, toMs int64, limit int) ([]SuppressionRow, error) {
	q := "SELECT account_id, rule_id, action, until_ms, reason, actor, ts_ms, request_id FROM " + s.table("account_suppressions") +
		" FINAL WHERE time >= toDateTime(?) AND time <= toDateTime(?) AND ts_ms >= ? AND ts_ms < ?" +
		" ORDER BY ts_ms, account_id, action DESC, rule_id, request_id LIMIT ?"
	rows, err := s.conn.Query(ctx, q, append(spanArgs(fromMs, toMs), uint64(max(limit, 0))+1)...)
	if err != nil {
		return nil, fmt.Errorf("chstore: support suppressions: %w", err)
	}
	defer rows.Close()
	var out []SuppressionRow
	for rows.Next() {
		if len(out) == limit {
			return nil, fmt.Errorf("chstore: support suppressions: %w: more than %d between %s and %s", ErrTooManySuppressions, limit,
				time.UnixMilli(fromMs).UTC().Format(time.RFC3339), time.UnixMilli(toMs).UTC().Format(time.RFC3339))
		}
		var r SuppressionRow
		var untilMs, ms int64
		if err := rows.Scan(&r.AccountID, &r.RuleID, &r.Action, &untilMs, &r.Reason, &r.Actor, &ms, &r.RequestID); err != nil {
			return nil, fmt.Errorf("chstore: support suppressions: %w", err)
		}
		r.Until, r.At = msTime(untilMs), time.UnixMilli(ms).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: support suppressions: %w", err)
	}
	return out, nil
}

// msTime is a stored Unix-ms time, with 0 for none.
func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
