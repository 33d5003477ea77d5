package chstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// insert is the rows bound for one table, built once and sent by each
// attempt. columns lists the names in the order of each row's values. For
// the tables of WriteDecisions, src[j] is the index in the batch of the
// decision rows[j] comes from.
type insert struct {
	table   string
	columns string
	rows    [][]any
	src     []int
}

// send writes one insert as a single native-protocol batch.
func (s *Store) send(ctx context.Context, in insert) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.table(in.table)+" ("+in.columns+")")
	if err != nil {
		return fmt.Errorf("insert %s: prepare: %w", in.table, err)
	}
	for _, r := range in.rows {
		// A failed Append releases the batch's connection itself.
		if err := b.Append(r...); err != nil {
			return fmt.Errorf("insert %s: %w: %w", in.table, errEncode, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %s: %w", in.table, err)
	}
	return nil
}

// sendAll writes the inserts concurrently, one connection each: the cost
// of a batch is mostly waiting for the server, so a batch takes as long as
// its slowest table rather than the sum. Tables stored by an earlier attempt
// are skipped through done (each goroutine writes only its own element); a
// table whose Send failed is sent again whole, which is harmless because
// every table collapses duplicates.
func (s *Store) sendAll(ctx context.Context, ins []insert, done []bool) error {
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		if done[i] || len(in.rows) == 0 {
			continue
		}
		wg.Go(func() {
			if errs[i] = s.send(ctx, in); errs[i] == nil {
				done[i] = true
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

var (
	// minDateTime and maxDateTime are the range of ClickHouse DateTime as
	// clickhouse-go encodes it (UInt32 seconds).
	minDateTime = time.Unix(0, 0).UTC()
	maxDateTime = time.Date(2105, 12, 31, 23, 59, 59, 0, time.UTC)
)

// dateTime clamps t into the DateTime range; the zero time becomes the
// epoch, which the schema documents as "none".
func dateTime(t time.Time) time.Time {
	switch {
	case t.IsZero() || t.Before(minDateTime):
		return minDateTime
	case t.After(maxDateTime):
		return maxDateTime
	}
	return t
}

// fromDateTime is the inverse for reads: the epoch means "none".
func fromDateTime(t time.Time) time.Time {
	if t.Unix() <= 0 {
		return time.Time{}
	}
	return t
}

func boolU8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
