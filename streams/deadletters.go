package streams

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// The console's DLQ page reads the dead-letter topic's tail: an operator
// who sees the DLQ figure rise wants the reasons, not a count.

// DeadLetter is one message of the DLQ topic as the console shows it.
type DeadLetter struct {
	// Partition and Offset are the dead letter's place on the DLQ topic.
	Partition int   `json:"partition"`
	Offset    int64 `json:"offset"`
	// Time is the DLQ record's timestamp.
	Time time.Time `json:"time"`
	// Reason is HeaderError: why the message was not decided (or, for a
	// parked output, why the broker refused it).
	Reason string `json:"reason"`
	// SourceTopic, SourcePartition and SourceOffset say where the message
	// was read (absent for a parked output, which ParkedTopic names).
	SourceTopic     string `json:"source_topic,omitempty"`
	SourcePartition string `json:"source_partition,omitempty"`
	SourceOffset    string `json:"source_offset,omitempty"`
	ParkedTopic     string `json:"parked_topic,omitempty"`
	FailedAt        string `json:"failed_at,omitempty"`
	EventID         string `json:"event_id,omitempty"`
	// Payload is the start of the message's value, at most
	// MaxDeadLetterPayload bytes, invalid UTF-8 replaced; PayloadBytes is
	// the whole value's size.
	Payload      string `json:"payload"`
	PayloadBytes int    `json:"payload_bytes"`
}

// Bounds of DeadLetters.
const (
	MaxDeadLetters       = 100
	MaxDeadLetterPayload = 512
	// deadLetterTimeout bounds one DeadLetters call, so a broker that
	// does not answer cannot hold a console request.
	deadLetterTimeout = 5 * time.Second
	deadLetterFetch   = 1 << 20 // bytes asked per fetch
)

// ErrBadDeadLetterLimit is returned by DeadLetters for n outside 1 to
// MaxDeadLetters.
var ErrBadDeadLetterLimit = errors.New("want 1 to " + strconv.Itoa(MaxDeadLetters) + " dead letters")

// DeadLetters reads the newest n messages of the DLQ topic across its
// partitions, newest first (by record time, then partition and offset).
// Each partition is read from n before its high watermark (or its log
// start) to the watermark, within deadLetterTimeout.
func (p *Pipeline) DeadLetters(ctx context.Context, n int) ([]DeadLetter, error) {
	if n < 1 || n > MaxDeadLetters {
		return nil, fmt.Errorf("streams: dead letters %d: %w", n, ErrBadDeadLetterLimit)
	}
	ctx, cancel := context.WithTimeout(ctx, deadLetterTimeout)
	defer cancel()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(p.cfg.Brokers...), Transport: transport}
	topic := p.cfg.Topics.DLQ
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("streams: dead letters: topic %s: %w", topic, err)
	}
	var parts []partitionState
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("streams: dead letters: topic %s: %w", topic, t.Error)
		}
		for _, pm := range t.Partitions {
			parts = append(parts, partitionState{topic: topic, partition: pm.ID})
		}
	}
	if len(parts) == 0 {
		return []DeadLetter{}, nil
	}
	ends, err := listOffsets(ctx, client, parts, kafka.LastOffsetOf)
	if err != nil {
		return nil, fmt.Errorf("streams: dead letters: %w", err)
	}
	starts, err := listOffsets(ctx, client, parts, kafka.FirstOffsetOf)
	if err != nil {
		return nil, fmt.Errorf("streams: dead letters: %w", err)
	}
	out := []DeadLetter{}
	for _, ps := range parts {
		tp := topicPartition{topic, ps.partition}
		end := ends[tp]
		from := max(end-int64(n), starts[tp], 0)
		got, err := readDeadLetters(ctx, client, topic, ps.partition, from, end)
		if err != nil {
			return nil, fmt.Errorf("streams: dead letters of %s/%d: %w", topic, ps.partition, err)
		}
		out = append(out, got...)
	}
	slices.SortFunc(out, func(a, b DeadLetter) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		return int(b.Offset - a.Offset)
	})
	return out[:min(n, len(out))], nil
}

// readDeadLetters fetches the records of one partition at offsets
// from..end-1. A fetch that brings nothing new twice in a row is an error,
// so a broker that lost the records cannot loop the call until its deadline.
func readDeadLetters(ctx context.Context, client *kafka.Client, topic string, partition int, from, end int64) ([]DeadLetter, error) {
	var out []DeadLetter
	next, idle := from, 0
	for next < end {
		resp, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: partition, Offset: next,
			MinBytes: 1, MaxBytes: deadLetterFetch, MaxWait: 100 * time.Millisecond})
		if err == nil {
			err = resp.Error
		}
		if err != nil {
			return nil, fmt.Errorf("fetch at offset %d: %w", next, err)
		}
		before := next
		for next < end {
			rec, err := resp.Records.ReadRecord()
			if err != nil {
				if errors.Is(err, io.EOF) || next > before {
					break // the response's end, or a truncated last batch: fetch the rest
				}
				return nil, fmt.Errorf("read records at offset %d: %w", next, err)
			}
			if rec.Offset < next { // a batch may start before the offset asked for
				continue
			}
			if rec.Offset >= end {
				next = end
				break
			}
			next = rec.Offset + 1
			out = append(out, deadLetterOf(partition, rec))
		}
		if next > before {
			idle = 0
		} else if idle++; idle >= 2 {
			return nil, fmt.Errorf("the broker returns no records at offset %d though the partition ends at %d", next, end)
		}
	}
	return out, nil
}

// deadLetterOf reads the headers riskd wrote (deadLetter, parkedLetter)
// and the start of the value.
func deadLetterOf(partition int, rec *kafka.Record) DeadLetter {
	dl := DeadLetter{Partition: partition, Offset: rec.Offset, Time: rec.Time.UTC()}
	for _, h := range rec.Headers {
		v := string(h.Value)
		switch h.Key {
		case HeaderError:
			dl.Reason = v
		case HeaderSourceTopic:
			dl.SourceTopic = v
		case HeaderSourcePartition:
			dl.SourcePartition = v
		case HeaderSourceOffset:
			dl.SourceOffset = v
		case HeaderParkedTopic:
			dl.ParkedTopic = v
		case HeaderFailedAt:
			dl.FailedAt = v
		case HeaderEventID:
			dl.EventID = v
		}
	}
	if rec.Value != nil {
		dl.PayloadBytes = rec.Value.Len()
		b, _ := io.ReadAll(io.LimitReader(rec.Value, MaxDeadLetterPayload)) // a short read shows less
		// Invalid bytes (a rune cut at the limit, a binary payload) become
		// U+FFFD, so the JSON answer carries what was there rather than an
		// encoder's guess.
		dl.Payload = strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return dl
}
