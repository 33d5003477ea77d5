package rules

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"riskd/event"
)

// testFeatures is a FeatureIndex with two window features.
type testFeatures map[string]int

func (f testFeatures) Index(name string) (int, bool) {
	i, ok := f[name]
	return i, ok
}

var feats = testFeatures{"failed_logins_15m": 0, "payments_1h": 3}

func compileOne(t *testing.T, src string) (*RuleSet, error) {
	t.Helper()
	return Compile(map[string][]byte{
		"auth.yaml":             []byte(src),
		"lists/scam_payees.txt": []byte("# reported payees\npayee-bad-1\npayee-bad-2  # from case 42\n\n"),
	}, feats)
}

func mustCompile(t *testing.T, src string) *RuleSet {
	t.Helper()
	rs, err := compileOne(t, src)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return rs
}

func TestCompileErrorsPointAtTheMistake(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{
			name: "a misspelt window feature in a plain scalar",
			src: `- id: brute-force-lock
  when: event.type == "login_failed" && f.failed_logins_51m >= 5
  action: lock
  lock_for: 30m
`,
			want: `auth.yaml:2:43: rule brute-force-lock: unknown feature f.failed_logins_51m`,
		},
		{
			name: "a misspelt event field in a double-quoted scalar",
			src: `- id: r1
  when: "event.amont > 5"
`,
			want: `auth.yaml:2:16: rule r1: type event.Event has no field amont`,
		},
		{
			name: "a type error on the second line of a block scalar",
			src: `- id: r2
  when: |
    event.type == "payment" &&
      event.amount > "big"
`,
			want: `auth.yaml:4:20: rule r2: invalid operation: > (mismatched types int64 and string)`,
		},
		{
			name: "an unknown list",
			src: `- id: r3
  when: in_list("nope", event.payee_id)
`,
			want: `auth.yaml:2:17: rule r3: unknown list "nope" (want a file lists/nope.txt)`,
		},
		{
			name: "a syntax error",
			src: `- id: r4
  when: event.amount >
`,
			want: `auth.yaml:2:22: rule r4: unexpected token EOF`,
		},
		{
			name: "a duplicate id",
			src: `- id: r5
  when: "true"
- id: r5
  when: "false"
`,
			want: `auth.yaml:3:7: rule r5: duplicate id, first defined at auth.yaml:1`,
		},
		{
			name: "an unknown action",
			src: `- id: r6
  when: "true"
  action: nuke
`,
			want: `auth.yaml:3:11: rule r6: unknown action "nuke": want one of allow, alert, review, challenge, block, lock`,
		},
		{
			name: "a missing when",
			src: `- id: r7
  action: block
`,
			want: `auth.yaml:1:3: rule r7: missing when`,
		},
		{
			name: "a bad mode",
			src: `- id: r8
  when: "true"
  mode: loud
`,
			want: `auth.yaml:3:9: rule r8: unknown mode "loud": want active or shadow`,
		},
		{
			name: "the hidden window name",
			src: `- id: r9
  when: __w[0] > 1
`,
			want: `auth.yaml:2:9: rule r9: unknown name __w`,
		},
		{
			name: "a non-boolean expression",
			src: `- id: r10
  when: event.amount
`,
			want: `auth.yaml:2:9: rule r10: expected bool, but got int64`,
		},
		{
			name: "a misspelt feature on the second line of a folded scalar",
			src: `- id: r11
  when: >
    event.type == "payment"
    && f.nope > 1
`,
			want: `auth.yaml:4:10: rule r11: unknown feature f.nope`,
		},
		{
			name: "an unknown key",
			src: `- id: r12
  when: "true"
  acton: block
`,
			want: `auth.yaml:3:3: rule r12: unknown key "acton"`,
		},
		{
			name: "lock without lock_for",
			src: `- id: r13
  when: "true"
  action: lock
`,
			want: `auth.yaml:1:3: rule r13: action lock needs lock_for`,
		},
		{
			name: "an example naming an unknown feature",
			src: `- id: r14
  when: f.new_device
  examples:
    - f: {new_devise: true}
`,
			want: `auth.yaml:4:7: rule r14: example 1: unknown feature f.new_devise`,
		},
		{
			name: "a file that is not a list",
			src:  "id: r15\n",
			want: `auth.yaml:1:1: a rule file is a YAML list of rules`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileOne(t, tt.src)
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *CompileError", err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestLoadNamesFilesUnderTheDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "auth.yaml"), []byte("- id: x\n  when: f.nope > 1\n"), 0o644)
	_, err := Load(dir, feats)
	want := filepath.Join(dir, "auth.yaml") + ":2:11: rule x: unknown feature f.nope"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func evalOne(t *testing.T, rs *RuleSet, fill func(*Env)) *Outcome {
	t.Helper()
	e := NewEvaluator()
	fill(e.Env())
	var out Outcome
	e.Eval(rs, &out)
	return &out
}

func ids(rules []*Rule) string {
	var s []string
	for _, r := range rules {
		s = append(s, r.ID)
	}
	return strings.Join(s, ",")
}

const sampleRules = `
- id: brute-force-lock
  when: event.type == "login_failed" && f.failed_logins_15m >= 5
  action: lock
  lock_for: 30m
  examples:
    - f: {failed_logins_15m: 5}
      expect: match
    - f: {failed_logins_15m: 4}
      expect: no_match
- id: scam-payee
  when: event.type == "payment" && in_list("scam_payees", event.payee_id)
  action: block
  examples:
    - event: {type: payment, payee_id: payee-bad-2, amount: 1250}
- id: new-device-big
  when: event.type in ["payment", "withdrawal"] && f.new_device && event.amount > 5 * f.avg_amount_30d
  score: 40
  mode: shadow
- id: night-far
  when: event.geo.has_point && hour(event.ts) < 5 && haversine(event.geo.lat, event.geo.lon, 1.35, 103.8) > 1000
  action: review
- id: bad-attr
  when: event.type == "payment" && int(event.attrs["n"]) > 3
  action: alert
`

func TestEvalMatchesActiveAndShadowRules(t *testing.T) {
	rs := mustCompile(t, sampleRules)
	out := evalOne(t, rs, func(env *Env) {
		env.Event = event.Event{Type: "payment", PayeeID: "payee-bad-1", Amount: 1000, Attrs: event.Attrs{"n": "1"}, TS: 12 * 3600 * 1000}
		env.F.NewDevice = true
		env.F.AvgAmount30d = 10
	})
	if got := ids(out.Matched); got != "scam-payee" {
		t.Errorf("matched %q", got)
	}
	if got := ids(out.Shadow); got != "new-device-big" {
		t.Errorf("shadow %q", got)
	}
	if len(out.Errored) != 0 {
		t.Errorf("errored %v", out.ErrorTexts)
	}
	if r := rs.Rule("new-device-big"); strings.Join(r.Features, ",") != "new_device,avg_amount_30d" {
		t.Errorf("features %v", r.Features)
	}
	if r := rs.Rule("brute-force-lock"); strings.Join(r.Features, ",") != "failed_logins_15m" || r.Action != Lock || r.LockFor != 30*time.Minute {
		t.Errorf("brute-force-lock = %+v", r)
	}
}

func TestInList(t *testing.T) {
	rs := mustCompile(t, sampleRules)
	for payee, want := range map[string]string{"payee-bad-1": "scam-payee", "payee-bad-2": "scam-payee", "payee-ok": "", "# reported payees": ""} {
		out := evalOne(t, rs, func(env *Env) { env.Event = event.Event{Type: "payment", PayeeID: payee} })
		if got := ids(out.Matched); got != want {
			t.Errorf("payee %q matched %q, want %q", payee, got, want)
		}
	}
}

func TestWindowFeatureReadsItsSlot(t *testing.T) {
	rs := mustCompile(t, sampleRules)
	out := evalOne(t, rs, func(env *Env) {
		env.Event = event.Event{Type: "login_failed"}
		env.W[0] = 7
	})
	if got := ids(out.Matched); got != "brute-force-lock" {
		t.Errorf("matched %q", got)
	}
}

func TestHelpers(t *testing.T) {
	rs := mustCompile(t, sampleRules)
	out := evalOne(t, rs, func(env *Env) {
		env.Event = event.Event{Type: "mfa", TS: 3 * 3600 * 1000, Geo: event.Geo{Lat: 51.5, Lon: -0.12, HasPoint: true}}
	})
	if got := ids(out.Matched); got != "night-far" {
		t.Errorf("matched %q", got)
	}
	if d := Haversine(51.5, -0.12, 1.35, 103.8); d < 10800 || d > 10900 {
		t.Errorf("London-Singapore = %.0f km", d)
	}
}

func TestRunTimeErrorCountsAsNotMatched(t *testing.T) {
	rs := mustCompile(t, sampleRules)
	e := NewEvaluator()
	var out Outcome
	for range 3 {
		*e.Env() = Env{Event: event.Event{Type: "payment", Attrs: event.Attrs{"n": "many"}}}
		e.Eval(rs, &out)
	}
	if got := ids(out.Errored); got != "bad-attr" || len(out.ErrorTexts) != 1 || len(out.Matched) != 0 {
		t.Fatalf("errored %q %v, matched %q", got, out.ErrorTexts, ids(out.Matched))
	}
	if n := rs.Rule("bad-attr").Errors(); n != 3 {
		t.Errorf("error count %d, want 3", n)
	}
}

func TestTypeIndexDoesNotChangeResults(t *testing.T) {
	rs := mustCompile(t, sampleRules)
	if got := rs.Rule("new-device-big").Types; strings.Join(got, ",") != "payment,withdrawal" {
		t.Errorf("types %v", got)
	}
	if rs.Rule("night-far").Types != nil {
		t.Errorf("night-far should run for every type")
	}
	types := append([]string{"unheard_of", ""}, event.KnownTypes...)
	e := NewEvaluator()
	var a, b Outcome
	for i, typ := range types {
		for j := range 16 {
			env := e.Env()
			*env = Env{Event: event.Event{
				Type: typ, TS: int64(j) * 1800 * 1000, Amount: int64(i * j * 100),
				PayeeID: []string{"payee-bad-1", "x"}[j%2], Attrs: event.Attrs{"n": []string{"1", "9", "x"}[j%3]},
				Geo: event.Geo{Lat: float64(j * 5), Lon: float64(i * 10)},
			}}
			env.F.NewDevice = j%3 == 0
			env.F.AvgAmount30d = float64(j * 10)
			env.W[0] = float64(j % 7)
			e.Eval(rs, &a)
			e.EvalAll(rs, &b)
			if ids(a.Matched) != ids(b.Matched) || ids(a.Shadow) != ids(b.Shadow) || ids(a.Errored) != ids(b.Errored) {
				t.Fatalf("type %q #%d: indexed %q/%q/%q, all %q/%q/%q", typ, j,
					ids(a.Matched), ids(a.Shadow), ids(a.Errored), ids(b.Matched), ids(b.Shadow), ids(b.Errored))
			}
		}
	}
}

func TestFailingExampleRejectsTheSet(t *testing.T) {
	_, err := compileOne(t, `
- id: big-payment
  when: event.type == "payment" && event.amount > 100000
  action: review
  examples:
    - event: {amount: 2000}
      expect: no_match
    - event: {amount: 20}
      expect: match
`)
	want := `auth.yaml:8:7: rule big-payment: example 2: expected match, got no_match`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestSettingsAndVersion(t *testing.T) {
	files := map[string][]byte{
		"a.yaml":        []byte("- id: a\n  when: event.amount > 1\n  score: 10\n"),
		"settings.yaml": []byte("thresholds:\n  - {score: 120, action: block}\n  - {score: 80, action: review}\n"),
	}
	rs, err := Compile(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Thresholds) != 2 || rs.Thresholds[0] != (Threshold{80, Review}) || rs.Thresholds[1] != (Threshold{120, Block}) {
		t.Errorf("thresholds %+v", rs.Thresholds)
	}
	if len(rs.Version.Hash) != 16 || rs.Version.String() != "0-"+rs.Version.Hash[:8] {
		t.Errorf("version %q %q", rs.Version.Hash, rs.Version)
	}
	var h Holder
	h.Swap(rs)
	rs2, _ := Compile(files, nil)
	h.Swap(rs2)
	if h.Load() != rs2 || rs2.Version.Seq != 2 || rs2.Version.Hash != rs.Version.Hash {
		t.Errorf("after two swaps: %v", h.Load().Version)
	}
}

func TestWatcherKeepsOldSetOnBadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(src string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("- id: a\n  when: event.amount > 1\n")
	reloads := make(chan *RuleSet, 4)
	errs := make(chan error, 4)
	h := &Holder{}
	w := &Watcher{
		Dir: dir, Features: feats, Holder: h, Interval: 5 * time.Millisecond,
		OnReload: func(rs *RuleSet) { reloads <- rs },
		OnError:  func(err error) { errs <- err },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	wait := func() (*RuleSet, error) {
		t.Helper()
		select {
		case rs := <-reloads:
			return rs, nil
		case err := <-errs:
			return nil, err
		case <-time.After(5 * time.Second):
			t.Fatal("no reload or error")
		}
		return nil, nil
	}
	first, err := wait()
	if err != nil || first == nil || first.Version.Seq != 1 {
		t.Fatalf("first load: %v %v", first, err)
	}
	write("- id: a\n  when: event.amont > 1\n")
	if _, err := wait(); err == nil || !strings.Contains(err.Error(), "has no field amont") {
		t.Fatalf("bad file: got %v", err)
	}
	if h.Load() != first || w.Failures() != 1 {
		t.Fatalf("old set not kept: %v, failures %d", h.Load().Version, w.Failures())
	}
	write("- id: b\n  when: event.amount > 2\n")
	next, err := wait()
	if err != nil || h.Load() != next || next.Version.Seq != 2 || next.Rule("b") == nil {
		t.Fatalf("second load: %v %v", next, err)
	}
}

func TestExamplesSeeAccountAndHelpers(t *testing.T) {
	mustCompile(t, `
- id: young-repeat-locker
  when: account.age_days < 2 && account.locked_before > 0 && haversine(0, 0, 0, 1) > 111
  action: review
  examples:
    - account: {id: a1, age_days: 1, locked_before: 2}
      expect: match
    - account: {id: a1, age_days: 10, locked_before: 2}
      expect: no_match
`)
}

func TestEvaluatorsOwnTheirEnv(t *testing.T) {
	a, b := NewEvaluator(), NewEvaluator()
	if a.Env() == b.Env() {
		t.Fatal("two evaluators share one Env")
	}
	a.Env().Event.Type = "payment"
	if b.Env().Event.Type != "" || (Env{}).Event.Type != "" {
		t.Fatal("writing one Env changed another")
	}
}

func TestEvaluatorsShareARuleSet(t *testing.T) {
	rs := mustCompile(t, sampleRules)
	var h Holder
	h.Swap(rs)
	done := make(chan string, 2)
	for g := range 2 {
		go func() {
			e := NewEvaluator()
			var out Outcome
			for i := range 200 {
				*e.Env() = Env{Event: event.Event{Type: "payment", PayeeID: "payee-bad-1", Attrs: event.Attrs{"n": []string{"1", "x"}[(i+g)%2]}}}
				e.Eval(h.Load(), &out)
			}
			done <- ids(out.Matched)
		}()
	}
	for range 2 {
		if got := <-done; got != "scam-payee" {
			t.Errorf("matched %q", got)
		}
	}
	if n := rs.Rule("bad-attr").Errors(); n != 200 {
		t.Errorf("errors %d, want 200", n)
	}
}
