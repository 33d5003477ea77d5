package chstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"riskd/engine"
)

// WriteTablesOnly writes the rows WriteDecisions would write for ds to the
// named tables only, once, without looking anything up: what a crash
// between the concurrent inserts of one batch leaves behind.
func WriteTablesOnly(ctx context.Context, s *Store, ds []*engine.Decision, tables ...string) error {
	ins := decisionInserts(ds)
	done := make([]bool, len(ins))
	for i, in := range ins {
		done[i] = !slices.Contains(tables, in.table)
	}
	return s.sendAll(ctx, ins, done)
}

// WrapConn puts wrap(conn) between s and its connection, for injecting
// faults.
func WrapConn(s *Store, wrap func(driver.Conn) driver.Conn) { s.conn = wrap(s.conn) }

// Inserts are the inserts WriteDecisions builds for a batch.
type Inserts []insert

// BuildInserts builds the inserts WriteDecisions would send for ds.
func BuildInserts(ds []*engine.Decision) Inserts { return decisionInserts(ds) }

// AppendColumnsAborted appends the rows of ins bound for the named table
// (events or decisions, the tables built column by column) to a real
// batch, then aborts it: the client's side of an insert without the
// server's.
func AppendColumnsAborted(ctx context.Context, s *Store, ins Inserts, table string) error {
	for _, in := range ins {
		if in.table != table {
			continue
		}
		b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.table(in.table)+" ("+in.columns+")")
		if err != nil {
			return err
		}
		if err := in.appendColumns(b, in.src); err != nil {
			return err
		}
		return b.Abort()
	}
	return fmt.Errorf("no insert into %s", table)
}
