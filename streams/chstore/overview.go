package chstore

import (
	"context"
	"fmt"
	"time"
)

// The overview reads (the console's first page) count the recent
// decisions without FINAL: FINAL merges every part of the table by its
// key, which on a million stored decisions costs ten times the scan
// (0.4 s against 0.04 s here), and the first page must be quick. A
// decision stored twice before ClickHouse merges it (a retried insert)
// counts twice until the merge; the engine's own duplicates (original =
// 0) are left out. They filter on decided_at, as the "since" reads do.

// MinuteActions is how many decisions of one action were made in one
// minute, and how many of them were of late events.
type MinuteActions struct {
	// Minute is the minute's start, Unix milliseconds.
	Minute    int64
	Action    string
	Decisions uint64
	Late      uint64
}

// DecisionsPerMinute counts the decisions made since a time by minute of
// decided_at and action, ordered by minute then action.
func (s *Store) DecisionsPerMinute(ctx context.Context, since time.Time) ([]MinuteActions, error) {
	q := "SELECT intDiv(decided_at_ms, 60000) * 60000 AS minute, action, count(), countIf(late = 1) FROM " +
		s.table("decisions") + sinceFilter + " AND original = 1 GROUP BY minute, action ORDER BY minute, action"
	rows, err := s.conn.Query(ctx, q, sinceArgs(since)...)
	if err != nil {
		return nil, fmt.Errorf("chstore: decisions per minute: %w", err)
	}
	defer rows.Close()
	var out []MinuteActions
	for rows.Next() {
		var m MinuteActions
		if err := rows.Scan(&m.Minute, &m.Action, &m.Decisions, &m.Late); err != nil {
			return nil, fmt.Errorf("chstore: decisions per minute: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: decisions per minute: %w", err)
	}
	return out, nil
}

// RecentTopRules returns the n active rules that matched most decisions
// since a time, most hits first, ties by rule id: TopRules without FINAL.
func (s *Store) RecentTopRules(ctx context.Context, since time.Time, n int) ([]RuleCount, error) {
	if n <= 0 {
		return nil, nil
	}
	q := "SELECT rule, count() AS hits FROM " + s.table("decisions") + " ARRAY JOIN matched_rules AS rule" +
		sinceFilter + " AND original = 1 GROUP BY rule ORDER BY hits DESC, rule LIMIT ?"
	rows, err := s.conn.Query(ctx, q, append(sinceArgs(since), n)...)
	if err != nil {
		return nil, fmt.Errorf("chstore: recent top rules: %w", err)
	}
	defer rows.Close()
	var out []RuleCount
	for rows.Next() {
		var rc RuleCount
		if err := rows.Scan(&rc.RuleID, &rc.Hits); err != nil {
			return nil, fmt.Errorf("chstore: recent top rules: %w", err)
		}
		out = append(out, rc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: recent top rules: %w", err)
	}
	return out, nil
}

// RecentAlerts counts the alerts of the decisions made since a time (to
// the second: the alerts table keeps decided_at as a DateTime).
func (s *Store) RecentAlerts(ctx context.Context, since time.Time) (uint64, error) {
	var n uint64
	q := "SELECT count() FROM " + s.table("alerts") + " WHERE decided_at >= toDateTime(?)"
	if err := s.conn.QueryRow(ctx, q, dateTime(since).Unix()).Scan(&n); err != nil {
		return 0, fmt.Errorf("chstore: recent alerts: %w", err)
	}
	return n, nil
}

// RaisedAlert is one alert as the overview's list shows it.
type RaisedAlert struct {
	AccountID, EventID, RuleID, Action, Message string
	// EventTS is the event's time, Unix milliseconds; DecidedAt the
	// decision's, to the second.
	EventTS   int64
	DecidedAt time.Time
}

// MaxAlertList bounds AlertList's limit.
const MaxAlertList = 1000

// AlertList reads the newest alerts raised since a time (by decided_at,
// as RecentAlerts counts them), at most limit. Unlike the counts it reads
// with FINAL, so an alert stored twice is listed once; the alerts table is
// small and the read is bounded by the limit.
func (s *Store) AlertList(ctx context.Context, since time.Time, limit int) ([]RaisedAlert, error) {
	if limit < 1 || limit > MaxAlertList {
		return nil, fmt.Errorf("chstore: alert list: %w", &QueryError{Msg: fmt.Sprintf("limit %d: want 1 to %d", limit, MaxAlertList)})
	}
	q := "SELECT account_id, event_id, rule_id, action, message, event_ts_ms, decided_at FROM " + s.table("alerts") +
		" FINAL WHERE decided_at >= toDateTime(?) ORDER BY decided_at DESC, event_ts_ms DESC, account_id, event_id, rule_id LIMIT ?"
	rows, err := s.conn.Query(ctx, q, dateTime(since).Unix(), uint64(limit))
	if err != nil {
		return nil, fmt.Errorf("chstore: alert list: %w", err)
	}
	defer rows.Close()
	var out []RaisedAlert
	for rows.Next() {
		var a RaisedAlert
		if err := rows.Scan(&a.AccountID, &a.EventID, &a.RuleID, &a.Action, &a.Message, &a.EventTS, &a.DecidedAt); err != nil {
			return nil, fmt.Errorf("chstore: alert list: %w", err)
		}
		a.DecidedAt = a.DecidedAt.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: alert list: %w", err)
	}
	return out, nil
}
