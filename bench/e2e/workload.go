package main

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/bench/produce"
	"riskd/bench/traffic"
	"riskd/event"
	"riskd/streams"
)

// preProduce writes the saturation workload before riskd starts, so the
// timed window holds consuming, deciding and storing only.
func preProduce(ctx context.Context, s settings, brokers []string, prefix string) (produce.Stats, time.Duration, error) {
	topics := streams.DefaultTopics()
	cfg := produce.Config{
		Brokers: brokers, PaymentsTopic: topics.Inputs[0], AccountTopic: topics.Inputs[1],
		Events:  s.Events,
		Traffic: saturationTraffic(s, prefix),
	}
	next := s.Events / 10
	cfg.Progress = func(n int) {
		if n >= next {
			logf("  produced %d / %d", n, s.Events)
			next += s.Events / 10
		}
	}
	// Building the generator's account table is part of what New costs;
	// time it apart so the produce rate is the broker's.
	t0 := time.Now()
	traffic.New(traffic.Config{Accounts: s.Accounts, Seed: s.Seed})
	genSetup := time.Since(t0)
	st, err := produce.Run(ctx, cfg)
	if err != nil {
		return st, genSetup, fmt.Errorf("pre-produce: %w", err)
	}
	return st, genSetup, nil
}

// saturationTraffic is the generator's configuration for the saturation
// workload; walletDetection generates the same events again from it.
func saturationTraffic(s settings, prefix string) traffic.Config {
	return traffic.Config{Accounts: s.Accounts, Seed: s.Seed, FraudRate: s.FraudRate, IDPrefix: prefix}
}

// produceTick is how often the paced producer writes. One produce request
// per millisecond cost the harness (producer and in-process broker) most
// of a core; 5 ms keeps the rate smooth at a fifth of the requests.
const produceTick = 5 * time.Millisecond

// pacedBatchSize bounds one partition's produce batch in the paced
// producer; a tick with more for a partition sends several.
const pacedBatchSize = 256

// pacedProducer writes events at a fixed rate with event time equal to
// the wall clock when each is handed to Kafka, for the latency phase.
type pacedProducer struct {
	brokers []string
	rate    float64
	dur     time.Duration
	gen     traffic.Config
	// stop, when closed, ends the run early (the mixed run stops its
	// stream when its HTTP load is done); nil runs for dur.
	stop <-chan struct{}
}

// run writes rate*dur events (fewer if stop closes first): every tick it sends the events that are due
// (the schedule is start + i/rate), stamping each with the current time in
// ms just before the write, so the tick adds no latency of its own. A
// write that takes longer than a tick makes the next batch bigger instead
// of shifting the schedule, so the offered rate holds.
func (p pacedProducer) run(ctx context.Context) (int, error) {
	topics := streams.DefaultTopics()
	// BatchSize is per partition and kafka-go allocates room for that many
	// messages with every batch: 10,000 cost the harness 33 GB of
	// allocation (and the garbage collector most of a core) in one run,
	// for batches of about ten messages (a tick's share of one partition).
	w := &kafka.Writer{
		Addr: kafka.TCP(p.brokers...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: pacedBatchSize, BatchTimeout: time.Millisecond, BatchBytes: 8 << 20,
	}
	defer w.Close()
	gen := traffic.New(p.gen)
	total := int(p.rate * p.dur.Seconds())
	var ev event.Event
	msgs := make([]kafka.Message, 0, 1024)
	sent := 0
	start := time.Now()
	tick := time.NewTicker(produceTick)
	defer tick.Stop()
	for sent < total {
		select {
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-p.stop:
			return sent, nil
		case <-tick.C:
		}
		now := time.Now()
		due := min(total, int(now.Sub(start).Seconds()*p.rate))
		msgs = msgs[:0]
		for sent+len(msgs) < due {
			gen.Next(&ev)
			ev.TS = now.UnixMilli()
			topic := topics.Inputs[1]
			if moneyMovement(ev.Type) {
				topic = topics.Inputs[0]
			}
			msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(ev.AccountID), Value: ev.AppendJSON(nil)})
		}
		if len(msgs) == 0 {
			continue
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return sent, fmt.Errorf("latency producer: %w", err)
		}
		sent += len(msgs)
	}
	return sent, nil
}

// moneyMovement routes like bench/produce: money to payments, the rest to
// account-events.
func moneyMovement(typ string) bool {
	switch typ {
	case event.TypePayment, event.TypeTopup, event.TypeWithdrawal, event.TypeRefund, event.TypePointsRedeem:
		return true
	}
	return false
}
