package streams

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"riskd/bench/traffic"
	"riskd/engine"
	"riskd/internal/kafkatest"
	"riskd/streams/snapshots"
)

// TestRestoredStateDecidesLikeAnUninterruptedRun stops a pipeline hard in
// the middle of a backlog (outputs in flight abandoned, no drain, no last
// snapshot: what a crash leaves), builds a new engine from the newest
// snapshot in the state topic, and lets a new pipeline of the same group
// finish the stream. Every decision published, the ones made before the
// stop and the ones made again after it, must equal the decision an
// uninterrupted run makes for that event: the restored state plus the
// replay up to the committed offsets is the state the first run had.
func TestRestoredStateDecidesLikeAnUninterruptedRun(t *testing.T) {
	kafkatest.Run(t, testRestoredStateDecidesLikeAnUninterruptedRun)
}

func testRestoredStateDecidesLikeAnUninterruptedRun(t *testing.T, b kafkatest.Broker) {
	const events = 8000
	start := time.Now().Add(-4 * 24 * time.Hour).Truncate(time.Hour)
	payments, account, _ := generatedInputs(traffic.Config{Accounts: 300, Seed: 31, FraudRate: 0.3, Start: start}, events)
	set, holder := probedReferenceSet(t)
	run := func(topics Topics, group string, eng *engine.Engine, cfg Config, m *Metrics) (stop func(hard bool)) {
		t.Helper()
		engCtx, stopEngine := context.WithCancel(context.Background())
		engDone := make(chan struct{})
		go func() { defer close(engDone); eng.Run(engCtx) }()
		cfg.Brokers, cfg.Group, cfg.Topics = []string{b.Addr()}, group, topics
		cfg.FlushInterval, cfg.CommitInterval = 20*time.Millisecond, 50*time.Millisecond
		p := New(cfg, eng, nil, m)
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- p.Run(ctx) }()
		stopped := false
		stop = func(hard bool) {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if err := <-ran; err != nil && !(hard && errors.Is(err, ErrNotDrained)) {
				t.Errorf("pipeline: %v", err)
			}
			stopEngine()
			<-engDone
		}
		t.Cleanup(func() { stop(true) })
		return stop
	}
	produce := func(topics Topics) {
		kafkatest.Produce(t, b.Addr(), topics.Inputs[0], payments...)
		kafkatest.Produce(t, b.Addr(), topics.Inputs[1], account...)
	}
	records := func(msgs []kafka.Message) map[string][]DecisionRecord {
		out := map[string][]DecisionRecord{}
		for _, m := range msgs {
			var r DecisionRecord
			if err := json.Unmarshal(m.Value, &r); err != nil {
				t.Fatal(err)
			}
			out[r.EventID] = append(out[r.EventID], r)
		}
		return out
	}

	// The uninterrupted run.
	ref := testTopics(t, b, 4)
	produce(ref)
	stopRef := run(ref, "restore-ref-"+kafkatest.Suffix(), engine.New(engine.Config{Shards: 2}, set, holder), Config{}, nil)
	want := records(kafkatest.ReadAll(t, b.Addr(), ref.Decisions, events, 3*time.Minute))
	stopRef(false)

	// The run that stops hard half way, saving its state every 50ms.
	topics := testTopics(t, b, 4)
	produce(topics)
	group := "restore-" + kafkatest.Suffix()
	store, err := snapshots.New(snapshots.Config{Brokers: []string{b.Addr()}, Topic: "riskd.state-" + kafkatest.Suffix(), Name: group})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The saves stop once the state covers a quarter of the stream, as if
	// the process died before the next one: however fast the first run
	// decides its half, the restart has something to replay.
	early := &earlySaves{store: store, limit: events / 4}
	stopFirst := run(topics, group, engine.New(engine.Config{Shards: 2}, set, holder),
		Config{Snapshots: early, SnapshotInterval: 50 * time.Millisecond, RebuildUnknown: true, DrainTimeout: time.Millisecond,
			BatchSize: 200}, nil)
	kafkatest.ReadAll(t, b.Addr(), topics.Decisions, events/2, 3*time.Minute)
	stopFirst(true)

	// No save before the quarter: the restart rebuilds from the log start.
	restored := engine.New(engine.Config{Shards: 2}, set, holder)
	snap, _, err := store.Load(t.Context())
	switch {
	case errors.Is(err, snapshots.ErrNoSnapshot):
	case err != nil:
		t.Fatal(err)
	default:
		if restored, err = engine.Restore(engine.Config{Shards: 2}, set, holder, bytes.NewReader(snap.Data)); err != nil {
			t.Fatal(err)
		}
	}
	m := NewMetrics(nil)
	stopSecond := run(topics, group, restored, Config{Snapshots: store, SnapshotInterval: 50 * time.Millisecond,
		Resume: snap.Offsets, ResumeSeq: snap.Seq, RebuildUnknown: true}, m)
	// Events decided before the stop and again after it (not committed)
	// are on the topic twice: read until every event has a decision.
	var got map[string][]DecisionRecord
	deadline := time.Now().Add(3 * time.Minute)
	for n := events; ; {
		msgs := kafkatest.ReadAll(t, b.Addr(), topics.Decisions, n, time.Until(deadline))
		if got = records(msgs); len(got) >= len(want) {
			break
		}
		n = len(msgs) + 1
	}
	stopSecond(false)
	replayed := testutil.ToFloat64(m.Replayed)
	if replayed == 0 {
		t.Fatal("nothing was replayed: the snapshot stood at the committed offsets, so the test shows nothing")
	}

	twice := 0
	for id, w := range want {
		copies := got[id]
		if len(copies) == 0 {
			t.Fatalf("event %s was never decided after the restart", id)
		}
		if len(copies) > 1 {
			twice++
		}
		for _, c := range copies {
			if diff := decisionDiff(w[0], c); diff != "" {
				t.Fatalf("event %s (%s, account %s) decided otherwise than without the stop: %s", id, w[0].EventType, w[0].AccountID, diff)
			}
		}
	}
	t.Logf("snapshot %d restored; %v events replayed without outputs; %d published twice (decided before the stop, not committed)",
		snap.Seq, replayed, twice)
}

// earlySaves saves the snapshots that cover fewer than limit input
// messages and refuses the later ones.
type earlySaves struct {
	store *snapshots.Store
	limit int64
}

func (e *earlySaves) Save(ctx context.Context, snap snapshots.Snapshot) (snapshots.SaveStats, error) {
	var covered int64
	for _, parts := range snap.Offsets {
		for _, next := range parts {
			covered += max(next, 0)
		}
	}
	if covered >= e.limit {
		return snapshots.SaveStats{}, errors.New("test: no save past the first quarter")
	}
	return e.store.Save(ctx, snap)
}
