package streams

import (
	"bytes"
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
// decided. The event is still decided and recorded: by its shard when it
// had reached it, else by the stream, once appended to its input topic
// (Config.PublishAPIEvents; see handOver).
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
		p.handOver(raw)
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
			p.handOver(raw)
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

// Outcomes of riskd_decide_handed_over_total.
const (
	handedOverAppended = "appended"
	handedOverLost     = "lost"
)

// handOver passes on a decide API event whose deadline passed before it
// reached a shard: the caller answers decide.on_timeout, and the event
// would otherwise leave no trace, neither a decision in ClickHouse nor a
// count in the features. With Config.PublishAPIEvents it is queued for
// runHandovers, which appends it to its input topic as the wallet's
// producers would, so the stream decides and records it like any other
// event. The queue holds Config.MaxInFlight events; past that, or without
// PublishAPIEvents (the wallet's events reach the inputs some other way),
// it is counted as lost.
func (p *Pipeline) handOver(raw []byte) {
	if !p.cfg.PublishAPIEvents {
		return
	}
	select {
	case p.handovers <- bytes.Clone(raw): // the caller's buffer is not ours to keep
	default:
		p.m.DecideHandedOver.WithLabelValues(handedOverLost).Inc()
		// Once a second at most: a full queue means every late call is
		// lost, thousands a second under overload; the counter has them all.
		now := p.now()
		if last := p.lostWarnedAt.Load(); now.UnixNano()-last >= int64(time.Second) &&
			p.lostWarnedAt.CompareAndSwap(last, now.UnixNano()) {
			p.log.Warn("decide: an event past its deadline could not be handed to the stream; it is not recorded "+
				"(riskd_decide_handed_over_total{outcome=\"lost\"} counts every one)",
				"event_id", eventIDOrEmpty(raw), "queued", cap(p.handovers))
		}
	}
}

// runHandovers appends the events handOver queued to their input topics
// until ctx ends; the ones still queued then are counted as lost.
func (p *Pipeline) runHandovers(ctx context.Context) {
	var msgs []kafka.Message
	for {
		select {
		case raw := <-p.handovers:
			msgs = append(msgs[:0], p.cfg.Topics.handedOverMessage(raw))
			for more := true; more && len(msgs) < cap(p.handovers); { // whatever else is queued, in one write
				select {
				case raw := <-p.handovers:
					msgs = append(msgs, p.cfg.Topics.handedOverMessage(raw))
				default:
					more = false
				}
			}
			if err := p.publish(ctx, msgs); err != nil {
				p.m.DecideHandedOver.WithLabelValues(handedOverLost).Add(float64(len(msgs)))
				p.log.Warn("decide: events past their deadline not appended to their input topic; they are not recorded",
					"events", len(msgs), "err", err)
				continue
			}
			p.m.DecideHandedOver.WithLabelValues(handedOverAppended).Add(float64(len(msgs)))
		case <-ctx.Done():
			if n := len(p.handovers); n > 0 {
				p.m.DecideHandedOver.WithLabelValues(handedOverLost).Add(float64(n))
				p.log.Warn("decide: events past their deadline still queued at shutdown; they are not recorded", "events", n)
			}
			return
		}
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
