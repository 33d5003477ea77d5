package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/bench/produce"
	"riskd/bench/traffic"
	"riskd/internal/chtest"
	"riskd/internal/kafkatest"
	"riskd/streams"
	"riskd/streams/chstore"
	"riskd/streams/snapshots"
)

// These tests run riskd as a whole against a real Kafka wire protocol and a
// real ClickHouse server (chtest: skipped locally without one, failed on
// CI). Each runs once per broker (kafkatest.Run): the embedded broker,
// started outside the daemon so it survives restarts, and Apache Kafka when
// $RISKD_TEST_KAFKA names one (scripts/kafka-up; CI always does). Topic and
// group names carry a random suffix, since an Apache broker is shared by
// every test and outlives the run.

const waitLong = 60 * time.Second

// epoch is "since the beginning" for the store's time filters.
var epoch = time.Unix(0, 0)

type testEnv struct {
	broker kafkatest.Broker
	addr   string // the broker's bootstrap address
	cfg    Config
	store  *chstore.Store // the test's own view of the daemon's database
	// The test's topic names, as in cfg.Kafka.
	payments, accountEvents, decisions, alerts, actions, dlq string
}

// newTestEnv runs on a fresh embedded broker with the design's default
// topic names, for tests that only run there.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newBrokerEnv(t, kafkatest.Embedded(t))
	k := DefaultConfig().Kafka
	k.Brokers, k.Partitions = e.cfg.Kafka.Brokers, e.cfg.Kafka.Partitions
	e.cfg.Kafka = k
	e.setTopics()
	return e
}

// newBrokerEnv runs on broker (from kafkatest.Run) with topic and group
// names of the test's own.
func newBrokerEnv(t *testing.T, broker kafkatest.Broker) *testEnv {
	t.Helper()
	chCfg := chtest.Config(t)
	sfx := kafkatest.Suffix()

	rulesDir := filepath.Join(t.TempDir(), "rules")
	copyDir(t, "../../bench/reference/rules", rulesDir)
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = []string{broker.Addr()}
	cfg.Kafka.Partitions = 4
	cfg.Kafka.Group = "riskd-test-" + sfx
	cfg.Kafka.Inputs = []string{"payments-" + sfx, "account-events-" + sfx}
	cfg.Kafka.DecisionsTopic = "risk.decisions-" + sfx
	cfg.Kafka.AlertsTopic = "risk.alerts-" + sfx
	cfg.Kafka.ActionsTopic = "risk.actions-" + sfx
	cfg.Kafka.DLQTopic = "risk.dlq-" + sfx
	cfg.Kafka.RulesTopic = "risk.rules-" + sfx
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = chCfg.Addr, chCfg.Database
	cfg.Rules.Dir = rulesDir
	cfg.Rules.Features = "../../bench/reference/features.yaml"
	cfg.Rules.PollInterval = 100 * time.Millisecond
	cfg.Output.FlushInterval = 20 * time.Millisecond
	cfg.Output.CommitInterval = 50 * time.Millisecond
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.State.Dir = t.TempDir()
	cfg.State.Topic = "riskd.state-" + sfx
	cfg.Engine.Shards = 2

	st, err := chstore.Open(t.Context(), chCfg) // creates the database the daemon will use
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &testEnv{broker: broker, addr: broker.Addr(), cfg: cfg, store: st}
	e.setTopics()
	return e
}

// instance is the name the daemon gives its state snapshots.
func (e *testEnv) instance(t *testing.T) string {
	t.Helper()
	if e.cfg.State.Instance != "" {
		return e.cfg.State.Instance
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return host
}

// setTopics copies the topic names from cfg.Kafka.
func (e *testEnv) setTopics() {
	k := e.cfg.Kafka
	e.payments, e.accountEvents, e.decisions = k.Inputs[0], k.Inputs[1], k.DecisionsTopic
	e.alerts, e.actions, e.dlq = k.AlertsTopic, k.ActionsTopic, k.DLQTopic
}

// produce is generated traffic (bench/produce) into the test's topics.
func (e *testEnv) produce(t *testing.T, cfg produce.Config) produce.Stats {
	t.Helper()
	stats, err := produce.Run(t.Context(), e.produceConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

func (e *testEnv) produceConfig(cfg produce.Config) produce.Config {
	cfg.Brokers = []string{e.addr}
	cfg.PaymentsTopic, cfg.AccountTopic = e.payments, e.accountEvents
	return cfg
}

// start runs a daemon until the returned stop is called (or the test
// ends); stop returns what the daemon's run returned, every time.
func (e *testEnv) start(t *testing.T) (d *daemon, stop func() error) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := startDaemon(t.Context(), e.cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	var stopped bool
	var runErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			if runErr = <-done; errors.Is(runErr, context.Canceled) {
				runErr = nil
			}
		}
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil && !errors.Is(err, streams.ErrNotDrained) {
			t.Errorf("daemon: %v", err)
		}
	})
	return d, stop
}

