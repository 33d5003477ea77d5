package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRuleDir writes files into a fresh rule directory.
func writeRuleDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const refFeatures = "../../bench/reference/features.yaml"

func TestRulesLintExitCodesAndFormat(t *testing.T) {
	bad := writeRuleDir(t, map[string]string{
		"a.yaml": "- id: x\n  when: event.type == \"payment\" && f.paymnts_1h > 0\n  action: blok\n",
		"b.yaml": "- id: y\n  when: [\n",
	})
	good := writeRuleDir(t, map[string]string{"a.yaml": "- id: x\n  when: f.payments_1h > 3\n  action: review\n"})
	for _, tt := range []struct {
		name     string
		args     []string
		code     int
		stdout   string
		errorMsg string
	}{
		{"a set with problems", []string{"--features", refFeatures, bad}, 1,
			filepath.Join(bad, "a.yaml") + ":2:38: x: unknown feature f.paymnts_1h; did you mean payments_1h?\n" +
				filepath.Join(bad, "a.yaml") + ":3:11: x: unknown action \"blok\": want one of allow, alert, review, challenge, block, lock\n" +
				filepath.Join(bad, "b.yaml") + ":3:1: YAML: did not find expected node content\n",
			"rules lint: 3 problems in " + bad},
		{"flags after the directory", []string{good, "--features", refFeatures}, 0, "", ""},
		{"a clean set as JSON", []string{"--json", "--features", refFeatures, good}, 0, "[]\n", ""},
		{"no directory", []string{"--features", refFeatures}, 2, "", "rules lint: want one rule directory, got 0 arguments"},
		{"a missing directory", []string{"--features", refFeatures, filepath.Join(good, "nope")}, 2, "",
			"rule directory: stat " + filepath.Join(good, "nope") + ": no such file or directory"},
		{"a missing feature file", []string{"--features", "nope.yaml", good}, 2, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"rules", "lint"}, tt.args...), &stdout, &stderr)
			if code := codeOf(err); code != tt.code {
				t.Errorf("exit %d (%v), want %d", code, err, tt.code)
			}
			if stdout.String() != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tt.stdout)
			}
			if tt.errorMsg != "" && (err == nil || err.Error() != tt.errorMsg) {
				t.Errorf("error %v, want %q", err, tt.errorMsg)
			}
		})
	}
}

func codeOf(err error) int {
	if err == nil {
		return 0
	}
	return exitCode(err)
}

func TestRulesTestRunsEventsAndExamples(t *testing.T) {
	dir := writeRuleDir(t, map[string]string{
		"a.yaml": "- id: after-reset\n  when: event.type == \"payment\" && f.secs_since_password_reset < 3600\n  action: challenge\n" +
			"  examples:\n    - event: {amount: 1}\n      f: {secs_since_password_reset: 60}\n",
	})
	events := filepath.Join(t.TempDir(), "events.json")
	if err := os.WriteFile(events, []byte(`[{"event": {"account_id": "a", "ts": 1795507200000}},
 {"event": {"account_id": "a", "type": "password_reset", "ts": 1795507260000}},
 {"event": {"account_id": "a", "ts": 1795507860000}}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"rules", "test", "--all-features", "--features", refFeatures, dir, events}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	want := `event 0  test-1  payment  account a  2026-11-24T08:00:00Z
  -> allow score 0
  matched: -   shadow: -   errored: -
  features: secs_since_password_reset=1e+09 (computed)
event 1  test-2  password_reset  account a  2026-11-24T08:01:00Z
  -> allow score 0
  matched: -   shadow: -   errored: -
event 2  test-3  payment  account a  2026-11-24T08:11:00Z
  -> challenge score 0
  matched: after-reset   shadow: -   errored: -
  features: secs_since_password_reset=600 (computed)
examples: 1 of 1 passed
`
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), want)
	}
	// Without --all-features only what explains a decision is listed: the
	// features of the rules that matched (and values given).
	stdout.Reset()
	if err := run(context.Background(), []string{"rules", "test", "--features", refFeatures, dir, events}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if focused := strings.Replace(want, "  features: secs_since_password_reset=1e+09 (computed)\n", "", 1); stdout.String() != focused {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), focused)
	}
	err := run(context.Background(), []string{"rules", "test", "--features", refFeatures, dir, filepath.Join(dir, "none.json")}, &stdout, &stderr)
	if codeOf(err) != 2 {
		t.Errorf("missing events file: %v, want exit 2", err)
	}
}
