package features

import (
	"os"
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
)

// BenchmarkObserveReference measures Observe alone on the reference
// workload (bench/reference: 20 features in 5 groups) with the state of
// BenchmarkScoreReference in package engine: 100k accounts warmed with
// 400k generated events, then generated events replayed in a loop, their
// time shifted on each pass so windows keep sliding.
func BenchmarkObserveReference(b *testing.B) {
	yml, err := os.ReadFile("../bench/reference/features.yaml")
	if err != nil {
		b.Fatal(err)
	}
	s := mustSet(b, string(yml))
	const accounts = 100_000
	g := traffic.New(traffic.Config{Accounts: accounts, Seed: 7, FraudRate: 0.02,
		Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	st := s.NewStore()
	var v Values
	var ev event.Event
	for range 4 * accounts {
		g.Next(&ev)
		st.Observe(&ev, &v)
	}
	pool := make([]event.Event, 300_000)
	for i := range pool {
		g.Next(&pool[i])
	}
	span := pool[len(pool)-1].TS - pool[0].TS + 1000
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := &pool[i%len(pool)]
		if i > 0 && i%len(pool) == 0 {
			for j := range pool {
				pool[j].TS += span
			}
		}
		st.Observe(ev, &v)
		i++
	}
	if v.Profile.EventsSeen == 0 && st.Len() == 0 {
		b.Fatal("no state")
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
}
