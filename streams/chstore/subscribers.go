package chstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// WebhookSubscriberRow is a row of webhook_subscribers: one version of an
// alert subscriber managed through the API.
type WebhookSubscriberRow struct {
	// Name identifies the subscriber (the table's key).
	Name string
	// URL receives the deliveries.
	URL string
	// Kinds lists the notification kinds it wants; empty means all.
	Kinds []string
	// Secret is the HMAC key of its signatures. It never leaves riskd
	// except in the API answer that created or rotated it; json:"-" keeps
	// it out of anything that marshals a row.
	Secret string `json:"-"`
	// Paused subscribers are sent nothing (their notifications are parked).
	Paused bool
	// Deleted marks a removal (a tombstone).
	Deleted bool
	// Version orders the rows of a name: the highest wins. The caller
	// keeps it increasing (WebhookSubscriberVersion).
	Version uint64
	// UpdatedAt and UpdatedBy say when and by which API token it changed.
	UpdatedAt time.Time
	UpdatedBy string
}

// LogValue keeps the secret out of slog lines that print a row.
func (r WebhookSubscriberRow) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", r.Name), slog.String("url", r.URL), slog.Uint64("version", r.Version),
		slog.Bool("paused", r.Paused), slog.Bool("deleted", r.Deleted))
}

// MaxWebhookSubscriberRows bounds WebhookSubscribers' answer; the API
// allows far fewer subscribers than this.
const MaxWebhookSubscriberRows = 10_000

const webhookSubscriberColumns = "name, url, kinds, secret, paused, deleted, version, updated_at, updated_by"

// WebhookSubscriberVersion returns the version for the next change of a
// subscriber whose current version is prev: the wall clock in nanoseconds,
// or prev+1 if the clock is behind, so versions only grow even across
// restarts and clock steps.
func WebhookSubscriberVersion(prev uint64, now time.Time) uint64 {
	return max(prev+1, uint64(max(now.UnixNano(), 0)))
}

// WriteWebhookSubscriber stores one version of a subscriber (a tombstone
// when Deleted), retrying like WriteDecisions until it is stored or ctx
// ends. Writing the same version twice leaves one row.
func (s *Store) WriteWebhookSubscriber(ctx context.Context, r WebhookSubscriberRow) error {
	if r.Name == "" || r.Version == 0 {
		return errors.New("chstore: write webhook subscriber: empty name or zero version")
	}
	kinds := r.Kinds
	if kinds == nil {
		kinds = []string{}
	}
	in := insert{table: "webhook_subscribers", columns: webhookSubscriberColumns,
		rows: [][]any{{r.Name, r.URL, kinds, r.Secret, boolByte(r.Paused), boolByte(r.Deleted), r.Version,
			dateTime(r.UpdatedAt), r.UpdatedBy}}}
	return s.retry(ctx, "write webhook subscriber "+r.Name, func(ctx context.Context) error { return s.send(ctx, in) })
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// WebhookSubscribers returns the current version of every subscriber that
// is not removed, by name, at most MaxWebhookSubscriberRows. The latest
// version is picked with argMax rather than FINAL, so the answer is right
// whether or not the rows were merged. It runs once, without retry.
func (s *Store) WebhookSubscribers(ctx context.Context) ([]WebhookSubscriberRow, error) {
	q := "SELECT name, argMax(url, version), argMax(kinds, version), argMax(secret, version), argMax(paused, version), " +
		"max(version), argMax(updated_at, version), argMax(updated_by, version) FROM " + s.table("webhook_subscribers") +
		" GROUP BY name HAVING argMax(deleted, version) = 0 ORDER BY name LIMIT ?"
	rows, err := s.conn.Query(ctx, q, MaxWebhookSubscriberRows)
	if err != nil {
		return nil, fmt.Errorf("chstore: read webhook subscribers: %w", err)
	}
	defer rows.Close()
	var out []WebhookSubscriberRow
	for rows.Next() {
		var r WebhookSubscriberRow
		var paused uint8
		if err := rows.Scan(&r.Name, &r.URL, &r.Kinds, &r.Secret, &paused, &r.Version, &r.UpdatedAt, &r.UpdatedBy); err != nil {
			return nil, fmt.Errorf("chstore: read webhook subscribers: %w", err)
		}
		r.Paused = paused == 1
		r.UpdatedAt = fromDateTime(r.UpdatedAt)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: read webhook subscribers: %w", err)
	}
	return out, nil
}
