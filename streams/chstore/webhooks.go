package chstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"riskd/streams/notify"
)

// WebhookDeadLetter is a row of webhook_dead_letters: a notification a
// webhook subscriber did not take, exactly as package notify parks it. The
// type is notify's (the consumer's) so the Store is notify's DeadLetters
// with no conversion; notify itself knows nothing of ClickHouse.
type WebhookDeadLetter = notify.DeadLetter

var _ notify.DeadLetters = (*Store)(nil)

const webhookDeadLetterColumns = "subscriber, notification_id, kind, account_id, event_id, rule_id, body, attempts, last_error, parked_at"

// WriteWebhookDeadLetter parks one notification in webhook_dead_letters,
// retrying like WriteDecisions until it is stored or ctx ends. Writing the
// same row twice (same subscriber, account, parked_at and id) leaves one.
func (s *Store) WriteWebhookDeadLetter(ctx context.Context, r WebhookDeadLetter) error {
	if r.Subscriber == "" {
		return errors.New("chstore: write webhook dead letter: empty subscriber")
	}
	at := r.ParkedAt
	if at.IsZero() {
		at = time.Now()
	}
	in := insert{table: "webhook_dead_letters", columns: webhookDeadLetterColumns,
		rows: [][]any{{r.Subscriber, r.NotificationID, r.Kind, r.AccountID, r.EventID, r.RuleID,
			r.Body, r.Attempts, r.LastError, dateTime(at)}}}
	op := fmt.Sprintf("write webhook dead letter %s/%d", r.Subscriber, r.NotificationID)
	return s.retry(ctx, op, func(ctx context.Context) error { return s.send(ctx, in) })
}

// CountWebhookDeadLetters counts the parked notifications of one
// subscriber, or of all subscribers when subscriber is empty. Like the other
// reads it runs once, without retry.
func (s *Store) CountWebhookDeadLetters(ctx context.Context, subscriber string) (uint64, error) {
	q := "SELECT count() FROM " + s.table("webhook_dead_letters") + " FINAL"
	var args []any
	if subscriber != "" {
		q += " WHERE subscriber = ?"
		args = append(args, subscriber)
	}
	var n uint64
	if err := s.conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("chstore: count webhook dead letters: %w", err)
	}
	return n, nil
}

// WebhookDeadLetters returns up to limit parked notifications of one
// subscriber (all subscribers when empty), oldest first, for inspection and
// redelivery. It runs once, without retry.
func (s *Store) WebhookDeadLetters(ctx context.Context, subscriber string, limit int) ([]WebhookDeadLetter, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := "SELECT " + webhookDeadLetterColumns + " FROM " + s.table("webhook_dead_letters") + " FINAL"
	var args []any
	if subscriber != "" {
		q += " WHERE subscriber = ?"
		args = append(args, subscriber)
	}
	q += " ORDER BY parked_at, notification_id LIMIT ?"
	args = append(args, limit)
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("chstore: read webhook dead letters: %w", err)
	}
	defer rows.Close()
	var out []WebhookDeadLetter
	for rows.Next() {
		var r WebhookDeadLetter
		if err := rows.Scan(&r.Subscriber, &r.NotificationID, &r.Kind, &r.AccountID, &r.EventID, &r.RuleID,
			&r.Body, &r.Attempts, &r.LastError, &r.ParkedAt); err != nil {
			return nil, fmt.Errorf("chstore: read webhook dead letters: %w", err)
		}
		r.ParkedAt = fromDateTime(r.ParkedAt)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: read webhook dead letters: %w", err)
	}
	return out, nil
}
