package chstore

import (
	"context"
	"fmt"
	"time"
)

// LockHistory returns an account's locks and unlocks, newest first, at most
// limit of them: what support sees before unlocking.
func (s *Store) LockHistory(ctx context.Context, accountID string, limit int) ([]LockRow, error) {
	q := "SELECT action, reason, until, actor, ts_ms, event_id FROM " + s.table("account_locks") +
		" FINAL WHERE account_id = ? ORDER BY ts_ms DESC, action LIMIT ?"
	rows, err := s.conn.Query(ctx, q, accountID, uint64(limit))
	if err != nil {
		return nil, fmt.Errorf("chstore: lock history: %w", err)
	}
	defer rows.Close()
	var out []LockRow
	for rows.Next() {
		r := LockRow{AccountID: accountID}
		var until time.Time
		var ms int64
		if err := rows.Scan(&r.Action, &r.Reason, &until, &r.Actor, &ms, &r.RequestID); err != nil {
			return nil, fmt.Errorf("chstore: lock history: %w", err)
		}
		r.Until, r.At = fromDateTime(until), time.UnixMilli(ms).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: lock history: %w", err)
	}
	return out, nil
}
