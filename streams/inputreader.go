package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// partitionReader reads one input partition from an offset on, for the
// merger's fetcher (mergeInput.fetch). It is franz-go's client where the
// rest of riskd uses kafka-go: kafka-go's Reader spent about 1.2 µs of CPU
// per event read, a read(2) per 4 KiB of the response and a channel send
// per message among it, franz-go's about 0.4 (BenchmarkInputReader, both
// from Apache Kafka in one run). Messages come out as kafka.Message, so
// nothing past the fetcher knows which client read them.
//
// When the offset to read is not in the log, reading goes on from the
// log's start if the offset fell below it (retention deleted the records;
// kafka-go did the same), and from its end if the offset lies past it
// (the broker lost records; kafka-go waited for the log to reach the
// offset again, maybe for ever). Either way the jump is reported as a
// fetch error.
type partitionReader struct {
	brokers   []string
	topic     string
	partition int32
	problem   func(error) // see newPartitionReader

	cl  *kgo.Client
	err error // the client could not be made: every fetch reports it
	// next is the offset to read next (kafka.FirstOffset: the log's start;
	// kafka.LastOffset: its end).
	next int64
	// pending holds the records of the last poll not handed out yet, hwm
	// the partition's high watermark as that poll saw it.
	pending []*kgo.Record
	hwm     int64
	// outOfRange: the broker has no offset next, and the client stopped
	// reading the partition; FetchMessage starts it again in range once
	// pending is handed out.
	outOfRange bool
}

// inputFetchBytes bounds a fetch of one partition's client (a batch
// larger than that still comes whole, as Kafka serves at least one). The
// client keeps one fetch buffered while the reader hands out the last, so
// a partition's reader holds about twice this: 2 MiB per assigned
// partition, where kafka-go's Reader parsed its fetches off the socket and
// held a hundred messages. A record handed out keeps its fetch's buffer
// alive until its decision is stored, which MaxInFlight bounds.
const inputFetchBytes = 1 << 20

// newPartitionReader reads topic's partition from offset from on
// (kafka.FirstOffset: the log start; kafka.LastOffset: its end). problem
// receives the errors that came with records, and the client's warnings
// (failed connections and fetches it retries by itself, which kafka-go's
// ErrorLogger reported), possibly from several goroutines at once.
func newPartitionReader(brokers []string, topic string, partition int, from int64, problem func(error)) *partitionReader {
	r := &partitionReader{brokers: brokers, topic: topic, partition: int32(partition), problem: problem, hwm: -1}
	r.open(from)
	return r
}

// open starts the client at offset from.
func (r *partitionReader) open(from int64) {
	at := kgo.NewOffset().At(from)
	switch from {
	case kafka.FirstOffset:
		at = kgo.NewOffset().AtStart()
	case kafka.LastOffset:
		at = kgo.NewOffset().AtEnd()
	}
	r.next, r.pending = from, nil
	r.cl, r.err = kgo.NewClient(
		kgo.SeedBrokers(r.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.topic: {r.partition: at}}),
		// An offset out of the log's range is FetchMessage's to resolve,
		// not the client's (which would choose one end for both cases).
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.FetchMaxBytes(inputFetchBytes),
		kgo.FetchMaxPartitionBytes(inputFetchBytes),
		kgo.FetchMaxWait(100*time.Millisecond), // how long the broker holds a fetch for records, as before
		kgo.WithLogger(fetchLogger{r.problem}),
		kgo.WithPools(fetchedRecords),
	)
	if r.err != nil {
		r.err = fmt.Errorf("reader of %s/%d: %w", r.topic, r.partition, r.err)
	}
}

// FetchMessage returns the partition's next message, waiting for one
// until ctx ends. An error that came without records is returned; the
// next call goes on reading.
func (r *partitionReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	var one [1]kafka.Message
	msgs, err := r.FetchMessages(ctx, one[:0])
	if err != nil {
		return kafka.Message{}, err
	}
	return msgs[0], nil
}

