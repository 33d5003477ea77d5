package chstore_test

import (
	"fmt"
	"testing"
	"time"

	"riskd/internal/chtest"
)

// BenchmarkWriteDecisions stores batches of 1000 decisions of distinct
// events (every table gets rows) and reports stored decisions per second.
func BenchmarkWriteDecisions(b *testing.B) {
	const batch = 1000
	st := chtest.Open(b)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		ds := sampleDecisions(fmt.Sprintf("bench%d", i), batch, base)
		if err := st.WriteDecisions(b.Context(), ds); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(batch*i)/b.Elapsed().Seconds(), "rows/s")
	b.StopTimer()
	if n, err := st.CountDecisions(b.Context(), base); err != nil || n != uint64(batch*i) {
		b.Fatalf("CountDecisions = %d, %v; want %d", n, err, batch*i)
	}
}
