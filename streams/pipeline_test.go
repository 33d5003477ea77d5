package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/engine"
	"riskd/features"
	"riskd/internal/kafkatest"
	"riskd/rules"
)

// testRig is a broker (kafkatest.Run: the embedded one, and Apache Kafka
// when $RISKD_TEST_KAFKA names one), topics of the test's own, the
// reference rules and features, and a running engine: everything a
// pipeline needs except its store.
type testRig struct {
	broker kafkatest.Broker
	topics Topics
	eng    *engine.Engine
	cancel context.CancelFunc
	done   chan struct{}
}

func newTestRig(t *testing.T, broker kafkatest.Broker) *testRig {
	t.Helper()
	rig := &testRig{broker: broker, topics: testTopics(t, broker, 4)}
	rig.startEngine(t)
	return rig
}

// testTopics creates the default topics with a unique suffix (an Apache
// Kafka broker is shared and outlives the run), each with partitions.
func testTopics(t *testing.T, broker kafkatest.Broker, partitions int) Topics {
	t.Helper()
	sfx := kafkatest.Suffix()
	topics := DefaultTopics()
	for i := range topics.Inputs {
		topics.Inputs[i] += "-" + sfx
	}
	topics.Decisions += "-" + sfx
	topics.Alerts += "-" + sfx
	topics.Actions += "-" + sfx
	topics.DLQ += "-" + sfx
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, []string{broker.Addr()}, partitions, topics.All()...); err != nil {
		t.Fatal(err)
	}
	return topics
}

func referenceSet(t *testing.T) (*features.Set, *rules.Holder) {
	t.Helper()
	set, err := features.LoadFile("../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load("../bench/reference/rules", set)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Swap(rs)
	return set, holder
}

func (r *testRig) startEngine(t *testing.T) {
	set, holder := referenceSet(t)
	r.eng = engine.New(engine.Config{Shards: 2}, set, holder)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		r.eng.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-r.done })
}

func (r *testRig) produce(t *testing.T, topic string, msgs ...kafka.Message) {
	t.Helper()
	kafkatest.Produce(t, r.broker.Addr(), topic, msgs...)
}

func (r *testRig) readAll(t *testing.T, topic string, want int) []kafka.Message {
	t.Helper()
	return kafkatest.ReadAll(t, r.broker.Addr(), topic, want, 30*time.Second)
}

func inputEvent(id, typ, account string, ts int64, extra string) kafka.Message {
	return kafka.Message{Key: []byte(account), Value: []byte(fmt.Sprintf(
		`{"event_id":%q,"type":%q,"ts":%d,"account_id":%q%s}`, id, typ, ts, account, extra))}
}

func runPipeline(t *testing.T, r *testRig, store DecisionStore, group string) (stop func()) {
	t.Helper()
	return runPipelineWith(t, r, store, group, nil, nil)
}

// runPipelineWith is runPipeline with metrics of the test's own (nil: not
// looked at) and configure, if set, changing the test config first.
func runPipelineWith(t *testing.T, r *testRig, store DecisionStore, group string, m *Metrics, configure func(*Config)) (stop func()) {
	t.Helper()
	cfg := Config{Brokers: []string{r.broker.Addr()}, Group: group + "-" + kafkatest.Suffix(), Topics: r.topics,
		FlushInterval: 20 * time.Millisecond, CommitInterval: 50 * time.Millisecond}
	if configure != nil {
		configure(&cfg)
	}
	p := New(cfg, r.eng, store, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("pipeline: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestMalformedMessagesGoToDLQAndTheStreamGoesOn(t *testing.T) {
	kafkatest.Run(t, testMalformedMessagesGoToDLQAndTheStreamGoesOn)
}

func testMalformedMessagesGoToDLQAndTheStreamGoesOn(t *testing.T, b kafkatest.Broker) {
	rig := newTestRig(t, b)
	payments := rig.topics.Inputs[0]
	const ts = 1795538400000
	rig.produce(t, payments,
		inputEvent("e1", "payment", "acct-1", ts, `,"amount":1500,"currency":"USD","channel":"qr"`),
		kafka.Message{Key: []byte("acct-2"), Value: []byte(`{"event_id":"e2","type":"payment"`)}, // truncated
		kafka.Message{Key: []byte("acct-3"), Value: []byte(`{"event_id":"e3","type":"payment","ts":"yesterday","account_id":"acct-3"}`)},
		inputEvent("e4", "payment", "acct-1", ts+1000, `,"amount":2500,"currency":"USD","channel":"qr"`),
	)
	runPipeline(t, rig, nil, "dlq-test")
	dlq := rig.readAll(t, rig.topics.DLQ, 2)
	reasons := map[string]string{}
	for _, m := range dlq {
		h := kafkatest.Headers(m)
		if h[HeaderSourceTopic] != payments || h[HeaderSourceOffset] == "" || h[HeaderSourcePartition] == "" {
			t.Errorf("DLQ message lacks its source: %v", h)
		}
		reasons[string(m.Key)] = h[HeaderError]
	}
	if !strings.Contains(reasons["acct-2"], "invalid") && !strings.Contains(reasons["acct-2"], "json") {
		t.Errorf("truncated JSON reason = %q", reasons["acct-2"])
	}
	if !strings.Contains(reasons["acct-3"], "ts") {
		t.Errorf("bad timestamp reason = %q, want it to name ts", reasons["acct-3"])
	}
	decisions := rig.readAll(t, rig.topics.Decisions, 2)
	ids := map[string]bool{}
	for _, m := range decisions {
		ids[kafkatest.Headers(m)[HeaderEventID]] = true
	}
	if !ids["e1"] || !ids["e4"] || len(decisions) != 2 {
		t.Fatalf("decisions for %v, want e1 and e4 once each", ids)
	}
}