// FetchMessages appends to msgs, up to its capacity (at least one), the
// partition's next messages that are already fetched, waiting for one
// until ctx ends. An error that came without records is returned; the
// next call goes on reading.
func (r *partitionReader) FetchMessages(ctx context.Context, msgs []kafka.Message) ([]kafka.Message, error) {
	if r.err != nil {
		return msgs, r.err
	}
	for len(r.pending) == 0 {
		if r.outOfRange {
			if err := r.reopenInRange(ctx); err != nil {
				return msgs, err // asked again at the next call
			}
			r.outOfRange = false
		}
		fs := r.cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return msgs, err
		}
		if fs.IsClientClosed() {
			return msgs, kgo.ErrClientClosed
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.Topic == r.topic && p.Partition == r.partition && len(p.Records) > 0 {
				r.hwm = p.HighWatermark
				r.pending = append(r.pending, p.Records...) // a poll may bring more than one fetch
			}
		})
		fetchErrs := fs.Errors()
		if len(fetchErrs) == 0 {
			continue
		}
		problems := make([]error, len(fetchErrs))
		for i, e := range fetchErrs {
			problems[i] = fmt.Errorf("fetch %s/%d: %w", r.topic, r.partition, e.Err)
			r.outOfRange = r.outOfRange || errors.Is(e.Err, kerr.OffsetOutOfRange)
		}
		err := errors.Join(problems...)
		switch {
		case r.outOfRange && len(r.pending) == 0:
			// Resolved at the top of the loop, which reports the jump.
		case len(r.pending) == 0:
			return msgs, err
		default:
			r.problem(err)
		}
	}
	n := min(len(r.pending), max(cap(msgs)-len(msgs), 1))
	for i, rec := range r.pending[:n] {
		r.pending[i] = nil
		m := kafka.Message{Topic: rec.Topic, Partition: int(rec.Partition), Offset: rec.Offset,
			HighWaterMark: r.hwm, Key: rec.Key, Value: rec.Value, Time: rec.Timestamp}
		if len(rec.Headers) > 0 {
			m.Headers = make([]kafka.Header, len(rec.Headers))
			for i, h := range rec.Headers {
				m.Headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
			}
		}
		msgs = append(msgs, m)
		r.next = rec.Offset + 1
		// The message keeps the fetched bytes (the key and value lie in
		// the response, not in the record), so the record goes back.
		rec.Recycle()
	}
	r.pending = r.pending[n:]
	return msgs, nil
}

// reopenInRange starts the client again where the log holds records:
// at its start when next fell below it, at its end when next lies past it.
func (r *partitionReader) reopenInRange(ctx context.Context) error {
	start, end, err := r.logRange(ctx)
	if err != nil {
		return fmt.Errorf("%s/%d has no offset %d, and its range is unknown: %w", r.topic, r.partition, r.next, err)
	}
	at, what := start, "deleted"
	if r.next >= end {
		at, what = end, "not in the log: the broker lost records"
	}
	r.problem(fmt.Errorf("%s/%d holds offsets %d to %d, not %d (%s): reading on from %d",
		r.topic, r.partition, start, end-1, r.next, what, at))
	r.cl.Close()
	r.open(at)
	return r.err
}

// logRange asks the partition's leader where its log starts and ends.
func (r *partitionReader) logRange(ctx context.Context) (start, end int64, err error) {
	ask := func(timestamp int64) (int64, error) {
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = r.topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = r.partition, timestamp
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, r.cl)
		if err != nil {
			return 0, fmt.Errorf("list offsets: %w", err)
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if t.Topic == r.topic && p.Partition == r.partition {
					return p.Offset, kerr.ErrorForCode(p.ErrorCode)
				}
			}
		}
		return 0, errors.New("list offsets: the answer names no such partition")
	}
	if start, err = ask(-2); err != nil { // -2: the log's start, -1: its end
		return 0, 0, err
	}
	end, err = ask(-1)
	return start, end, err
}

// Close stops the reader's client and its connections.
func (r *partitionReader) Close() {
	if r.cl != nil {
		r.cl.Close()
	}
}

// fetchLogger takes franz-go's warnings and errors to problem.
type fetchLogger struct{ problem func(error) }

func (fetchLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l fetchLogger) Log(_ kgo.LogLevel, msg string, keyvals ...any) {
	var b strings.Builder
	b.WriteString(msg)
	for i := 0; i+1 < len(keyvals); i += 2 {
		fmt.Fprintf(&b, " %v=%v", keyvals[i], keyvals[i+1])
	}
	l.problem(errors.New(b.String()))
}

// recordsPool is the readers' kgo.PoolRecords: every fetch decoded its
// records into a new slice of kgo.Record, 150 bytes each, which the reader
// copies into kafka.Messages at once (161 of the 523 bytes the reader
// allocated per event in BenchmarkInputReader; bench/RESULTS.md). The slices come back here once every
// record of a fetch is recycled (FetchMessages); the ones of a reader
// closed with records still pending are left to the collector.
type recordsPool struct{ pool sync.Pool }

var fetchedRecords = &recordsPool{}

func (p *recordsPool) GetRecords(n int) []kgo.Record {
	if s, ok := p.pool.Get().(*[]kgo.Record); ok && cap(*s) >= n {
		return (*s)[:0]
	}
	return make([]kgo.Record, 0, n)
}

func (p *recordsPool) PutRecords(s []kgo.Record) {
	clear(s[:cap(s)])
	s = s[:0]
	p.pool.Put(&s)
}
