package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/bench/produce"
	"riskd/bench/traffic"
	"riskd/internal/kafkatest"
	"riskd/streams"
)

// Tests only Apache Kafka makes honest: group rebalances with a real group
// coordinator, and a broker that goes away and comes back. They run on
// Apache Kafka only; without $RISKD_TEST_KAFKA they skip locally and fail
// on CI (kafkatest.Apache).

// TestRebalanceDecidesEveryEventOnce starts a second riskd in the same
// consumer group (and ClickHouse database) while events flow, then stops
// it again: two rebalances hand partitions over mid-stream, with
// decisions in flight, and every event must still end with exactly one
// stored decision.
func TestRebalanceDecidesEveryEventOnce(t *testing.T) {
	e := newBrokerEnv(t, kafkatest.Apache(t))
	if err := streams.EnsureTopics(t.Context(), []string{e.addr}, e.cfg.Kafka.Partitions, e.cfg.Kafka.Inputs...); err != nil {
		t.Fatal(err)
	}
	const total = 8000
	produced := make(chan error, 1)
	go func() {
		_, err := produce.Run(t.Context(), e.produceConfig(produce.Config{Events: total, Rate: 1000,
			Traffic: traffic.Config{Accounts: 400, Seed: 21, FraudRate: 0.03, IDPrefix: "rb-"}}))
		produced <- err
	}()

	first, stopFirst := e.start(t)
	e.waitStored(t, 1000)

	// The second instance: same group and database, its own state and HTTP.
	second := *e
	second.cfg.State.Dir = t.TempDir()
	second.cfg.State.Instance = "second" // its snapshots apart from the first's, as another host's are
	joined, stopSecond := second.start(t)
	waitCounter(t, joined, "riskd_consumed_total", 1, e.cfg.Kafka.Inputs...)
	before, err := e.store.CountDecisions(t.Context(), epoch)
	if err != nil {
		t.Fatal(err)
	}
	// Both instances are deciding (the stream may be nearly over by the
	// time the group has rebalanced: restores and drains take their time).
	e.waitStored(t, min(before+500, total))
	mustStop(t, stopSecond) // leaves: its partitions go back to the first
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	e.waitStored(t, total)
	mustStop(t, stopFirst)

	e.assertStoredOnce(t, total)
	a, b := consumed(t, first, e.cfg.Kafka.Inputs), consumed(t, joined, e.cfg.Kafka.Inputs)
	if b == 0 || b >= total {
		t.Fatalf("the second instance consumed %.0f of %d events; the group never shared its partitions", b, total)
	}
	t.Logf("first instance consumed %.0f messages, second %.0f (re-reads after a rebalance count twice)", a, b)
}

// TestBrokerRestartDecidesEveryEventOnce stops Apache Kafka cleanly while
// riskd reads and a producer writes, starts it again on the same data, and
// expects riskd to ride it out: reconnect, rejoin its group, resume from
// the committed offsets, and store one decision per event. The broker is
// the test's own (scripts/kafka-up on free ports), so the shared one that
// other tests use is never restarted.
func TestBrokerRestartDecidesEveryEventOnce(t *testing.T) {
	kafkatest.Apache(t)
	broker := kafkatest.StartApache(t)
	e := newBrokerEnv(t, broker.Broker())
	if err := streams.EnsureTopics(t.Context(), []string{e.addr}, e.cfg.Kafka.Partitions, e.cfg.Kafka.Inputs...); err != nil {
		t.Fatal(err)
	}

	const batches, perBatch = 40, 50
	const total = batches * perBatch
	restarting := make(chan struct{})
	firstHalf := make(chan struct{})
	produced := make(chan error, 1)
	go func() {
		produced <- produceThroughOutages(t.Context(), e.addr, e.payments, batches, perBatch, firstHalf, restarting)
	}()

	e.start(t)
	select {
	case <-firstHalf:
	case <-time.After(waitLong):
		t.Fatalf("the first %d batches were not produced within %s", batches/2, waitLong)
	}
	e.waitStored(t, 1)
	close(restarting) // the producer writes the second half while the broker stops and starts
	broker.Stop(t)
	broker.Start(t)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	e.waitStored(t, total)
	e.assertStoredOnce(t, total)
}

// produceThroughOutages writes batches of payments, retrying a batch until
// the broker takes it (or ctx ends), like a producer that keeps going
// while the broker restarts. After the first half it closes firstHalf and
// waits for restarting, so the second half is written during the restart.
// A retried batch may be written twice; riskd decides each event id once
// and the store collapses repeats.
func produceThroughOutages(ctx context.Context, addr, topic string, batches, perBatch int,
	firstHalf chan<- struct{}, restarting <-chan struct{}) error {
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, MaxAttempts: 3}
	defer w.Close()
	for b := range batches {
		if b == batches/2 {
			close(firstHalf)
			select {
			case <-restarting:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		var msgs []kafka.Message
		for i := range perBatch {
			n := b*perBatch + i
			msgs = append(msgs, ev(fmt.Sprintf("br-%d", n), "payment", fmt.Sprintf("acct-br-%d", n%40),
				baseTS+int64(n)*1000, `,"amount":1000,"currency":"EUR","channel":"qr"`))
		}
		for {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := w.WriteMessages(wctx, msgs...)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("batch %d: %w (last error %v)", b, ctx.Err(), err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // a steady flow, not one burst
	}
	return nil
}

// waitCounter polls until the sum of a daemon's counter over labels
// reaches n.
func waitCounter(t *testing.T, d *daemon, name string, n float64, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for sumCounter(t, d, name, labels) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s%v below %.0f after %s", name, labels, n, waitLong)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func consumed(t *testing.T, d *daemon, topics []string) float64 {
	return sumCounter(t, d, "riskd_consumed_total", topics)
}

func sumCounter(t *testing.T, d *daemon, name string, labels []string) float64 {
	t.Helper()
	var v float64
	for _, l := range labels {
		v += metricSum(t, d, name, l)
	}
	return v
}
