package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/engine"
	"riskd/streams/notify"
)

// APISource marks decisions made through the synchronous decide API. Its
// Partition is -1; Decide sets it to the input partition of the event's
// account when the group's description gives the partition count, so the
// state the decision leaves is tagged with that partition and moves with
// it (engine.RestorePartitions).
var APISource = engine.Source{Topic: "api", Partition: -1, Offset: -1}

// apiSource is the Source of a decide call for raw: APISource, with the
// partition of raw's account_id when it is known.
func (p *Pipeline) apiSource(raw []byte) engine.Source {
	src := APISource
	v := p.fleet.Load()
	if v == nil || len(v.numbers) == 0 {
		return src
	}
	if account, ok := stringFieldOf(raw, "account_id"); ok {
		src.Partition = partitionOf(p.cfg.Partitioner, account, v.numbers)
	}
	return src
}

// ErrDecideTimeout is returned by Decide when ctx ended before the shard
// decided. The event is still decided and recorded when its turn comes.
var ErrDecideTimeout = errors.New("streams: decide: deadline passed before the shard decided")

// Decide scores one event on its account's shard, ahead of the stream
// backlog, and returns the decision. The decision is recorded like a
// streamed one (ClickHouse, output topics), so the same event arriving
// later on Kafka is a duplicate and counts once in the features. It needs
// Run to be running, which owns the output stage. It takes a decide token
// first (Config.MaxInFlight of them, freed as decisions become durable):
// while the output stage is that far behind, a call waits for one up to
// its deadline, and the shard does not wait at all.
func (p *Pipeline) Decide(ctx context.Context, raw []byte) (*engine.Decision, error) {
	select {
	case p.decides <- struct{}{}:
	case <-ctx.Done():
		return nil, ErrDecideTimeout
	}
	type outcome struct {
		d   *engine.Decision
		err error
	}
	reply := make(chan outcome, 1)
	// The callback outlives the caller when the deadline passes first:
	// the decision still goes to the output stage, which frees the token
	// once it is durable.
	err := p.eng.Submit(ctx, engine.Message{
		Value:  raw,
		Source: p.apiSource(raw),
		Urgent: true,
		Done: func(d *engine.Decision, err error) {
			if err == nil {
				p.results.put(result{d: d})
			} else {
				<-p.decides // nothing to output
			}
			reply <- outcome{d, err}
		},
	})
	if err != nil {
		<-p.decides // not queued: Done will not run
		if ctx.Err() != nil {
			return nil, ErrDecideTimeout
		}
		return nil, fmt.Errorf("streams: decide: %w", err)
	}
	select {
	case o := <-reply:
		return o.d, o.err
	case <-ctx.Done():
		return nil, ErrDecideTimeout
	}
}

// PublishAction writes a lock or unlock command to the actions topic,
// retrying until it is acknowledged or ctx ends.
func (p *Pipeline) PublishAction(ctx context.Context, a ActionRecord, eventID string) error {
	if a.Instance == "" {
		a.Instance = p.cfg.Instance
	}
	msg, err := p.cfg.Topics.actionMessage(a, eventID)
	if err != nil {
		return err
	}
	if err := p.publish(ctx, []kafka.Message{msg}); err != nil {
		return err
	}
	body := msg.Value
	if len(a.Position) > 0 {
		// Where the command fell among the input offsets is riskd's own
		// (a restart's); subscribers get the record without it.
		a.Position = nil
		if without, err := p.cfg.Topics.actionMessage(a, eventID); err == nil {
			body = without.Value
		}
	}
	p.notify(notify.Notification{Kind: a.Type, AccountID: a.AccountID, EventID: eventID,
		At: actionAt(a).At, Body: body})
	return nil
}

// actionAt is the time an action record carries when the caller gave none.
func actionAt(a ActionRecord) ActionRecord {
	if a.At.IsZero() {
		a.At = time.Now().UTC()
	}
	return a
}
