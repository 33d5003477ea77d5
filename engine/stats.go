package engine

import (
	"context"
	"runtime/metrics"
	"time"
)

// Stats is a point-in-time view of the engine's state, for metrics.
type Stats struct {
	// Accounts is the number of accounts with feature state (active within
	// the longest window); Entities counts every keyed entity (accounts,
	// devices, IPs, payees...).
	Accounts, Entities int
	// Queued is the number of messages waiting in shard queues.
	Queued int
}

// Stats asks every shard, between two events, for its state sizes. Each
// shard answers on its own channel: when ctx ends first, a question already
// handed to a shard may still run later, and must not write anything Stats
// has returned.
func (e *Engine) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	for _, sh := range e.shards {
		st.Queued += len(sh.queue)
		answer := make(chan [2]int, 1)
		err := sh.do(ctx, func(s *Scorer) { answer <- [2]int{s.store.Accounts(), s.store.Len()} })
		if err != nil {
			return st, err
		}
		a := <-answer
		st.Accounts += a[0]
		st.Entities += a[1]
	}
	return st, nil
}

// Gauge is a value StateReporter sets; a prometheus.Gauge is one, so the
// engine reports its state without knowing Prometheus.
type Gauge interface {
	Set(float64)
}

// StateReporter publishes an Engine's state sizes at an interval, so that
// heap per active account can be read off the daemon's metrics. Nil gauges
// are left out.
type StateReporter struct {
	Engine *Engine
	// Interval between two reports; 0 means 5s. Stats interrupts every
	// shard between two events, so keep it in seconds.
	Interval time.Duration
	// Accounts, Entities and Queued receive the fields of Stats.
	Accounts, Entities, Queued Gauge
	// HeapLive receives the bytes live after the last garbage collection
	// (runtime/metrics /gc/heap/live:bytes). Heap in use counts garbage not
	// yet collected; the live heap is what the state really costs.
	HeapLive Gauge
}

// Run reports at once, then every Interval until ctx ends, and returns nil.
// A report whose Stats fails (ctx ended while a shard was asked) keeps the
// previous values.
func (r *StateReporter) Run(ctx context.Context) error {
	every := r.Interval
	if every <= 0 {
		every = 5 * time.Second
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if st, err := r.Engine.Stats(ctx); err == nil {
			setGauge(r.Accounts, st.Accounts)
			setGauge(r.Entities, st.Entities)
			setGauge(r.Queued, st.Queued)
		}
		if r.HeapLive != nil {
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 {
				r.HeapLive.Set(float64(sample[0].Value.Uint64()))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func setGauge(g Gauge, v int) {
	if g != nil {
		g.Set(float64(v))
	}
}
