package rules

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"riskd/features"
)

// lintFeatures is a feature set with the window features the lint tests
// name, so suggestions can come from its Names.
func lintFeatures(t *testing.T) *features.Set {
	t.Helper()
	defs, err := features.ParseDefinitions([]byte("failed_logins_15m: {count: login_failed, by: account, window: 15m}\npayments_1h: {count: payment, by: account, window: 1h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := features.Compile(defs, features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func lintStrings(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.String() + "\n")
	}
	return b.String()
}

func TestLintReportsEveryProblemWhereItIs(t *testing.T) {
	files := map[string][]byte{
		"auth.yaml": []byte(`- id: brute
  when: event.type == "login_failed" && f.failed_logins_15 >= 5
  action: lock
  lock_for: 30m
- id: scam
  when: in_list("scam_payee", event.payee_id) && event.amout > 100 && event.device.rooted
  action: blok
  lock_for: soon
- id: brute
  when: event.type == "login"
  action: alert
- id: quiet
  when: event.type == "payment" && f.payments_1h > 3
  action: review
  examples:
    - event: {amount: 1}
      f: {payments_1h: 4}
    - event: {amount: 1}
      f: {payments_1h: 1}
    - event: {amount: 1}
      f: {payments_1h: 2}
      expect: match
- id: noisy
  when: event.type == "login"
  scre: 10
`),
		"broken.yaml":           []byte("- id: x\n  when: true\n  action: [block\n"),
		"lists/scam_payees.txt": []byte("p-1\n"),
		"settings.yaml":         []byte("thresholds:\n  - {score: 10, action: review}\n"),
		"velocity.yaml": []byte(`- id: fast
  when: >-
    event.type == "payment" &&
    f.paymnts_1h > 5 && hours(event.ts) < 6
  action: review
`),
	}
	want := `auth.yaml:2:43: brute: unknown feature f.failed_logins_15; did you mean failed_logins_15m?
auth.yaml:6:17: scam: unknown list "scam_payee" (want a file lists/scam_payee.txt); did you mean scam_payees?
auth.yaml:6:56: scam: event has no field amout; did you mean amount?
auth.yaml:7:11: scam: unknown action "blok": want one of allow, alert, review, challenge, block, lock
auth.yaml:8:13: scam: lock_for must be a positive duration like 30m, or indefinite, not "soon"
auth.yaml:9:7: brute: duplicate id, first defined at auth.yaml:1
auth.yaml:18:7: quiet: example 2: expected match, got no_match
auth.yaml:20:7: quiet: example 3: expected match, got no_match
auth.yaml:25:3: noisy: unknown key "scre"; did you mean score?
broken.yaml:3:1: YAML: did not find expected ',' or ']'
velocity.yaml:4:7: fast: unknown feature f.paymnts_1h; did you mean payments_1h?
velocity.yaml:4:25: fast: unknown name hours; did you mean hour?
`
	got := lintStrings(Lint(files, lintFeatures(t)))
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestLintFindsNothingInTheReferenceSet(t *testing.T) {
	set, err := features.LoadFile("../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	files, err := ReadFiles(os.DirFS("../bench/reference/rules"))
	if err != nil {
		t.Fatal(err)
	}
	if ps := Lint(files, set); len(ps) != 0 {
		t.Errorf("problems in the reference set:\n%s", lintStrings(ps))
	}
}

// Where Compile refuses a set for one problem, Lint reports that problem
// at the same place.
func TestLintAgreesWithCompileOnTheFirstProblem(t *testing.T) {
	for _, src := range []string{
		"- id: a\n  when: event.amount > 'x'\n  action: block\n",
		"- id: a\n  when: f.no_such > 1\n  action: block\n",
		"- id: a\n  action: block\n",
		"- id: a\n  when: true\n  action: lock\n",
		"- id: a\n  when: true\n  mode: loud\n",
		"{a: 1}\n",
		"- id: a\n  when: event.type == \"payment\"\n  examples:\n    - event: {type: login}\n",
	} {
		files := map[string][]byte{"r.yaml": []byte(src)}
		_, err := Compile(files, lintFeatures(t))
		var ce *CompileError
		if !errors.As(err, &ce) {
			t.Fatalf("%q compiled: %v", src, err)
		}
		ps := Lint(files, lintFeatures(t))
		if len(ps) != 1 || ps[0].Line != ce.Line || ps[0].Col != ce.Col || !strings.HasPrefix(ps[0].Message, ce.Msg) {
			t.Errorf("%q: compile says %v, lint says\n%s", src, err, lintStrings(ps))
		}
	}
}

func TestLintBoundsItsReport(t *testing.T) {
	var b strings.Builder
	for i := range MaxLintProblems + 1 {
		fmt.Fprintf(&b, "- id: r%d\n  when: true\n  colour: red\n", i)
	}
	ps := Lint(map[string][]byte{"r.yaml": []byte(b.String())}, nil)
	if len(ps) != MaxLintProblems {
		t.Fatalf("%d problems, want %d", len(ps), MaxLintProblems)
	}
	if last := ps[len(ps)-1].String(); last != "r.yaml:3000:3: and 2 more problems (Lint reports at most 1000)" {
		t.Errorf("last = %q", last)
	}
}
