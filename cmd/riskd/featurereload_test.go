package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/internal/kafkatest"
)

// TestFeatureEditTakesEffectWhileEventsFlow edits the features file of a
// running riskd while payments flow: a feature is added without a
// restart, a rule reading it is published next, and it decides the
// payments after it; no payment is skipped or decided twice. Then an edit
// that drops a feature a running rule reads is refused, and the features
// stay.
func TestFeatureEditTakesEffectWhileEventsFlow(t *testing.T) {
	kafkatest.Run(t, testFeatureEditTakesEffectWhileEventsFlow)
}

func testFeatureEditTakesEffectWhileEventsFlow(t *testing.T, b kafkatest.Broker) {
	e := newBrokerEnv(t, b)
	reference, err := os.ReadFile(e.cfg.Rules.Features)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.Rules.Features = filepath.Join(t.TempDir(), "features.yaml")
	if err := os.WriteFile(e.cfg.Rules.Features, reference, 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := e.start(t)

	const perBatch = 20
	sent := 0
	flow := func(batches int) {
		for range batches {
			var msgs []kafka.Message
			for range perBatch {
				msgs = append(msgs, ev(fmt.Sprintf("flow-%d", sent), "payment", fmt.Sprintf("acct-flow-%d", sent%5),
					baseTS+int64(sent)*1000, `,"amount":777,"currency":"EUR","channel":"qr","merchant_id":"m-9"`))
				sent++
			}
			kafkatest.Produce(t, e.addr, e.payments, msgs...)
		}
	}
	waitMetric := func(name, label string, want float64) {
		t.Helper()
		deadline := time.Now().Add(waitLong)
		for metricSum(t, d, name, label) < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s{%s} still below %v after %s", name, label, want, waitLong)
			}
			flow(1) // events keep flowing across the reload
			time.Sleep(50 * time.Millisecond)
		}
	}

	flow(3)
	added := append(slices.Clone(reference), "\nmarker_payments_1h: {count: payment, by: account, window: 1h, where: 'amount == 777'}\n"...)
	if err := os.WriteFile(e.cfg.Rules.Features, added, 0o644); err != nil {
		t.Fatal(err)
	}
	waitMetric("riskd_feature_reloads_total", "ok", 1)
	if _, ok := d.liveFeatures.Load().Index("marker_payments_1h"); !ok {
		t.Fatal("the reload reported ok, but the engine's features lack marker_payments_1h")
	}
	before := d.holder.Load().Version.String()
	rule := "- id: marker-velocity\n  when: event.type == \"payment\" && f.marker_payments_1h >= 2\n  action: review\n  score: 5\n"
	if err := os.WriteFile(filepath.Join(e.cfg.Rules.Dir, "marker.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLong)
	for d.holder.Load().Version.String() == before {
		if time.Now().After(deadline) {
			t.Fatalf("rule version still %s %s after publishing a rule that reads the new feature", before, waitLong)
		}
		flow(1)
		time.Sleep(50 * time.Millisecond)
	}
	after := d.holder.Load().Version.String()
	first := sent
	flow(3)
	e.waitStored(t, uint64(sent))
	e.assertStoredOnce(t, uint64(sent))
	for n := first; n < sent; n++ {
		sd := e.decision(t, fmt.Sprintf("flow-%d", n))
		if sd.RuleSetVersion != after || !slices.Contains(sd.MatchedRules, "marker-velocity") {
			t.Fatalf("flow-%d: version %s, matched %v; want %s and marker-velocity", n, sd.RuleSetVersion, sd.MatchedRules, after)
		}
	}

	// Dropping a feature the running rules read is refused.
	if err := os.WriteFile(e.cfg.Rules.Features, reference, 0o644); err != nil {
		t.Fatal(err)
	}
	waitMetric("riskd_feature_reloads_total", "error", 1)
	if _, ok := d.liveFeatures.Load().Index("marker_payments_1h"); !ok {
		t.Fatal("a refused reload dropped marker_payments_1h")
	}
	last := sent
	flow(1)
	e.waitStored(t, uint64(sent))
	if sd := e.decision(t, fmt.Sprintf("flow-%d", last)); !slices.Contains(sd.MatchedRules, "marker-velocity") {
		t.Fatalf("after the refused reload: matched %v, want marker-velocity", sd.MatchedRules)
	}
	e.assertStoredOnce(t, uint64(sent))
}
