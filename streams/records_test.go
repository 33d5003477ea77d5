package streams

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/engine"
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
	msgs, err := topics.outputMessages(nil, d)
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
