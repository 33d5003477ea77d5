package rulesapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"riskd/api"
	"riskd/api/rulesapi"
	"riskd/engine"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/chstore"
	"riskd/streams/rulesync"
)

// statsFiles is the running set of the stats tests: r-block and r-score
// fire in statsDecisions, s-review fires in shadow, r-never and s-quiet
// never do.
var statsFiles = map[string][]byte{
	"a.yaml": []byte(`- id: r-block
  when: event.amount > 1000
  action: block
- id: r-score
  when: event.amount > 10
  score: 10
- id: s-review
  when: event.type == "payment" && event.amount > 500
  action: review
  mode: shadow
- id: r-never
  when: event.amount > 1000000000
  action: block
- id: s-quiet
  when: event.amount < 0
  action: alert
  mode: shadow
`)}

const (
	supportToken = "support-secret-0123456789"
	adminToken   = "admin-secret-0123456789"
)

// labelsRig is a Service on a fresh ClickHouse database with statsFiles
// running, behind a real HTTP server with one token per role. Its rule
// topic is never used (no publish, no Run), so no broker is started.
type labelsRig struct {
	store *chstore.Store
	url   string
	now   time.Time
}

func newLabelsRig(t *testing.T, now time.Time) *labelsRig {
	t.Helper()
	store := chtest.Open(t)
	rs, err := rules.Compile(statsFiles, nil)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Install(rs, 4)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	sync, err := rulesync.New(rulesync.Config{Brokers: []string{"127.0.0.1:1"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := rulesapi.New(rulesapi.Config{Holder: holder, Sync: sync, Store: store, Logger: log, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := api.ParseTokens([]string{"alice:analyst:" + analystToken, "vera:viewer:" + viewerToken,
		"sam:support:" + supportToken, "root:admin:" + adminToken})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(tokens, log, nil)
	srv.Handle(svc.Routes()...)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &labelsRig{store: store, url: hs.URL, now: now}
}

// do sends a request and returns the status and the raw answer.
func (r *labelsRig) do(t *testing.T, token, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

var statsBase = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// storeStatsDecisions stores a hand-made set (twice: a replay counts
// once): versions 1 and 2, events e0 (before the period) to e6 (at its
// end), and labels e2 and e5 not_fraud, e4 fraud (e1 carries the
// generator's "ato").
func storeStatsDecisions(t *testing.T, st *chstore.Store) {
	t.Helper()
	d := func(id, typ string, at time.Duration, version string, action rules.Action, matched, shadow []string, label string) *engine.Decision {
		hit := func(ids []string) []engine.RuleHit {
			var hs []engine.RuleHit
			for _, id := range ids {
				hs = append(hs, engine.RuleHit{RuleID: id})
			}
			return hs
		}
		return &engine.Decision{EventID: id, AccountID: "acct-" + id, EventType: typ, EventTS: statsBase.Add(at).UnixMilli(),
			DecidedAt: statsBase.Add(at + time.Millisecond), Action: action, RuleSetVersion: version,
			Matched: hit(matched), Shadow: hit(shadow), Label: label, Raw: []byte(`{}`)}
	}
	ds := []*engine.Decision{
		d("e0", "payment", -time.Millisecond, "1-aaaaaaaa", rules.Review, []string{"r-score"}, nil, ""),
		d("e1", "payment", 5*time.Minute, "1-aaaaaaaa", rules.Block, []string{"r-block"}, []string{"s-review"}, "ato"),
		d("e2", "payment", 10*time.Minute, "1-aaaaaaaa", rules.Allow, nil, []string{"s-review"}, ""),
		d("e3", "payment", 40*time.Minute, "1-aaaaaaaa", rules.Review, []string{"r-score"}, nil, ""),
		d("e4", "login", 70*time.Minute, "2-bbbbbbbb", rules.Challenge, []string{"r-block"}, nil, ""),
		d("e5", "payment", 100*time.Minute, "2-bbbbbbbb", rules.Block, []string{"r-block", "r-score"}, []string{"s-review"}, ""),
		d("e6", "payment", 2*time.Hour, "2-bbbbbbbb", rules.Block, []string{"r-never"}, nil, ""),
	}
	for range 2 {
		if err := st.WriteDecisions(t.Context(), ds); err != nil {
			t.Fatal(err)
		}
	}
	_, err := st.WriteLabels(t.Context(), []chstore.LabelItem{
		{EventID: "e2", Label: chstore.LabelNotFraud, Source: "support"},
		{EventID: "e4", Label: chstore.LabelFraud, Source: "chargeback"},
		{EventID: "e5", Label: chstore.LabelNotFraud, Source: "support"},
	}, "alice", statsBase.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
}

func TestRuleStatsOnAHandMadeSet(t *testing.T) {
	rig := newLabelsRig(t, statsBase.Add(3*time.Hour))
	storeStatsDecisions(t, rig.store)
	q := url.Values{"from": {"2026-03-01T10:00:00Z"}, "to": {"2026-03-01T12:00:00Z"}, "bucket": {"30m"}}
	status, body := rig.do(t, viewerToken, "GET", "/v1/rules/stats?"+q.Encode(), "")
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var rep rulesapi.StatsReport
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatal(err)
	}
	// Every number below is worked by hand from storeStatsDecisions.
	half, one := 0.5, 1.0
	at := func(d time.Duration) time.Time { return statsBase.Add(d) }
	want := rulesapi.StatsReport{
		From: statsBase, To: statsBase.Add(2 * time.Hour), Bucket: "30m0s", BucketMS: 1800000, Buckets: 4,
		RunningVersion: "4-" + mustCompile(t).Version.Hash[:8],
		// e1..e5: fraud e1 e4, not_fraud e2 e5, unlabelled e3; e2 allowed.
		Decisions: rulesapi.StatsDecisions{Events: 5, Fraud: 2, NotFraud: 2, Unlabelled: 1, NonAllow: 4},
		Rules: []rulesapi.RuleStats{
			{RuleID: "r-block", Version: "1-aaaaaaaa", Mode: "active", Hits: 1, Fraud: 1, PrecisionLabelled: &one, PrecisionAll: 1,
				FirstHit: at(5 * time.Minute), LastHit: at(5 * time.Minute), HitsOverTime: []uint64{1, 0, 0, 0}},
			{RuleID: "r-block", Version: "2-bbbbbbbb", Mode: "active", Hits: 2, Fraud: 1, NotFraud: 1, PrecisionLabelled: &half, PrecisionAll: 0.5,
				FirstHit: at(70 * time.Minute), LastHit: at(100 * time.Minute), HitsOverTime: []uint64{0, 0, 1, 1}},
			{RuleID: "r-score", Version: "1-aaaaaaaa", Mode: "active", Hits: 1, Unlabelled: 1, PrecisionAll: 0,
				FirstHit: at(40 * time.Minute), LastHit: at(40 * time.Minute), HitsOverTime: []uint64{0, 1, 0, 0}},
			{RuleID: "r-score", Version: "2-bbbbbbbb", Mode: "active", Hits: 1, NotFraud: 1, PrecisionLabelled: new(float64), PrecisionAll: 0,
				FirstHit: at(100 * time.Minute), LastHit: at(100 * time.Minute), HitsOverTime: []uint64{0, 0, 0, 1}},
			{RuleID: "s-review", Version: "1-aaaaaaaa", Mode: "shadow", Hits: 2, Fraud: 1, NotFraud: 1, PrecisionLabelled: &half, PrecisionAll: 0.5,
				FirstHit: at(5 * time.Minute), LastHit: at(10 * time.Minute), HitsOverTime: []uint64{2, 0, 0, 0}},
			{RuleID: "s-review", Version: "2-bbbbbbbb", Mode: "shadow", Hits: 1, NotFraud: 1, PrecisionLabelled: new(float64), PrecisionAll: 0,
				FirstHit: at(100 * time.Minute), LastHit: at(100 * time.Minute), HitsOverTime: []uint64{0, 0, 0, 1}},
		},
		// r-never hit only e6, at the period's end (outside it).
		NeverFired: []rulesapi.NeverFiredRule{
			{RuleID: "r-never", Mode: "active", Action: "block", File: "a.yaml", Line: 11},
			{RuleID: "s-quiet", Mode: "shadow", Action: "alert", File: "a.yaml", Line: 14},
		},
		// s-review (review, payments): hits e1 (block), e2 (allow), e5
		// (block): 2 at least as strong. Non-allow payment decisions of
		// versions 1 and 2: e1, e3, e5; it hit e1 and e5, missed e3.
		Shadow: []rulesapi.ShadowAgreement{{RuleID: "s-review", Action: "review", EventTypes: []string{"payment"},
			Versions: []string{"1-aaaaaaaa", "2-bbbbbbbb"}, Hits: 3, LiveAtLeastAsStrong: 2, Agreement: 2.0 / 3,
			LiveNonAllowMissed: 1, LiveNonAllowCovered: 2, LiveNonAllowCoverage: ptr(2.0 / 3)}},
	}
	if got, w := mustJSON(t, rep), mustJSON(t, want); got != w {
		t.Errorf("stats:\n got %s\nwant %s", got, w)
	}
}

func ptr[T any](v T) *T { return &v }

func mustCompile(t *testing.T) *rules.RuleSet {
	t.Helper()
	rs, err := rules.Compile(statsFiles, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRuleStatsDefaultsAndBounds(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	rig := newLabelsRig(t, now)
	get := func(t *testing.T, token, query string) (int, rulesapi.StatsReport, string) {
		t.Helper()
		status, body := rig.do(t, token, "GET", "/v1/rules/stats"+query, "")
		var rep rulesapi.StatsReport
		var e api.ErrorBody
		if status == http.StatusOK {
			if err := json.Unmarshal(body, &rep); err != nil {
				t.Fatal(err)
			}
		} else if err := json.Unmarshal(body, &e); err != nil {
			t.Fatal(err)
		}
		return status, rep, e.Error
	}
	// The last 24 hours in 30-minute buckets: 48, the most a default gives.
	status, rep, msg := get(t, viewerToken, "")
	if status != http.StatusOK || !rep.From.Equal(now.Add(-24*time.Hour)) || !rep.To.Equal(now) || rep.Bucket != "30m0s" || rep.Buckets != 48 {
		t.Errorf("default: %d %s: %s..%s by %s (%d)", status, msg, rep.From, rep.To, rep.Bucket, rep.Buckets)
	}
	if len(rep.NeverFired) != 5 || len(rep.Rules) != 0 {
		t.Errorf("an empty database: %d never fired (want all 5), %d rule rows", len(rep.NeverFired), len(rep.Rules))
	}
	// Relative times, and a default bucket for a week: 6h gives 28.
	status, rep, msg = get(t, analystToken, "?from=-7d&to=-0h")
	if status != http.StatusOK || !rep.From.Equal(now.Add(-7*24*time.Hour)) || rep.Bucket != "6h0m0s" || rep.Buckets != 28 {
		t.Errorf("a week: %d %s: %s by %s (%d)", status, msg, rep.From, rep.Bucket, rep.Buckets)
	}
	for _, c := range []struct{ query, want string }{
		{"?from=yesterday", `from: "yesterday" is not a time: want RFC 3339 (2026-03-01T10:00:00Z), a date (2026-03-01) or Unix milliseconds, or -DURATION before now (-6h, -7d)`},
		{"?from=2026-03-02&to=2026-03-01", "to (2026-03-01T00:00:00Z) is not after from (2026-03-02T00:00:00Z)"},
		{"?from=2026-01-01&to=2026-02-01T00:00:01Z", "the period from 2026-01-01T00:00:00Z to 2026-02-01T00:00:01Z is 744h0m1s, over the 744h0m0s limit: ask for a shorter one"},
		{"?bucket=1m", "bucket: 1m0s over 24h0m0s is 1440 buckets, over the 1000 limit: use a wider bucket"},
		{"?bucket=500ms", `bucket: "500ms" is not a duration of at least 1s (e.g. 30m, 1h, 1d)`},
	} {
		if status, _, msg := get(t, viewerToken, c.query); status != http.StatusBadRequest || msg != c.want {
			t.Errorf("%s: %d %q, want 400 %q", c.query, status, msg, c.want)
		}
	}
	// 1000 buckets is the limit, not over it.
	if status, rep, msg := get(t, viewerToken, "?from=-1000m&to=-0m&bucket=1m"); status != http.StatusOK || rep.Buckets != 1000 {
		t.Errorf("1000 buckets: %d %s (%d)", status, msg, rep.Buckets)
	}
	// Support and admin read too.
	for _, tok := range []string{supportToken, adminToken} {
		if status, _, msg := get(t, tok, ""); status != http.StatusOK {
			t.Errorf("token %s: %d %s", tok[:5], status, msg)
		}
	}
}
