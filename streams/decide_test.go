package streams

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

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
	const inFlight = 40
	p, store, event := runStalledDecides(t, b, "stall", Config{MaxInFlight: inFlight})
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

// TestDecideHandsOverWhatMissedItsDeadline: with PublishAPIEvents, a
// decide call whose deadline passes before it reaches a shard (every
// token taken while the store hangs) still gets its event decided and
// stored: it is appended to its input topic, and the stream decides it
// once the store lets go. Without the hand-over the event left no
// trace, though the wallet was answered decide.on_timeout for it.
func TestDecideHandsOverWhatMissedItsDeadline(t *testing.T) {
	kafkatest.Run(t, testDecideHandsOverWhatMissedItsDeadline)
}

func testDecideHandsOverWhatMissedItsDeadline(t *testing.T, b kafkatest.Broker) {
	const inFlight = 12
	p, store, event := runStalledDecides(t, b, "handover", Config{MaxInFlight: inFlight, PublishAPIEvents: true})
	for i := range inFlight {
		if _, err := p.Decide(context.Background(), event(i)); err != nil {
			t.Fatalf("decide %d with the store stalled: %v", i, err)
		}
	}
	ended, end := context.WithCancel(context.Background())
	end()
	if _, err := p.Decide(ended, event(inFlight)); !errors.Is(err, ErrDecideTimeout) {
		t.Fatalf("decide with every token taken and its deadline passed: %v, want ErrDecideTimeout", err)
	}
	appended := p.m.DecideHandedOver.WithLabelValues(handedOverAppended)
	waitFor(t, "the late event appended to its input topic", func() (bool, string) {
		n := testutil.ToFloat64(appended)
		return n == 1, fmt.Sprintf("%.0f appended", n)
	})
	store.release()
	// The answered decisions, then the late event decided by the stream
	// (the answered ones come back from the input topic as decided).
	waitFor(t, "every answered decision and the late event stored", func() (bool, string) {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.stored == inFlight+1, fmt.Sprintf("%d stored", store.stored)
	})
	if lost := testutil.ToFloat64(p.m.DecideHandedOver.WithLabelValues(handedOverLost)); lost != 0 {
		t.Fatalf("%.0f counted lost", lost)
	}
}

// TestHandOverIsBounded: the hand-over queue holds MaxInFlight events;
// one more is counted lost rather than held, and without
// PublishAPIEvents nothing is queued or counted (the wallet's events
// reach the inputs some other way).
func TestHandOverIsBounded(t *testing.T) {
	for _, publish := range []bool{true, false} {
		p := New(Config{Brokers: []string{"127.0.0.1:1"}, Group: "handover-bound", Topics: DefaultTopics(),
			MaxInFlight: 3, PublishAPIEvents: publish}, nil, nil, nil)
		raw := inputEvent("bound-1", "payment", "acct-bound", 1795538400000, "").Value
		for range 4 {
			p.handOver(raw)
		}
		queued, lost := len(p.handovers), testutil.ToFloat64(p.m.DecideHandedOver.WithLabelValues(handedOverLost))
		switch {
		case publish && (queued != 3 || lost != 1):
			t.Fatalf("publishing: %d queued and %.0f lost of 4, want 3 and 1", queued, lost)
		case !publish && (queued != 0 || lost != 0):
			t.Fatalf("not publishing: %d queued and %.0f lost, want none", queued, lost)
		}
		if publish {
			raw[0] = 'x' // the caller's buffer, reused
			if got := <-p.handovers; got[0] != '{' {
				t.Fatalf("the queued event shares the caller's buffer")
			}
		}
	}
}

// runStalledDecides runs a pipeline with cfg's MaxInFlight and
// PublishAPIEvents (and small batches) over a store that holds every
// write until released (the test's cleanup releases it), and returns it
// with the store and the i-th payment event of a distinct account.
func runStalledDecides(t *testing.T, b kafkatest.Broker, name string, cfg Config) (*Pipeline, *gateStore, func(i int) []byte) {
	rig := newTestRig(t, b)
	store := newGateStore()
	p := New(Config{Brokers: []string{b.Addr()}, Group: "decide-" + name + "-" + kafkatest.Suffix(), Topics: rig.topics,
		BatchSize: 4, MaxInFlight: cfg.MaxInFlight, FlushInterval: 20 * time.Millisecond, CommitInterval: 50 * time.Millisecond,
		PublishAPIEvents: cfg.PublishAPIEvents},
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
		return inputEvent(fmt.Sprintf("%s-%d", name, i), "payment", fmt.Sprintf("acct-%s-%d", name, i), 1795538400000+int64(i),
			`,"amount":100,"currency":"EUR","channel":"qr"`).Value
	}
	return p, store, event
}

// TestHandedOverEventsArePlacedAsTheWalletsOwn: a handed-over event goes
// to the input topic and key its producers would use (money movements
// to the first input, the rest to the last), carries its event id, and
// has no decide origin header, so the stream decides it instead of taking
// it for a read-back. A body that is not an event still goes out, to the
// last input without a key, where the stream dead-letters it with its
// reason: nothing is dropped on the way.
func TestHandedOverEventsArePlacedAsTheWalletsOwn(t *testing.T) {
	topics := DefaultTopics()
	for _, tc := range []struct {
		raw                string
		topic, key, header string
	}{
		{string(inputEvent("h-1", "payment", "acct-7", 1795538400000, "").Value), topics.Inputs[0], "acct-7", "h-1"},
		{string(inputEvent("h-2", "login", "acct-8", 1795538400000, "").Value), topics.Inputs[len(topics.Inputs)-1], "acct-8", "h-2"},
		{`not json`, topics.Inputs[len(topics.Inputs)-1], "", ""},
	} {
		m := topics.handedOverMessage([]byte(tc.raw))
		if m.Topic != tc.topic || string(m.Key) != tc.key || string(m.Value) != tc.raw {
			t.Errorf("%s: topic %s, key %q, value %q; want %s, %q and the body", tc.raw, m.Topic, m.Key, m.Value, tc.topic, tc.key)
		}
		if h := headerMap(m); h[HeaderEventID] != tc.header || isFromDecide(m) {
			t.Errorf("%s: headers %v; want event id %q and no decide origin", tc.raw, h, tc.header)
		}
	}
}
