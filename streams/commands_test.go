package streams

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"riskd/bench/traffic"
	"riskd/engine"
	"riskd/internal/kafkatest"
)

func TestPositionCoveredBy(t *testing.T) {
	resume := map[string]map[int]int64{"payments": {0: 100, 1: 50}, "account-events": {0: 7}}
	for _, c := range []struct {
		name string
		pos  Position
		want bool
	}{
		{"none", nil, false},
		{"behind the cut", Position{"payments/0": 90, "payments/1": 50}, true},
		{"at the cut: either side of it", Position{"payments/0": 100, "payments/1": 50, "account-events/0": 7}, false},
		{"past the cut on one partition", Position{"payments/0": 90, "payments/1": 51}, false},
		{"a partition the state does not hold", Position{"payments/0": 90, "payments/2": 0}, false},
		{"a malformed key", Position{"payments": 1}, false},
		{"before anything was read", Position{"payments/0": kafka.FirstOffset, "payments/1": 3}, true},
	} {
		if got := c.pos.CoveredBy(resume); got != c.want {
			t.Errorf("%s: CoveredBy = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestSupportCommandsReplayAtTheirPlace locks an account between two parts
// of a stream and unlocks it after a third, then loses the engine's state
// and rebuilds it by replaying the input from its start: the commands,
// placed again at the positions Pipeline.Command returned, meet the
// replayed events where they met them the first time (the events between
// the lock and the unlock refused, and out of the windows), so the events
// that follow are decided exactly as by a run that never lost its state.
// Applied before the replay instead (what a restart did before commands
// had positions), the same commands give other decisions: the check that
// this test can fail.
func TestSupportCommandsReplayAtTheirPlace(t *testing.T) {
	kafkatest.Run(t, testSupportCommandsReplayAtTheirPlace)
}

func testSupportCommandsReplayAtTheirPlace(t *testing.T, b kafkatest.Broker) {
	const events = 2400
	start := time.Now().Add(-2 * 24 * time.Hour).Truncate(time.Hour)
	payments, account, _ := generatedInputs(traffic.Config{Accounts: 40, Seed: 77, FraudRate: 0.2, Start: start,
		EventsPerSecond: 0.05, FlatRate: true}, events)
	// One partition of one topic, in generation order: the order live and
	// in the replay is the stream's own, so only the commands' places can
	// differ between the runs.
	stream := mergeByTS(t, payments, account)
	cut := func(from, to float64) []kafka.Message {
		return stream[int(from*float64(len(stream))):int(to*float64(len(stream)))]
	}
	phases := [][]kafka.Message{cut(0, 0.4), cut(0.4, 0.6), cut(0.6, 0.8), cut(0.8, 1)}
	target := busiest(t, phases[1], phases[3])
	set, holder := probedReferenceSet(t)
	lockFn := func(s *engine.Scorer) { s.Lock(target, time.Now().Add(time.Hour).UnixMilli(), "support:test") }
	unlockFn := func(s *engine.Scorer) { s.UnlockAccount(target) }

	type running struct {
		p    *Pipeline
		m    *Metrics
		stop func()
	}
	run := func(topics Topics, group string, eng *engine.Engine, cfg Config, before func(*Pipeline)) running {
		t.Helper()
		engCtx, stopEngine := context.WithCancel(context.Background())
		engDone := make(chan struct{})
		go func() { defer close(engDone); eng.Run(engCtx) }()
		cfg.Brokers, cfg.Group, cfg.Topics = []string{b.Addr()}, group, topics
		cfg.FlushInterval, cfg.CommitInterval, cfg.RebuildUnknown = 20*time.Millisecond, 50*time.Millisecond, true
		m := NewMetrics(nil)
		p := New(cfg, eng, nil, m)
		if before != nil {
			before(p)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- p.Run(ctx) }()
		stopped := false
		stop := func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if err := <-ran; err != nil && !errors.Is(err, ErrNotDrained) {
				t.Errorf("pipeline: %v", err)
			}
			stopEngine()
			<-engDone
		}
		t.Cleanup(stop)
		return running{p, m, stop}
	}
	decided := 0
	feed := func(topics Topics, msgs []kafka.Message) {
		t.Helper()
		kafkatest.Produce(t, b.Addr(), topics.Inputs[0], msgs...)
		decided += len(msgs)
		kafkatest.ReadAll(t, b.Addr(), topics.Decisions, decided, 3*time.Minute)
	}
	command := func(r running, fn func(*engine.Scorer)) Position {
		t.Helper()
		pos, err := r.p.Command(t.Context(), target, fn)
		if err != nil {
			t.Fatal(err)
		}
		if len(pos) == 0 {
			t.Fatal("a command made while the stream is read has no position")
		}
		return pos
	}
	// firstRun feeds the first three phases with the lock and unlock
	// between them, and returns the two commands' positions.
	firstRun := func(topics Topics, group string) (lockAt, unlockAt Position) {
		decided = 0
		r := run(topics, group, engine.New(engine.Config{Shards: 2}, set, holder), Config{}, nil)
		feed(topics, phases[0])
		lockAt = command(r, lockFn)
		feed(topics, phases[1])
		unlockAt = command(r, unlockFn)
		feed(topics, phases[2])
		r.stop()
		return lockAt, unlockAt
	}
	// lastPhase reads the decisions of the last phase's events (the
	// topic may hold repeats of earlier events: decided again after the
	// restart, not committed before it).
	lastPhase := func(topics Topics) map[string]DecisionRecord {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for n := decided; ; n++ {
			out := map[string]DecisionRecord{}
			msgs := kafkatest.ReadAll(t, b.Addr(), topics.Decisions, n, time.Until(deadline))
			for _, m := range msgs {
				var r DecisionRecord
				if err := json.Unmarshal(m.Value, &r); err != nil {
					t.Fatal(err)
				}
				out[r.EventID] = r
			}
			last := map[string]DecisionRecord{}
			for _, m := range phases[3] {
				if r, ok := out[eventID(t, m)]; ok {
					last[r.EventID] = r
				}
			}
			if len(last) == len(phases[3]) {
				return last
			}
			n = len(msgs)
		}
	}

	// The run that never loses its state.
	ref := testTopics(t, b, 1)
	decided = 0
	r := run(ref, "commands-ref-"+kafkatest.Suffix(), engine.New(engine.Config{Shards: 2}, set, holder), Config{}, nil)
	feed(ref, phases[0])
	command(r, lockFn)
	feed(ref, phases[1])
	command(r, unlockFn)
	feed(ref, phases[2])
	feed(ref, phases[3])
	r.stop()
	want := lastPhase(ref)

	// restart runs the first three phases, then a fresh engine rebuilt by
	// replaying the partition from its start, with the commands placed
	// (or, with placed false, applied before the replay), then the last
	// phase.
	restart := func(placed bool) map[string]DecisionRecord {
		topics := testTopics(t, b, 1)
		group := "commands-" + kafkatest.Suffix()
		lockAt, unlockAt := firstRun(topics, group)
		eng := engine.New(engine.Config{Shards: 2}, set, holder)
		r := run(topics, group, eng, Config{}, func(p *Pipeline) {
			if placed {
				p.Place([]PlacedCommand{{AccountID: target, At: lockAt, Apply: lockFn, What: "lock"},
					{AccountID: target, At: unlockAt, Apply: unlockFn, What: "unlock"}})
				return
			}
			for _, fn := range []func(*engine.Scorer){lockFn, unlockFn} {
				if _, err := p.Command(t.Context(), target, fn); err != nil {
					t.Fatal(err)
				}
			}
		})
		feed(topics, phases[3])
		if n := testutil.ToFloat64(r.m.Replayed); n == 0 {
			t.Fatal("nothing was replayed")
		}
		if placed {
			if n := testutil.ToFloat64(r.m.PlacedCommands); n != 2 {
				t.Fatalf("%v commands applied at their place, want 2", n)
			}
		}
		r.stop()
		return lastPhase(topics)
	}

	got := restart(true)
	for id, w := range want {
		if diff := decisionDiff(w, got[id]); diff != "" {
			t.Errorf("event %s (%s, account %s) decided otherwise after the rebuild: %s", id, w.EventType, w.AccountID, diff)
		}
	}
	unplaced := restart(false)
	differ := 0
	for id, w := range want {
		if decisionDiff(w, unplaced[id]) != "" {
			differ++
		}
	}
	if differ == 0 {
		t.Fatalf("the commands applied before the replay changed no decision of the last phase: the test cannot tell")
	}
	t.Logf("account %s; %d events in the last phase; with the commands before the replay %d of them are decided otherwise",
		target, len(want), differ)
}

// mergeByTS puts both inputs in one event-time order.
func mergeByTS(t *testing.T, a, b []kafka.Message) []kafka.Message {
	t.Helper()
	all := slices.Concat(a, b)
	ts := func(m kafka.Message) int64 {
		var e struct {
			TS int64 `json:"ts"`
		}
		if err := json.Unmarshal(m.Value, &e); err != nil {
			t.Fatal(err)
		}
		return e.TS
	}
	slices.SortStableFunc(all, func(x, y kafka.Message) int { return cmp.Compare(ts(x), ts(y)) })
	return all
}

func eventID(t *testing.T, m kafka.Message) string {
	t.Helper()
	var e struct {
		ID string `json:"event_id"`
	}
	if err := json.Unmarshal(m.Value, &e); err != nil {
		t.Fatal(err)
	}
	return e.ID
}

// busiest is the account with the most events in both a and b (the fewer
// of its two counts), so the lock refuses some and the last phase reads
// what was refused.
func busiest(t *testing.T, a, b []kafka.Message) string {
	t.Helper()
	count := func(ms []kafka.Message) map[string]int {
		n := map[string]int{}
		for _, m := range ms {
			n[string(m.Key)]++
		}
		return n
	}
	na, nb := count(a), count(b)
	best, bestN := "", 0
	for _, acct := range slices.Sorted(maps.Keys(na)) {
		if n := min(na[acct], nb[acct]); n > bestN {
			best, bestN = acct, n
		}
	}
	if bestN == 0 {
		t.Fatal("no account has events in both phases")
	}
	return best
}
