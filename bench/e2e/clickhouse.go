package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// chConn is the harness's own ClickHouse connection: dropping the bench
// database and reading results back. riskd writes through chstore.
type chConn struct {
	conn driver.Conn
	db   string
}

func openClickHouse(ctx context.Context, addr, db string) (*chConn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Username: "default"}})
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse %s: %w (run scripts/clickhouse-up)", addr, err)
	}
	return &chConn{conn: conn, db: db}, nil
}

// reset drops the bench database so counts cover this run only; riskd's
// migrations create it again.
func (c *chConn) reset(ctx context.Context, dbs ...string) error {
	for _, db := range dbs {
		if err := c.conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
			return fmt.Errorf("drop database %s: %w", db, err)
		}
	}
	return nil
}

// latenciesMS reads decided_at_ms - event_ts_ms of every decision whose
// event id starts with prefix and whose event time (Unix ms) is in
// [fromMS, toMS), sorted.
func (c *chConn) latenciesMS(ctx context.Context, prefix string, fromMS, toMS int64) ([]int64, error) {
	q := "SELECT decided_at_ms - event_ts_ms FROM `" + c.db + "`.decisions FINAL " +
		"WHERE startsWith(event_id, ?) AND event_ts_ms >= ? AND event_ts_ms < ?"
	rows, err := c.conn.Query(ctx, q, prefix, fromMS, toMS)
	if err != nil {
		return nil, fmt.Errorf("latencies: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("latencies: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("latencies: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// labelCounts is, per generator label ("" for normal traffic), how many
// of the run's events were decided and how many were flagged (action
// other than allow).
type labelCounts map[string]struct{ Events, Flagged uint64 }

// detection joins decisions with labels (both FINAL, so replays count
// once). ANY LEFT JOIN ... USING is the join both 18.16 and current
// ClickHouse accept; events without a label row get label "".
func (c *chConn) detection(ctx context.Context, prefix string) (labelCounts, error) {
	q := "SELECT label, count(), countIf(action != 'allow') FROM " +
		"(SELECT event_id, action FROM `" + c.db + "`.decisions FINAL WHERE startsWith(event_id, ?)) " +
		"ANY LEFT JOIN (SELECT event_id, label FROM `" + c.db + "`.labels FINAL WHERE startsWith(event_id, ?)) " +
		"USING event_id GROUP BY label"
	rows, err := c.conn.Query(ctx, q, prefix, prefix)
	if err != nil {
		return nil, fmt.Errorf("detection: %w", err)
	}
	defer rows.Close()
	out := labelCounts{}
	for rows.Next() {
		var label string
		var n, f uint64
		if err := rows.Scan(&label, &n, &f); err != nil {
			return nil, fmt.Errorf("detection: %w", err)
		}
		out[label] = struct{ Events, Flagged uint64 }{n, f}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("detection: %w", err)
	}
	return out, nil
}

func (c *chConn) close() { c.conn.Close() }

// actions reads the action of every decision whose event id is prefix and
// then a sequence number in [1, n] (the generator's ids), indexed by
// sequence number - 1; "" where none is stored. FINAL keeps one decision
// per event when a replay decided it twice.
func (c *chConn) actions(ctx context.Context, prefix string, n int) ([]string, error) {
	q := "SELECT event_id, action FROM `" + c.db + "`.decisions FINAL WHERE startsWith(event_id, ?)"
	rows, err := c.conn.Query(ctx, q, prefix)
	if err != nil {
		return nil, fmt.Errorf("actions: %w", err)
	}
	defer rows.Close()
	out := make([]string, n)
	names := map[string]string{} // one copy of each action name
	for rows.Next() {
		var id, action string
		if err := rows.Scan(&id, &action); err != nil {
			return nil, fmt.Errorf("actions: %w", err)
		}
		seq, err := strconv.Atoi(strings.TrimPrefix(id, prefix))
		if err != nil || seq < 1 || seq > n {
			return nil, fmt.Errorf("actions: event id %q is not %s and a number in 1..%d", id, prefix, n)
		}
		if _, ok := names[action]; !ok {
			names[action] = action
		}
		out[seq-1] = names[action]
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("actions: %w", err)
	}
	return out, nil
}

// serverWork is what the ClickHouse server counted it did (system.events),
// to tell the CPU of storing rows from that of merging parts: the same
// inserts cost the server from 12 to 37 µs an event in runs of one day,
// and its merges are what it does on its own schedule.
type serverWork struct {
	InsertQueries  uint64 `json:"insert_queries"`
	InsertedRows   uint64 `json:"inserted_rows"`
	InsertedBytes  uint64 `json:"inserted_bytes"`
	Merges         uint64 `json:"merges"`
	MergedRows     uint64 `json:"merged_rows"`
	MergedRawBytes uint64 `json:"merged_uncompressed_bytes"`
}

// work reads the server's counters since it started.
func (c *chConn) work(ctx context.Context) (serverWork, error) {
	var w serverWork
	fields := map[string]*uint64{ // system.events name: where it goes
		"InsertQuery": &w.InsertQueries, "InsertedRows": &w.InsertedRows, "InsertedBytes": &w.InsertedBytes,
		"Merge": &w.Merges, "MergedRows": &w.MergedRows, "MergedUncompressedBytes": &w.MergedRawBytes,
	}
	names := slices.Sorted(maps.Keys(fields))
	rows, err := c.conn.Query(ctx, "SELECT event, value FROM system.events WHERE event IN ('"+strings.Join(names, "', '")+"')")
	if err != nil {
		return serverWork{}, fmt.Errorf("system.events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var v uint64
		if err := rows.Scan(&name, &v); err != nil {
			return serverWork{}, fmt.Errorf("system.events: %w", err)
		}
		if f := fields[name]; f != nil {
			*f = v
		}
	}
	return w, rows.Err()
}

// minus is the work done between two readings.
func (w serverWork) minus(before serverWork) serverWork {
	return serverWork{InsertQueries: w.InsertQueries - before.InsertQueries, InsertedRows: w.InsertedRows - before.InsertedRows,
		InsertedBytes: w.InsertedBytes - before.InsertedBytes, Merges: w.Merges - before.Merges,
		MergedRows: w.MergedRows - before.MergedRows, MergedRawBytes: w.MergedRawBytes - before.MergedRawBytes}
}
