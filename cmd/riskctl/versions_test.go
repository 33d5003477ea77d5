package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The round trip against a running riskd is in cmd/riskd
// (TestRulesPushDiffRollbackRoundTripWithRiskctl); these tests cover what
// riskctl does on its own.

func writeVersionsDir(t *testing.T, files map[string]string) string {
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

func TestDiffOfTwoDirectoriesNeedsNoRiskd(t *testing.T) {
	t.Setenv(envToken, "") // no riskd is asked
	a := writeVersionsDir(t, map[string]string{"a.yaml": "- id: r1\n  when: event.amount > 1\n  action: alert\n", "lists/l.txt": "x\n"})
	b := writeVersionsDir(t, map[string]string{"a.yaml": "- id: r1\n  when: event.amount > 2\n  action: alert\n- id: r2\n  when: true\n  action: review\n",
		"lists/l.txt": "x\ny\n", "settings.yaml": "thresholds: []\n"})
	var out, errOut bytes.Buffer
	if err := runRules(t.Context(), []string{"diff", a, b}, &out, &errOut); err != nil {
		t.Fatalf("diff: %v\n%s", err, errOut.String())
	}
	want := "diff " + a + " -> " + b + `

rules (1 added, 0 removed, 1 changed):
  + r2 (review, active) a.yaml:4
  ~ r1 a.yaml:1
      when: "event.amount > 1" -> "event.amount > 2"

lists (0 added, 0 removed, 1 changed):
  ~ l: 1 -> 2 entries
      + 1: y

settings (1 changed):
  ~ thresholds: (none) -> "[]"
`
	if out.String() != want {
		t.Errorf("diff =\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	// Flags may follow the positionals.
	if err := runRules(t.Context(), []string{"diff", a, a, "--json"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"added": []`) {
		t.Errorf("diff --json of a directory with itself = %s", out.String())
	}
}

func TestVersionCommandsRefuseBadArguments(t *testing.T) {
	t.Setenv(envToken, "")
	dir := writeVersionsDir(t, map[string]string{"a.yaml": "[]\n"})
	empty := t.TempDir()
	big := writeVersionsDir(t, map[string]string{"lists/big.txt": strings.Repeat("x\n", maxPushBytes/2+1)})
	for _, c := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"push"}, "push: give one rule directory", 2},
		{[]string{"push", dir, dir}, "push: give one rule directory", 2},
		{[]string{"push", empty}, "rule directory " + empty + ": no rule files (*.yaml, *.yml, lists/*.txt)", 1},
		{[]string{"push", big}, "rule directory " + big + ": the rule files hold 8388610 bytes, more than the 8388608 one version may carry", 1},
		{[]string{"push", "-m", "x", dir}, envToken + " is empty: set it to an API token of riskd (the secret part of auth.tokens)", 1},
		{[]string{"rollback", "abc"}, `rollback: version "abc": want a version number from 1 up (riskctl rules history lists them)`, 2},
		{[]string{"rollback", "0"}, `rollback: version "0": want a version number from 1 up (riskctl rules history lists them)`, 2},
		{[]string{"history", "--limit", "0"}, "history: --limit 0: want 1 to 10000", 2},
		{[]string{"history", "--limit", "10001"}, "history: --limit 10001: want 1 to 10000", 2},
		{[]string{"diff", "1"}, "diff: give two versions or directories", 2},
		{[]string{"diff", "no-such-dir", dir}, "diff: no-such-dir is neither a version number nor a rule directory: rule directory: stat no-such-dir: no such file or directory", 1},
	} {
		var out, errOut bytes.Buffer
		err := runRules(t.Context(), c.args, &out, &errOut)
		if err == nil || err.Error() != c.want || exitCode(err) != c.code {
			t.Errorf("%v: err %v (exit %d), want %q (exit %d)", c.args, err, exitCode(err), c.want, c.code)
		}
	}
}

func TestParseVersionAcceptsTheVersionStringRiskdPrints(t *testing.T) {
	for in, want := range map[string]uint64{"3": 3, "12-abcdef12": 12} {
		if got, err := parseVersion(in); err != nil || got != want {
			t.Errorf("parseVersion(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
