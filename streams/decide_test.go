package streams

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"riskd/internal/kafkatest"
)

// TestDecideAnswersWhileTheOutputStageIsStalled holds every store write,
// as a ClickHouse that hangs would. Decide calls are still answered, many
// more than the output batches waiting on the store hold (before the
// shards handed results over without waiting, the shard blocked after
// about five batches and the next call hung), until their tokens
// (MaxInFlight) are all taken; then a call ends at its deadline without
// reaching the shard. Once the store lets go every answered decision is
// stored, its token is free, and calls are answered again.
func TestDecideAnswersWhileTheOutputStageIsStalled(t *testing.T) {
	kafkatest.Run(t, testDecideAnswersWhileTheOutputStageIsStalled)
}

func testDecideAnswersWhileTheOutputStageIsStalled(t *testing.T, b kafkatest.Broker) {
	rig := newTestRig(t, b)
	store := newGateStore()
	const batch, inFlight = 4, 40
	p := New(Config{Brokers: []string{b.Addr()}, Group: "decide-stall-" + kafkatest.Suffix(), Topics: rig.topics,
		BatchSize: batch, MaxInFlight: inFlight, FlushInterval: 20 * time.Millisecond, CommitInterval: 50 * time.Millisecond},
		rig.eng, store, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		store.release()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
	})
	event := func(i int) []byte {
		return inputEvent(fmt.Sprintf("stall-%d", i), "payment", fmt.Sprintf("acct-stall-%d", i), 1795538400000+int64(i),
			`,"amount":100,"currency":"EUR","channel":"qr"`).Value
	}
	for i := range inFlight {
		d, err := p.Decide(context.Background(), event(i))
		if err != nil {
			t.Fatalf("decide %d with the store stalled: %v", i, err)
		}
		if want := fmt.Sprintf("stall-%d", i); d.EventID != want {
			t.Fatalf("decide %d answered %s", i, d.EventID)
		}
	}
	ended, end := context.WithCancel(context.Background())
	end()
	if _, err := p.Decide(ended, event(inFlight)); !errors.Is(err, ErrDecideTimeout) {
		t.Fatalf("decide with every token taken and its deadline passed: %v, want ErrDecideTimeout", err)
	}
	stored := func(n int) func() (bool, string) {
		return func() (bool, string) {
			store.mu.Lock()
			defer store.mu.Unlock()
			return store.stored == n, fmt.Sprintf("%d stored", store.stored)
		}
	}
	store.release()
	waitFor(t, fmt.Sprintf("the %d answered decisions stored", inFlight), stored(inFlight))
	if _, err := p.Decide(context.Background(), event(inFlight+1)); err != nil {
		t.Fatalf("decide once the store let go: %v", err)
	}
	waitFor(t, "the next decision stored", stored(inFlight+1))
}
