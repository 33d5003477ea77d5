package snapshots

import (
	"context"
	"testing"
	"time"

	"riskd/internal/kafkatest"
)

// BenchmarkSaveAndLoad saves a 256 MB snapshot to a broker and loads it
// back: the Kafka part of a restart's cost, beside the engine's cut and
// restore (engine.BenchmarkStateCutAndRestore). The broker is the embedded
// one unless $RISKD_TEST_KAFKA names another (the last of kafkatest.Brokers).
//
//	go test -run '^$' -bench '^BenchmarkSaveAndLoad$' -benchtime 1x ./streams/snapshots/
func BenchmarkSaveAndLoad(b *testing.B) {
	brokers := kafkatest.Brokers(b)
	broker := brokers[len(brokers)-1]
	data := randomData(256<<20, 3)
	s, err := New(Config{Brokers: []string{broker.Addr()}, Topic: "riskd.state-bench-" + kafkatest.Suffix(), Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var seq uint64
	var save, load time.Duration
	for b.Loop() {
		seq++
		st, err := s.Save(ctx, snapshotOf(seq, data))
		if err != nil {
			b.Fatal(err)
		}
		save = st.Duration
		fresh, err := New(Config{Brokers: []string{broker.Addr()}, Topic: s.Topic(), Name: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		got, lst, err := fresh.Load(ctx)
		if err != nil || len(got.Data) != len(data) {
			b.Fatalf("load: %v (%d bytes)", err, len(got.Data))
		}
		load = lst.Duration
	}
	mb := float64(len(data)) / 1e6
	b.ReportMetric(save.Seconds(), "save-s")
	b.ReportMetric(load.Seconds(), "load-s")
	b.ReportMetric(mb/save.Seconds(), "save-MB/s")
	b.ReportMetric(mb/load.Seconds(), "load-MB/s")
}
