package streams

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/segmentio/kafka-go"

	"riskd/engine"
)

// Shared entity windows across a fleet.
//
// A device, an IP or a payee is used by accounts on every partition, so an
// instance that read only the partitions the consumer group assigns it
// would count a device farm spread over the fleet as a fraction of its
// size. Every instance therefore reads every partition of the inputs: the
// assigned ones it decides (engine.PartAll), the others it adds to its
// shared entity windows only (engine.PartShared), merged with its own in
// event-time order. Each instance's shared windows are then the global
// table a single instance would have, and a partition that moves between
// instances takes no entity state with it: the new owner's windows count
// its events already, and it rebuilds only the accounts' state, deciding
// the partition's events that its windows hold with engine.PartAccount.
//
// What the shared windows count is a function of the inputs alone: every
// event that is decoded and not a repeated event_id, a locked account's
// too (the engine adds those to its entities, not to its account), so
// instances that hold different locks agree. An event of the decide API
// counts on the other instances through its copy on the inputs, when the
// wallet publishes one (its decider skips that copy as a repeated
// event_id), and only on its decider when not (docs/ARCHITECTURE.md,
// streams, "Shared entity windows across a fleet").
//
// Cost: every instance decodes every event and updates its entities (a
// few µs of CPU each), and holds every entity in memory.

// otherPartitions returns the partitions of the input topics that the
// group did not assign to this instance, sorted. When the broker cannot
// say how many partitions the inputs have, it returns none and says so:
// this generation's shared windows then count this instance's partitions
// only.
func (p *Pipeline) otherPartitions(ctx context.Context, owned map[topicPartition]bool) []topicPartition {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(p.cfg.Brokers...), Transport: transport}
	var err error
	for try := 0; try < 3 && ctx.Err() == nil; try++ {
		if try > 0 {
			sleepCtx(ctx, p.cfg.RetryMin<<try)
		}
		var counts map[string]int
		if counts, err = inputPartitions(ctx, client, p.cfg.Topics.Inputs); err != nil {
			continue
		}
		var out []topicPartition
		for topic, n := range counts {
			for i := range n {
				if tp := (topicPartition{topic, i}); !owned[tp] {
					out = append(out, tp)
				}
			}
		}
		slices.SortFunc(out, func(a, b topicPartition) int {
			if c := strings.Compare(a.topic, b.topic); c != 0 {
				return c
			}
			return a.partition - b.partition
		})
		return out
	}
	if ctx.Err() == nil {
		p.m.Errors.WithLabelValues("fleet").Inc()
		p.log.Warn("could not ask the broker for the inputs' partitions; the shared entity windows count this instance's partitions only until the next rebalance",
			"err", err)
	}
	return nil
}

// inputPartitions asks the broker how many partitions each topic has.
func inputPartitions(ctx context.Context, client *kafka.Client, topics []string) (map[string]int, error) {
	rctx, cancel := context.WithTimeout(ctx, lagTimeout)
	defer cancel()
	meta, err := client.Metadata(rctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("inputs' partitions: %w", err)
	}
	counts := map[string]int{}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("inputs' partitions: %s: %w", t.Name, t.Error)
		}
		counts[t.Name] = len(t.Partitions)
	}
	return counts, nil
}

// otherInput makes the merger's input for tp, a partition another instance
// decides: added to the shared entity windows from where they stand, and
// with Config.Standby decided too, without outputs, from where this
// engine's state of it stands (standby.go).
func (p *Pipeline) otherInput(tp topicPartition) *mergeInput {
	shared := p.sharedFrom(tp, kafka.FirstOffset)
	at, known := p.stateAt[tp]
	if !known && p.cfg.RebuildUnknown {
		at, known = kafka.FirstOffset, true
	}
	if !p.cfg.Standby || !known {
		// Without a known state of its accounts a standby's would lack
		// their history: a standby's state always reaches back to a commit.
		in := p.newInput(tp, shared, shared)
		in.accountFrom = math.MaxInt64
		return in
	}
	in := p.newInput(tp, at, shared)
	in.standby = p.standby[tp]
	if in.standby == nil {
		in.standby = newStandbyLog(at)
		p.standby[tp] = in.standby
	}
	return in
}

// sharedFrom is where the shared entity windows stand for tp, or fallback
// when this instance has never read it.
func (p *Pipeline) sharedFrom(tp topicPartition, fallback int64) int64 {
	if at, ok := p.sharedAt[tp]; ok {
		return at
	}
	return fallback
}

// newInput makes the merger's input for tp, read from the earlier of
// accountFrom and sharedFrom (kafka.FirstOffset, below every offset,
// stands for the log's start).
func (p *Pipeline) newInput(tp topicPartition, accountFrom, sharedFrom int64) *mergeInput {
	start := min(accountFrom, sharedFrom)
	r := newPartitionReader(p.cfg.Brokers, tp.topic, tp.partition, start, p.fetchErrors(tp.topic, tp.partition))
	progress := &partitionProgress{until: -1}
	progress.next.Store(start)
	buf, free := newMergeBuffer()
	return &mergeInput{topic: tp.topic, partition: tp.partition, offsets: newPartitionOffsets(), reader: r,
		buf: buf, free: free, next: start, replayUntil: -1, progress: progress,
		accountFrom: accountFrom, sharedFrom: sharedFrom, accountTo: math.MaxInt64}
}

// partOf says what the message at offset updates: the account state from
// accountFrom on (up to accountTo), the shared entity windows from
// sharedFrom on.
func (in *mergeInput) partOf(offset int64) engine.Part {
	shared := offset >= in.sharedFrom // kafka.FirstOffset is below every offset
	account := offset >= in.accountFrom && offset < in.accountTo
	switch {
	case shared && account:
		return engine.PartAll
	case shared:
		return engine.PartShared
	default:
		return engine.PartAccount
	}
}

// accountAt is where the account state of the partition stands.
func (in *mergeInput) accountAt() int64 { return min(max(in.next, in.accountFrom), in.accountTo) }
