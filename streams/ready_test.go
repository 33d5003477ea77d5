package streams

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"riskd/engine"
	"riskd/internal/kafkatest"
	"riskd/rules"
)

func TestReadinessNamesEveryFailingCondition(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	rs := &rules.RuleSet{Version: rules.Version{Seq: 3, Hash: "1a2b3c4d5e6f"}, Rules: make([]*rules.Rule, 2)}
	// healthy is a snapshot where every condition holds; each case changes it.
	healthy := func() readySnapshot {
		return readySnapshot{
			now: now, group: "riskd", running: true,
			gen: &generation{id: 4, parts: []partitionState{
				{topic: "payments", partition: 0, reading: true}, {topic: "payments", partition: 1, reading: true}}},
			engine:     true,
			store:      storeHealth{configured: true, canPing: true, lastOK: now.Add(-2 * time.Second)},
			storeStale: 15 * time.Second,
			oldest:     &pendingBatch{cut: now.Add(-120 * time.Millisecond), size: 50, phase: phaseStore},
			stallAfter: 15 * time.Second, rulesHolder: true, rules: rs,
		}
	}
	down := errors.New("dial tcp 127.0.0.1:9000: connect: connection refused")
	for _, tc := range []struct {
		name   string
		change func(*readySnapshot)
		want   []string // the failing conditions, exactly
	}{
		{"every condition holds", func(*readySnapshot) {}, nil},
		{"before Run nothing is consumed", func(s *readySnapshot) { s.running, s.gen = false, nil },
			[]string{"kafka: not consuming: the pipeline is not running"}},
		{"a shutdown is not ready", func(s *readySnapshot) { s.stopping = true },
			[]string{"kafka: not consuming: shutting down"}},
		{"before the group has joined", func(s *readySnapshot) { s.gen = nil },
			[]string{`kafka: not in a consumer group generation: joining group "riskd"`}},
		{"a failed join is named", func(s *readySnapshot) {
			s.gen, s.joinErr, s.joinErrAt = nil, errors.New("coordinator not available"), now.Add(-3*time.Second)
		}, []string{`kafka: not in a consumer group generation: joining group "riskd" failed 3s ago: coordinator not available`}},
		{"a generation without partitions", func(s *readySnapshot) { s.gen.parts = nil },
			[]string{`kafka: no partitions assigned (group "riskd", generation 4): the other members hold them all`}},
		{"a partition without its reader", func(s *readySnapshot) { s.gen.parts[1].reading = false },
			[]string{"kafka: 1 of 2 assigned partitions have no reader: payments/1"}},
		{"the engine stopped", func(s *readySnapshot) { s.engine = false }, []string{"engine: not running"}},
		{"a failed ping", func(s *readySnapshot) {
			s.store.lastFail, s.store.failOp, s.store.failErr = now.Add(-1500*time.Millisecond), "ping", down
		}, []string{"clickhouse: last ping failed 1.5s ago: dial tcp 127.0.0.1:9000: connect: connection refused (last success 2s ago)"}},
		{"a success after the failure clears it", func(s *readySnapshot) {
			s.store.lastFail, s.store.failOp, s.store.failErr = now.Add(-3*time.Second), "ping", down
		}, nil},
		{"no success for three intervals", func(s *readySnapshot) { s.store.lastOK = now.Add(-16 * time.Second) },
			[]string{"clickhouse: no write or ping has succeeded for 16s (bound 15s)"}},
		{"not checked yet", func(s *readySnapshot) { s.store.lastOK = time.Time{} }, []string{"clickhouse: not checked yet"}},
		{"a store without Ping is judged by its writes", func(s *readySnapshot) {
			s.store.canPing, s.store.lastOK = false, now.Add(-time.Hour)
		}, nil},
		{"a batch past the stall bound", func(s *readySnapshot) {
			s.oldest = &pendingBatch{cut: now.Add(-17 * time.Second), size: 50, phase: phasePublish}
		}, []string{"output: stalled: a batch of 50 results has waited 17s to become durable (publishing to Kafka); the bound is 15s"}},
		{"no rule set", func(s *readySnapshot) { s.rules = nil }, []string{"rules: no rule set loaded"}},
		{"no rule holder", func(s *readySnapshot) { s.rulesHolder, s.rules = false, nil },
			[]string{"rules: no rule holder configured (streams.Config.Rules)"}},
		{"every failure is listed, in order", func(s *readySnapshot) {
			s.gen, s.engine, s.rules = nil, false, nil
			s.store.lastOK = now.Add(-14 * time.Second)
			s.store.lastFail, s.store.failOp, s.store.failErr = now.Add(-12*time.Second), "write", down
			s.oldest.cut = now.Add(-20 * time.Second)
		}, []string{
			`kafka: not in a consumer group generation: joining group "riskd"`,
			"engine: not running",
			"clickhouse: last write failed 12s ago: dial tcp 127.0.0.1:9000: connect: connection refused (last success 14s ago)",
			"output: stalled: a batch of 50 results has waited 20s to become durable (writing to ClickHouse); the bound is 15s",
			"rules: no rule set loaded",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			tc.change(&s)
			r := s.evaluate()
			if !slices.Equal(r.Failing, tc.want) || r.Ready != (len(tc.want) == 0) {
				t.Fatalf("ready %v, failing:\n%s\nwant:\n%s", r.Ready, strings.Join(r.Failing, "\n"), strings.Join(tc.want, "\n"))
			}
			if r.Failing == nil || len(r.Conditions) != len(Conditions) {
				t.Fatalf("failing %#v with %d conditions; want a non-nil list and all %d", r.Failing, len(r.Conditions), len(Conditions))
			}
			for i, c := range r.Conditions {
				if c.Name != Conditions[i] || c.Detail == "" {
					t.Fatalf("condition %d: %+v, want %s with a detail", i, c, Conditions[i])
				}
			}
		})
	}
	if got, want := healthy().evaluate().Conditions[0].Detail, `consuming 2 partitions (group "riskd", generation 4)`; got != want {
		t.Errorf("kafka detail when ready: %q, want %q", got, want)
	}

	// Restoring partitions: named in the detail and listed with what is
	// left to decide again; still ready.
	s := healthy()
	replaying, unread, done := &partitionProgress{until: 900}, &partitionProgress{until: 40}, &partitionProgress{until: 10}
	replaying.next.Store(300)
	unread.next.Store(-2) // nothing read yet: how much is left is unknown
	done.next.Store(10)
	s.gen.parts = []partitionState{
		{topic: "payments", partition: 0, reading: true, progress: replaying},
		{topic: "payments", partition: 1, reading: true, progress: unread},
		{topic: "account-events", partition: 0, reading: true, progress: done},
	}
	r := s.evaluate()
	if want := `consuming 3 partitions (group "riskd", generation 4); restoring 2 of them, 600 messages left to decide again`; !r.Ready || r.Conditions[0].Detail != want {
		t.Errorf("while restoring: ready %v, kafka detail %q; want ready, %q", r.Ready, r.Conditions[0].Detail, want)
	}
	wantParts := []PartitionStatus{
		{Topic: "payments", Partition: 0, Next: 300, Restoring: true, RestoreUntil: 900, RestoreLeft: 600},
		{Topic: "payments", Partition: 1, Next: -2, Restoring: true, RestoreUntil: 40, RestoreLeft: -1},
		{Topic: "account-events", Partition: 0, Next: 10},
	}
	if !slices.Equal(r.Partitions, wantParts) {
		t.Errorf("partitions: %+v\nwant %+v", r.Partitions, wantParts)
	}
	if r := (readySnapshot{}).evaluate(); r.Partitions == nil || len(r.Partitions) != 0 {
		t.Errorf("partitions between generations: %#v, want empty, not null", r.Partitions)
	}
}

