package backtest_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"riskd/bench/traffic"
	"riskd/engine"
	"riskd/event"
	"riskd/features"
	"riskd/internal/chtest"
	"riskd/internal/keyhash"
	"riskd/rules"
	"riskd/streams/chstore"
)

// trafficStart is the event time of the generated traffic's first event.
var trafficStart = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

func referenceSet(tb testing.TB) (*features.Set, *rules.RuleSet) {
	tb.Helper()
	set, err := features.LoadFile("../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	rs, err := rules.Load("../bench/reference/rules", set)
	if err != nil {
		tb.Fatal(err)
	}
	return set, rs
}

// storeGenerated opens a fresh database and stores n generated events
// (with labelled fraud) decided as live: a 4-shard engine.Engine fed in
// event-time order with Kafka positions (topic by event type, partition
// by account, as riskd's producers key them), and every decision stored
// through chstore's own write path. It returns the store and the events'
// time span.
//
// rs (the reference rules) is version 1, stored in the version history as
// riskd stores its start-up set.
func storeGenerated(tb testing.TB, set *features.Set, rs *rules.RuleSet, n int) (*chstore.Store, time.Time, time.Time) {
	tb.Helper()
	st := chtest.Open(tb)
	writeVersion(tb, st, 1, readReferenceFiles(tb))
	first, last := decideLive(tb, st, set, rs, n, generated(n), liveOptions{support: true})
	return st, first, last
}

// generated is the traffic of n events over three days that
// storeGenerated stores.
func generated(n int) traffic.Config {
	return traffic.Config{Accounts: max(n/20, 16), Seed: 7, FraudRate: 0.03,
		Start: trafficStart, EventsPerSecond: float64(n) / (3 * 24 * 3600), IDPrefix: "g-"}
}

// writeVersion stores files as rule-set version seq in the version history.
func writeVersion(tb testing.TB, st *chstore.Store, seq uint64, files map[string][]byte) {
	tb.Helper()
	m := make(map[string]string, len(files))
	for name, b := range files {
		m[name] = string(b)
	}
	if err := st.WriteRuleSetVersion(tb.Context(), chstore.RuleSetVersionRow{Seq: seq, Hash: rules.HashFiles(files), Files: m,
		Author: "test", Message: fmt.Sprintf("version %d", seq)}); err != nil {
		tb.Fatal(err)
	}
}

// liveOptions vary how decideLive decides.
type liveOptions struct {
	// support has support lock an account half-way and unlock it three
	// quarters in (see supportLock).
	support bool
	// shuffle, above 1, submits the events in an arrival order other than
	// event time: shuffled (seeded) within consecutive runs of that many
	// events, as partitions caught up with kafka.max_idle 0 hand them over.
	// Kafka offsets follow the arrival order.
	shuffle int
	// next, if set, goes live as version 2 once the first switchAt events
	// are decided.
	next     *rules.RuleSet
	switchAt int
}

// decideLive decides n generated events with a live multi-shard engine
// running rs (version 1) and stores the decisions, as opt says. It returns
// the first and last event time.
func decideLive(tb testing.TB, st *chstore.Store, set *features.Set, rs *rules.RuleSet, n int, tc traffic.Config, opt liveOptions) (time.Time, time.Time) {
	tb.Helper()
	holder := &rules.Holder{}
	holder.Install(rs, 1)
	eng := engine.New(engine.Config{Shards: 4}, set, holder)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { eng.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	gen := traffic.New(tc)
	evs := make([]event.Event, n)
	for i := range evs {
		gen.Next(&evs[i])
	}
	if opt.shuffle > 1 {
		rng := rand.New(rand.NewPCG(11, uint64(opt.shuffle)))
		for i := 0; i < n; i += opt.shuffle {
			w := evs[i:min(i+opt.shuffle, n)]
			rng.Shuffle(len(w), func(a, b int) { w[a], w[b] = w[b], w[a] })
		}
	}
	var mu sync.Mutex
	var ds []*engine.Decision
	var errs []error
	var done sync.WaitGroup
	offsets := map[[2]any]int64{}
	first, last := int64(1<<63-1), int64(-1<<63)
	for i := range n {
		ev := &evs[i]
		raw := ev.AppendJSON(nil)
		topic := "account-events"
		switch ev.Type {
		case event.TypePayment, event.TypeTopup, event.TypeWithdrawal, event.TypeRefund, event.TypePointsRedeem:
			topic = "payments"
		}
		part := int(keyhash.String(ev.AccountID) % 8)
		k := [2]any{topic, part}
		off := offsets[k]
		offsets[k]++
		if opt.next != nil && i == opt.switchAt {
			done.Wait() // every event before is decided by version 1
			holder.Install(opt.next, 2)
		}
		if opt.support && (i == n/2 || i == 3*n/4) {
			// Support locks this event's account (later unlocks it) once
			// every event before has been decided, as an agent would
			// between two of the account's events.
			done.Wait()
			supportLock(tb, ctx, eng, st, ev.AccountID, i == n/2)
		}
		first, last = min(first, ev.TS), max(last, ev.TS)
		done.Add(1)
		err := eng.Submit(ctx, engine.Message{Value: raw, Key: []byte(ev.AccountID),
			Source: engine.Source{Topic: topic, Partition: part, Offset: off},
			Done: func(d *engine.Decision, err error) {
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					ds = append(ds, d)
				}
				mu.Unlock()
				done.Done()
			}})
		if err != nil {
			tb.Fatal(err)
		}
	}
	done.Wait()
	if len(errs) > 0 {
		tb.Fatalf("%d events refused live, first: %v", len(errs), errs[0])
	}
	for i := 0; i < len(ds); i += 5000 {
		if err := st.WriteDecisions(tb.Context(), ds[i:min(i+5000, len(ds))]); err != nil {
			tb.Fatal(err)
		}
	}
	return time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
}

// sqlConn is a connection of the test's own to the store's server, for
// counts made independently of the code under test.
func sqlConn(tb testing.TB) driver.Conn {
	tb.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chtest.Addr(tb)}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// ruleHitsSQL counts, per rule, the stored decisions (FINAL) of the
// period it matched, active and shadow apart.
func ruleHitsSQL(tb testing.TB, st *chstore.Store, from, to time.Time) (active, shadow map[string]int64) {
	tb.Helper()
	conn := sqlConn(tb)
	active, shadow = map[string]int64{}, map[string]int64{}
	for _, c := range []struct {
		col string
		out map[string]int64
	}{{"matched_rules", active}, {"shadow_rules", shadow}} {
		q := fmt.Sprintf("SELECT rule, count() FROM `%s`.decisions FINAL ARRAY JOIN %s AS rule "+
			"WHERE event_ts_ms >= %d AND event_ts_ms < %d GROUP BY rule", st.Database(), c.col, from.UnixMilli(), to.UnixMilli())
		rows, err := conn.Query(tb.Context(), q)
		if err != nil {
			tb.Fatal(err)
		}
		for rows.Next() {
			var id string
			var n uint64
			if err := rows.Scan(&id, &n); err != nil {
				tb.Fatal(err)
			}
			c.out[id] = int64(n)
		}
		if err := rows.Err(); err != nil {
			tb.Fatal(err)
		}
		rows.Close()
	}
	return active, shadow
}

func osDirFS(dir string) fs.FS { return os.DirFS(dir) }

// supportAccount is the account decideLive had support lock and unlock.
var supportAccount sync.Map // database -> account id

// supportLock locks (or unlocks) account for an hour of wall clock on its
// shard and records it, as api.LockService does.
func supportLock(tb testing.TB, ctx context.Context, eng *engine.Engine, st *chstore.Store, account string, lock bool) {
	at := time.Now().UTC()
	row := chstore.LockRow{AccountID: account, Action: "unlock", Reason: "owner verified", Actor: "support:t", At: at}
	fn := func(s *engine.Scorer) { s.Unlock(account) }
	if lock {
		until := at.Add(time.Hour)
		row.Action, row.Reason, row.Until = "lock", "owner reported fraud", until
		fn = func(s *engine.Scorer) { s.Lock(account, until.UnixMilli(), "support:t") }
		supportAccount.Store(st.Database(), account)
	}
	if err := eng.Do(ctx, account, fn); err != nil {
		tb.Fatal(err)
	}
	if err := st.WriteLock(tb.Context(), row); err != nil {
		tb.Fatal(err)
	}
}
