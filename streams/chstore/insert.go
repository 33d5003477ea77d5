package chstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// insert is the rows bound for one table, built once and sent by each
// attempt. columns lists the names in the order of each row's values. For
// the tables of WriteDecisions, src[j] is the index in the batch of the
// decision rows[j] comes from.
//
// The two tables every decision writes (events and decisions) are built
// column by column instead (appendColumns): a row of interfaces cost an
// allocation per value, a tenth of the stream's CPU. Their inserts hold
// no rows, only src, and appendColumns appends the rows of src's
// decisions to the batch.
type insert struct {
	table   string
	columns string
	rows    [][]any
	src     []int
	// appendColumns, when set, appends the rows of the decisions that src
	// indexes, one whole column at a time, in the order of columns.
	appendColumns func(b driver.Batch, src []int) error
}

// len returns how many rows the insert holds.
func (in *insert) len() int {
	if in.appendColumns != nil {
		return len(in.src)
	}
	return len(in.rows)
}

// appendColumns appends one typed slice per column, in order. A String
// column ([]string) gets room for all its text first (reserveText); an
// array column ([][]string, [][]float64) is decoded from the Native
// format instead of appended (appendNativeArrays).
func appendColumns(b driver.Batch, cols ...any) error {
	batchCols := b.Columns() // none from the SQL dump's recorder
	for i, c := range cols {
		if i < len(batchCols) {
			switch v := c.(type) {
			case []string:
				if err := reserveText(batchCols[i], v); err != nil {
					return fmt.Errorf("column %d: %w", i, err)
				}
			case []int64:
				reserveRows(batchCols[i], len(v))
			case []int32:
				reserveRows(batchCols[i], len(v))
			case []uint64:
				reserveRows(batchCols[i], len(v))
			case []time.Time:
				reserveRows(batchCols[i], len(v))
			case [][]string, [][]float64:
				done, err := appendNativeArrays(batchCols[i], v)
				if err != nil {
					return fmt.Errorf("column %d: %w", i, err)
				}
				if done {
					continue
				}
			}
		}
		if err := b.Column(i).Append(c); err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return nil
}

// reserveText makes room in an empty String column for texts: for their
// bytes, and for their positions. The driver's column starts empty with
// every batch and grows its buffers by doubling as rows arrive: for the
// events table's raw JSON that was twice the text allocated and copied
// again, the largest share of riskd's allocation (so of its garbage
// collection). The driver has no way to ask for room, but a column keeps
// its buffers' capacity when reset. So one text of the total length,
// appended and reset, sizes the bytes; reserveRows sizes the positions.
func reserveText(c column.Interface, texts []string) error {
	if c.Rows() != 0 || len(texts) == 0 || c.Type() != "String" {
		return nil // the layout sized below is a String column's
	}
	reserveRows(c, len(texts))
	n := 0
	for _, t := range texts {
		n += len(t)
	}
	if n == 0 || n > maxReservedText {
		return nil
	}
	if _, err := c.Append([]string{zeroText(n)}); err != nil {
		return fmt.Errorf("reserve %d bytes: %w", n, err)
	}
	c.Reset()
	return nil
}

// sizedFirst are the column types whose decoders make room for all the
// rows they are asked for before they read the first: ch-go's String, and
// its fixed-width columns on the platforms where it reads them without a
// copy (amd64, arm64). Elsewhere the fixed-width decoders fail before
// they make room, which leaves the column as it was: not sized, not
// wrong.
var sizedFirst = map[column.Type]bool{
	"String": true, "Int32": true, "Int64": true, "UInt64": true, "DateTime": true,
}

// reserveRows gives an empty column of a sizedFirst type room for rows
// rows. The driver's column starts empty with every batch and grows by
// doubling as rows are appended, allocating and copying itself twice
// over: for a String column its positions, for the others the values
// (the Int64 columns alone were 0.17 GB of an in-process profile's 3.5).
// Asking the column's decoder for rows rows from no bytes at all makes
// that room and stops at once, at the end of the input; the column is
// reset after, keeping its capacity. Decoding rows empty texts instead (a
// zero byte each) did the same for a String column, but read them a byte
// at a time through the driver's reader: 0.46 µs per decision, more than
// the doubling it saved. TestReserveTextSizesTheRows and
// TestReserveRowsSizesTheColumns fail if a driver stops sizing first.
func reserveRows(c column.Interface, rows int) {
	if rows == 0 || c.Rows() != 0 || !sizedFirst[c.Type()] {
		return
	}
	d := nativeDecoders.Get().(*nativeDecoder)
	// The input is empty, so the decoder is left with nothing buffered
	// and serves the next column as a fresh one would.
	d.src.Reset(nil)
	_ = c.Decode(d.r, rows) // fails once it has made room: there are no bytes
	c.Reset()
	nativeDecoders.Put(d)
}

// maxReservedText bounds reserveText's placeholders, which stay in
// memory: a batch of 5,000 events of 500 bytes needs 2.5 MB of text. A
// column with more grows as the driver grows it.
const maxReservedText = 16 << 20

// zeroes is the longest text of zero bytes zeroText has made; it grows,
// never shrinks, and is never written, so concurrent inserts share it.
var zeroes atomic.Pointer[string]

// zeroText returns n zero bytes as a string, made once for the longest n
// asked so far and shared after that: the text is never written, so a
// reservation copies from it and allocates nothing of its own.
func zeroText(n int) string {
	if z := zeroes.Load(); z != nil && len(*z) >= n {
		return (*z)[:n]
	}
	z := unsafe.String(unsafe.SliceData(make([]byte, n)), n)
	zeroes.Store(&z)
	return z
}

// send writes one insert as a single native-protocol batch.
func (s *Store) send(ctx context.Context, in insert) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.table(in.table)+" ("+in.columns+")")
	if err != nil {
		return fmt.Errorf("insert %s: prepare: %w", in.table, err)
	}
	if in.appendColumns != nil {
		if err := in.appendColumns(b, in.src); err != nil {
			_ = b.Abort() // releases the connection
			return fmt.Errorf("insert %s: %w: %w", in.table, errEncode, err)
		}
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
		if done[i] || in.len() == 0 {
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
