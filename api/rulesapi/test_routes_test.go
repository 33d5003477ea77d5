package rulesapi_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"riskd/api"
	"riskd/api/rulesapi"
	"riskd/engine"
	"riskd/features"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams"
	"riskd/streams/rulesync"
)

// trialInstance serves the rules routes with a real feature set, as the
// daemon does, so /v1/rules/test computes features.
func trialInstance(t *testing.T) *instance {
	t.Helper()
	defs, err := features.ParseDefinitions([]byte("payments_1h: {count: payment, by: account, window: 1h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := features.Compile(defs, features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	store := chtest.Open(t)
	b, err := streams.StartEmbedded("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	sync, err := rulesync.New(rulesync.Config{Brokers: []string{b.Addr()}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	svc, err := rulesapi.New(rulesapi.Config{Holder: holder, Features: set, FeatureSet: set, Sync: sync, Store: store,
		Logger: logger, Engine: engine.Config{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := api.ParseTokens([]string{"alice:analyst:" + analystToken, "vera:viewer:" + viewerToken})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(tokens, logger, nil)
	srv.Handle(svc.Routes()...)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &instance{holder: holder, svc: svc, url: hs.URL, store: store}
}

var trialFiles = map[string]string{
	"r.yaml": `- id: payment-after-reset
  when: event.type == "payment" && f.secs_since_password_reset < 3600
  action: challenge
  examples:
    - event: {amount: 10}
      f: {secs_since_password_reset: 60}
- id: busy
  when: event.type == "payment" && f.payments_1h >= 2
  score: 20
`,
}

func TestRulesTestComputesFeaturesOverASequence(t *testing.T) {
	in := trialInstance(t)
	ts := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC).UnixMilli()
	out := in.mustCall(t, "POST", "/v1/rules/test", map[string]any{"files": trialFiles, "events": []any{
		map[string]any{"event": map[string]any{"account_id": "a", "ts": ts}},
		map[string]any{"event": map[string]any{"account_id": "a", "type": "password_reset", "ts": ts + 60_000}},
		map[string]any{"event": map[string]any{"account_id": "a", "ts": ts + 660_000}},
		map[string]any{"event": map[string]any{"account_id": "a"}, "f": map[string]any{"payments_1h": 0}},
	}})
	evs := out["events"].([]any)
	if len(evs) != 4 {
		t.Fatalf("%d events, want 4", len(evs))
	}
	feature := func(i int, name string) string {
		for _, f := range evs[i].(map[string]any)["features"].([]any) {
			f := f.(map[string]any)
			if f["name"] == name {
				return fmt.Sprintf("%v %v", f["value"], f["source"])
			}
		}
		return "not read"
	}
	for _, tt := range []struct {
		event      int
		name, want string
	}{
		{0, "secs_since_password_reset", "1e+09 computed"}, // never: the live default
		{0, "payments_1h", "1 computed"},
		{2, "secs_since_password_reset", "600 computed"}, // ten minutes after the reset
		{2, "payments_1h", "2 computed"},
		{3, "payments_1h", "0 given"},
		{3, "secs_since_password_reset", "601 computed"}, // no ts: one second after the event before
	} {
		if got := feature(tt.event, tt.name); got != tt.want {
			t.Errorf("event %d %s = %s, want %s", tt.event, tt.name, got, tt.want)
		}
	}
	actions := ""
	for _, e := range evs {
		actions += fmt.Sprint(e.(map[string]any)["action"], " ")
	}
	if actions != "allow allow challenge challenge " {
		t.Errorf("actions = %s, want allow allow challenge challenge", actions)
	}
	if e2 := evs[2].(map[string]any); e2["score"] != 20.0 || len(e2["matched"].([]any)) != 2 {
		t.Errorf("event 2 = %v, want both rules matched, score 20", e2)
	}
	if out["examples_passed"] != true || len(out["examples"].([]any)) != 1 {
		t.Errorf("examples = %v passed=%v", out["examples"], out["examples_passed"])
	}
}

func TestRulesTestRefusesTooManyEvents(t *testing.T) {
	in := trialInstance(t)
	events := make([]any, rules.MaxTestEvents+1)
	for i := range events {
		events[i] = map[string]any{}
	}
	status, out := in.call(t, analystToken, "POST", "/v1/rules/test", map[string]any{"files": trialFiles, "events": events})
	if status != http.StatusRequestEntityTooLarge ||
		out["error"] != "10001 events: more than 10000 test events: split them into several runs" {
		t.Errorf("%d %v, want 413", status, out)
	}
	status, out = in.call(t, analystToken, "POST", "/v1/rules/test", map[string]any{"files": trialFiles,
		"events": []any{map[string]any{"f": map[string]any{"payments_1": 1}}}})
	if status != http.StatusBadRequest || out["error"] != "events[0]: unknown feature f.payments_1" {
		t.Errorf("%d %v, want 400 naming the feature", status, out)
	}
}

// An account's stored events are decided ahead of the events given, so
// features build up over them: from its second payment within the hour
// the account is busy; another account's event is not among them.
func TestRulesTestDecidesAnAccountsStoredEvents(t *testing.T) {
	in := trialInstance(t)
	base := time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)
	var ds []*engine.Decision
	for i, acct := range []string{"acct-7", "acct-8", "acct-7"} {
		id := fmt.Sprintf("stored-%d", i)
		ts := base.Add(time.Duration(i) * time.Minute).UnixMilli()
		ds = append(ds, &engine.Decision{EventID: id, AccountID: acct, EventType: "payment", EventTS: ts, DecidedAt: base,
			Raw: fmt.Appendf(nil, `{"event_id":%q,"type":"payment","ts":%d,"account_id":%q,"amount":100}`, id, ts, acct)})
	}
	if err := in.store.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	later := base.Add(10 * time.Minute).UnixMilli()
	out := in.mustCall(t, "POST", "/v1/rules/test", map[string]any{"files": trialFiles,
		"account_events": map[string]any{"account_id": "acct-7"},
		"events":         []any{map[string]any{"event": map[string]any{"event_id": "mine", "account_id": "acct-7", "ts": later}}}})
	var got []string
	for _, e := range out["events"].([]any) {
		e := e.(map[string]any)
		got = append(got, fmt.Sprint(e["event_id"], " ", e["score"]))
	}
	if want := []string{"stored-0 0", "stored-2 20", "mine 20"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("decided %v, want %v", got, want)
	}

	for _, c := range []struct {
		body   map[string]any
		status int
		err    string
	}{
		{map[string]any{"account_id": "nobody"}, http.StatusNotFound, `no stored events of account "nobody"`},
		{map[string]any{}, http.StatusBadRequest, "account_events.account_id: name the account whose stored events to decide"},
		{map[string]any{"account_id": "acct-7", "limit": 5000}, http.StatusBadRequest, "account_events.limit: want 1 to 1000 events"},
	} {
		status, out := in.call(t, analystToken, "POST", "/v1/rules/test", map[string]any{"files": trialFiles, "account_events": c.body})
		if status != c.status || out["error"] != c.err {
			t.Errorf("%v: %d %v, want %d %q", c.body, status, out["error"], c.status, c.err)
		}
	}
}
