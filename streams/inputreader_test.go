package streams

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"riskd/internal/kafkatest"
)

// BenchmarkInputReader reads a partition of 50,000 events of 300 bytes
// with kafka-go's Reader, configured as the input readers were before,
// and with partitionReader, from each broker of kafkatest.Brokers, and
// reports the time and this process's CPU per event. With Apache Kafka
// the process is the reader alone; the embedded broker serves from the
// same process.
//
//	RISKD_TEST_KAFKA=127.0.0.1:19092 go test -run '^$' -bench BenchmarkInputReader -benchtime 10x ./streams/
func BenchmarkInputReader(b *testing.B) {
	const events = 50_000
	value := []byte(`{"event_id":"e","account_id":"a","type":"payment","ts":1764547200000,"pad":"` + strings.Repeat("x", 220) + `"}`)
	msgs := make([]kafka.Message, events)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte("a"), Value: value}
	}
	for _, broker := range kafkatest.Brokers(b) {
		topic := "input-reader-" + kafkatest.Suffix()
		createTopic(b, broker.Addr(), topic, nil)
		kafkatest.Produce(b, broker.Addr(), topic, msgs...)
		partition := (&kafka.Hash{}).Balance(msgs[0], 0, 1, 2, 3) // createTopic's four
		for _, bc := range []struct {
			name string
			open func() (fetcher, func())
		}{
			{"kafka-go", func() (fetcher, func()) {
				r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker.Addr()}, Topic: topic,
					Partition: partition, MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
				return r, func() { r.Close() }
			}},
			{"franz-go", func() (fetcher, func()) {
				r := newPartitionReader([]string{broker.Addr()}, topic, partition, kafka.FirstOffset, func(err error) { b.Error(err) })
				return r, r.Close
			}},
		} {
			b.Run(broker.Name+"/"+bc.name, func(b *testing.B) {
				cpu := processCPU(b)
				for b.Loop() {
					r, closeReader := bc.open()
					if err := readN(r, events); err != nil {
						b.Fatal(err)
					}
					closeReader()
				}
				n := float64(b.N * events)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/event")
				b.ReportMetric(float64((processCPU(b)-cpu).Nanoseconds())/n, "cpu-ns/event")
			})
		}
	}
}

// fetcher is what the benchmark reads through: kafka-go's Reader, or
// partitionReader.
type fetcher interface {
	FetchMessage(context.Context) (kafka.Message, error)
}

// readN reads n messages with r.
func readN(r fetcher, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range n {
		if _, err := r.FetchMessage(ctx); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	return nil
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPartitionReaderMessages: a partition read from its start comes out
// in order with its key, value, headers, time and the partition's high
// watermark; a reader asked for an offset below the log's start (records
// deleted) goes on from the start, and one asked for an offset past the
// log's end (records the broker lost) from the end, never back to the
// start; both report the jump.
func TestPartitionReaderMessages(t *testing.T) {
	kafkatest.Run(t, testPartitionReaderMessages)
}

func testPartitionReaderMessages(t *testing.T, b kafkatest.Broker) {
	topic := "partition-reader-" + kafkatest.Suffix()
	createTopic(t, b.Addr(), topic, nil)
	at := time.Now().Add(-time.Hour).Truncate(time.Millisecond) // a broker refuses times far from its clock
	msgs := make([]kafka.Message, 10)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte("acct"), Value: []byte(fmt.Sprintf(`{"n":%d}`, i)), Time: at.Add(time.Duration(i) * time.Second),
			Headers: []kafka.Header{{Key: "origin", Value: []byte(fmt.Sprint(i))}}}
	}
	kafkatest.Produce(t, b.Addr(), topic, msgs...)
	partition := (&kafka.Hash{}).Balance(msgs[0], 0, 1, 2, 3) // createTopic's four

	r := newPartitionReader([]string{b.Addr()}, topic, partition, kafka.FirstOffset, func(err error) { t.Errorf("reading from the start: %v", err) })
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, want := range msgs {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Topic != topic || m.Partition != partition || m.Offset != int64(i) || string(m.Key) != "acct" ||
			string(m.Value) != string(want.Value) || !m.Time.Equal(want.Time) || m.HighWaterMark != int64(len(msgs)) ||
			len(m.Headers) != 1 || m.Headers[0].Key != "origin" || string(m.Headers[0].Value) != fmt.Sprint(i) {
			t.Fatalf("message %d = %+v, want offset %d of %s/%d with %+v and high watermark %d", i, m, i, topic, partition, want, len(msgs))
		}
	}

	// Below the log's start (records deleted by retention): from the start.
	deleteRecordsBefore(t, b.Addr(), topic, partition, 5)
	var below atomic.Int64
	early := newPartitionReader([]string{b.Addr()}, topic, partition, 2, func(error) { below.Add(1) })
	defer early.Close()
	if m, err := early.FetchMessage(ctx); err != nil || m.Offset != 5 {
		t.Fatalf("reading from offset 2 of a log starting at 5: offset %d, %v; want 5", m.Offset, err)
	}
	if below.Load() == 0 {
		t.Error("the reader below the log's start reported nothing")
	}

	var problems atomic.Int64
	past := newPartitionReader([]string{b.Addr()}, topic, partition, 1000, func(error) { problems.Add(1) })
	defer past.Close()
	next := make(chan kafka.Message, 1)
	go func() {
		if m, err := past.FetchMessage(ctx); err == nil {
			next <- m
		}
		close(next)
	}()
	// The reader skips to the end; a message appended after it gets
	// there is the first it reads. Append until it has one.
	for tick := time.NewTicker(200 * time.Millisecond); ; {
		kafkatest.Produce(t, b.Addr(), topic, kafka.Message{Key: []byte("acct"), Value: []byte(`{"n":"after"}`)})
		select {
		case m, ok := <-next:
			if !ok {
				t.Fatal("the reader past the end stopped without a message")
			}
			if m.Offset < int64(len(msgs)) || string(m.Value) != `{"n":"after"}` {
				t.Fatalf("the reader past the end read offset %d (%s), want one appended after the first %d", m.Offset, m.Value, len(msgs))
			}
			if problems.Load() == 0 {
				t.Error("the reader past the end reported nothing")
			}
			tick.Stop()
			return
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the reader past the end read nothing")
		}
	}
}

// deleteRecordsBefore deletes topic's partition's records below offset,
// as retention does.
func deleteRecordsBefore(t *testing.T, addr, topic string, partition int, offset int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.TimeoutMillis = 10_000
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = int32(partition), offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("delete records of %s/%d below %d: %v", topic, partition, offset, err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				t.Fatalf("delete records of %s/%d below %d: %v", topic, partition, offset, err)
			}
		}
	}
}
