package chstore

import (
	"context"
	"fmt"
	"time"

	"riskd/engine"
)

// Reads below use FINAL, so rows written twice count once even before
// ClickHouse merges them. They run once, without retry: they serve the demo
// summary and tests, where an error should surface.
//
// "since" filters on decided_at (a DateTime, for partition pruning and the
// index) and decided_at_ms (for millisecond exactness). An event-id prefix
// selects one run's events (the demo gives each run its own prefix); it is
// not a key prefix, so those reads scan the table.

// RuleCount is how many stored decisions an active rule matched.
type RuleCount struct {
	RuleID string
	Hits   uint64
}

// StoredDecision is a decision as read back from the decisions table.
type StoredDecision struct {
	EventID   string
	AccountID string
	EventType string
	// EventTime is the event time to the second; EventTS is Unix ms.
	EventTime time.Time
	EventTS   int64
	// DecidedAt is wall-clock decision time to the millisecond.
	DecidedAt time.Time
	// Action is the action's name as stored ("allow" ... "lock").
	Action string
	Score  int
	Reason string
	// MatchedRules, ShadowRules and ErroredRules are rule ids, in the
	// decision's order; RuleErrors parallels ErroredRules.
	MatchedRules []string
	ShadowRules  []string
	ErroredRules []string
	RuleErrors   []string
	// RuleSetVersion is the "SEQ-HASH8" of the rule set that decided.
	RuleSetVersion string
	Features       []engine.FeatureValue
	// Latency is stored in microseconds.
	Latency time.Duration
	// LockUntil is zero when the decision carried no lock (to the second).
	LockUntil time.Time
	Late      bool
	// LateFor names the entity groups the event was too late for
	// ("account", "device.id", ...); empty in rows stored before the
	// column existed.
	LateFor []string
	// Duplicate is true when only the engine's duplicate repeat was stored.
	Duplicate bool
	Source    engine.Source
}

const sinceFilter = " WHERE decided_at >= toDateTime(?) AND decided_at_ms >= ?"

// sinceArgs are the arguments of sinceFilter. The seconds are clamped to
// the DateTime range so that the zero time means "everything".
func sinceArgs(since time.Time) []any {
	return []any{dateTime(since).Unix(), since.UnixMilli()}
}

// CountDecisions counts distinct events decided at or after since.
func (s *Store) CountDecisions(ctx context.Context, since time.Time) (uint64, error) {
	var n uint64
	q := "SELECT uniqExact(event_id) FROM " + s.table("decisions") + " FINAL" + sinceFilter
	if err := s.conn.QueryRow(ctx, q, sinceArgs(since)...).Scan(&n); err != nil {
		return 0, fmt.Errorf("chstore: count decisions: %w", err)
	}
	return n, nil
}

