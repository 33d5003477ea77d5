package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/internal/chtest"
	"riskd/internal/kafkatest"
	"riskd/streams"
)

// TestUnreachableClickHouseSlowsIntakeAndLosesNothing takes ClickHouse away
// (a relay in front of the real server is cut) while events keep arriving:
// riskd must stop reading at its in-flight bound instead of dropping or
// committing, and store every decision once ClickHouse is back.
func TestUnreachableClickHouseSlowsIntakeAndLosesNothing(t *testing.T) {
	kafkatest.Run(t, testUnreachableClickHouseSlowsIntakeAndLosesNothing)
}

func testUnreachableClickHouseSlowsIntakeAndLosesNothing(t *testing.T, b kafkatest.Broker) {
	e, proxy := newRelayedEnv(t, b)
	const maxInFlight = 200
	e.cfg.Output.BatchSize = 50
	e.cfg.Output.MaxInFlight = maxInFlight
	d, _ := e.start(t)
	addr := e.addr

	payments := func(from, n int) []kafka.Message {
		var msgs []kafka.Message
		for i := from; i < from+n; i++ {
			msgs = append(msgs, ev(fmt.Sprintf("bp-%d", i), "payment", fmt.Sprintf("acct-bp-%d", i%50),
				baseTS+int64(i)*1000, `,"amount":1000,"currency":"EUR","channel":"qr"`))
		}
		return msgs
	}
	kafkatest.Produce(t, addr, e.payments, payments(0, 100)...)
	e.waitStored(t, 100)

	proxy.Down()
	const more = 2000
	kafkatest.Produce(t, addr, e.payments, payments(100, more)...)
	// Wait until the store has failed several times: by then riskd has
	// read all it may and must be holding still.
	deadline := time.Now().Add(waitLong)
	for d.store.Retries() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the store never retried while ClickHouse was unreachable")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	consumed := metricSum(t, d, "riskd_consumed_total", e.payments)
	if consumed > 100+maxInFlight {
		t.Fatalf("consumed %.0f messages while ClickHouse was down, want at most %d (100 stored + %d in flight)",
			consumed, 100+maxInFlight, maxInFlight)
	}
	if got := metricSum(t, d, "riskd_decisions_total", "allow") + metricSum(t, d, "riskd_decisions_total", "alert") +
		metricSum(t, d, "riskd_decisions_total", "review") + metricSum(t, d, "riskd_decisions_total", "challenge") +
		metricSum(t, d, "riskd_decisions_total", "block") + metricSum(t, d, "riskd_decisions_total", "lock"); got > 100 {
		t.Fatalf("%.0f decisions counted as durable while ClickHouse was down, want 100", got)
	}

	proxy.Up()
	e.waitStored(t, 100+more)
	e.assertStoredOnce(t, 100+more)
}

// TestStopWithoutDrainReplaysEverything stops riskd while ClickHouse is
// unreachable, so the drain times out with decisions not yet durable (as
// a crash would leave them). The next start must replay those events and
// store each decision once: no checkpoint may make them look like
// duplicates.
func TestStopWithoutDrainReplaysEverything(t *testing.T) {
	kafkatest.Run(t, testStopWithoutDrainReplaysEverything)
}

func testStopWithoutDrainReplaysEverything(t *testing.T, b kafkatest.Broker) {
	e := newBrokerEnv(t, b)
	proxy := chtest.NewProxy(t, e.cfg.ClickHouse.Addr)
	direct := e.cfg.ClickHouse.Addr
	e.cfg.ClickHouse.Addr = proxy.Addr()
	e.cfg.Output.DrainTimeout = 300 * time.Millisecond
	d, stop := e.start(t)
	addr := e.addr
	var msgs []kafka.Message
	for i := range 300 {
		msgs = append(msgs, ev(fmt.Sprintf("cr-%d", i), "payment", fmt.Sprintf("acct-cr-%d", i%30),
			baseTS+int64(i)*1000, `,"amount":1000,"currency":"EUR","channel":"qr"`))
	}
	kafkatest.Produce(t, addr, e.payments, msgs[:100]...)
	e.waitStored(t, 100)
	proxy.Down()
	kafkatest.Produce(t, addr, e.payments, msgs[100:]...)
	for d.store.Retries() == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := stop(); !errors.Is(err, streams.ErrNotDrained) {
		t.Fatalf("stop with ClickHouse down: %v, want ErrNotDrained", err)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.State.Dir, checkpointFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a checkpoint was written after an incomplete drain (stat: %v)", err)
	}

	e.cfg.ClickHouse.Addr = direct
	e.start(t)
	e.waitStored(t, 300)
	e.assertStoredOnce(t, 300)
}

// TestDecideFallbacksDuringAnOutageAreRecorded calls the decide API while
// ClickHouse is unreachable, past the decide tokens its outputs may hold:
// the calls beyond them fall back at their deadline before reaching a
// shard. Once ClickHouse is back, every called event is stored once,
// those that fell back decided by the stream after riskd handed them to
// their input topic (decide.publish_events, on by default).
func TestDecideFallbacksDuringAnOutageAreRecorded(t *testing.T) {
	kafkatest.Run(t, testDecideFallbacksDuringAnOutageAreRecorded)
}

func testDecideFallbacksDuringAnOutageAreRecorded(t *testing.T, b kafkatest.Broker) {
	e, proxy := newRelayedEnv(t, b)
	const tokens, calls = 20, 60
	e.cfg.Output.BatchSize = 5
	e.cfg.Output.MaxInFlight = tokens
	d, _ := e.start(t)

	proxy.Down()
	fellBack := 0
	for i := range calls {
		raw := ev(fmt.Sprintf("outage-dec-%d", i), "payment", fmt.Sprintf("acct-outage-%d", i%7),
			baseTS+int64(i)*1000, `,"amount":1000,"currency":"EUR","channel":"qr"`).Value
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		_, err := d.pipe.Decide(ctx, raw)
		cancel()
		switch {
		case errors.Is(err, streams.ErrDecideTimeout):
			fellBack++
		case err != nil:
			t.Fatalf("decide %d: %v", i, err)
		}
	}
	if fellBack < calls-tokens {
		t.Fatalf("%d of %d calls fell back with %d tokens, want at least %d", fellBack, calls, tokens, calls-tokens)
	}
	proxy.Up()
	e.waitStored(t, calls)
	e.assertStoredOnce(t, calls)
	if got := metricSum(t, d, "riskd_decide_handed_over_total", "appended"); got < float64(calls-tokens) {
		t.Fatalf("%.0f events handed to the stream, want at least %d", got, calls-tokens)
	}
	if lost := metricSum(t, d, "riskd_decide_handed_over_total", "lost"); lost != 0 {
		t.Fatalf("%.0f handed-over events counted lost", lost)
	}
}
