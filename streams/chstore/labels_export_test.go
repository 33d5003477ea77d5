package chstore

import (
	"context"
	"time"
)

// WriteLabelsAtMost is WriteLabels with its bound on labelled events set
// to maxEvents, so the bound is tested without storing 100,000 events.
func WriteLabelsAtMost(ctx context.Context, s *Store, items []LabelItem, by string, at time.Time, maxEvents int) (LabelResult, error) {
	return s.writeLabels(ctx, items, by, at, maxEvents)
}

// RuleHitBucketsAtMost is RuleHitBuckets with its row bound set to maxRows.
func RuleHitBucketsAtMost(ctx context.Context, s *Store, p StatsPeriod, maxRows int) ([]RuleBucketHits, error) {
	return s.ruleHitBuckets(ctx, p, maxRows)
}
