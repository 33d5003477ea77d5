package chstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"riskd/engine"
	"riskd/internal/chtest"
	"riskd/streams/chstore"
)

// TestRestartWritesEachRowOnce is a restart after a crash: the first run
// stored a batch whole, then died between the concurrent inserts of the
// next ones (events only; events and decisions; only alerts, locks and
// labels); the second run, opened on the same database, writes again from
// an earlier offset. Every row must be in its table exactly once without
// FINAL, the new ones written, the stored ones counted as skipped, and the
// store must stop looking after RecoveryWindow clean decisions.
func TestRestartWritesEachRowOnce(t *testing.T) {
	ctx := t.Context()
	cfg := chtest.Config(t)
	cfg.RecoveryWindow = 20
	// The batches cross a month, so they span two partitions.
	base := time.Date(2026, 3, 31, 23, 59, 30, 0, time.UTC)
	ds := sampleDecisions("restart", 70, base)

	first, err := chstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Recovering() {
		t.Fatal("a store just opened is not recovering")
	}
	write(t, first, ds[:30])
	if first.Recovering() {
		t.Fatal("30 decisions not stored before did not end a recovery window of 20")
	}
	for _, crash := range []struct {
		ds     []*engine.Decision
		tables []string
	}{
		{ds[30:40], []string{"events"}},
		{ds[40:45], []string{"events", "decisions"}},
		{ds[45:50], []string{"alerts", "account_locks", "labels"}},
	} {
		if err := chstore.WriteTablesOnly(ctx, first, crash.ds, crash.tables...); err != nil {
			t.Fatal(err)
		}
	}
	first.Close()

	var mu sync.Mutex
	hooked := map[string]uint64{}
	cfg.OnSkip = func(table string, rows int) {
		mu.Lock()
		defer mu.Unlock()
		hooked[table] += uint64(rows)
	}
	second, err := chstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if !second.Recovering() {
		t.Fatal("the restarted store is not recovering")
	}
	// From the committed offset (20) on: 30 stored or partly stored
	// decisions, then 10, 9 and 1 new ones.
	write(t, second, ds[20:60])
	if !second.Recovering() {
		t.Fatal("10 new decisions after the last stored one ended a recovery window of 20")
	}
	write(t, second, ds[60:69])
	if !second.Recovering() {
		t.Fatal("19 new decisions in a row ended a recovery window of 20")
	}
	write(t, second, ds[69:70])
	if second.Recovering() {
		t.Fatal("20 new decisions in a row did not end a recovery window of 20")
	}

	conn := rawConn(t, cfg.Addr)
	checkStoredOnce(t, conn, cfg.Database, wantRows(ds))
	checkRows(t, conn, cfg.Database, wantRows(ds))

	// Skipped: what the first run had stored of ds[20:50], table by table.
	whole, events, decisions, others := wantRows(ds[20:30]), wantRows(ds[30:45]), wantRows(ds[40:45]), wantRows(ds[45:50])
	wantSkipped := map[string]uint64{
		"events":        whole.events + events.events,
		"decisions":     whole.decisions + decisions.decisions,
		"alerts":        whole.alerts + others.alerts,
		"account_locks": whole.locks + others.locks,
		"labels":        whole.labels + others.labels,
	}
	mu.Lock()
	for _, table := range chstore.DecisionTables() {
		if got, want := second.SkippedRows(table), wantSkipped[table]; got != want || hooked[table] != want {
			t.Errorf("%s: SkippedRows %d, OnSkip heard %d; want %d", table, got, hooked[table], want)
		}
		if n := first.SkippedRows(table); n != 0 {
			t.Errorf("%s: the first run skipped %d rows of a fresh database", table, n)
		}
	}
	mu.Unlock()
	if wantSkipped["alerts"] == 0 || wantSkipped["account_locks"] == 0 || wantSkipped["labels"] == 0 {
		t.Fatalf("the sample leaves a table without stored rows to skip: %v", wantSkipped)
	}

	// The window is over: a batch written again is not looked up.
	write(t, second, ds[:5])
	if n := second.SkippedRows("decisions"); n != wantSkipped["decisions"] {
		t.Errorf("SkippedRows(decisions) = %d after the window; want %d still", n, wantSkipped["decisions"])
	}
	if rows, ids := countRows(t, conn, cfg.Database, "decisions", "event_id"); rows != 75 || ids != 70 {
		t.Errorf("after the window, 5 decisions written again: %d rows of %d ids; want 75 of 70 (no look-up)", rows, ids)
	}
}

// TestNegativeRecoveryWindowWritesEverything: with the window off, a batch
// written twice is stored twice (one row each after FINAL), as before the
// window existed.
func TestNegativeRecoveryWindowWritesEverything(t *testing.T) {
	cfg := chtest.Config(t)
	cfg.RecoveryWindow = -1
	st, err := chstore.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Recovering() {
		t.Fatal("a store with RecoveryWindow -1 is recovering")
	}
	ds := sampleDecisions("off", 10, time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC))
	write(t, st, ds)
	write(t, st, ds)
	if rows, ids := countRows(t, rawConn(t, cfg.Addr), cfg.Database, "decisions", "event_id"); rows != 20 || ids != 10 {
		t.Errorf("decisions: %d rows of %d ids; want 20 of 10", rows, ids)
	}
	checkRows(t, rawConn(t, cfg.Addr), cfg.Database, wantRows(ds))
	for _, table := range chstore.DecisionTables() {
		if n := st.SkippedRows(table); n != 0 {
			t.Errorf("%s: %d rows skipped with the window off", table, n)
		}
	}
}

