package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/bench/reference"
	"riskd/bench/traffic"
	"riskd/engine"
	"riskd/event"
	"riskd/features"
	"riskd/internal/kafkatest"
	"riskd/rules"
)

// TestSameStreamSameDecisions decides one generated stream over both input
// topics three ways and requires every event's decision to be the same:
// action, reason, score, matched, shadow and errored rules, lateness and
// every window value (a shadow probe rule reads them all):
//
//   - one partition per topic and one shard: the stream's own order;
//   - eight partitions and four shards, read as a backlog as fast as the
//     readers go;
//   - eight partitions and three shards, with one partition's reader held
//     back so far that, unmerged, its events would be hours of event time
//     behind the others (the old lateness bound was five minutes).
//
// The merge of the partitions in event-time order and the engine's
// turnstile over the shared entity windows are what make the three agree.
func TestSameStreamSameDecisions(t *testing.T) {
	kafkatest.Run(t, testSameStreamSameDecisions)
}

func testSameStreamSameDecisions(t *testing.T, b kafkatest.Broker) {
	const events = 12000
	start := time.Now().Add(-5 * 24 * time.Hour).Truncate(time.Hour)
	payments, account, last := generatedInputs(traffic.Config{Accounts: 400, Seed: 21, FraudRate: 0.3, Start: start}, events)
	if span := time.Duration(last-start.UnixMilli()) * time.Millisecond; span < 24*time.Hour {
		t.Fatalf("the stream spans %v of event time; a held-back reader would not fall far behind", span)
	}

	decide := func(name string, partitions, shards int, holdBack bool) map[string]DecisionRecord {
		t.Helper()
		topics := testTopics(t, b, partitions)
		kafkatest.Produce(t, b.Addr(), topics.Inputs[0], payments...)
		kafkatest.Produce(t, b.Addr(), topics.Inputs[1], account...)

		set, holder := probedReferenceSet(t)
		eng := engine.New(engine.Config{Shards: shards, QueueSize: 64}, set, holder)
		engCtx, stopEngine := context.WithCancel(context.Background())
		engDone := make(chan struct{})
		go func() { defer close(engDone); eng.Run(engCtx) }()
		defer func() { stopEngine(); <-engDone }()

		p := New(Config{Brokers: []string{b.Addr()}, Group: "determinism-" + kafkatest.Suffix(), Topics: topics,
			FlushInterval: 20 * time.Millisecond, CommitInterval: 100 * time.Millisecond}, eng, nil, nil)
		if holdBack {
			held := topics.Inputs[0]
			p.beforeFetch = func(topic string, partition int) {
				if topic == held && partition == 3 {
					time.Sleep(3 * time.Millisecond)
				}
			}
		}
		runCtx, stop := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- p.Run(runCtx) }()
		msgs := kafkatest.ReadAll(t, b.Addr(), topics.Decisions, events, 3*time.Minute)
		stop()
		if err := <-ran; err != nil {
			t.Errorf("%s: pipeline: %v", name, err)
		}
		out := make(map[string]DecisionRecord, len(msgs))
		for _, m := range msgs {
			var r DecisionRecord
			if err := json.Unmarshal(m.Value, &r); err != nil {
				t.Fatalf("%s: decision record: %v", name, err)
			}
			if _, dup := out[r.EventID]; dup {
				t.Fatalf("%s: event %s decided twice", name, r.EventID)
			}
			out[r.EventID] = r
		}
		return out
	}

	serial := decide("1 partition, 1 shard", 1, 1, false)
	backlog := decide("8 partitions, 4 shards", 8, 4, false)
	held := decide("8 partitions, 3 shards, one reader held back", 8, 3, true)
	if len(serial) != events {
		t.Fatalf("1 partition: %d decisions, want %d", len(serial), events)
	}
	probed, crowded := 0, 0
	for id, want := range serial {
		if len(want.Features) > 0 {
			probed++
		}
		if want.Features["accounts_per_device_1h"] >= 3 {
			crowded++
		}
		for _, other := range []struct {
			name string
			got  map[string]DecisionRecord
		}{{"8 partitions, 4 shards", backlog}, {"held back", held}} {
			got, ok := other.got[id]
			if !ok {
				t.Fatalf("%s: no decision for %s", other.name, id)
			}
			if diff := decisionDiff(want, got); diff != "" {
				t.Fatalf("%s: event %s (%s, account %s) decided otherwise than with 1 partition: %s",
					other.name, id, want.EventType, want.AccountID, diff)
			}
		}
	}
	if probed < events/2 || crowded == 0 {
		t.Fatalf("the stream does not exercise the windows: %d of %d decisions record features, %d saw 3+ accounts on a device",
			probed, events, crowded)
	}
}

// generatedInputs generates n events and routes them as riskd's producers
// do (bench/produce): money movements to the payments topic, the rest to
// account-events, keyed by account. last is the last event's time.
func generatedInputs(cfg traffic.Config, n int) (payments, account []kafka.Message, last int64) {
	g := traffic.New(cfg)
	for range n {
		var ev event.Event
		g.Next(&ev)
		last = ev.TS
		m := kafka.Message{Key: []byte(ev.AccountID), Value: ev.AppendJSON(nil)}
		switch ev.Type {
		case event.TypePayment, event.TypeTopup, event.TypeWithdrawal, event.TypeRefund, event.TypePointsRedeem:
			payments = append(payments, m)
		default:
			account = append(account, m)
		}
	}
	return payments, account, last
}

// decisionDiff says how two decision records of one event differ in what
// the events alone decide (not in wall-clock fields: decided_at, latency,
// lock_until), or "" when they do not.
func decisionDiff(a, b DecisionRecord) string {
	var d []string
	if a.Action != b.Action || a.Reason != b.Reason || a.Score != b.Score {
		d = append(d, fmt.Sprintf("action %v/%q/%d vs %v/%q/%d", a.Action, a.Reason, a.Score, b.Action, b.Reason, b.Score))
	}
	if !slices.Equal(a.Matched, b.Matched) || !slices.Equal(a.Shadow, b.Shadow) || !slices.Equal(a.Errored, b.Errored) {
		d = append(d, fmt.Sprintf("rules %v %v %v vs %v %v %v", a.Matched, a.Shadow, a.Errored, b.Matched, b.Shadow, b.Errored))
	}
	if !maps.Equal(a.Features, b.Features) {
		var diffs []string
		for k, v := range a.Features {
			if b.Features[k] != v {
				diffs = append(diffs, fmt.Sprintf("%s %v vs %v", k, v, b.Features[k]))
			}
		}
		slices.Sort(diffs)
		d = append(d, "features "+strings.Join(diffs, ", "))
	}
	if a.Late != b.Late || !slices.Equal(a.LateFor, b.LateFor) {
		d = append(d, fmt.Sprintf("late %v %v vs %v %v", a.Late, a.LateFor, b.Late, b.LateFor))
	}
	return strings.Join(d, "; ")
}

// probedReferenceSet is the reference workload plus a shadow rule that
// matches every event and reads every window feature, so every decision
// records the value of each.
func probedReferenceSet(t *testing.T) (*features.Set, *rules.Holder) {
	t.Helper()
	set, err := features.LoadFile("../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	files, err := rules.ReadFiles(os.DirFS("../bench/reference/rules"))
	if err != nil {
		t.Fatal(err)
	}
	files["zz_probe.yaml"] = reference.ProbeRule(set.Names())
	rs, err := rules.Compile(files, set)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Swap(rs)
	return set, holder
}