// mustStop stops the daemon and fails the test unless it drained cleanly.
func mustStop(t *testing.T, stop func() error) {
	t.Helper()
	if err := stop(); err != nil {
		t.Fatalf("daemon: %v", err)
	}
}

// waitStored polls until at least n distinct events have stored decisions.
// newRelayedEnv is newBrokerEnv with riskd reaching ClickHouse through a
// relay the test can cut (Down) and restore (Up), as a network outage
// would.
func newRelayedEnv(t *testing.T, broker kafkatest.Broker) (*testEnv, *chtest.Proxy) {
	t.Helper()
	e := newBrokerEnv(t, broker)
	proxy := chtest.NewProxy(t, e.cfg.ClickHouse.Addr)
	e.cfg.ClickHouse.Addr = proxy.Addr()
	return e, proxy
}

func (e *testEnv) waitStored(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	var got uint64
	for time.Now().Before(deadline) {
		var err error
		if got, err = e.store.CountDecisions(t.Context(), epoch); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%d decisions stored after %s, want %d", got, waitLong, n)
}

func (e *testEnv) decision(t *testing.T, eventID string) chstore.StoredDecision {
	t.Helper()
	d, ok, err := e.store.DecisionByEvent(t.Context(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("no stored decision for %s", eventID)
	}
	return d
}

// assertStoredOnce checks the store holds exactly n decisions, one per event.
func (e *testEnv) assertStoredOnce(t *testing.T, n uint64) {
	t.Helper()
	got, err := e.store.CountDecisions(t.Context(), epoch)
	if err != nil {
		t.Fatal(err)
	}
	dup, err := e.store.DuplicateDecisionRows(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got != n || dup != 0 {
		t.Fatalf("stored %d decisions with %d duplicate rows, want %d and 0", got, dup, n)
	}
}

func ev(id, typ, account string, ts int64, extra string) kafka.Message {
	return kafka.Message{Key: []byte(account), Value: fmt.Appendf(nil,
		`{"event_id":%q,"type":%q,"ts":%d,"account_id":%q%s}`, id, typ, ts, account, extra)}
}

// baseTS is a fixed event time for scripted events (2026-11-24T00:00:00Z).
const baseTS = 1795478400000

func TestStreamDecidesEveryEventOnceWithScriptedScenarios(t *testing.T) {
	kafkatest.Run(t, testStreamDecidesEveryEventOnceWithScriptedScenarios)
}

func testStreamDecidesEveryEventOnceWithScriptedScenarios(t *testing.T, b kafkatest.Broker) {
	e := newBrokerEnv(t, b)
	d, stop := e.start(t)
	addr := e.addr

	// Generated traffic with fraud mixed in.
	const generated = 3000
	stats := e.produce(t, produce.Config{Events: generated,
		Traffic: traffic.Config{Accounts: 500, Seed: 7, FraudRate: 0.05, IDPrefix: "gen-"}})
	if stats.Fraud == 0 {
		t.Fatal("generator produced no fraud events; the test would not exercise the rules")
	}

	// Brute force: five failed logins lock the account; the next payment is refused.
	var logins []kafka.Message
	for i := range 5 {
		logins = append(logins, ev(fmt.Sprintf("bf-%d", i), "login_failed", "acct-bf", baseTS+int64(i)*1000,
			`,"ip":"198.51.100.7","device":{"id":"dev-x"}`))
	}
	kafkatest.Produce(t, addr, e.accountEvents, logins...)
	e.waitStored(t, generated+5)
	if d := e.decision(t, "bf-4"); d.Action != "lock" || !contains(d.MatchedRules, "brute-force-lock") || d.LockUntil.IsZero() {
		t.Fatalf("fifth failed login: %+v, want lock by brute-force-lock with lock_until", d)
	}
	kafkatest.Produce(t, addr, e.payments, ev("bf-pay", "payment", "acct-bf", baseTS+60_000,
		`,"amount":5000,"currency":"EUR","channel":"online","merchant_id":"m-1"`))

	// Scam payee: blocked, and the user is alerted on risk.alerts.
	kafkatest.Produce(t, addr, e.payments, ev("scam-1", "payment", "acct-scam", baseTS,
		`,"amount":25000,"currency":"EUR","channel":"transfer","payee_id":"payee-scam-0003"`))
	e.waitStored(t, generated+7)

	if d := e.decision(t, "bf-pay"); d.Action != "lock" || d.Reason != "account_locked" {
		t.Fatalf("payment on a locked account: action %s reason %q, want lock/account_locked", d.Action, d.Reason)
	}
	if d := e.decision(t, "scam-1"); d.Action != "block" || !contains(d.MatchedRules, "scam-payee") {
		t.Fatalf("scam payee payment: %+v, want block by scam-payee", d)
	}
	alerts := kafkatest.ReadAll(t, addr, e.alerts, 1, waitLong)
	var scamAlert bool
	for _, m := range alerts {
		var a streams.AlertRecord
		if err := json.Unmarshal(m.Value, &a); err != nil {
			t.Fatalf("alert %s: %v", m.Value, err)
		}
		if a.EventID == "scam-1" && a.RuleID == "scam-payee" && string(m.Key) == "acct-scam" && a.Message != "" {
			scamAlert = true
		}
	}
	if !scamAlert {
		t.Fatalf("no scam-payee alert for scam-1 among %d alerts", len(alerts))
	}
	actions := kafkatest.ReadAll(t, addr, e.actions, 1, waitLong)
	var locked bool
	for _, m := range actions {
		var a streams.ActionRecord
		if err := json.Unmarshal(m.Value, &a); err == nil && a.AccountID == "acct-bf" && a.Type == "lock" {
			locked = true
		}
	}
	if !locked {
		t.Fatalf("no lock command for acct-bf on risk.actions (%d messages)", len(actions))
	}
	if n := histogramCount(t, d, "riskd_kafka_to_decision_seconds"); n < generated+7 {
		t.Fatalf("riskd_kafka_to_decision_seconds counted %d decisions, want %d", n, generated+7)
	}
	mustStop(t, stop)
	e.assertStoredOnce(t, generated+7)
	decisions := kafkatest.ReadAll(t, addr, e.decisions, generated+7, waitLong)
	if len(decisions) != generated+7 {
		t.Fatalf("%s has %d messages, want %d", e.decisions, len(decisions), generated+7)
	}
}

func TestRestartMidStreamDecidesEverythingOnce(t *testing.T) {
	kafkatest.Run(t, testRestartMidStreamDecidesEverythingOnce)
}

func testRestartMidStreamDecidesEverythingOnce(t *testing.T, b kafkatest.Broker) {
	e := newBrokerEnv(t, b)
	if err := streams.EnsureTopics(t.Context(), []string{e.addr}, e.cfg.Kafka.Partitions, e.cfg.Kafka.Inputs...); err != nil {
		t.Fatal(err)
	}
	const total = 6000
	// The producer writes the first half, then waits until the first run
	// has stopped: the stop is mid-stream however fast riskd reads (a
	// consumer group takes seconds to form on Apache Kafka, long enough
	// for an unpaced producer to finish first).
	firstStopped := make(chan struct{})
	produced := make(chan error, 1)
	go func() {
		_, err := produce.Run(t.Context(), e.produceConfig(produce.Config{Events: total, Rate: 3000,
			Traffic: traffic.Config{Accounts: 400, Seed: 11, FraudRate: 0.03, IDPrefix: "rs-"},
			Progress: func(written int) {
				if written >= total/2 {
					select {
					case <-firstStopped:
					case <-t.Context().Done():
					}
				}
			}}))
		produced <- err
	}()

	_, stop := e.start(t)
	e.waitStored(t, 1000) // mid-stream: the producer is still writing
	mustStop(t, stop)
	close(firstStopped)
	first, err := e.store.CountDecisions(t.Context(), epoch)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapshots.New(snapshots.Config{Brokers: []string{e.addr}, Topic: e.cfg.State.Topic,
		Name: e.cfg.Kafka.Group + "/" + e.instance(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := snaps.Load(t.Context()); err != nil {
		t.Fatalf("clean stop left no state snapshot in %s: %v", e.cfg.State.Topic, err)
	}

	_, stop = e.start(t)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	e.waitStored(t, total)
	mustStop(t, stop)
	if first >= total {
		t.Fatalf("the first run decided all %d events; the restart was not mid-stream", first)
	}
	e.assertStoredOnce(t, total)
}

func TestRuleEditTakesEffectWhileEventsFlow(t *testing.T) {
	kafkatest.Run(t, testRuleEditTakesEffectWhileEventsFlow)
}

func testRuleEditTakesEffectWhileEventsFlow(t *testing.T, b kafkatest.Broker) {
	e := newBrokerEnv(t, b)
	d, _ := e.start(t)
	addr := e.addr
	before := d.holder.Load().Version.String()

	// Payments of a marker amount flow the whole time; no rule knows it
	// yet. The producer keeps writing until the new rules are live, then
	// writes a few batches more, so both versions decide some of them
	// however the broker, riskd and the rule watcher are scheduled.
	const perBatch, batchesAfter = 25, 4
	swapped := make(chan struct{})
	flowing := make(chan int, 1)
	go func() {
		after := -1
		b := 0
		for ; after < batchesAfter && t.Context().Err() == nil; b++ {
			var msgs []kafka.Message
			for i := range perBatch {
				n := b*perBatch + i
				msgs = append(msgs, ev(fmt.Sprintf("flow-%d", n), "payment", fmt.Sprintf("acct-flow-%d", n%7),
					baseTS+int64(n)*60_000, `,"amount":777,"currency":"EUR","channel":"qr","merchant_id":"m-9"`))
			}
			kafkatest.Produce(t, addr, e.payments, msgs...)
			select {
			case <-swapped:
				after++
			default:
			}
			time.Sleep(100 * time.Millisecond)
		}
		flowing <- b
	}()
	e.waitStored(t, 3*perBatch)
	rule := "- id: marker-amount\n  when: event.type == \"payment\" && event.amount == 777\n  action: review\n  score: 5\n"
	if err := os.WriteFile(filepath.Join(e.cfg.Rules.Dir, "marker.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLong)
	for d.holder.Load().Version.String() == before {
		if time.Now().After(deadline) {
			t.Fatalf("rule version still %s %s after the edit", before, waitLong)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(swapped)
	batches := <-flowing
	e.waitStored(t, uint64(batches*perBatch))
	after := d.holder.Load().Version.String()
	if after == before {
		t.Fatalf("rule version still %s after the edit", before)
	}
	var old, newer int
	for n := range batches * perBatch {
		sd := e.decision(t, fmt.Sprintf("flow-%d", n))
		switch sd.RuleSetVersion {
		case before:
			old++
			if contains(sd.MatchedRules, "marker-amount") {
				t.Fatalf("flow-%d matched marker-amount under the old version", n)
			}
		case after:
			newer++
			if !contains(sd.MatchedRules, "marker-amount") {
				t.Fatalf("flow-%d under %s: %+v, want marker-amount matched", n, after, sd)
			}
		default:
			t.Fatalf("flow-%d decided by unknown version %s", n, sd.RuleSetVersion)
		}
	}
	if old == 0 || newer == 0 {
		t.Fatalf("%d decisions under the old rules and %d under the new; the edit did not land mid-stream", old, newer)
	}
	e.assertStoredOnce(t, uint64(batches*perBatch))
}

func TestBadRuleEditKeepsTheOldRules(t *testing.T) { kafkatest.Run(t, testBadRuleEditKeepsTheOldRules) }

func testBadRuleEditKeepsTheOldRules(t *testing.T, b kafkatest.Broker) {
	e := newBrokerEnv(t, b)
	d, _ := e.start(t)
	before := d.holder.Load().Version.String()
	bad := "- id: broken\n  when: event.amount > \"ten\"\n  action: block\n"
	if err := os.WriteFile(filepath.Join(e.cfg.Rules.Dir, "broken.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLong)
	for metricSum(t, d, "riskd_rule_reloads_total", "error") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the bad rule file was never reported")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := d.holder.Load().Version.String(); got != before {
		t.Fatalf("version %s after a bad edit, want the old %s", got, before)
	}
	kafkatest.Produce(t, e.addr, e.payments, ev("after-bad", "payment", "acct-1", baseTS,
		`,"amount":100,"currency":"EUR","channel":"qr"`))
	e.waitStored(t, 1)
	if sd := e.decision(t, "after-bad"); sd.RuleSetVersion != before {
		t.Fatalf("decided by %s, want %s", sd.RuleSetVersion, before)
	}
}

// metricSum sums a counter or gauge of d's registry over the series that
// have a label with value label ("": every series).
func metricSum(t *testing.T, d *daemon, name, label string) float64 {
	t.Helper()
	mfs, err := d.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			value := m.GetCounter().GetValue() + m.GetGauge().GetValue() // the one that is set
			if label == "" {
				v += value
				continue
			}
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					v += value
				}
			}
		}
	}
	return v
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, de os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if de.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil && !strings.Contains(err.Error(), "exist") {
		t.Fatal(err)
	}
}

// histogramCount is the number of observations of a histogram of d's registry.
func histogramCount(t *testing.T, d *daemon, name string) uint64 {
	t.Helper()
	mfs, err := d.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var n uint64
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
			return n
		}
	}
	return 0
}