// TestRetryAfterALostAnswerStoresOnce: the server stores the decisions
// insert but its answer is lost (the connection breaks after the data went
// out). Out of the recovery window, the retry still asks what is stored,
// and sends only the rest.
func TestRetryAfterALostAnswerStoresOnce(t *testing.T) {
	cfg := chtest.Config(t)
	cfg.RecoveryWindow = 1
	st, err := chstore.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	warm := sampleDecisions("warm", 3, base)
	write(t, st, warm)
	if st.Recovering() {
		t.Fatal("still recovering after 3 new decisions, window 1")
	}
	lost := &loseAnswer{table: "decisions"}
	lost.armed.Store(true)
	chstore.WrapConn(st, func(c driver.Conn) driver.Conn { lost.Conn = c; return lost })
	ds := sampleDecisions("lost", 40, base.Add(time.Hour))
	write(t, st, ds)
	if lost.armed.Load() || st.Retries() == 0 {
		t.Fatalf("no answer was lost (armed %v, retries %d)", lost.armed.Load(), st.Retries())
	}
	checkStoredOnce(t, rawConn(t, cfg.Addr), cfg.Database, wantRows(append(warm, ds...)))
	if n := st.SkippedRows("decisions"); n != uint64(len(ds)) {
		t.Errorf("SkippedRows(decisions) = %d, want %d (the retry found them stored)", n, len(ds))
	}
	if n := st.SkippedRows("events"); n != 0 {
		t.Errorf("SkippedRows(events) = %d, want 0 (stored by the first attempt, not sent again)", n)
	}
}

// TestRefusedLookupDoesNotHoldTheWrite: when ClickHouse refuses the
// look-up itself (a server exception, such as a query over
// max_query_size), the batch is stored unchecked rather than retried
// forever, and its decisions do not count towards ending the window.
func TestRefusedLookupDoesNotHoldTheWrite(t *testing.T) {
	cfg := chtest.Config(t)
	cfg.RecoveryWindow = 5
	st, err := chstore.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	chstore.WrapConn(st, func(c driver.Conn) driver.Conn { return refuseLookups{c} })
	ds := sampleDecisions("refused", 10, time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := st.WriteDecisions(ctx, ds); err != nil {
		t.Fatalf("WriteDecisions with the look-up refused: %v", err)
	}
	checkStoredOnce(t, rawConn(t, cfg.Addr), cfg.Database, wantRows(ds))
	if !st.Recovering() {
		t.Error("10 unchecked decisions ended a recovery window of 5")
	}
}

func write(t *testing.T, st *chstore.Store, ds []*engine.Decision) {
	t.Helper()
	if err := st.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
}

// countRows counts db.table's rows without FINAL, and the distinct keys.
func countRows(t testing.TB, conn driver.Conn, db, table, key string) (rows, keys uint64) {
	t.Helper()
	q := "SELECT count(), uniqExact(" + key + ") FROM `" + db + "`." + table
	if err := conn.QueryRow(context.Background(), q).Scan(&rows, &keys); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return rows, keys
}

// checkStoredOnce checks that each table holds w's rows once each without
// FINAL: as many rows as distinct keys, and as many as w says.
func checkStoredOnce(t testing.TB, conn driver.Conn, db string, w want) {
	t.Helper()
	for _, c := range []struct {
		table, key string
		want       uint64
	}{
		{"events", "event_id", w.events}, {"decisions", "event_id", w.decisions},
		{"alerts", "event_id, rule_id", w.alerts}, {"account_locks", "event_id, action", w.locks},
		{"labels", "event_id", w.labels},
	} {
		if rows, keys := countRows(t, conn, db, c.table, c.key); rows != c.want || keys != c.want {
			t.Errorf("%s without FINAL: %d rows, %d distinct (%s); want %d of each", c.table, rows, keys, c.key, c.want)
		}
	}
}

// refuseLookups is a connection on which every look-up of stored rows
// fails with a server exception.
type refuseLookups struct{ driver.Conn }

func (c refuseLookups) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	if strings.HasPrefix(query, "SELECT DISTINCT event_id FROM") {
		return nil, &clickhouse.Exception{Code: 62, Name: "DB::Exception", Message: "Syntax error: Max query size exceeded"}
	}
	return c.Conn.Query(ctx, query, args...)
}

// loseAnswer is a connection whose first insert into table is stored by
// the server but reported failed, as when the connection breaks before
// the answer arrives.
type loseAnswer struct {
	driver.Conn
	table string
	armed atomic.Bool
}

func (c *loseAnswer) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	b, err := c.Conn.PrepareBatch(ctx, query, opts...)
	if err != nil || !strings.Contains(query, "."+c.table+" (") || !c.armed.CompareAndSwap(true, false) {
		return b, err
	}
	return lostSend{b}, nil
}

type lostSend struct{ driver.Batch }

func (b lostSend) Send() error {
	if err := b.Batch.Send(); err != nil {
		return err
	}
	return errors.New("read: connection reset by peer (after the server stored the batch)")
}

// TestRecoveryLooksUpABatchOverTheQuerySizeLimit: 3000 ids of 120 bytes
// are more than ClickHouse's max_query_size (256 KiB) as one IN list; the
// look-up splits them, and finds every one.
func TestRecoveryLooksUpABatchOverTheQuerySizeLimit(t *testing.T) {
	cfg := chtest.Config(t)
	ds := sampleDecisions(strings.Repeat("x", 111), 3000, time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC))
	if n := len(ds[0].EventID); n != 120 {
		t.Fatalf("ids of %d bytes, want 120", n)
	}
	for range 2 { // a run, then a restart that writes the batch again
		st, err := chstore.Open(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		write(t, st, ds)
		st.Close()
	}
	checkStoredOnce(t, rawConn(t, cfg.Addr), cfg.Database, wantRows(ds))
}