// ActionCounts counts decisions per action name since a time.
func (s *Store) ActionCounts(ctx context.Context, since time.Time) (map[string]uint64, error) {
	q := "SELECT action, count() FROM " + s.table("decisions") + " FINAL" + sinceFilter + " GROUP BY action"
	rows, err := s.conn.Query(ctx, q, sinceArgs(since)...)
	if err != nil {
		return nil, fmt.Errorf("chstore: action counts: %w", err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var a string
		var n uint64
		if err := rows.Scan(&a, &n); err != nil {
			return nil, fmt.Errorf("chstore: action counts: %w", err)
		}
		out[a] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: action counts: %w", err)
	}
	return out, nil
}

// LateCount is how many decisions since a time were of late events
// (engine.Decision.Late), and how many of them were late for each entity
// group (engine.Decision.LateFor: "account", "device.id", ...); an event
// late for two groups counts under both. Decisions stored before
// late_for existed count in Events only.
type LateCount struct {
	Events   uint64
	ByReason map[string]uint64
}

// LateCounts counts the late decisions since a time, in total and by
// reason, in one query: each late decision is counted once under "" and
// once per group it names.
func (s *Store) LateCounts(ctx context.Context, since time.Time) (LateCount, error) {
	q := "SELECT reason, count() FROM " + s.table("decisions") + " FINAL ARRAY JOIN arrayPushFront(late_for, '') AS reason" +
		sinceFilter + " AND late = 1 GROUP BY reason"
	rows, err := s.conn.Query(ctx, q, sinceArgs(since)...)
	if err != nil {
		return LateCount{}, fmt.Errorf("chstore: late counts: %w", err)
	}
	defer rows.Close()
	out := LateCount{ByReason: map[string]uint64{}}
	for rows.Next() {
		var reason string
		var n uint64
		if err := rows.Scan(&reason, &n); err != nil {
			return LateCount{}, fmt.Errorf("chstore: late counts: %w", err)
		}
		if reason == "" {
			out.Events = n
		} else {
			out.ByReason[reason] = n
		}
	}
	if err := rows.Err(); err != nil {
		return LateCount{}, fmt.Errorf("chstore: late counts: %w", err)
	}
	return out, nil
}

// TopRules returns the n active rules that matched most decisions since a
// time, most hits first, ties by rule id. Shadow rules are not counted.
func (s *Store) TopRules(ctx context.Context, since time.Time, n int) ([]RuleCount, error) {
	if n <= 0 {
		return nil, nil
	}
	q := "SELECT rule, count() AS hits FROM " + s.table("decisions") + " FINAL ARRAY JOIN matched_rules AS rule" +
		sinceFilter + " GROUP BY rule ORDER BY hits DESC, rule LIMIT ?"
	rows, err := s.conn.Query(ctx, q, append(sinceArgs(since), n)...)
	if err != nil {
		return nil, fmt.Errorf("chstore: top rules: %w", err)
	}
	defer rows.Close()
	var out []RuleCount
	for rows.Next() {
		var rc RuleCount
		if err := rows.Scan(&rc.RuleID, &rc.Hits); err != nil {
			return nil, fmt.Errorf("chstore: top rules: %w", err)
		}
		out = append(out, rc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: top rules: %w", err)
	}
	return out, nil
}

// storedDecisionColumns are the columns readDecision scans, in its order.
const storedDecisionColumns = "event_id, account_id, event_type, event_time, event_ts_ms, decided_at_ms, action, score, reason, " +
	"matched_rules, shadow_rules, errored_rules, rule_errors, ruleset_version, feature_names, feature_values, " +
	"latency_us, lock_until, late, late_for, original, source_topic, source_partition, source_offset"

// DecisionByEvent reads the stored decision of one event; false when there
// is none. event_id is not a key prefix, so this scans the table: fine for
// support look-ups and tests, not for a hot path.
func (s *Store) DecisionByEvent(ctx context.Context, eventID string) (StoredDecision, bool, error) {
	q := "SELECT " + storedDecisionColumns + " FROM " + s.table("decisions") + " FINAL WHERE event_id = ? LIMIT 1"
	d, ok, err := s.readDecision(ctx, q, eventID)
	if err != nil {
		return StoredDecision{}, false, fmt.Errorf("chstore: decision %s: %w", eventID, err)
	}
	return d, ok, nil
}

// flaggedActions are the actions that count as catching an event: a person
// looks at it, or it is stopped (review, challenge, block, lock). allow and
// alert let it through.
const flaggedActions = "('review', 'challenge', 'block', 'lock')"

// ExampleDecision picks one decision, among the events whose id starts with
// eventIDPrefix, that a rule acted on, to show what a decision records: the
// strongest action first (lock, block, challenge, review), then one a
// matched rule decided rather than a score threshold or an earlier lock,
// then one that recorded feature values, then the earliest event. Only
// decisions with matched rules qualify; false when there is none. Like
// DecisionByEvent it scans the table.
func (s *Store) ExampleDecision(ctx context.Context, eventIDPrefix string) (StoredDecision, bool, error) {
	q := "SELECT " + storedDecisionColumns + " FROM " + s.table("decisions") + " FINAL" +
		" WHERE startsWith(event_id, ?) AND action IN " + flaggedActions + " AND notEmpty(matched_rules)" +
		" ORDER BY indexOf(['lock', 'block', 'challenge', 'review'], action), reason != '', empty(feature_names)," +
		" event_ts_ms, event_id LIMIT 1"
	d, ok, err := s.readDecision(ctx, q, eventIDPrefix)
	if err != nil {
		return StoredDecision{}, false, fmt.Errorf("chstore: example decision of %q: %w", eventIDPrefix, err)
	}
	return d, ok, nil
}

// readDecision runs q, which selects storedDecisionColumns, and scans its
// first row; false when there is none.
func (s *Store) readDecision(ctx context.Context, q string, args ...any) (StoredDecision, bool, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return StoredDecision{}, false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return StoredDecision{}, false, rows.Err()
	}
	d, err := scanDecision(rows)
	if err != nil {
		return StoredDecision{}, false, err
	}
	return d, true, nil
}

// DuplicateDecisionRows is count() - uniqExact(event_id) over decisions
// FINAL: 0 when writes are idempotent by event_id. ClickHouse types the
// difference Int64 (18.16 and current), hence the scan into int64.
func (s *Store) DuplicateDecisionRows(ctx context.Context) (uint64, error) {
	var n int64
	q := "SELECT count() - uniqExact(event_id) FROM " + s.table("decisions") + " FINAL"
	if err := s.conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("chstore: duplicate decision rows: %w", err)
	}
	return uint64(max(n, 0)), nil
}

