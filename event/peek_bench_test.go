package event_test

import (
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
)

// BenchmarkTSPeeker compares TS with the fastjson tree it replaced, on the
// reference traffic (BenchmarkScoreReference's generator).
func BenchmarkTSPeeker(b *testing.B) {
	g := traffic.New(traffic.Config{Accounts: 100_000, Seed: 7, FraudRate: 0.02,
		Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	msgs := make([][]byte, 4096)
	for i := range msgs {
		msgs[i] = g.AppendJSON(nil)
	}
	for _, impl := range []struct {
		name string
		ts   func(*event.TSPeeker, []byte) (int64, bool)
	}{
		{"scan", (*event.TSPeeker).TS},
		{"fastjson", event.TSFastjson},
	} {
		b.Run(impl.name, func(b *testing.B) {
			var pk event.TSPeeker
			var sum int64
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ms, ok := impl.ts(&pk, msgs[i%len(msgs)])
				if !ok {
					b.Fatalf("no ts in %s", msgs[i%len(msgs)])
				}
				sum += ms
				i++
			}
			if sum == 0 {
				b.Fatal("no ts read")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
