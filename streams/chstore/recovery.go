package chstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ClickHouse/clickhouse-go/v2"

	"riskd/engine"
)

// The recovery window: rows stored once after a restart.
//
// Offsets are committed behind what is durable, so after a crash the new
// run writes again the decisions the old one stored but had not committed
// yet. ReplacingMergeTree collapses them under FINAL, but until a merge
// (and for any read without FINAL) they are duplicate rows. Those
// decisions can only be near the committed offsets: the old run had at
// most StoreParallelism batches of BatchSize decisions writing at once.
// So a Store starts "recovering": before inserting a batch, WriteDecisions
// asks each table which of the batch's event ids it already holds and
// leaves those rows out, until it has seen RecoveryWindow consecutive
// decisions of which no row was stored. The tables are asked separately
// because the five inserts of one batch run concurrently, so a crash can
// leave any subset of them stored (events without decisions, a decision
// without its alerts).

// DefaultRecoveryWindow is RecoveryWindow when Config leaves it 0:
// (StoreParallelism + 1) x BatchSize with package streams' defaults (3 and
// 5000), the bound on the run of stored rows a crash can leave past a gap,
// plus one batch.
const DefaultRecoveryWindow = (3 + 1) * 5000

// lookupBytes bounds the literal lists of one lookup query: ClickHouse
// refuses a query text over max_query_size (262144 bytes by default, on
// 18.16 as today), and a batch of 5000 long event ids is more than that.
const lookupBytes = 128 << 10

// decisionTables are the tables WriteDecisions writes, in the order of
// decisionInserts, with the column of each that holds the row's time (the
// partition key's column).
var decisionTables = [...]struct{ name, timeColumn string }{
	{"events", "event_time"},
	{"decisions", "event_time"},
	{"alerts", "event_time"},
	{"account_locks", "time"},
	{"labels", "event_time"},
}

// DecisionTables names the tables WriteDecisions writes: the values of the
// table argument of Config.OnSkip and SkippedRows.
func DecisionTables() []string {
	names := make([]string, len(decisionTables))
	for i, t := range decisionTables {
		names[i] = t.name
	}
	return names
}

// recovery is a Store's recovery-window state; Open sets window from
// Config.RecoveryWindow and active when it is positive.
type recovery struct {
	window  int // clean decisions in a row that end it; < 0: never checks
	mu      sync.Mutex
	active  bool
	clean   int                                // consecutive decisions seen with no row stored
	skipped [len(decisionTables)]atomic.Uint64 // by table
}

// Recovering reports whether the store is still in its recovery window:
// its writes ask ClickHouse which rows are there already and leave those
// out. It starts so at Open (unless Config.RecoveryWindow is negative) and
// stops after RecoveryWindow consecutive decisions of which no row was
// stored.
func (s *Store) Recovering() bool {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	return s.rec.active
}

// Recover opens the recovery window again (or restarts its count when it
// is open), for the decisions of partitions that moved here: their
// previous owner may have stored decisions whose offsets it had not
// committed (it was killed), which this instance decides and writes
// again. A no-op with a negative Config.RecoveryWindow.
func (s *Store) Recover() {
	r := &s.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.window < 0 {
		return
	}
	r.clean = 0 // a window still open counts from here
	if !r.active {
		r.active = true
		s.log.Info("chstore: recovery window opened again for partitions moved here", "database", s.cfg.Database, "recovery_window", r.window)
	}
}

// SkippedRows counts the rows of table (one of DecisionTables) that
// WriteDecisions left out since Open because they were stored already.
func (s *Store) SkippedRows(table string) uint64 {
	for i, t := range decisionTables {
		if t.name == table {
			return s.rec.skipped[i].Load()
		}
	}
	return 0
}

// observe feeds the window with one batch, in order, given which of its
// decisions had a row stored in some table. A batch with stored rows
// resets the count and, should another batch have ended the window
// meanwhile (they are written concurrently), opens it again. The decisions
// of a batch not every table could be asked about (unchecked) do not count
// as clean.
func (s *Store) observe(ds []*engine.Decision, stored map[string]bool, unchecked bool) {
	r := &s.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	found := false
	for _, d := range ds {
		if d == nil {
			continue
		}
		if stored[d.EventID] {
			r.clean, found = 0, true
		} else if !unchecked {
			r.clean++
		}
	}
	switch {
	case found && !r.active:
		r.active = true
		s.log.Warn("chstore: rows stored by an earlier run found after the recovery window ended; checking again",
			"database", s.cfg.Database, "recovery_window", r.window)
	case r.active && r.clean >= r.window:
		r.active = false
		s.log.Info("chstore: recovery window passed; writes no longer check for stored rows",
			"database", s.cfg.Database, "recovery_window", r.window,
			"skipped_events", r.skipped[0].Load(), "skipped_decisions", r.skipped[1].Load())
	}
}