func TestEverySeriesIsExportedFromTheStart(t *testing.T) {
	_, holder := referenceSet(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.LateReasons("account", "device.id") // the daemon's, from its features
	New(Config{Topics: Topics{Inputs: []string{"payments", "account-events"}}, Rules: holder}, nil, nil, m)
	want := []string{
		`riskd_assigned_partitions 0`,
		`riskd_dlq_total{topic="account-events"} 0`,
		`riskd_dlq_total{topic="payments"} 0`,
		`riskd_errors_total{stage="clickhouse"} 0`,
		`riskd_errors_total{stage="commit"} 0`,
		`riskd_errors_total{stage="fetch"} 0`,
		`riskd_errors_total{stage="fleet"} 0`,
		`riskd_errors_total{stage="group"} 0`,
		`riskd_errors_total{stage="kafka_out"} 0`,
		`riskd_errors_total{stage="lag"} 0`,
		`riskd_errors_total{stage="merge"} 0`,
		`riskd_errors_total{stage="rules"} 0`,
		`riskd_errors_total{stage="state"} 0`,
		`riskd_late_events_total{reason="account",topic="account-events"} 0`,
		`riskd_late_events_total{reason="account",topic="api"} 0`,
		`riskd_late_events_total{reason="account",topic="payments"} 0`,
		`riskd_late_events_total{reason="device.id",topic="account-events"} 0`,
		`riskd_late_events_total{reason="device.id",topic="api"} 0`,
		`riskd_late_events_total{reason="device.id",topic="payments"} 0`,
		`riskd_ready 0`,
		`riskd_ready_condition{condition="clickhouse"} 1`, // no store: nothing to fail
		`riskd_ready_condition{condition="engine"} 0`,
		`riskd_ready_condition{condition="kafka"} 0`,
		`riskd_ready_condition{condition="output"} 1`,
		`riskd_ready_condition{condition="rules"} 1`,
		`riskd_restore_remaining_messages 0`,
		`riskd_restoring_partitions 0`,
		`riskd_state_snapshots_total{outcome="abandoned"} 0`,
		`riskd_state_snapshots_total{outcome="failed"} 0`,
		`riskd_state_snapshots_total{outcome="saved"} 0`,
	}
	got := series(t, reg, "riskd_dlq_total", "riskd_errors_total", "riskd_late_events_total", "riskd_ready", "riskd_ready_condition",
		"riskd_state_snapshots_total", "riskd_assigned_partitions", "riskd_restoring_partitions", "riskd_restore_remaining_messages")
	if !slices.Equal(got, want) {
		t.Fatalf("series at start:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rs := holder.Load()
	var wantRules []string
	for _, r := range rs.Rules {
		wantRules = append(wantRules, fmt.Sprintf(`riskd_rule_errors_total{rule=%q} 0`, r.ID))
	}
	slices.Sort(wantRules)
	if got := series(t, reg, "riskd_rule_errors_total"); !slices.Equal(got, wantRules) {
		t.Fatalf("riskd_rule_errors_total at start:\n%s\nwant one series per rule at 0:\n%s", strings.Join(got, "\n"), strings.Join(wantRules, "\n"))
	}
	if got := series(t, reg, "riskd_rule_hits_total"); len(got) != len(rs.Rules) {
		t.Fatalf("riskd_rule_hits_total has %d series at start, want one per rule (%d)", len(got), len(rs.Rules))
	}
}

// series gathers reg's counters and gauges of the given names as sorted
// lines `name{label="value",...} value`, as /metrics shows them.
func series(t *testing.T, reg *prometheus.Registry, names ...string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		if !slices.Contains(names, mf.GetName()) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			line := mf.GetName()
			if len(labels) > 0 {
				line += "{" + strings.Join(labels, ",") + "}"
			}
			lines = append(lines, fmt.Sprintf("%s %g", line, v))
		}
	}
	slices.Sort(lines)
	return lines
}

// lagSum sums riskd_consumer_lag over the partitions of topic.
func lagSum(t *testing.T, m *Metrics, topic string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Lag)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "topic" && l.GetValue() == topic {
					v += s.GetGauge().GetValue()
				}
			}
		}
	}
	return v
}

