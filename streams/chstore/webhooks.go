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

// WebhookResent is the kind of the row that marks a parked notification as
// resent: it has the parked row's key (subscriber, account_id, parked_at,
// notification_id), so in the ReplacingMergeTree it replaces that row (the
// last inserted of equal keys wins), and the reads below skip it. A
// notification resent once is therefore neither listed nor resent again.
const WebhookResent = "resent"

// parkedOnly is the FROM clause of the parked-notification reads: the
// table after FINAL has collapsed each key to its latest row, without the
// resent markers. The filter is outside the FINAL subquery so that no
// server moves it before the collapsing (a PREWHERE on a non-key column
// would see the replaced row).
func (s *Store) parkedOnly(where string) string {
	return "(SELECT " + webhookDeadLetterColumns + " FROM " + s.table("webhook_dead_letters") + " FINAL" + where +
		") WHERE kind != '" + WebhookResent + "'"
}

// CountWebhookDeadLetters counts the parked notifications of one
// subscriber, or of all subscribers when subscriber is empty; resent ones
// are not counted. Like the other reads it runs once, without retry.
func (s *Store) CountWebhookDeadLetters(ctx context.Context, subscriber string) (uint64, error) {
	where := ""
	var args []any
	if subscriber != "" {
		where = " WHERE subscriber = ?"
		args = append(args, subscriber)
	}
	q := "SELECT count() FROM " + s.parkedOnly(where)
	var n uint64
	if err := s.conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("chstore: count webhook dead letters: %w", err)
	}
	return n, nil
}

// MaxWebhookDeadLetterCounts bounds WebhookDeadLetterCounts' answer.
const MaxWebhookDeadLetterCounts = 10_000

// WebhookDeadLetterCounts counts the parked notifications (resent ones
// excluded) by subscriber, in one query, for at most
// MaxWebhookDeadLetterCounts subscribers. It runs once, without retry.
func (s *Store) WebhookDeadLetterCounts(ctx context.Context) (map[string]uint64, error) {
	q := "SELECT subscriber, count() FROM " + s.parkedOnly("") + " GROUP BY subscriber ORDER BY subscriber LIMIT ?"
	rows, err := s.conn.Query(ctx, q, MaxWebhookDeadLetterCounts)
	if err != nil {
		return nil, fmt.Errorf("chstore: count webhook dead letters by subscriber: %w", err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var name string
		var n uint64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, fmt.Errorf("chstore: count webhook dead letters by subscriber: %w", err)
		}
		out[name] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: count webhook dead letters by subscriber: %w", err)
	}
	return out, nil
}

// WebhookDeadLetters returns up to limit parked notifications of one
// subscriber (all subscribers when empty), oldest first, for inspection and
// redelivery; resent ones are left out. It runs once, without retry.
func (s *Store) WebhookDeadLetters(ctx context.Context, subscriber string, limit int) ([]WebhookDeadLetter, error) {
	if limit <= 0 {
		return nil, nil
	}
	where := ""
	var args []any
	if subscriber != "" {
		where = " WHERE subscriber = ?"
		args = append(args, subscriber)
	}
	q := "SELECT " + webhookDeadLetterColumns + " FROM " + s.parkedOnly(where) + " ORDER BY parked_at, notification_id LIMIT ?"
	args = append(args, limit)
	return s.readDeadLetters(ctx, q, args)
}

// WebhookDeadLetter returns the parked notification id of subscriber;
// found is false when there is none or it was resent. It runs once,
// without retry.
func (s *Store) WebhookDeadLetter(ctx context.Context, subscriber string, id uint64) (r WebhookDeadLetter, found bool, err error) {
	q := "SELECT " + webhookDeadLetterColumns + " FROM " +
		s.parkedOnly(" WHERE subscriber = ? AND notification_id = ?") + " ORDER BY parked_at LIMIT 1"
	rs, err := s.readDeadLetters(ctx, q, []any{subscriber, id})
	if err != nil || len(rs) == 0 {
		return WebhookDeadLetter{}, false, err
	}
	return rs[0], true, nil
}

func (s *Store) readDeadLetters(ctx context.Context, q string, args []any) ([]WebhookDeadLetter, error) {
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

// MarkWebhookDeadLetterResent records that the parked notification r (as
// read: its ParkedAt must be the stored one) was delivered by a resend at
// at, by whom: a WebhookResent row replacing it. It retries like
// WriteWebhookDeadLetter.
func (s *Store) MarkWebhookDeadLetterResent(ctx context.Context, r WebhookDeadLetter, at time.Time, by string) error {
	if r.ParkedAt.IsZero() {
		return errors.New("chstore: mark webhook dead letter resent: zero parked_at; pass the row as read")
	}
	r.Kind = WebhookResent
	r.LastError = "resent at " + at.UTC().Format(time.RFC3339) + " by " + by
	return s.WriteWebhookDeadLetter(ctx, r)
}