// skipStored asks each table with rows still to send which of their event
// ids it holds, and takes those rows out of ins (the tables are asked
// concurrently, one connection each, like sendAll). It adds the ids found
// in any table to stored, and says whether a table could not be asked.
//
// A look-up the server refuses (an exception, not a broken connection)
// leaves that table's rows as they are, with a warning: storing the batch
// must not wait on a check that may never pass, and a row stored twice
// still reads once under FINAL. Other errors are returned, for the caller
// to retry (the insert would fail the same way).
func (s *Store) skipStored(ctx context.Context, ds []*engine.Decision, ins []insert, done []bool, stored map[string]bool) (unchecked bool, err error) {
	found := make([]map[string]bool, len(ins))
	errs := make([]error, len(ins))
	var refused atomic.Bool
	var wg sync.WaitGroup
	for i := range ins {
		if done[i] || ins[i].len() == 0 {
			continue
		}
		wg.Go(func() {
			in := &ins[i]
			keys := make([]rowKey, len(in.src))
			for j, k := range in.src {
				keys[j] = keyOf(ds[k])
			}
			found[i], errs[i] = s.storedIDs(ctx, decisionTables[i].name, decisionTables[i].timeColumn, keys)
			if ex := (*clickhouse.Exception)(nil); errors.As(errs[i], &ex) {
				refused.Store(true)
				s.log.Warn("chstore: ClickHouse refused the look-up of stored rows; writing them unchecked",
					"database", s.cfg.Database, "table", in.table, "rows", in.len(), "err", redact(errs[i], s.cfg.Password))
				errs[i] = nil
				return
			}
			if errs[i] != nil {
				return
			}
			if n := in.drop(ds, found[i]); n > 0 {
				s.rec.skipped[i].Add(uint64(n))
				if s.cfg.OnSkip != nil {
					s.cfg.OnSkip(in.table, n)
				}
			}
		})
	}
	wg.Wait()
	for _, f := range found {
		for id := range f {
			stored[id] = true
		}
	}
	return refused.Load(), errors.Join(errs...)
}

// drop removes the rows of the decisions (ds[in.src[j]]) whose event id is
// in ids, and says how many.
func (in *insert) drop(ds []*engine.Decision, ids map[string]bool) int {
	if len(ids) == 0 {
		return 0
	}
	n := 0
	for j := range in.src {
		if ids[ds[in.src[j]].EventID] {
			continue
		}
		if in.appendColumns == nil {
			in.rows[n] = in.rows[j]
		}
		in.src[n] = in.src[j]
		n++
	}
	dropped := len(in.src) - n
	in.src = in.src[:n]
	if in.appendColumns == nil {
		in.rows = in.rows[:n]
	}
	return dropped
}

// rowKey is what a lookup needs of a row: its event id, and the account
// and time (Unix seconds, as stored) that lead the table's sorting key
// and pick its partition.
type rowKey struct {
	id, account string
	sec         int64
}

func keyOf(d *engine.Decision) rowKey {
	return rowKey{id: d.EventID, account: d.AccountID, sec: eventTime(d).Unix()}
}

// storedIDs returns which of the keys' event ids table holds. One query
// per chunk of keys (see lookupBytes):
//
//	SELECT DISTINCT event_id FROM db.table
//	WHERE t >= toDateTime(min) AND t <= toDateTime(max)
//	  AND account_id IN ('a', ...) AND event_id IN ('e1', ...)
//
// The time range prunes partitions (every table is partitioned by month of
// that column) and, with the accounts, narrows the primary key (every
// table's sorting key starts with account_id and that time) to a few
// granules per account. The lists are tuples (clickhouse.GroupSet, which
// the driver quotes and escapes): the driver renders a []string as an
// array, and ClickHouse 18.16 refuses "x IN ['a']" ("Type mismatch in IN
// or VALUES section"); has(array, x) runs there but reads no index. No
// FINAL: any row of an id means it is stored.
func (s *Store) storedIDs(ctx context.Context, table, timeColumn string, keys []rowKey) (map[string]bool, error) {
	q := "SELECT DISTINCT event_id FROM " + s.table(table) + " WHERE " + timeColumn + " >= toDateTime(?) AND " +
		timeColumn + " <= toDateTime(?) AND account_id IN ? AND event_id IN ?"
	found := map[string]bool{}
	for _, c := range lookupChunks(keys) {
		rows, err := s.conn.Query(ctx, q, c.minSec, c.maxSec, clickhouse.GroupSet{Value: c.accounts},
			clickhouse.GroupSet{Value: c.ids})
		if err != nil {
			return nil, fmt.Errorf("look up stored rows in %s: %w", table, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("look up stored rows in %s: %w", table, err)
			}
			found[id] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("look up stored rows in %s: %w", table, err)
		}
	}
	return found, nil
}

// lookupChunk is the arguments of one lookup query.
type lookupChunk struct {
	minSec, maxSec int64
	accounts, ids  []any // distinct strings
}

// lookupChunks splits keys (repeats allowed) into chunks whose lists stay
// within lookupBytes once written as quoted literals, sorted so that the
// query text of a batch does not depend on the order of its rows.
func lookupChunks(keys []rowKey) []lookupChunk {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b rowKey) int {
		if c := strings.Compare(a.account, b.account); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	var chunks []lookupChunk
	var c *lookupChunk
	var size int
	seenID := map[string]bool{}
	seenAccount := map[string]bool{}
	for _, k := range keys {
		if seenID[k.id] {
			continue
		}
		// A quoted literal and its separator: the text plus 4 bytes, and
		// at worst twice the text when every byte is escaped.
		cost := len(k.id) + 4 + escapes(k.id)
		if !seenAccount[k.account] {
			cost += len(k.account) + 4 + escapes(k.account)
		}
		if c == nil || size+cost > lookupBytes && len(c.ids) > 0 {
			chunks = append(chunks, lookupChunk{minSec: k.sec, maxSec: k.sec})
			c, size = &chunks[len(chunks)-1], 0
			clear(seenAccount)
			cost = len(k.id) + 4 + escapes(k.id) + len(k.account) + 4 + escapes(k.account)
		}
		seenID[k.id] = true
		if !seenAccount[k.account] {
			seenAccount[k.account] = true
			c.accounts = append(c.accounts, k.account)
		}
		c.ids = append(c.ids, k.id)
		c.minSec, c.maxSec = min(c.minSec, k.sec), max(c.maxSec, k.sec)
		size += cost
	}
	return chunks
}

// escapes counts the bytes a quoted literal escapes with a backslash.
func escapes(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\', '\'', 0:
			n++
		}
	}
	return n
}
