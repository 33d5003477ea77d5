package chstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Rule statistics read decisions FINAL (a decision stored twice counts
// once) over a period of event time, From <= event time < To, joined with
// labels FINAL by event id. The SQL is written for ClickHouse 18.16 and
// current releases alike: no toStartOfInterval (18.16 lacks it; a bucket
// is intDiv on milliseconds from From), subquery ANY LEFT JOIN subquery
// USING event_id (an event with no label gets '', String's default), and
// the ARRAY JOIN inside the left subquery.

// MaxStatsRows bounds the rows one statistics read returns; a period and
// bucket that would return more are refused (ErrStatsTooLarge), so a
// request cannot make the server build an unbounded answer.
const MaxStatsRows = 200000

// ErrStatsTooLarge is returned (wrapped) when a statistics read would
// return more than MaxStatsRows rows.
var ErrStatsTooLarge = errors.New("too many rows")

// StatsPeriod is the period and bucket of a statistics read.
type StatsPeriod struct {
	// From and To bound the events' time: From <= t < To.
	From, To time.Time
	// Bucket is the width of a time bucket; bucket i covers
	// [From + i*Bucket, From + (i+1)*Bucket).
	Bucket time.Duration
}

func (p StatsPeriod) check() error {
	if !p.To.After(p.From) {
		return fmt.Errorf("to %s is not after from %s", p.To.UTC().Format(time.RFC3339), p.From.UTC().Format(time.RFC3339))
	}
	if p.Bucket < time.Millisecond {
		return fmt.Errorf("bucket %v is under a millisecond", p.Bucket)
	}
	return nil
}

// periodFilter selects the period's rows of a table keyed by event_time:
// DateTime bounds for partition pruning, then event_ts_ms for exactness.
const periodFilter = " WHERE event_time >= toDateTime(?) AND event_time <= toDateTime(?) AND event_ts_ms >= ? AND event_ts_ms < ?"

func (p StatsPeriod) args() []any {
	return []any{dateTime(p.From).Unix(), dateTime(p.To).Unix(), p.From.UnixMilli(), p.To.UnixMilli()}
}

// labelClass adds to a query over the joined label the counts of fraud
// and not-fraud events, as LabelIsFraud defines them; the rest are
// unlabelled.
const labelClass = "countIf(label != '' AND label != '" + LabelNotFraud + "'), countIf(label = '" + LabelNotFraud + "')"

// RuleBucketHits is how often one rule hit in one time bucket under one
// rule-set version.
type RuleBucketHits struct {
	RuleID string
	// Shadow says the hits were recorded in shadow_rules (the rule ran in
	// shadow mode in that version), not matched_rules.
	Shadow bool
	// Version is the decisions' ruleset_version ("SEQ-HASH8").
	Version string
	// Bucket is the bucket's index from the period's From.
	Bucket int
	// Hits counts the decisions the rule hit; Fraud and NotFraud those of
	// them whose event is labelled so (see LabelIsFraud).
	Hits, Fraud, NotFraud uint64
	// First and Last are the earliest and latest event time (Unix ms) of
	// the bucket's hits.
	First, Last int64
}

// RuleHitBuckets counts, per rule, mode, version and bucket, the stored
// decisions of the period that the rule hit, split by label, ordered by
// rule, mode, version and bucket.
func (s *Store) RuleHitBuckets(ctx context.Context, p StatsPeriod) ([]RuleBucketHits, error) {
	return s.ruleHitBuckets(ctx, p, MaxStatsRows)
}

// ruleHitBuckets is RuleHitBuckets with the row bound as a parameter, for
// tests.
func (s *Store) ruleHitBuckets(ctx context.Context, p StatsPeriod, maxRows int) ([]RuleBucketHits, error) {
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("chstore: rule hit buckets: %w", err)
	}
	q := "SELECT rule, shadow, ruleset_version, intDiv(event_ts_ms - ?, ?) AS bucket, count(), " + labelClass +
		", min(event_ts_ms), max(event_ts_ms) FROM (" +
		"SELECT event_id, ruleset_version, event_ts_ms, rule, i > length(matched_rules) AS shadow FROM " +
		s.table("decisions") + " FINAL ARRAY JOIN arrayConcat(matched_rules, shadow_rules) AS rule, " +
		"arrayEnumerate(arrayConcat(matched_rules, shadow_rules)) AS i" + periodFilter +
		") AS d ANY LEFT JOIN (SELECT event_id, label FROM " + s.table("labels") + " FINAL" + periodFilter +
		") AS l USING event_id GROUP BY rule, shadow, ruleset_version, bucket " +
		"ORDER BY rule, shadow, ruleset_version, bucket LIMIT ?"
	args := []any{p.From.UnixMilli(), p.Bucket.Milliseconds()}
	args = append(append(append(args, p.args()...), p.args()...), maxRows+1)
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("chstore: rule hit buckets: %w", err)
	}
	defer rows.Close()
	var out []RuleBucketHits
	for rows.Next() {
		var (
			h      RuleBucketHits
			shadow uint8
			bucket int64
		)
		if err := rows.Scan(&h.RuleID, &shadow, &h.Version, &bucket, &h.Hits, &h.Fraud, &h.NotFraud, &h.First, &h.Last); err != nil {
			return nil, fmt.Errorf("chstore: rule hit buckets: %w", err)
		}
		h.Shadow, h.Bucket = shadow != 0, int(bucket)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: rule hit buckets: %w", err)
	}
	if len(out) > maxRows {
		return nil, fmt.Errorf("chstore: rule hit buckets: %w: over %d (rule, version, bucket) rows; shorten the period or widen the bucket",
			ErrStatsTooLarge, maxRows)
	}
	return out, nil
}

