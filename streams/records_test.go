package streams

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/engine"
	"riskd/internal/alone"
	"riskd/rules"
	"riskd/streams/notify"
)

// TestThrottledAlertsAreRecordedButNeverSent: a decision whose alert the
// engine throttled puts no message on the alerts topic and no alert
// notification out, lists the throttled alert (rule, window) in its
// decision record, and still sends its lock command and lock notification.
func TestThrottledAlertsAreRecordedButNeverSent(t *testing.T) {
	const ts = 1795538400000
	at := time.UnixMilli(ts + 5).UTC()
	d := &engine.Decision{
		EventID: "e7", AccountID: "acct-1", EventType: "login_failed", EventTS: ts, DecidedAt: at,
		Action: rules.Lock, RuleSetVersion: "1-00000000", LockUntil: at.Add(30 * time.Minute),
		Matched: []engine.RuleHit{{RuleID: "brute-force-lock", Action: rules.Lock},
			{RuleID: "failed-logins-warning", Action: rules.Alert}},
		Alerts: []engine.AlertMessage{{RuleID: "brute-force-lock", Message: "We locked your wallet."}},
		ThrottledAlerts: []engine.ThrottledAlert{{RuleID: "failed-logins-warning", Message: "Wrong passwords.",
			SentTS: ts - 60_000, UntilTS: ts + 540_000}},
	}
	topics := DefaultTopics()
	msgs, err := topics.outputMessages(nil, d, new(outputArena))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.Topic)
	}
	if want := []string{topics.Decisions, topics.Alerts, topics.Actions}; !slices.Equal(got, want) {
		t.Fatalf("messages on %v, want %v (the decision, the one alert sent, the lock)", got, want)
	}
	var alert AlertRecord
	if err := json.Unmarshal(msgs[1].Value, &alert); err != nil || alert.RuleID != "brute-force-lock" {
		t.Errorf("alert message %s (%v), want brute-force-lock's", msgs[1].Value, err)
	}
	var rec DecisionRecord
	if err := json.Unmarshal(msgs[0].Value, &rec); err != nil {
		t.Fatal(err)
	}
	wantHeld := []ThrottledAlertRecord{{RuleID: "failed-logins-warning", SentTS: ts - 60_000, UntilTS: ts + 540_000}}
	if !slices.Equal(rec.ThrottledAlerts, wantHeld) {
		t.Errorf("decision record throttled_alerts = %+v, want %+v", rec.ThrottledAlerts, wantHeld)
	}

	notes := appendNotes(nil, d, msgs[1:])
	var kinds []string
	for _, n := range notes {
		kinds = append(kinds, n.Kind+" "+n.RuleID)
	}
	if want := []string{notify.KindAlert + " brute-force-lock", notify.KindLock + " brute-force-lock"}; !slices.Equal(kinds, want) {
		t.Errorf("notifications %v, want %v", kinds, want)
	}
	if string(notes[1].Body) != string(msgs[2].Value) {
		t.Errorf("the lock notification's body is %s, want the lock command %s", notes[1].Body, msgs[2].Value)
	}
}

// TestOutputBalancerPlacesDecideCopiesByThePartitioner: an event the
// decide API appends to an input topic lands in the partition the
// wallet's producers send its account to (Config.Partitioner), so its
// account's owner reads it; the outputs stay placed by kafka.Hash.
func TestOutputBalancerPlacesDecideCopiesByThePartitioner(t *testing.T) {
	numbers := []int{0, 1, 2, 3, 4, 5, 6, 7}
	for _, partitioner := range []string{PartitionerFNV1a, PartitionerMurmur2} {
		b := newOutputBalancer(Config{Partitioner: partitioner}.withDefaults())
		moved := 0
		for i := range 200 {
			account := fmt.Sprintf("acct-%d", i)
			in := kafka.Message{Topic: DefaultTopics().Inputs[0], Key: []byte(account)}
			if got, want := b.Balance(in, numbers...), partitionOf(partitioner, account, numbers); got != want {
				t.Fatalf("%s: the decide copy of %s goes to partition %d, its producers' to %d", partitioner, account, got, want)
			}
			out := kafka.Message{Topic: DefaultTopics().Decisions, Key: []byte(account)}
			if b.Balance(out, numbers...) != partitionOf(PartitionerFNV1a, account, numbers) {
				moved++
			}
		}
		if moved > 0 {
			t.Fatalf("%s: %d outputs not placed by kafka.Hash", partitioner, moved)
		}
	}
}

