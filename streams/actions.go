package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/internal/backoff"
)

// ReadActions returns the lock and unlock commands, and support's
// suppress and unsuppress commands, on the actions topic since a time (by
// the records' Kafka timestamps), in each account's order.
//
// Why: support's locks and unlocks are made on the owning shard and
// published here at once, but reach the engine's saved state only with the
// next snapshot. After a crash the stream's own locks come back by replay;
// support's do not, since they are not in the input topics. So a restart
// applies the commands published since the snapshot was cut (see
// cmd/riskd), and a lock made a moment before a kill -9 is still enforced
// after it. Locks run on the wall clock, so a command applied again ends
// when it always would have.
//
// A failed read is tried again a few times: it runs once, at start, and a
// broker that has only just (re)started can answer a time query with a
// transient error (an embedded one was seen answering UNKNOWN_SERVER_ERROR).
func ReadActions(ctx context.Context, brokers []string, topic string, since time.Time) ([]ActionRecord, error) {
	const attempts = 5
	for attempt := 1; ; attempt++ {
		recs, err := readActionsOnce(ctx, brokers, topic, since)
		if err == nil || attempt == attempts || ctx.Err() != nil {
			return recs, err
		}
		select {
		case <-time.After(backoff.Delay(200*time.Millisecond, 2*time.Second, attempt)):
		case <-ctx.Done():
			return nil, err
		}
	}
}

func readActionsOnce(ctx context.Context, brokers []string, topic string, since time.Time) ([]ActionRecord, error) {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("actions topic %s: %w", topic, err)
	}
	var parts []partitionState
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("actions topic %s: %w", topic, t.Error)
		}
		for _, p := range t.Partitions {
			parts = append(parts, partitionState{topic: topic, partition: p.ID})
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	ends, err := listOffsets(ctx, client, parts, kafka.LastOffsetOf)
	if err != nil {
		return nil, err
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, ps := range parts {
		req[topic] = append(req[topic], kafka.TimeOffsetOf(ps.partition, since))
	}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, fmt.Errorf("actions topic %s: offsets since %s: %w", topic, since.Format(time.RFC3339), err)
	}
	var out []ActionRecord
	for _, po := range res.Topics[topic] {
		end := ends[topicPartition{topic, po.Partition}]
		// A query by time is answered in Offsets (kafka-go leaves First and
		// LastOffset at -1): the first offset at or after since.
		from := int64(-1)
		for off := range po.Offsets {
			if from < 0 || off < from {
				from = off
			}
		}
		if po.Error != nil {
			// A broker that cannot answer the time query (the embedded one
			// was seen answering UNKNOWN_SERVER_ERROR on every retry): read
			// the partition from its start and keep the records since then.
			// The topic holds commands only, so this stays small.
			recs, err := readAllSince(ctx, brokers, client, topic, po.Partition, end, since)
			if err != nil {
				return nil, fmt.Errorf("%w (after the time query failed: %w)", err, po.Error)
			}
			out = append(out, recs...)
			continue
		}
		if from < 0 || from >= end {
			continue // nothing since then
		}
		recs, err := readRange(ctx, brokers, topic, po.Partition, from, end, time.Time{}) // from is since's: keep all
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

// readAllSince reads a whole partition up to end and keeps the records
// whose Kafka timestamp is since or later: the time query's answer, found
// the long way.
func readAllSince(ctx context.Context, brokers []string, client *kafka.Client, topic string, partition int, end int64, since time.Time) ([]ActionRecord, error) {
	starts, err := listOffsets(ctx, client, []partitionState{{topic: topic, partition: partition}}, kafka.FirstOffsetOf)
	if err != nil {
		return nil, fmt.Errorf("actions topic %s/%d: start: %w", topic, partition, err)
	}
	from := starts[topicPartition{topic, partition}]
	if from < 0 || from >= end {
		return nil, nil
	}
	return readRange(ctx, brokers, topic, partition, from, end, since)
}

// readRange reads the action records at offsets [from, end) of one
// partition, keeping those whose Kafka timestamp is not before after.
func readRange(ctx context.Context, brokers []string, topic string, partition int, from, end int64, after time.Time) ([]ActionRecord, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return nil, fmt.Errorf("actions topic %s/%d: %w", topic, partition, err)
	}
	var out []ActionRecord
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("actions topic %s/%d at %d: %w", topic, partition, from, err)
		}
		var a ActionRecord
		if !m.Time.Before(after) && json.Unmarshal(m.Value, &a) == nil && a.AccountID != "" && (a.Type == "lock" || a.Type == "unlock" ||
			(a.RuleID != "" && (a.Type == ActionSuppress || a.Type == ActionUnsuppress))) {
			out = append(out, a)
		}
		if m.Offset+1 >= end {
			return out, nil
		}
	}
}

// Types of support's suppression commands on the actions topic.
const (
	ActionSuppress   = "suppress"
	ActionUnsuppress = "unsuppress"
)

// PublishSuppression publishes support's suppress or unsuppress command
// (a.Type ActionSuppress or ActionUnsuppress, a.RuleID set) on the actions
// topic, keyed by account like every command there, with id as its
// de-duplication key. Unlike PublishAction it notifies no webhook
// subscriber: a suppression changes what riskd decides, not the account's
// state, and subscribers take alerts, locks and unlocks only. It is on the
// topic so that a restart applies it again (ReadActions), like a lock.
func (p *Pipeline) PublishSuppression(ctx context.Context, a ActionRecord, id string) error {
	if (a.Type != ActionSuppress && a.Type != ActionUnsuppress) || a.RuleID == "" || a.AccountID == "" {
		return fmt.Errorf("streams: publish suppression: type %q, account %q, rule %q: want suppress or unsuppress of a rule for an account",
			a.Type, a.AccountID, a.RuleID)
	}
	msg, err := p.cfg.Topics.actionMessage(a, id)
	if err != nil {
		return err
	}
	return p.publish(ctx, []kafka.Message{msg})
}