// DecisionMix is how many stored decisions of the period one rule-set
// version made on one event type with one action, split by label.
type DecisionMix struct {
	Version, EventType, Action string
	Events, Fraud, NotFraud    uint64
}

// DecisionMixes counts the period's stored decisions by version, event
// type and action, split by label, in that order.
func (s *Store) DecisionMixes(ctx context.Context, p StatsPeriod) ([]DecisionMix, error) {
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("chstore: decision mix: %w", err)
	}
	q := "SELECT ruleset_version, event_type, action, count(), " + labelClass + " FROM (" +
		"SELECT event_id, ruleset_version, event_type, action FROM " + s.table("decisions") + " FINAL" + periodFilter +
		") AS d ANY LEFT JOIN (SELECT event_id, label FROM " + s.table("labels") + " FINAL" + periodFilter +
		") AS l USING event_id GROUP BY ruleset_version, event_type, action " +
		"ORDER BY ruleset_version, event_type, action LIMIT ?"
	args := append(append(p.args(), p.args()...), MaxStatsRows+1)
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("chstore: decision mix: %w", err)
	}
	defer rows.Close()
	var out []DecisionMix
	for rows.Next() {
		var m DecisionMix
		if err := rows.Scan(&m.Version, &m.EventType, &m.Action, &m.Events, &m.Fraud, &m.NotFraud); err != nil {
			return nil, fmt.Errorf("chstore: decision mix: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: decision mix: %w", err)
	}
	if len(out) > MaxStatsRows {
		return nil, fmt.Errorf("chstore: decision mix: %w: over %d rows", ErrStatsTooLarge, MaxStatsRows)
	}
	return out, nil
}

// ShadowHitMix is how many of one shadow rule's hits under one version,
// on one event type, were decided live with one action.
type ShadowHitMix struct {
	RuleID, Version, EventType, Action string
	Hits                               uint64
}

// ShadowHitMixes counts the period's shadow hits by rule, version, event
// type and the live decision's action, in that order.
func (s *Store) ShadowHitMixes(ctx context.Context, p StatsPeriod) ([]ShadowHitMix, error) {
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("chstore: shadow hit mix: %w", err)
	}
	q := "SELECT rule, ruleset_version, event_type, action, count() FROM " + s.table("decisions") +
		" FINAL ARRAY JOIN shadow_rules AS rule" + periodFilter +
		" GROUP BY rule, ruleset_version, event_type, action ORDER BY rule, ruleset_version, event_type, action LIMIT ?"
	rows, err := s.conn.Query(ctx, q, append(p.args(), MaxStatsRows+1)...)
	if err != nil {
		return nil, fmt.Errorf("chstore: shadow hit mix: %w", err)
	}
	defer rows.Close()
	var out []ShadowHitMix
	for rows.Next() {
		var m ShadowHitMix
		if err := rows.Scan(&m.RuleID, &m.Version, &m.EventType, &m.Action, &m.Hits); err != nil {
			return nil, fmt.Errorf("chstore: shadow hit mix: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: shadow hit mix: %w", err)
	}
	if len(out) > MaxStatsRows {
		return nil, fmt.Errorf("chstore: shadow hit mix: %w: over %d rows", ErrStatsTooLarge, MaxStatsRows)
	}
	return out, nil
}
