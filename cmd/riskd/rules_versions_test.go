package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"riskd/api"
	"riskd/internal/apitest"
	"riskd/internal/kafkatest"
	"riskd/rules"
)

// TestRulesPushDiffRollbackRoundTripWithRiskctl drives a real riskd (the
// daemon on an embedded broker that outlives it and a fresh ClickHouse
// database) with the riskctl binary, as an analyst does: the start-up set
// is version 1, a pushed directory version 2, the same push again is
// "unchanged", diff 1 2 names the new rule, a rollback to 1 runs the
// start-up set again as version 3, history lists them with authors and
// messages, riskd never writes into its rule directory, and a restart on
// the same topic runs the newest published version, not the directory's.
func TestRulesPushDiffRollbackRoundTripWithRiskctl(t *testing.T) {
	e := newBrokerEnv(t, kafkatest.Embedded(t))
	e.cfg.Auth.Tokens = apitest.TokenEntries()
	d, stop := e.start(t)
	dirBefore := readRules(t, e.cfg.Rules.Dir)
	// A version from the directory carries the features file too.
	startUp := maps.Clone(dirBefore)
	feats, err := os.ReadFile(e.cfg.Rules.Features)
	if err != nil {
		t.Fatal(err)
	}
	startUp[rules.FeaturesFile] = feats
	if v := d.holder.Load().Version; v.Seq != 1 || v.Hash != rules.HashFiles(startUp) {
		t.Fatalf("riskd started with %v, want version 1 of the rule directory and features file (%s)", v, rules.HashFiles(startUp))
	}
	ctl := riskctl(t, "http://"+d.httpAddr)

	changed := filepath.Join(t.TempDir(), "rules")
	copyDir(t, e.cfg.Rules.Dir, changed)
	marker := "- id: roundtrip-marker\n  when: event.type == \"payment\" && event.amount == 31337\n  action: review\n  score: 7\n"
	if err := os.WriteFile(filepath.Join(changed, "roundtrip.yaml"), []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	out := ctl.ok("rules", "push", "-m", "add the round-trip marker", changed)
	if !regexp.MustCompile(`^push: version 2-[0-9a-f]{8} is live \(\d+ rules; was 1-[0-9a-f]{8}\)\n$`).MatchString(out) {
		t.Errorf("push printed %q", out)
	}
	if d.holder.Load().Rule("roundtrip-marker") == nil {
		t.Error("the pushed rule does not run")
	}
	if out := ctl.ok("rules", "push", changed); !strings.HasPrefix(out, "unchanged: nothing changed: the files hash to ") ||
		!strings.Contains(out, "the running version 2-") {
		t.Errorf("second push of the same files printed %q, want unchanged naming version 2", out)
	}
	out = ctl.ok("rules", "diff", "1", "2")
	if want := "diff 1 -> 2\n\nrules (1 added, 0 removed, 0 changed):\n  + roundtrip-marker (review, active) roundtrip.yaml:1\n"; out != want {
		t.Errorf("diff 1 2 =\n%s\nwant\n%s", out, want)
	}
	var jd rules.SetDiff
	if err := json.Unmarshal([]byte(ctl.ok("rules", "diff", "--json", "2", "1")), &jd); err != nil ||
		len(jd.Rules.Removed) != 1 || jd.Rules.Removed[0].ID != "roundtrip-marker" || len(jd.Rules.Added) != 0 {
		t.Errorf("diff --json 2 1: %+v (%v), want roundtrip-marker removed", jd, err)
	}
	if out := ctl.ok("rules", "diff", e.cfg.Rules.Dir, "1"); !strings.Contains(out, "no rule, list, setting or window feature changed") {
		t.Errorf("diff of the rule directory against version 1 = %q, want no change", out)
	}

	out = ctl.ok("rules", "rollback", "-m", "back to the start-up set", "1")
	if !strings.HasPrefix(out, "rollback: version 3-") {
		t.Errorf("rollback printed %q", out)
	}
	c := apitest.Client{T: t, Base: "http://" + d.httpAddr}
	var running struct {
		Seq  uint64 `json:"seq"`
		Hash string `json:"hash"`
	}
	if code, raw := c.Do(api.RoleViewer, "GET", "/v1/rules", nil); code != 200 || json.Unmarshal(raw, &running) != nil {
		t.Fatalf("GET /v1/rules: %d %s", code, raw)
	}
	if running.Seq != 3 || running.Hash != rules.HashFiles(startUp) {
		t.Errorf("after rollback to 1 riskd runs %d-%s, want 3 with the start-up hash %s", running.Seq, running.Hash, rules.HashFiles(startUp))
	}
	if out := ctl.ok("rules", "rollback", "1"); !strings.HasPrefix(out, "unchanged: ") {
		t.Errorf("rollback to the running files printed %q, want unchanged", out)
	}

	hist := ctl.ok("rules", "history")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^3-[0-9a-f]{8} \* +\S+ \S+ +analyst-token +\d+ +back to the start-up set$`),
		regexp.MustCompile(`(?m)^2-[0-9a-f]{8} +\S+ \S+ +analyst-token +\d+ +add the round-trip marker$`),
		regexp.MustCompile(`(?m)^1-[0-9a-f]{8} +\S+ \S+ +riskd +\d+ +start-up set from ` + regexp.QuoteMeta(e.cfg.Rules.Dir) + `$`),
	} {
		if !want.MatchString(hist) {
			t.Errorf("history has no line matching %s:\n%s", want, hist)
		}
	}
	var hj struct {
		Versions []struct {
			Seq    uint64 `json:"seq"`
			Author string `json:"author"`
		} `json:"versions"`
	}
	if err := json.Unmarshal([]byte(ctl.ok("rules", "history", "--json", "--limit", "2")), &hj); err != nil || len(hj.Versions) != 2 || hj.Versions[0].Seq != 3 {
		t.Errorf("history --json --limit 2: %+v (%v)", hj, err)
	}

	// A compile error is refused with the rule and position; exit 1.
	bad := filepath.Join(t.TempDir(), "bad")
	copyDir(t, changed, bad)
	if err := os.WriteFile(filepath.Join(bad, "roundtrip.yaml"), []byte("- id: roundtrip-marker\n  when: event.amout > 1\n  action: review\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := ctl.run("rules", "push", "-m", "typo", bad); code != 1 ||
		!strings.Contains(out, "push refused, the running rules stay: roundtrip.yaml:2:") || !strings.Contains(out, "roundtrip-marker") {
		t.Errorf("push of a bad rule: exit %d, %q", code, out)
	}

	// The newest version survives a restart on the same topic.
	ctl.ok("rules", "push", "-m", "the marker again", changed)
	pushed := d.holder.Load().Version
	if pushed.Seq != 4 {
		t.Fatalf("after the last push riskd runs %v, want version 4", pushed)
	}
	mustStop(t, stop)
	if after := readRules(t, e.cfg.Rules.Dir); rules.HashFiles(after) != rules.HashFiles(dirBefore) {
		t.Errorf("riskd changed its rule directory: it hashes to %s, it started as %s", rules.HashFiles(after), rules.HashFiles(dirBefore))
	}
	d2, _ := e.start(t)
	if v := d2.holder.Load().Version; v != pushed {
		t.Errorf("after a restart riskd runs %v, want the newest version %v (not the directory's)", v, pushed)
	}
	if d2.holder.Load().Rule("roundtrip-marker") == nil {
		t.Error("after a restart the pushed rule does not run")
	}

	// Window features travel with the rules: riskctl shows the running
	// ones and publishes a features file as a version; the diff names it.
	ctl2 := ctlRunner{t: t, bin: ctl.bin, baseURL: "http://" + d2.httpAddr}
	if out := ctl2.ok("rules", "features"); !strings.HasPrefix(out, "version "+pushed.String()+": ") {
		t.Errorf("rules features printed %q, want the running version %s first", out, pushed)
	}
	edited := filepath.Join(t.TempDir(), "features.yaml")
	added := "\nroundtrip_spend_7d: {sum: amount, by: account, window: 168h}\n"
	if err := os.WriteFile(edited, append(feats, added...), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := ctl2.ok("rules", "features", "-m", "a 7-day spend", edited); !strings.HasPrefix(out, "features: version 5-") {
		t.Errorf("rules features FILE printed %q, want version 5 live", out)
	}
	if out := ctl2.ok("rules", "features"); !strings.Contains(out, "roundtrip_spend_7d") {
		t.Errorf("after the publish, rules features printed %q, want roundtrip_spend_7d", out)
	}
	if out := ctl2.ok("rules", "diff", "4", "5"); !strings.Contains(out, "window features (1 changed):\n  ~ roundtrip_spend_7d: ") {
		t.Errorf("diff 4 5 = %q, want the new feature", out)
	}
	if _, ok := d2.liveFeatures.Load().Index("roundtrip_spend_7d"); !ok {
		t.Error("the engine's features lack roundtrip_spend_7d after the publish")
	}
}

func readRules(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files, err := rules.ReadFiles(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// ctlRunner runs the riskctl binary against one riskd as its analyst.
type ctlRunner struct {
	t       *testing.T
	bin     string
	baseURL string
}

// riskctl builds the riskctl binary for the test.
func riskctl(t *testing.T, baseURL string) ctlRunner {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "riskctl")
	if out, err := exec.Command("go", "build", "-o", bin, "../riskctl").CombinedOutput(); err != nil {
		t.Fatalf("go build riskctl: %v\n%s", err, out)
	}
	return ctlRunner{t: t, bin: bin, baseURL: baseURL}
}

// run returns riskctl's stdout and stderr together and its exit code.
func (r ctlRunner) run(args ...string) (string, int) {
	r.t.Helper()
	cmd := exec.CommandContext(r.t.Context(), r.bin, args...)
	cmd.Env = append(os.Environ(), "RISKCTL_URL="+r.baseURL, "RISKCTL_TOKEN="+apitest.Secrets[api.RoleAnalyst])
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("riskctl %v: %v", args, err)
	}
	return out.String(), 0
}

// ok runs riskctl and fails the test unless it exits 0.
func (r ctlRunner) ok(args ...string) string {
	r.t.Helper()
	out, code := r.run(args...)
	if code != 0 {
		r.t.Fatalf("riskctl %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}
