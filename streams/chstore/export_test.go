package chstore

import (
	"context"
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
