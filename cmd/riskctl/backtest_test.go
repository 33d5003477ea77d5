package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"riskd/backtest"
	"riskd/bench/traffic"
	"riskd/engine"
	"riskd/features"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/chstore"
)

// storeDecided stores n generated events decided by the reference rules
// in a fresh database and returns its config.
func storeDecided(t *testing.T, n int) chstore.Config {
	t.Helper()
	cfg := chtest.Config(t)
	st, err := chstore.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	set, err := features.LoadFile("../../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load("../../bench/reference/rules", set)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Install(rs, 1)
	sc := engine.NewScorer(engine.Config{}, set, holder)
	gen := traffic.New(traffic.Config{Accounts: 200, Seed: 3, FraudRate: 0.05, EventsPerSecond: 0.5})
	ds := make([]*engine.Decision, 0, n)
	var d engine.Decision
	for i := range n {
		if err := sc.Score(gen.AppendJSON(nil), engine.Source{Topic: "payments", Offset: int64(i)}, &d); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d.Clone())
	}
	if err := st.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRulesBacktest(t *testing.T) {
	cfg := storeDecided(t, 2000)
	env := func(string) string { return "" }
	now := func() time.Time { return time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC) }
	common := []string{"--clickhouse", cfg.Addr, "--database", cfg.Database, "--features", "../../bench/reference/features.yaml"}
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := runBacktest(t.Context(), args, env, now, &out, &errOut)
		return out.String(), errOut.String(), err
	}

	// The table; flags after the directory work too.
	out, _, err := run(append(append([]string{}, common...), "../../bench/reference/rules", "--from", "2026-11-24T12:00:00Z", "--to", "2026-11-26")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"backtest of 0-", "mode    hits", "scam-payee", "changed decisions: 0 of ", "fraud events caught"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	// --json decodes; --html writes a page with the chart.
	html := filepath.Join(t.TempDir(), "report.html")
	out, _, err = run(append(common, "--json", "--html", html, "--from", "2026-11-24", "--to", "2026-11-26", "../../bench/reference/rules")...)
	if err != nil {
		t.Fatal(err)
	}
	var rep backtest.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if rep.EventsPeriod != 2000 || rep.Totals.Changed != 0 || len(rep.Rules) == 0 {
		t.Errorf("report: %d events, %d changed, %d rules", rep.EventsPeriod, rep.Totals.Changed, len(rep.Rules))
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "<polyline", "scam-payee", "</html>"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if bytes.Contains(page, []byte("http://")) && !bytes.Contains(page, []byte(`xmlns="http://www.w3.org/2000/svg"`)) {
		t.Errorf("HTML refers to an external asset")
	}

	// A rule directory with its own features.yaml runs with it; --features
	// naming another file as well is refused.
	own := t.TempDir()
	for _, name := range []string{"auth.yaml", "settings.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../bench/reference/rules", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(own, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	feats, err := os.ReadFile("../../bench/reference/features.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(own, rules.FeaturesFile), feats, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run("--clickhouse", cfg.Addr, "--database", cfg.Database, "--from", "2026-11-24", "--to", "2026-11-26", own); err != nil {
		t.Errorf("a directory with its own features.yaml: %v", err)
	}
	if _, _, err := run(append(append([]string{}, common...), own)...); err == nil ||
		!strings.Contains(err.Error(), "carries its own features.yaml; --features ../../bench/reference/features.yaml names another") {
		t.Errorf("its own features.yaml and --features: %v, want refused", err)
	}

	// Bad input: exit code 2 and the reason.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"no-such-dir"}, "backtest: no-such-dir is not a rule directory"},
		{[]string{t.TempDir()}, "holds no rules (rule files are its top-level *.yaml)"},
		{[]string{"--from", "2026-11-26", "--to", "2026-11-25", "../../bench/reference/rules"},
			"bad backtest request: from 2026-11-26T00:00:00Z is not before to 2026-11-25T00:00:00Z"},
		{[]string{"--from", "yesterday", "../../bench/reference/rules"},
			`backtest: --from: "yesterday" is neither RFC 3339 (2026-11-24T12:00:00Z) nor a date (2026-11-24)`},
		{[]string{"--from", "2026-01-01", "--to", "2026-03-01", "../../bench/reference/rules"}, "longer than the limit of 744h0m0s"},
		{[]string{"a", "b"}, "backtest: want one rule directory, got 2 arguments"},
	} {
		_, _, err := run(append(append([]string{}, common...), c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) || exitCode(err) != 2 {
			t.Errorf("%v: got %v (exit %d), want exit 2 with %q", c.args, err, exitCode(err), c.want)
		}
	}
}
