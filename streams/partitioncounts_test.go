package streams

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"riskd/internal/kafkatest"
)

// countingTransport counts the requests that reach the broker.
type countingTransport struct {
	next     kafka.RoundTripper
	requests atomic.Int64
}

func (c *countingTransport) RoundTrip(ctx context.Context, addr net.Addr, req kafka.Request) (kafka.Response, error) {
	c.requests.Add(1)
	return c.next.RoundTrip(ctx, addr, req)
}

// TestPartitionCountsAreAskedOncePerTTL: a writer's metadata request for
// a topic reaches the broker once per partitionCountTTL, with the same
// partition count given in between; a topic the broker does not know is
// asked again every time, so it is written to as soon as it exists; and
// messages written through the cache land in the partitions the balancer
// chose.
func TestPartitionCountsAreAskedOncePerTTL(t *testing.T) {
	kafkatest.Run(t, testPartitionCountsAreAskedOncePerTTL)
}

func testPartitionCountsAreAskedOncePerTTL(t *testing.T, b kafkatest.Broker) {
	topic := "partition-counts-" + kafkatest.Suffix()
	createTopic(t, b.Addr(), topic, nil) // 4 partitions
	broker := &countingTransport{next: kafka.DefaultTransport}
	counts := newPartitionCounts(broker)
	var passed time.Duration // the time since every answer, as the test sets it
	counts.since = func(time.Time) time.Duration { return passed }
	addr := kafka.TCP(b.Addr())
	ask := func(topic string) (*metadataAPI.Response, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := counts.RoundTrip(ctx, addr, &metadataAPI.Request{TopicNames: []string{topic}})
		if err != nil {
			return nil, err
		}
		return r.(*metadataAPI.Response), nil
	}
	partitionsOf := func(r *metadataAPI.Response) int {
		for _, tp := range r.Topics {
			if tp.Name == topic {
				return len(tp.Partitions)
			}
		}
		return 0
	}

	first, err := ask(topic)
	if err != nil {
		t.Fatal(err)
	}
	if got := partitionsOf(first); got != 4 {
		t.Fatalf("the broker counts %d partitions, want 4", got)
	}
	for range 10 {
		r, err := ask(topic)
		if err != nil {
			t.Fatal(err)
		}
		if partitionsOf(r) != 4 {
			t.Fatalf("a cached answer counts %d partitions, want 4", partitionsOf(r))
		}
	}
	if n := broker.requests.Load(); n != 1 {
		t.Fatalf("11 requests within the TTL reached the broker %d times, want 1", n)
	}
	passed = partitionCountTTL
	if _, err := ask(topic); err != nil {
		t.Fatal(err)
	}
	if n := broker.requests.Load(); n != 2 {
		t.Fatalf("a request after the TTL: %d reached the broker, want 2", n)
	}

	// An answer with an error is not kept.
	missing := "partition-counts-missing-" + kafkatest.Suffix()
	before := broker.requests.Load()
	for range 2 {
		r, err := ask(missing)
		if err == nil && countsPartitions(r, missing) {
			t.Fatalf("the broker counts partitions of %s, which was never created", missing)
		}
	}
	if n := broker.requests.Load() - before; n != 2 {
		t.Fatalf("two requests for a topic the broker does not know reached it %d times, want 2", n)
	}

	// Requests of other kinds pass through.
	before = broker.requests.Load()
	client := &kafka.Client{Addr: addr, Transport: counts, Timeout: 10 * time.Second}
	if _, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{topic: {kafka.FirstOffsetOf(0)}},
	}); err != nil {
		t.Fatal(err)
	}
	if broker.requests.Load() == before {
		t.Fatal("a ListOffsets request did not reach the broker")
	}

	// A writer on the cache places each message by its key, as without it.
	w := newWriter([]string{b.Addr()}, 100, &kafka.Hash{}, counts)
	defer w.Close()
	msgs := make([]kafka.Message, 40)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: topic, Key: []byte{byte('a' + i%8)}, Value: []byte{byte(i)}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	got := kafkatest.ReadAll(t, b.Addr(), topic, len(msgs), 30*time.Second)
	want := &kafka.Hash{}
	for _, m := range got {
		if p := want.Balance(m, 0, 1, 2, 3); p != m.Partition {
			t.Fatalf("key %q landed in partition %d, its hash places it in %d", m.Key, m.Partition, p)
		}
	}
}
