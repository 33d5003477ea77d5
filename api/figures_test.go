package api_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/api"
	"riskd/engine"
	"riskd/internal/kafkatest"
	"riskd/rules"
	"riskd/streams"
)

// The lists behind the overview's figures: the alerts raised (newest
// first), the dead letters with their reasons and sources, and the input
// partitions with their lag.
func TestFigureListsShowTheAlertsTheDeadLettersAndThePartitions(t *testing.T) {
	r := newRig(t, api.DecideConfig{})
	now := time.Now().UTC().Truncate(time.Second)
	var ds []*engine.Decision
	for i := range 3 {
		at := now.Add(time.Duration(i-2) * time.Minute)
		ds = append(ds, &engine.Decision{EventID: fmt.Sprintf("al-%d", i), AccountID: fmt.Sprintf("acct-al-%d", i),
			EventType: "payment", EventTS: at.UnixMilli(), DecidedAt: at, Action: rules.Block, RuleSetVersion: "1-x",
			Matched: []engine.RuleHit{{RuleID: "scam-payee", Action: rules.Block, Score: 30}},
			Alerts:  []engine.AlertMessage{{RuleID: "scam-payee", Message: fmt.Sprintf("stop %d", i)}}, Raw: []byte(`{}`)})
	}
	if err := r.store.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	var al api.AlertsResponse
	getJSON(t, r, "/v1/alerts?limit=2", &al)
	if len(al.Alerts) != 2 || al.Alerts[0].EventID != "al-2" || al.Alerts[1].EventID != "al-1" ||
		al.Alerts[0].AccountID != "acct-al-2" || al.Alerts[0].Message != "stop 2" || al.Alerts[0].Action != "block" ||
		!al.Alerts[0].Time.Equal(now) {
		t.Errorf("alerts: %+v, want al-2 then al-1", al.Alerts)
	}
	getJSON(t, r, "/v1/alerts?since="+now.Add(-30*time.Second).Format(time.RFC3339), &al)
	if len(al.Alerts) != 1 || al.Alerts[0].EventID != "al-2" {
		t.Errorf("alerts since 30 s ago: %+v, want al-2", al.Alerts)
	}

	topics := streams.DefaultTopics()
	kafkatest.Produce(t, r.broker, topics.DLQ, kafka.Message{Key: []byte("acct-x"), Value: []byte(`{"event_id":<script>`),
		Headers: []kafka.Header{{Key: streams.HeaderError, Value: []byte("malformed JSON")},
			{Key: streams.HeaderSourceTopic, Value: []byte("payments")}, {Key: streams.HeaderSourcePartition, Value: []byte("2")},
			{Key: streams.HeaderSourceOffset, Value: []byte("77")}}})
	var dl api.DeadLettersResponse
	getJSON(t, r, "/v1/dlq", &dl)
	if len(dl.DeadLetters) != 1 {
		t.Fatalf("dead letters: %+v, want the one produced", dl.DeadLetters)
	}
	if d := dl.DeadLetters[0]; d.Reason != "malformed JSON" || d.SourceTopic != "payments" || d.SourcePartition != "2" ||
		d.SourceOffset != "77" || d.Payload != `{"event_id":<script>` {
		t.Errorf("dead letter: %+v", d)
	}

	// The rig's pipeline takes the input partitions; each gets its lag
	// once the broker has been asked.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ps api.PartitionsResponse
		getJSON(t, r, "/v1/pipeline/partitions", &ps)
		lagged := len(ps.Partitions) > 0
		for _, p := range ps.Partitions {
			lagged = lagged && p.Lag != nil
		}
		if lagged {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions: %+v, want the assigned ones with their lag", ps.Partitions)
		}
		time.Sleep(50 * time.Millisecond)
	}

	for path, want := range map[string]string{
		"/v1/alerts?limit=1001":         `limit "1001": want a number from 1 to 1000`,
		"/v1/alerts?since=yesterday":    `since: "yesterday": want an RFC 3339 time (2026-11-24T12:00:00Z) or a date (2026-11-24)`,
		"/v1/alerts?from=2026-01-01":    `unknown parameter "from": want since, limit`,
		"/v1/dlq?limit=101":             `limit "101": want a number from 1 to 100`,
		"/v1/dlq?limit=1&limit=2":       "limit: given 2 times",
		"/v1/pipeline/partitions?lag=1": `unknown parameter "lag": want none`,
	} {
		code, body := r.c.Do(api.RoleViewer, "GET", path, nil)
		var e api.ErrorBody
		if code != 400 || json.Unmarshal(body, &e) != nil || e.Error != want {
			t.Errorf("GET %s: %d %s\nwant 400 %s", path, code, body, want)
		}
	}
}

func getJSON(t *testing.T, r *rig, path string, out any) {
	t.Helper()
	code, body := r.c.Do(api.RoleViewer, "GET", path, nil)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}
