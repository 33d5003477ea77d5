// Package kafkatest has the Kafka chores tests share: the brokers to run
// against (Run and Brokers: the embedded kfake broker always, Apache Kafka
// too when $RISKD_TEST_KAFKA names one, as scripts/kafka-up prints; Apache
// for tests only a real broker makes honest; StartApache for a private
// broker a test may restart), unique topic names (Suffix), writing
// messages and reading a whole topic back with kafka-go.
//
//	func TestX(t *testing.T) {
//		kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
//			topic := "payments-" + kafkatest.Suffix()
//			kafkatest.Produce(t, b.Addr(), topic, msgs...)
//		})
//	}
package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Produce writes msgs to topic (keyed by their Key, hash-partitioned like
// riskd's own outputs) and fails the test if the broker does not take them.
func Produce(t testing.TB, addr, topic string, msgs ...kafka.Message) {
	t.Helper()
	// A transport of its own: the default one caches the cluster's
	// metadata for seconds, and refuses a topic created since as unknown.
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: transport}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// ReadAll reads every message of every partition of topic, polling until
// there are at least want or timeout passes (then the test fails).
func ReadAll(t testing.TB, addr, topic string, want int, timeout time.Duration) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []kafka.Message
	for {
		got = readOnce(t, ctx, addr, topic)
		if len(got) >= want {
			return got
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %d messages after %s, want %d", topic, len(got), timeout, want)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readOnce(t testing.TB, ctx context.Context, addr, topic string) []kafka.Message {
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	var got []kafka.Message
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p.ID,
			MaxWait: 50 * time.Millisecond})
		lag, err := r.ReadLag(ctx)
		for i := int64(0); err == nil && i < lag; i++ {
			var m kafka.Message
			if m, err = r.ReadMessage(ctx); err == nil {
				got = append(got, m)
			}
		}
		r.Close()
	}
	return got
}

// Headers returns m's headers as a map (last value wins).
func Headers(m kafka.Message) map[string]string {
	h := make(map[string]string, len(m.Headers))
	for _, kv := range m.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}
