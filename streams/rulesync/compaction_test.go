package rulesync

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/internal/kafkatest"
)

// TestCompactionLeavesANewInstanceOnlyTheNewestSet runs on Apache Kafka
// only: kfake does not compact. Five versions are published to a
// compacted rules topic whose segments roll quickly; once the broker's
// log cleaner has removed superseded versions, a new instance following
// the topic installs exactly one rule set, the newest.
func TestCompactionLeavesANewInstanceOnlyTheNewestSet(t *testing.T) {
	b := kafkatest.Apache(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("risk.rules.compaction-%d", time.Now().UnixNano())
	client := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{
			{ConfigName: "cleanup.policy", ConfigValue: "compact"},
			// Roll a segment per record (the active segment is never
			// cleaned) and clean as soon as anything is dirty.
			{ConfigName: "segment.ms", ConfigValue: "100"},
			{ConfigName: "min.cleanable.dirty.ratio", ConfigValue: "0.001"},
			{ConfigName: "min.compaction.lag.ms", ConfigValue: "0"},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Errors[topic]; err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Brokers: []string{b.Addr()}, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	const versions = 5
	for i := 1; i <= versions; i++ {
		rec := Record{Hash: fmt.Sprintf("hash-%d", i), Files: map[string]string{"a.yaml": fmt.Sprintf("# version %d\n", i)},
			Author: "compaction-test", Message: fmt.Sprintf("version %d", i), PublishedAt: time.Now()}
		if _, err := s.Publish(ctx, rec); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // the next record rolls a new segment
	}

	// Wait for the cleaner: the topic must physically hold fewer records.
	for held := versions; held >= versions; {
		held = countRecords(t, ctx, b.Addr(), topic)
		if held < versions {
			t.Logf("after compaction the topic holds %d of %d records", held, versions)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the log cleaner never compacted %s (%d records)", topic, held)
		case <-time.After(500 * time.Millisecond):
		}
	}

	fresh, err := New(Config{Brokers: []string{b.Addr()}, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	followCtx, stop := context.WithCancel(ctx)
	applied := make(chan Record, versions)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fresh.Follow(followCtx, func(r Record) error { applied <- r; return nil })
	}()
	var got Record
	select {
	case got = <-applied:
	case <-ctx.Done():
		t.Fatal("the new instance installed nothing")
	}
	time.Sleep(time.Second) // anything else it would install arrives now
	stop()
	<-done
	if got.Hash != fmt.Sprintf("hash-%d", versions) || len(applied) != 0 {
		t.Fatalf("new instance installed %q and %d more, want only hash-%d", got.Hash, len(applied), versions)
	}
}

// countRecords reads the whole topic from its first offset.
func countRecords(t *testing.T, ctx context.Context, addr, topic string) int {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		t.Fatal(err)
	}
	lag, err := r.ReadLag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for lag > 0 {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n++
		if m.Offset+1 >= m.HighWaterMark {
			break
		}
	}
	return n
}