// gateStore is a DecisionStore that holds every write until it is opened:
// the output stage stalls behind it, as behind a ClickHouse that hangs.
type gateStore struct {
	mu     sync.Mutex
	open   chan struct{}
	closed bool
	stored int
}

func newGateStore() *gateStore { return &gateStore{open: make(chan struct{}), closed: true} }

func (s *gateStore) WriteDecisions(ctx context.Context, ds []*engine.Decision) error {
	s.mu.Lock()
	open := s.open
	s.mu.Unlock()
	select {
	case <-open:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stored += len(ds)
	return nil
}

func (s *gateStore) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		close(s.open)
		s.closed = false
	}
}

// TestReadinessAndLagFollowTheGroupAndTheOutputStage runs a pipeline whose
// store holds every write: Ready must say the pipeline is not running
// before Run, become ready once the group has assigned the partitions,
// name the stalled output stage when a batch waits past StallTimeout, and
// recover when the store lets go; meanwhile the lag, asked of the broker,
// must show the events that could not be committed.
func TestReadinessAndLagFollowTheGroupAndTheOutputStage(t *testing.T) {
	kafkatest.Run(t, testReadinessAndLagFollowTheGroupAndTheOutputStage)
}

func testReadinessAndLagFollowTheGroupAndTheOutputStage(t *testing.T, b kafkatest.Broker) {
	rig := newTestRig(t, b)
	set, holder := referenceSet(t)
	eng := engine.New(engine.Config{Shards: 2}, set, holder)
	store := newGateStore()
	m := NewMetrics(nil)
	p := New(Config{Brokers: []string{b.Addr()}, Group: "ready-" + kafkatest.Suffix(), Topics: rig.topics,
		FlushInterval: 20 * time.Millisecond, CommitInterval: 50 * time.Millisecond, Rules: holder,
		LagInterval: 50 * time.Millisecond, StallTimeout: 300 * time.Millisecond}, eng, store, m)

	if r := p.Ready(); r.Ready || !slices.Contains(r.Failing, "kafka: not consuming: the pipeline is not running") ||
		!slices.Contains(r.Failing, "engine: not running") {
		t.Fatalf("before Run and RunEngine: %+v", r)
	}
	engCtx, stopEngine := context.WithCancel(context.Background())
	engDone := make(chan struct{})
	go func() { defer close(engDone); p.RunEngine(engCtx) }()
	t.Cleanup(func() { stopEngine(); <-engDone })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stop := func() {
		if ctx.Err() == nil {
			store.release()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("pipeline: %v", err)
			}
		}
	}
	t.Cleanup(stop)

	waitFor(t, "ready", func() (bool, string) { r := p.Ready(); return r.Ready, fmt.Sprint(r.Failing) })
	if r := p.Ready(); len(r.Partitions) == 0 || r.Partitions[0].Restoring {
		t.Fatalf("ready with partitions %+v, want the assigned ones, none restoring", r.Partitions)
	}
	payments := rig.topics.Inputs[0]
	msgs := make([]kafka.Message, 0, 12)
	for i := range 12 {
		msgs = append(msgs, inputEvent(fmt.Sprintf("st-%d", i), "payment", fmt.Sprintf("acct-st-%d", i), 1795538400000+int64(i),
			`,"amount":100,"currency":"EUR","channel":"qr"`))
	}
	rig.produce(t, payments, msgs...)
	waitFor(t, "the output stage named as stalled", func() (bool, string) {
		r := p.Ready()
		return !r.Ready && len(r.Failing) == 1 && strings.HasPrefix(r.Failing[0], "output: stalled: a batch of "), fmt.Sprint(r.Failing)
	})
	lagIs := func(want float64) func() (bool, string) {
		return func() (bool, string) {
			v := lagSum(t, m, payments)
			return v == want, fmt.Sprintf("riskd_consumer_lag summed over %s: %v", payments, v)
		}
	}
	waitFor(t, "the lag at the 12 uncommitted events", lagIs(12))

	store.release()
	waitFor(t, "ready again", func() (bool, string) { r := p.Ready(); return r.Ready, fmt.Sprint(r.Failing) })
	waitFor(t, "no lag once committed", lagIs(0))

	stop()
	if r := p.Ready(); r.Ready || !slices.Contains(r.Failing, "kafka: not consuming: the pipeline is not running") {
		t.Fatalf("after Run returned: %+v", r)
	}
}

// waitFor polls cond until it holds, and fails the test with its last
// description after 30 seconds.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never %s; last: %s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
