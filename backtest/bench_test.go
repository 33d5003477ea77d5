package backtest_test

import (
	"os"
	"testing"
	"time"

	"riskd/backtest"
	"riskd/streams/chstore"
)

// BenchmarkBacktest replays stored events through the reference rules.
// With RISKD_BENCH_BACKTEST_DB naming a database on the test server (the
// benchmark's riskd_bench after make bench), it replays that database's
// whole history; otherwise a generated day stored in a fresh database.
func BenchmarkBacktest(b *testing.B) {
	set, rs := referenceSet(b)
	var st *chstore.Store
	var err error
	from, to := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)
	if db := os.Getenv("RISKD_BENCH_BACKTEST_DB"); db != "" {
		cfg := chstore.DefaultConfig()
		cfg.Database = db
		if st, err = chstore.Open(b.Context(), cfg); err != nil {
			b.Fatal(err)
		}
		defer st.Close()
	} else {
		st, _, _ = storeGenerated(b, set, rs, 50_000)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var events int64
	for b.Loop() {
		rep, err := backtest.Run(b.Context(), backtest.Config{Store: st, Features: set, Rules: rs, From: from, To: to})
		if err != nil {
			b.Fatal(err)
		}
		if rep.EventsPeriod == 0 {
			b.Fatal("no events replayed")
		}
		events += rep.EventsPeriod + rep.EventsWarmup
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
