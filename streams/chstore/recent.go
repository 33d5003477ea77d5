package chstore

import (
	"context"
	"fmt"
	"slices"
)

// MaxRecentEvents bounds RecentEvents' limit: an analyst's test of an
// account's history runs them all through the engine path at once.
const MaxRecentEvents = 1000

// StoredEvent is one stored event as received.
type StoredEvent struct {
	EventID string
	// TS is the event time in Unix milliseconds.
	TS int64
	// Raw is the event as received (JSON).
	Raw []byte
}

// RecentEvents returns the newest limit stored events of an account (at
// most MaxRecentEvents), oldest first, each once (an event stored twice by
// a replay after a restart comes back once): what an analyst replays
// through a rule set to see what it would have done to the account. The
// events table is ordered by account first, so this reads the account's
// rows only.
func (s *Store) RecentEvents(ctx context.Context, accountID string, limit int) ([]StoredEvent, error) {
	limit = min(max(limit, 1), MaxRecentEvents)
	q := "SELECT event_id, event_ts_ms, raw FROM " + s.table("events") +
		" WHERE account_id = ? ORDER BY event_ts_ms DESC, event_id LIMIT 1 BY event_id LIMIT ?"
	rows, err := s.conn.Query(ctx, q, accountID, uint64(limit))
	if err != nil {
		return nil, fmt.Errorf("chstore: recent events of %s: %w", accountID, err)
	}
	defer rows.Close()
	var out []StoredEvent
	for rows.Next() {
		var e StoredEvent
		var raw string
		if err := rows.Scan(&e.EventID, &e.TS, &raw); err != nil {
			return nil, fmt.Errorf("chstore: recent events of %s: %w", accountID, err)
		}
		e.Raw = []byte(raw)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: recent events of %s: %w", accountID, err)
	}
	slices.Reverse(out)
	return out, nil
}