// ScenarioDetection is how the decisions went for one label of the events
// whose id starts with a prefix. Labels come from the labels table (the
// traffic generator's scenario names); Label "" is the unlabelled, honest
// traffic. "Flagged" means review, challenge, block or lock.
type ScenarioDetection struct {
	// Label is the fraud scenario, or "" for honest events.
	Label string
	// Accounts counts the distinct accounts with events of the label: for
	// a scenario, the attacks (a scenario plays on one account, or on each
	// of the accounts it spreads over).
	Accounts uint64
	// AccountsFlagged counts the accounts with at least one of the label's
	// events flagged: for a scenario, the attacks caught.
	AccountsFlagged uint64
	// Events counts the label's decided events.
	Events uint64
	// EventsFlagged counts those flagged: for honest events, false alarms.
	EventsFlagged uint64
}

// Detection counts, per label, the decided events whose id starts with
// eventIDPrefix (one demo or backtest run's events share a prefix) and how
// many were flagged, ordered by label (so the honest row, "", comes first
// when there is one). A labelled event without a stored decision is not
// counted.
//
// The join is written for ClickHouse 18.16 as much as for current
// releases: subquery ANY LEFT JOIN subquery USING one key (18.16 joins
// nothing more), each subquery aliased (current releases require it), and
// an event with no label row gets the empty string, String's default.
func (s *Store) Detection(ctx context.Context, eventIDPrefix string) ([]ScenarioDetection, error) {
	q := "SELECT label, uniqExact(account_id), uniqExactIf(account_id, flagged), count(), countIf(flagged) FROM " +
		"(SELECT event_id, account_id, action IN " + flaggedActions + " AS flagged FROM " + s.table("decisions") +
		" FINAL WHERE startsWith(event_id, ?)) AS d ANY LEFT JOIN " +
		"(SELECT event_id, label FROM " + s.table("labels") + " FINAL WHERE startsWith(event_id, ?)) AS l USING event_id " +
		"GROUP BY label ORDER BY label"
	rows, err := s.conn.Query(ctx, q, eventIDPrefix, eventIDPrefix)
	if err != nil {
		return nil, fmt.Errorf("chstore: detection of %q: %w", eventIDPrefix, err)
	}
	defer rows.Close()
	var out []ScenarioDetection
	for rows.Next() {
		var sd ScenarioDetection
		if err := rows.Scan(&sd.Label, &sd.Accounts, &sd.AccountsFlagged, &sd.Events, &sd.EventsFlagged); err != nil {
			return nil, fmt.Errorf("chstore: detection of %q: %w", eventIDPrefix, err)
		}
		out = append(out, sd)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: detection of %q: %w", eventIDPrefix, err)
	}
	return out, nil
}
