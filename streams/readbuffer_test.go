package streams

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/internal/kafkatest"
)

// BenchmarkInputReader reads a partition of 50,000 events of 300 bytes
// with a partition reader as the pipeline makes one, through kafka-go's
// own connection and through inputDialer's, from each broker of
// kafkatest.Brokers, and reports the time and this process's CPU per
// event. With Apache Kafka the process is the reader alone; the embedded
// broker serves from the same process.
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
			name   string
			dialer *kafka.Dialer
		}{{"kafka-go-connection", nil}, {"buffered-connection", inputDialer}} {
			b.Run(broker.Name+"/"+bc.name, func(b *testing.B) {
				cpu := processCPU(b)
				for b.Loop() {
					if err := readAll(broker.Addr(), topic, partition, events, bc.dialer); err != nil {
						b.Fatal(err)
					}
				}
				n := float64(b.N * events)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/event")
				b.ReportMetric(float64((processCPU(b) - cpu).Nanoseconds())/n, "cpu-ns/event")
			})
		}
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readAll reads n messages of topic's partition as the pipeline's input
// readers do (newInput), with dialer.
func readAll(addr, topic string, partition, n int, dialer *kafka.Dialer) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond, Dialer: dialer})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range n {
		if _, err := r.FetchMessage(ctx); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	return nil
}