// TestOutputArenaKeepsEveryMessageOfABatch: messages encoded into one
// arena, which moves its buffer as it grows, stay byte for byte what a
// fresh arena gives each decision alone.
func TestOutputArenaKeepsEveryMessageOfABatch(t *testing.T) {
	topics := DefaultTopics()
	ds := benchDecisions(600)
	var arena outputArena
	for range 2 { // the second batch writes over the first
		arena.reset()
		var msgs []kafka.Message
		for _, d := range ds {
			var err error
			if msgs, err = topics.outputMessages(msgs, d, &arena); err != nil {
				t.Fatal(err)
			}
		}
		k := 0
		for _, d := range ds {
			alone, err := topics.outputMessages(nil, d, new(outputArena))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range alone {
				if got := msgs[k]; got.Topic != want.Topic || !bytes.Equal(got.Key, want.Key) ||
					!bytes.Equal(got.Value, want.Value) || !reflect.DeepEqual(got.Headers, want.Headers) {
					t.Fatalf("message %d: %s %q %s %v, want %s %q %s %v", k, got.Topic, got.Key, got.Value, got.Headers,
						want.Topic, want.Key, want.Value, want.Headers)
				}
				k++
			}
		}
		if k != len(msgs) {
			t.Fatalf("%d messages, want %d", len(msgs), k)
		}
	}
}

// TestOutputArenaAllocatesNothingInTheSteadyState: once the arena has held
// a batch, a batch of decisions without alerts allocates nothing, and one
// with alerts one buffer per alert (its value, which notifications hold).
func TestOutputArenaAllocatesNothingInTheSteadyState(t *testing.T) {
	if !alone.Process(t) {
		return
	}
	topics := DefaultTopics()
	ds := benchDecisions(256)
	var quiet []*engine.Decision
	alerts := 0
	for _, d := range ds {
		if len(d.Alerts) == 0 {
			quiet = append(quiet, d)
		}
		alerts += len(d.Alerts)
	}
	for _, tc := range []struct {
		name string
		ds   []*engine.Decision
		want float64
	}{
		{"no alerts", quiet, 0},
		{"one in eight alerting", ds, float64(alerts)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var arena outputArena
			msgs := make([]kafka.Message, 0, 2*len(tc.ds))
			batch := func() {
				arena.reset()
				msgs = msgs[:0]
				for _, d := range tc.ds {
					var err error
					if msgs, err = topics.outputMessages(msgs, d, &arena); err != nil {
						t.Fatal(err)
					}
				}
			}
			batch() // grows the arena to a batch's size
			if got := testing.AllocsPerRun(20, batch); got != tc.want {
				t.Errorf("%v allocations a batch, want %v", got, tc.want)
			}
		})
	}
}

// benchDecisions are n decisions of the reference rules' usual shape
// (BenchmarkDecisionRecord's), one in eight with an alert.
func benchDecisions(n int) []*engine.Decision {
	ds := make([]*engine.Decision, n)
	for i := range ds {
		d := &engine.Decision{EventID: fmt.Sprintf("evt-%014d", i), AccountID: fmt.Sprintf("acct-%07d", i%5000),
			EventType: "payment", EventTS: 1764547200123 + int64(i), DecidedAt: time.UnixMilli(1764547200456 + int64(i)),
			Action: rules.Allow, RuleSetVersion: "1-d46e6053",
			Features: []engine.FeatureValue{{Name: "payments_1h", Value: 3}, {Name: "amount_sum_24h", Value: 125000}, {Name: "new_device", Value: 1}},
			Latency:  23 * time.Microsecond}
		if i%8 == 0 {
			d.Action, d.Score, d.Reason = rules.Challenge, 50, "rule:new-device-large-payment"
			d.Matched = []engine.RuleHit{{RuleID: "new-device-large-payment", Action: rules.Challenge, Score: 50}}
			d.Alerts = []engine.AlertMessage{{RuleID: "new-device-large-payment", Message: "Was this you?"}}
		}
		ds[i] = d
	}
	return ds
}

// BenchmarkOutputMessages encodes output batches of 256 decisions, as
// publishBatch does batch after batch.
func BenchmarkOutputMessages(b *testing.B) {
	topics := DefaultTopics()
	ds := benchDecisions(256)
	var msgs []kafka.Message
	var arena outputArena
	b.ReportAllocs()
	for b.Loop() {
		msgs = msgs[:0]
		arena.reset()
		for _, d := range ds {
			var err error
			if msgs, err = topics.outputMessages(msgs, d, &arena); err != nil {
				b.Fatal(err)
			}
		}
	}
	if len(msgs) != len(ds)+len(ds)/8 {
		b.Fatalf("%d messages", len(msgs))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ds)), "ns/decision")
}
