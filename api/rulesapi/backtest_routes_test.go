package rulesapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"riskd/api"
	"riskd/backtest"
	"riskd/bench/traffic"
	"riskd/engine"
	"riskd/features"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/rulesync"
)

// backtestRig is a Service running the reference rules over a fresh
// database holding 3,000 events they decided, behind a real HTTP server.
type backtestRig struct {
	svc *Service
	url string
}

func newBacktestRig(t *testing.T) *backtestRig {
	t.Helper()
	set, err := features.LoadFile("../../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	files, err := rules.ReadFiles(os.DirFS("../../bench/reference/rules"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // a copy: nothing may write into the repository's rules
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := rules.Compile(files, set)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Install(rs, 1)
	store := chtest.Open(t)
	sc := engine.NewScorer(engine.Config{}, set, holder)
	gen := traffic.New(traffic.Config{Accounts: 300, Seed: 5, FraudRate: 0.05, EventsPerSecond: 0.5})
	var ds []*engine.Decision
	var d engine.Decision
	for i := range 3000 {
		if err := sc.Score(gen.AppendJSON(nil), engine.Source{Topic: "payments", Offset: int64(i)}, &d); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d.Clone())
	}
	if err := store.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	sync, err := rulesync.New(rulesync.Config{Brokers: []string{"127.0.0.1:1"}, Logger: log}) // never used
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Holder: holder, Features: set, FeatureSet: set, Dir: dir, Sync: sync, Store: store, Logger: log,
		Now: func() time.Time { return time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := api.ParseTokens([]string{"alice:analyst:analyst-secret-0123456789", "vera:viewer:viewer-secret-0123456789",
		"root:admin:admin-secret-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(tokens, log, nil)
	srv.Handle(svc.Routes()...)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &backtestRig{svc: svc, url: hs.URL}
}

func (r *backtestRig) post(t *testing.T, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", r.url+"/v1/rules/backtest", strings.NewReader(body))
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

func TestBacktestRoute(t *testing.T) {
	r := newBacktestRig(t)
	const analyst, admin, viewer = "analyst-secret-0123456789", "admin-secret-0123456789", "viewer-secret-0123456789"
	report := func(token, body string) backtest.Report {
		t.Helper()
		status, b := r.post(t, token, body)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", body, status, b)
		}
		var rep backtest.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}

	// The running set reproduces what it decided; the period defaults to
	// the 24h before now.
	rep := report(analyst, `{"from": "2026-11-24"}`)
	if rep.EventsPeriod != 3000 || rep.Totals.Changed != 0 || len(rep.Warnings) != 0 || !strings.HasPrefix(rep.Candidate, "1-") {
		t.Errorf("running set: %d events, %d changed, warnings %q, candidate %s", rep.EventsPeriod, rep.Totals.Changed, rep.Warnings, rep.Candidate)
	}
	// A patch of the running set: without the scam rules, decisions change.
	rep = report(admin, `{"delete": ["scam.yaml"], "from": "2026-11-24", "to": "2026-11-26T00:00:00Z", "warmup": "1h"}`)
	if rep.Totals.Changed == 0 || rep.Warmup != "1h0m0s" {
		t.Errorf("without scam.yaml: %d changed, warm-up %s", rep.Totals.Changed, rep.Warmup)
	}

	for _, c := range []struct {
		name, token, body string
		status            int
		want              string
	}{
		{"a viewer", viewer, `{}`, http.StatusForbidden, ""},
		{"from after to", analyst, `{"from": "2026-11-26", "to": "2026-11-25"}`, http.StatusBadRequest,
			"bad backtest request: from 2026-11-26T00:00:00Z is not before to 2026-11-25T00:00:00Z"},
		{"a period too long", analyst, `{"from": "2026-01-01", "to": "2026-03-01"}`, http.StatusBadRequest,
			"bad backtest request: period from 2026-01-01T00:00:00Z to 2026-03-01T00:00:00Z is 1416h0m0s, longer than the limit of 744h0m0s: backtest a shorter period"},
		{"a bad time", analyst, `{"from": "last week"}`, http.StatusBadRequest,
			`from: "last week" is neither RFC 3339 (2026-11-24T12:00:00Z) nor a date (2026-11-24)`},
		{"a bad warm-up", analyst, `{"warmup": "a day"}`, http.StatusBadRequest, `warmup: "a day" is not a duration like 72h`},
		{"an unknown file to delete", analyst, `{"delete": ["nope.yaml"]}`, http.StatusBadRequest, `delete "nope.yaml": no such file in the running set`},
		{"a rule that does not compile", analyst, `{"patch": {"x.yaml": "- id: x\n  when: f.no_such_feature > 1\n  action: block\n"}}`,
			http.StatusUnprocessableEntity, "the rule set does not compile"},
		{"an unknown field", analyst, `{"form": "2026-11-24"}`, http.StatusBadRequest, "invalid JSON body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, b := r.post(t, c.token, c.body)
			var e struct{ Error string }
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("%d %s: %v", status, b, err)
			}
			if status != c.status || !strings.Contains(e.Error, c.want) {
				t.Errorf("%d %q, want %d with %q", status, e.Error, c.status, c.want)
			}
		})
	}

	// One at a time: while one runs, the next is refused with 429.
	busy, _ := backtestBusy.LoadOrStore(r.svc, new(atomic.Bool))
	busy.(*atomic.Bool).Store(true)
	status, b := r.post(t, analyst, `{"from": "2026-11-24"}`)
	busy.(*atomic.Bool).Store(false)
	if status != http.StatusTooManyRequests || !strings.Contains(string(b), "a backtest is already running on this instance") {
		t.Errorf("while one runs: %d %s", status, b)
	}
	if status, b := r.post(t, analyst, `{"from": "2026-11-24"}`); status != http.StatusOK {
		t.Errorf("after it: %d %s", status, b)
	}
}
