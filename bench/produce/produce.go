// Package produce writes generated wallet traffic to Kafka, for riskctl gen,
// the demo and the benchmark: money movements to the payments topic,
// everything else to the account-events topic, keyed by account id.
package produce

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/bench/traffic"
	"riskd/event"
)

// Config sets up a run.
type Config struct {
	Brokers []string
	// PaymentsTopic and AccountTopic default to "payments" and "account-events".
	PaymentsTopic, AccountTopic string
	// Events is how many events to write.
	Events int
	// Rate is the target events per second; 0 writes as fast as the broker takes them.
	Rate float64
	// Traffic configures the generator (accounts, seed, fraud rate, id prefix).
	Traffic traffic.Config
	// Progress, if set, is called after each batch with the events written so far.
	Progress func(written int)
}

// Stats says what a run wrote.
type Stats struct {
	Events   int
	Fraud    int            // events with a scenario label
	ByTopic  map[string]int // events per topic
	Duration time.Duration
}

// batchSize is how many events go in one WriteMessages call: big enough to
// amortise the round trip, small enough to pace a rate-limited run finely.
const batchSize = 500

// Run writes cfg.Events generated events and returns when all are
// acknowledged by the broker (acks=all), or ctx ends.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if cfg.PaymentsTopic == "" {
		cfg.PaymentsTopic = "payments"
	}
	if cfg.AccountTopic == "" {
		cfg.AccountTopic = "account-events"
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    batchSize,
		BatchTimeout: time.Millisecond,
		BatchBytes:   8 << 20,
	}
	defer w.Close()
	gen := traffic.New(cfg.Traffic)
	stats := Stats{ByTopic: map[string]int{}}
	start := time.Now()
	var ev event.Event
	msgs := make([]kafka.Message, 0, batchSize)
	for stats.Events < cfg.Events {
		msgs = msgs[:0]
		for len(msgs) < batchSize && stats.Events+len(msgs) < cfg.Events {
			gen.Next(&ev)
			topic := cfg.AccountTopic
			if event.MovesMoney(ev.Type) {
				topic = cfg.PaymentsTopic
			}
			if ev.Label != "" {
				stats.Fraud++
			}
			stats.ByTopic[topic]++
			msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(ev.AccountID), Value: ev.AppendJSON(nil)})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return stats, fmt.Errorf("produce: write %d events: %w", len(msgs), err)
		}
		stats.Events += len(msgs)
		if cfg.Progress != nil {
			cfg.Progress(stats.Events)
		}
		if cfg.Rate > 0 { // pace: sleep until this many events are due
			due := start.Add(time.Duration(float64(stats.Events) / cfg.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return stats, ctx.Err()
				}
			}
		}
	}
	stats.Duration = time.Since(start)
	return stats, nil
}

// AddFlags binds the traffic flags that riskctl gen and riskd demo share to
// fs, with c's current values as defaults.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Events, "events", c.Events, "events to produce")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "events per second; 0 is as fast as the broker takes them")
	fs.IntVar(&c.Traffic.Accounts, "accounts", c.Traffic.Accounts, "wallet accounts in the generated population")
	fs.Uint64Var(&c.Traffic.Seed, "seed", c.Traffic.Seed, "seed: the same seed gives the same events")
	fs.Float64Var(&c.Traffic.FraudRate, "fraud-rate", c.Traffic.FraudRate, "fraction of events from fraud scenarios (0..1)")
}

// Validate rejects counts and rates that cannot make a run.
func (c Config) Validate() error {
	if c.Events <= 0 || c.Traffic.Accounts <= 0 || c.Rate < 0 || c.Traffic.FraudRate < 0 || c.Traffic.FraudRate > 1 {
		return errors.New("--events and --accounts must be positive, --rate not negative, --fraud-rate within 0..1")
	}
	return nil
}
