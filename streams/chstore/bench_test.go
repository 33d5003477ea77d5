package chstore_test

import (
	"fmt"
	"testing"
	"time"

	"riskd/engine"
	"riskd/internal/chtest"
	"riskd/streams/chstore"
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

// BenchmarkAppendColumns builds the events and decisions columns of a
// batch of 5,000 decisions (output.batch_size) in a real batch, then
// aborts it: the client's side of WriteDecisions without the server's,
// and its allocations, which drive riskd's garbage collection. The
// sample decisions carry two features; "decisions-20-features" gives
// each the twenty of the reference rule set (make bench's), whose names
// and values are most of the decisions table's array elements.
func BenchmarkAppendColumns(b *testing.B) {
	st := chtest.Open(b)
	ds := sampleDecisions("cols", 5000, time.Now().Add(-time.Hour).Truncate(time.Second))
	ins := chstore.BuildInserts(ds)
	wide := make([]*engine.Decision, len(ds))
	for i, d := range ds {
		w := *d
		w.Features = make([]engine.FeatureValue, 20)
		for f := range w.Features {
			w.Features[f] = engine.FeatureValue{Name: fmt.Sprintf("feature_%02d_1h", f), Value: float64(i%7 + f)}
		}
		wide[i] = &w
	}
	wideIns := chstore.BuildInserts(wide)
	for _, bc := range []struct {
		name, table string
		ins         chstore.Inserts
	}{
		{"events", "events", ins},
		{"decisions", "decisions", ins},
		{"decisions-20-features", "decisions", wideIns},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := chstore.AppendColumnsAborted(b.Context(), st, bc.ins, bc.table); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
