package streams

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/internal/kafkatest"
)

// BenchmarkOutputWriter writes batches of decision-record-sized messages
// with headers, keyed over many accounts, to a topic of four partitions:
// with kafka-go's Writer as the output stage had it, and with
// outputWriter. cpu-ns/message is this process's CPU (with Apache Kafka,
// the writer's alone; the embedded broker serves from the same process).
//
//	RISKD_TEST_KAFKA=127.0.0.1:19092 go test -run '^$' -bench BenchmarkOutputWriter -benchtime 20x -count 3 ./streams/
func BenchmarkOutputWriter(b *testing.B) {
	const batch = 5_000
	value := []byte(`{"event_id":"e","account_id":"a","type":"payment","action":"allow","pad":"` + strings.Repeat("x", 560) + `"}`)
	msgs := make([]kafka.Message, batch)
	for i := range msgs {
		key := []byte("acct-" + strconv.Itoa(i))
		msgs[i] = kafka.Message{Key: key, Value: value, Headers: []kafka.Header{
			{Key: HeaderEventID, Value: []byte("e" + strconv.Itoa(i))}, {Key: "riskd-action", Value: []byte("allow")}}}
	}
	for _, broker := range kafkatest.Brokers(b) {
		topic := "output-writer-" + kafkatest.Suffix()
		createTopic(b, broker.Addr(), topic, nil)
		pending := make([]outgoing, batch)
		idx := make([]int, batch)
		for i := range msgs {
			pending[i] = outgoing{msg: msgs[i]}
			pending[i].msg.Topic = topic
			idx[i] = i
		}
		errs := make([]error, batch)
		for _, bc := range []struct {
			name string
			open func() (write func(context.Context) error, close func())
		}{
			{"kafka-go", func() (func(context.Context) error, func()) { return kafkaGoWrite(broker.Addr(), pending) }},
			{"franz-go", func() (func(context.Context) error, func()) { return franzGoWrite(broker.Addr(), pending, idx, errs) }},
		} {
			b.Run(broker.Name+"/"+bc.name, func(b *testing.B) {
				write, closeWriter := bc.open()
				defer closeWriter()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				if err := write(ctx); err != nil { // connections and metadata
					b.Fatal(err)
				}
				cpu := processCPU(b)
				for b.Loop() {
					if err := write(ctx); err != nil {
						b.Fatal(err)
					}
				}
				n := float64(b.N * batch)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/message")
				b.ReportMetric(float64((processCPU(b)-cpu).Nanoseconds())/n, "cpu-ns/message")
			})
		}
	}
}

// kafkaGoWrite writes with a kafka-go Writer set up as the output stage's
// decisions writer was before outputWriter.
func kafkaGoWrite(addr string, pending []outgoing) (func(context.Context) error, func()) {
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1024, BatchBytes: writerBatchBytes, BatchTimeout: time.Millisecond, MaxAttempts: 3}
	msgs := make([]kafka.Message, len(pending))
	return func(ctx context.Context) error {
		for i := range pending {
			msgs[i] = pending[i].msg
		}
		return w.WriteMessages(ctx, msgs...)
	}, func() { w.Close() }
}

func franzGoWrite(addr string, pending []outgoing, idx []int, errs []error) (func(context.Context) error, func()) {
	w := newOutputWriter([]string{addr}, &kafka.Hash{}, false)
	return func(ctx context.Context) error {
		w.write(ctx, pending, idx, errs)
		for i, err := range errs {
			if err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
		}
		return nil
	}, w.Close
}

func TestOutputWriterPlacesAndKeepsMessages(t *testing.T) {
	kafkatest.Run(t, testOutputWriterPlacesAndKeepsMessages)
}

// Written through outputWriter, every message lands on the partition
// kafka-go's balancer gives it, in the order written within a partition,
// with its key, value and headers; a writer that sends one message at a
// time does the same.
func testOutputWriterPlacesAndKeepsMessages(t *testing.T, b kafkatest.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := "output-writer-" + kafkatest.Suffix()
	createTopic(t, b.Addr(), topic, nil)
	const n = 200
	var pending []outgoing
	var idx []int
	for i := range n {
		id := strconv.Itoa(i)
		pending = append(pending, outgoing{msg: kafka.Message{Topic: topic, Key: []byte("acct-" + strconv.Itoa(i%17)),
			Value: []byte("v" + id), Headers: []kafka.Header{{Key: HeaderEventID, Value: []byte(id)}, {Key: "n", Value: []byte(id)}}}})
		idx = append(idx, i)
	}
	for _, oneByOne := range []bool{false, true} {
		w := newOutputWriter([]string{b.Addr()}, &kafka.Hash{}, oneByOne)
		errs := make([]error, n)
		w.write(ctx, pending, idx, errs)
		w.Close()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("one by one %v: message %d: %v", oneByOne, i, err)
			}
		}
	}
	got := kafkatest.ReadAll(t, b.Addr(), topic, 2*n, time.Minute)
	if len(got) != 2*n {
		t.Fatalf("read %d messages, want %d", len(got), 2*n)
	}
	read := map[int][]int{} // by partition, the message numbers in the order read
	for _, m := range got {
		h := kafkatest.Headers(m)
		i, err := strconv.Atoi(h[HeaderEventID])
		if err != nil || i < 0 || i >= n || h["n"] != h[HeaderEventID] || string(m.Value) != "v"+h[HeaderEventID] {
			t.Fatalf("message %q with headers %v", m.Value, h)
		}
		if want := pending[i].msg.Key; string(m.Key) != string(want) {
			t.Fatalf("message %d: key %q, want %q", i, m.Key, want)
		}
		read[m.Partition] = append(read[m.Partition], i)
	}
	want := map[int][]int{} // each writer's messages, in the order given, on kafka-go's partition
	for i, o := range pending {
		p := (&kafka.Hash{}).Balance(o.msg, 0, 1, 2, 3)
		want[p] = append(want[p], i)
	}
	for p, ids := range want {
		if w := append(slices.Clone(ids), ids...); !slices.Equal(read[p], w) {
			t.Errorf("partition %d holds messages %v; want %v (kafka-go's balancer, in the order written, twice)", p, read[p], w)
		}
	}
	if len(read) != len(want) {
		t.Errorf("messages in partitions %v; want %v", slices.Sorted(maps.Keys(read)), slices.Sorted(maps.Keys(want)))
	}
}
