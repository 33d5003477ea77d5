package streams

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// outputWriter writes the output stage's messages through a franz-go
// client, as partitionReader reads the inputs: kafka-go's Writer spent
// twice its CPU per message (placing each one, copying it into a batch
// sized for a thousand, and encoding the request through its reflective
// encoder on a goroutine of its transport; BenchmarkOutputWriter and
// bench/RESULTS.md), and allocated a quarter of a kilobyte per decision
// for it. The rest of the pipeline still hands it kafka.Messages.
//
// Each call waits until every message it was given is acknowledged by all
// in-sync replicas or failed, and reports each message's own error:
// franz-go fails every record of a partition's batch with the batch's
// error, and one over writerBatchBytes on its own with
// kerr.MessageTooLarge, before sending it. A writer made with oneByOne
// sends one message at a time, each in a produce request of its own (see
// Pipeline.write).
type outputWriter struct {
	opts     []kgo.Opt
	oneByOne bool
	scratch  sync.Pool // *outputScratch

	// The client is made by the first write, so that a writer never used
	// (a Pipeline that never runs) starts none of its goroutines.
	open sync.Once
	cl   *kgo.Client
	err  error // the client could not be made: every write reports it
}

// outputScratch is one call's records and their headers, kept for the
// next call: the client is done with them once the call returns.
type outputScratch struct {
	recs    []kgo.Record
	headers []kgo.RecordHeader
}

// outputDeliveryTimeout bounds how long the client tries a message before
// it fails it (a broker away, no leader): Pipeline.publish then logs,
// counts and retries it with its own backoff, as it did kafka-go's
// failures, instead of waiting on the client for as long as the outage
// lasts.
const outputDeliveryTimeout = 10 * time.Second

// newOutputWriter returns a writer to brokers that places messages with b
// (the same partitions kafka-go's Writer chose with it).
func newOutputWriter(brokers []string, b kafka.Balancer, oneByOne bool) *outputWriter {
	w := &outputWriter{oneByOne: oneByOne}
	w.scratch.New = func() any { return new(outputScratch) }
	w.opts = []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(balancerPartitioner{b}),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Not idempotent, as kafka-go's Writer was not: a message is
		// written at least once, and the output stage's own retries
		// write it again anyway. One request in flight per broker keeps
		// a partition's messages in order across the client's retries.
		kgo.DisableIdempotentWrite(),
		kgo.MaxProduceRequestsInflightPerBroker(1),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(writerBatchBytes),
		kgo.ProducerLinger(0), // a call's messages are all there at once
		kgo.RecordDeliveryTimeout(outputDeliveryTimeout),
		// A topic that gains partitions is written with its new count
		// within this, as kafka-go's cached metadata (6 s) was.
		kgo.MetadataMaxAge(10 * time.Second),
	}
	return w
}

// Close releases the client, if a write made one; the writer is not to be
// used after.
func (w *outputWriter) Close() {
	w.open.Do(func() { w.err = errors.New("output writer: closed") })
	if w.cl != nil {
		w.cl.Close()
	}
}

// write writes the pending messages at idx and sets errs[i] for each one
// that failed.
func (w *outputWriter) write(ctx context.Context, pending []outgoing, idx []int, errs []error) {
	if len(idx) == 0 {
		return
	}
	w.open.Do(func() {
		if w.cl, w.err = kgo.NewClient(w.opts...); w.err != nil {
			w.err = fmt.Errorf("output writer: %w", w.err)
		}
	})
	if w.err != nil {
		for _, i := range idx {
			errs[i] = w.err
		}
		return
	}
	sc := w.scratch.Get().(*outputScratch)
	defer func() {
		clear(sc.recs)
		clear(sc.headers)
		sc.recs, sc.headers = sc.recs[:0], sc.headers[:0]
		w.scratch.Put(sc)
	}()
	nh := 0
	for _, i := range idx {
		nh += len(pending[i].msg.Headers)
	}
	// Every message's headers go in one slice, sized first so that the
	// records' parts of it stay put.
	sc.headers = slices.Grow(sc.headers, nh)
	// A message without a time gets the call's: franz-go would read the
	// clock for each (kafka-go did the same per message).
	now := time.Now()
	for _, i := range idx {
		m := pending[i].msg
		at := len(sc.headers)
		for _, h := range m.Headers {
			sc.headers = append(sc.headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		stamp := m.Time
		if stamp.IsZero() {
			stamp = now
		}
		sc.recs = append(sc.recs, kgo.Record{Topic: m.Topic, Key: m.Key, Value: m.Value, Timestamp: stamp,
			Headers: sc.headers[at:len(sc.headers):len(sc.headers)]})
	}
	recs := sc.recs
	if w.oneByOne {
		for k := range recs {
			errs[idx[k]] = w.cl.ProduceSync(ctx, &recs[k]).FirstErr()
		}
		return
	}
	var wg sync.WaitGroup
	wg.Add(len(recs))
	// One promise for the call, which finds a record's message by its
	// place in recs (a closure per record was an allocation per message).
	first := uintptr(unsafe.Pointer(unsafe.SliceData(recs)))
	size := unsafe.Sizeof(recs[0])
	promise := func(r *kgo.Record, err error) {
		errs[idx[(uintptr(unsafe.Pointer(r))-first)/size]] = err
		wg.Done()
	}
	for k := range recs {
		w.cl.Produce(ctx, &recs[k], promise)
	}
	wg.Wait()
}

// balancerPartitioner places records with a kafka-go Balancer, so that an
// output goes to the partition kafka-go's Writer gave it, and a decide
// API event published to the inputs to its account's partition
// (Config.Partitioner).
type balancerPartitioner struct{ b kafka.Balancer }

func (p balancerPartitioner) ForTopic(string) kgo.TopicPartitioner {
	return &topicBalancer{b: p.b}
}

// topicBalancer is one topic's: franz-go calls it for one record at a
// time, so its list of partitions needs no lock.
type topicBalancer struct {
	b     kafka.Balancer
	parts []int // 0, 1, ... for the count seen last
}

func (t *topicBalancer) RequiresConsistency(*kgo.Record) bool { return true }

func (t *topicBalancer) Partition(r *kgo.Record, n int) int {
	if len(t.parts) != n {
		t.parts = make([]int, n)
		for i := range t.parts {
			t.parts[i] = i
		}
	}
	return t.b.Balance(kafka.Message{Topic: r.Topic, Key: r.Key}, t.parts...)
}
