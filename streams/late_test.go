package streams

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"riskd/engine"
	"riskd/rules"
)

// TestLateEventsCountedByReason: a stored decision of an event late for
// some of its entities counts once per group in riskd_late_events_total,
// labelled by its topic and the group; an in-time one counts nowhere; and
// the decision record names the groups in late_for.
func TestLateEventsCountedByReason(t *testing.T) {
	_, holder := referenceSet(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.LateReasons("account", "device.id", "ip")
	p := New(Config{Topics: Topics{Inputs: []string{"payments"}}, Rules: holder}, nil, nil, m)
	decision := func(id, topic string, lateFor ...string) *engine.Decision {
		return &engine.Decision{EventID: id, AccountID: "acct-1", EventType: "payment", Action: rules.Allow,
			Late: len(lateFor) > 0, LateFor: lateFor, Source: engine.Source{Topic: topic}}
	}
	batch := []result{
		{d: decision("e1", "payments", "device.id")},
		{d: decision("e2", "payments", "account", "device.id")},
		{d: decision("e3", "payments")},
		{d: decision("e4", APISource.Topic, "ip")},
	}
	if err := p.storeBatch(t.Context(), batch, batchOutputs{}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`riskd_late_events_total{reason="account",topic="api"} 0`,
		`riskd_late_events_total{reason="account",topic="payments"} 1`,
		`riskd_late_events_total{reason="device.id",topic="api"} 0`,
		`riskd_late_events_total{reason="device.id",topic="payments"} 2`,
		`riskd_late_events_total{reason="ip",topic="api"} 1`,
		`riskd_late_events_total{reason="ip",topic="payments"} 0`,
	}
	if got := series(t, reg, "riskd_late_events_total"); !slices.Equal(got, want) {
		t.Fatalf("riskd_late_events_total:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	rec := newDecisionRecord(batch[1].d)
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"late":true,"late_for":["account","device.id"]`) {
		t.Errorf("decision record %s lacks late_for", b)
	}
	if b, _ := json.Marshal(newDecisionRecord(batch[2].d)); strings.Contains(string(b), `"late":`) || strings.Contains(string(b), `"late_for":`) {
		t.Errorf("an in-time decision's record %s mentions lateness", b)
	}
}
