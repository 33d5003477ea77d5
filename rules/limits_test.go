package rules

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"riskd/event"
)

// compileMem compiles src as auth.yaml and returns the error, the heap
// bytes the compile allocated and the memory the process took from the OS
// meanwhile (goroutine stacks included, which the heap figures leave out).
func compileMem(t *testing.T, src string) (err error, alloc, sys uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = compileOne(t, src)
	runtime.ReadMemStats(&after)
	return err, after.TotalAlloc - before.TotalAlloc, after.Sys - before.Sys
}

func TestDeepExpressionsAreRefusedBeforeParsing(t *testing.T) {
	const deep = 500000
	tests := []struct {
		name, src, want string
	}{
		{
			name: "parentheses nested 500000 deep",
			src:  "- id: deep\n  when: " + strings.Repeat("(", deep) + "true" + strings.Repeat(")", deep) + "\n",
			want: "auth.yaml:2:9: rule deep: expression nests 500000 deep, limit is 64",
		},
		{
			name: "500000 negations in a row",
			src:  "- id: deep\n  when: \"" + strings.Repeat("!", deep) + "true\"\n",
			want: "auth.yaml:2:10: rule deep: expression nests 500000 deep, limit is 64",
		},
		{
			name: "brackets and negations mixed",
			src:  "- id: deep\n  when: \"" + strings.Repeat("!(not [", deep/4) + "\"\n",
			want: "auth.yaml:2:10: rule deep: expression nests 500000 deep, limit is 64",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, alloc, sys := compileMem(t, tt.src)
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *CompileError", err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			// The source is 0.5 to 1 MB and its YAML is parsed; the
			// expression parser, whose recursion took about 1 GB of
			// stack, must not run.
			if alloc > 64<<20 || sys > 64<<20 {
				t.Errorf("compiling allocated %d MiB and took %d MiB from the OS, want under 64 MiB each", alloc>>20, sys>>20)
			}
		})
	}
}

func TestExpressionsOverTheCompileLimitsAreRefused(t *testing.T) {
	rule := func(when string) string { return "- id: big\n  when: '" + when + "'\n" }
	ones := func(n int) string { return strings.TrimSuffix(strings.Repeat("1, ", n), ", ") }
	tests := []struct {
		name, src, want string
	}{
		{
			name: "a nesting just over the limit",
			src:  rule(strings.Repeat("(", 65) + "true" + strings.Repeat(")", 65)),
			want: "auth.yaml:2:10: rule big: expression nests 65 deep, limit is 64",
		},
		{
			name: "an expression over the size limit",
			src:  rule(strings.TrimSuffix(strings.Repeat("true && ", 1000), " && ")),
			want: "auth.yaml:2:10: rule big: expression is 7996 bytes long, limit is 4096",
		},
		{
			name: "a huge string literal",
			src:  rule(`event.type == "` + strings.Repeat("x", 1<<20) + `"`),
			want: "auth.yaml:2:10: rule big: expression is 1048592 bytes long, limit is 4096",
		},
		{
			name: "a string literal over its limit",
			src:  rule(`event.type == "` + strings.Repeat("x", 300) + `"`),
			want: "auth.yaml:2:24: rule big: string literal is 300 bytes long, limit is 256",
		},
		{
			name: "a huge array literal",
			src:  rule(`event.amount in [` + ones(500000) + `]`),
			want: "auth.yaml:2:10: rule big: expression is 1500016 bytes long, limit is 4096",
		},
		{
			name: "an array literal over its limit",
			src:  rule(`event.amount in [` + ones(150) + `]`),
			want: "auth.yaml:2:26: rule big: array literal has 150 elements, limit is 100 (put long lists in lists/NAME.txt and use in_list)",
		},
		{
			name: "too many nodes",
			src:  rule(strings.Repeat("1+", 1000) + "1 > 0"),
			want: "auth.yaml:2:1011: rule big: expression has more than 1000 nodes, limit is 1000",
		},
		{
			name: "a loop over a big constant range",
			src:  rule(`all(1..900000, # >= 0)`),
			want: "auth.yaml:2:15: rule big: range 1..900000 has 900000 elements, limit is 1000",
		},
		{
			name: "a range with a bound from the event",
			src:  rule(`any(1..event.amount, # == 7)`),
			want: "auth.yaml:2:15: rule big: a range needs constant bounds",
		},
		{
			name: "nested loops over ranges",
			src:  rule(`all(1..1000, all(1..1000, # >= 0))`),
			want: "auth.yaml:2:10: rule big: expression may take 5038036 steps, limit is 2097152 " + stepsHint,
		},
		{
			name: "nested loops over lists from the event",
			src:  rule(`all(split(event.attrs["a"], ","), all(split(event.attrs["b"], ","), # == "x"))`),
			want: "auth.yaml:2:10: rule big: expression may take 34364129388 steps, limit is 2097152 " + stepsHint,
		},
		{
			name: "a loop that lowercases the whole event for each of its characters",
			src:  rule(`any(split(event.attrs["a"], ""), lower(event.attrs["a"]) == "x")`),
			want: "auth.yaml:2:10: rule big: expression may take 30066606149 steps, limit is 2097152 " + stepsHint,
		},
		{
			name: "an accumulator that doubles each step",
			src:  rule(`reduce(1..64, #acc + #acc, "x") != ""`),
			want: "auth.yaml:2:29: rule big: expression may take 9.22e+19 steps, limit is 2097152 " + stepsHint,
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

const stepsHint = "(a loop runs its body once per element, and a list or string from the event may have 65536 elements or bytes)"

func TestLoopsWithinTheWorkBoundCompile(t *testing.T) {
	for _, when := range []string{
		`any(split(event.attrs["tags"], ","), # == "x")`,
		`any(split(event.attrs["tags"], ","), lower(#) == "vpn")`,
		`any(split(event.attrs["tags"], ","), in_list("scam_payees", #))`,
		`sum(split(event.attrs["tags"], ","), len(#)) > 5`,
		`reduce(split(event.attrs["tags"], ","), #acc + len(#), 0) > 5`,
		`let a = event.attrs["x"]; let b = a + a; b != ""`,
		`count(1..100, # % 7 == 0) > 3`,
		`event.amount in 1..1000`,
		`len(filter(split(event.attrs["tags"], ","), # startsWith "x")) > 2`,
	} {
		if _, err := compileOne(t, "- id: ok\n  when: '"+when+"'\n"); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
}

func TestARuleOverTheRunTimeMemoryBudgetErrorsAlone(t *testing.T) {
	rs := mustCompile(t, `
- id: hog
  when: 'len(repeat(event.attrs["blob"], 1)) > 0'
  action: review
- id: big-payment
  when: event.type == "payment" && event.amount > 1000
  action: review
- id: vm-rule
  when: event.type == "payment" && event.attrs["blob"] != ""
  score: 10
`)
	e := NewEvaluator()
	var out Outcome
	// 40000 characters fit an event the decoder accepts (64 KiB); repeat
	// builds a string of 40000 bytes, over the budget of 32768.
	*e.Env() = Env{Event: event.Event{Type: "payment", Amount: 5000, Attrs: event.Attrs{"blob": strings.Repeat("x", 40000)}}}
	e.Eval(rs, &out)
	if got := ids(out.Matched); got != "big-payment,vm-rule" {
		t.Errorf("matched %q, want big-payment,vm-rule", got)
	}
	if got := ids(out.Errored); got != "hog" || !strings.Contains(out.ErrorTexts[0], "memory budget exceeded") {
		t.Errorf("errored %q %q, want hog over its memory budget", got, out.ErrorTexts)
	}
	if n := rs.Rule("hog").Errors(); n != 1 {
		t.Errorf("hog errors %d, want 1", n)
	}
	// A small value is fine.
	e.Env().Event.Attrs = event.Attrs{"blob": "abc"}
	e.Eval(rs, &out)
	if got := ids(out.Matched); got != "hog,big-payment,vm-rule" || len(out.Errored) != 0 {
		t.Errorf("small blob: matched %q errored %q %q", got, ids(out.Errored), out.ErrorTexts)
	}
}

func TestNestingCountsBracketsAndPrefixOperators(t *testing.T) {
	for _, tt := range []struct {
		src  string
		want int
	}{
		{`true`, 0},
		{`!x`, 1},
		{`!!x && !!y`, 2},
		{`not not x`, 2},
		{`-(-(1))`, 4},
		{`a - -b`, 1},
		{`a not in b`, 0},
		{`x.not && y?.in`, 0},
		{`f(a, [b, {c: (d)}])`, 4},
		{`"((((" + '[[[' + ` + "`{{{`" + ` == "!!!"`, 0},
		{"1e-5 - 0x1e - 2", 0},
		{"a // ((((\n && b /* [[[[ */", 0},
		{`all(xs, #.a > 1) && any(ys, .b)`, 1},
		{`((((`, 4},
		{`)))(`, 1},
		{`!(a && !(b || !c))`, 5},
	} {
		if got := nesting(tt.src); got != tt.want {
			t.Errorf("nesting(%s) = %d, want %d", tt.src, got, tt.want)
		}
	}
}

func TestErrorCountsHasEveryRule(t *testing.T) {
	rs := mustCompile(t, sampleRules)
	evalOne(t, rs, func(env *Env) {
		env.Event = event.Event{Type: "payment", Attrs: event.Attrs{"n": "many"}}
	})
	got := rs.ErrorCounts()
	if len(got) != len(rs.Rules) || got["bad-attr"] != 1 || got["scam-payee"] != 0 {
		t.Errorf("ErrorCounts = %v, want every rule and bad-attr at 1", got)
	}
}

func TestARuleOverTheRunTimeStepBudgetErrorsAlone(t *testing.T) {
	rs := mustCompile(t, `
- id: spinner
  when: 'any(split(event.attrs["blob"], ""), lower(#) == "z")'
  action: review
- id: big-payment
  when: event.type == "payment" && event.amount > 1000
  action: review
- id: vm-rule
  when: event.type == "payment" && event.attrs["blob"] != ""
  score: 10
`)
	e := NewEvaluator()
	var out Outcome
	// 12000 characters fit an event the decoder accepts (64 KiB), and the
	// loop over them is within MaxSteps; it runs over RunStepBudget.
	*e.Env() = Env{Event: event.Event{Type: "payment", Amount: 5000, Attrs: event.Attrs{"blob": strings.Repeat("x", 12000)}}}
	e.Eval(rs, &out)
	if got := ids(out.Matched); got != "big-payment,vm-rule" {
		t.Errorf("matched %q, want big-payment,vm-rule", got)
	}
	const want = "rule over its run-time budget of 10000 iterations (1:1)\n" +
		` | any(split(event.attrs["blob"], ""), lower(#) == "z")` + "\n" +
		" | ^"
	if got := ids(out.Errored); got != "spinner" || out.ErrorTexts[0] != want {
		t.Errorf("errored %q %q, want spinner with\n%s", got, out.ErrorTexts, want)
	}
	if n := rs.Rule("spinner").Errors(); n != 1 {
		t.Errorf("spinner errors %d, want 1", n)
	}
	// The budget is per run, so the next event starts from zero, and the
	// ticks do not change what a rule within it decides.
	for _, tt := range []struct {
		blob, want string
	}{
		{strings.Repeat("x", 9000) + "Z", "spinner,big-payment,vm-rule"},
		{"aZb", "spinner,big-payment,vm-rule"},
		{"abc", "big-payment,vm-rule"},
	} {
		e.Env().Event.Attrs = event.Attrs{"blob": tt.blob}
		e.Eval(rs, &out)
		if got := ids(out.Matched); got != tt.want || len(out.Errored) != 0 {
			t.Errorf("blob of %d bytes: matched %q errored %q %q, want %q", len(tt.blob), got, ids(out.Errored), out.ErrorTexts, tt.want)
		}
	}
	if n := rs.Rule("spinner").Errors(); n != 1 {
		t.Errorf("spinner errors %d after runs within the budget, want 1", n)
	}
}

func TestEveryLoopIterationTicksOnceAndKeepsTheValue(t *testing.T) {
	// Each rule matches on the list XS = a,bb,ccc; ticks is how many loop
	// iterations it runs there, nested and body-less loops included.
	for _, tt := range []struct {
		when  string
		ticks int
	}{
		{`all(XS, # != "")`, 3},
		{`any(XS, # == "ccc")`, 3},
		{`none(XS, # == "")`, 3},
		{`one(XS, # == "bb")`, 3},
		{`len(filter(XS, len(#) > 1)) == 2`, 3},
		{`filter(XS, len(#) > 1)[0] == "bb"`, 2}, // optimised into find
		{`map(XS, len(#))[2] == 3`, 3},
		{`count(XS, # != "") == 3`, 3},
		{`count(map(XS, # != "")) == 3`, 6},
		{`sum(XS, len(#)) == 6`, 3},
		{`sum(map(XS, len(#)), # * 2) == 12`, 6},
		{`find(XS, # == "bb") == "bb"`, 2},
		{`findIndex(XS, # == "ccc") == 2`, 3},
		{`findLast(XS, # == "a") == "a"`, 3},
		{`findLastIndex(XS, # == "a") == 0`, 3},
		{`len(groupBy(XS, len(#) > 1)) == 2`, 3},
		{`sortBy(1..3, -#)[0] == 3`, 3},
		{`reduce(XS, #acc + len(#), 0) == 6`, 3},
		{`reduce(1..3, #acc + # * len(XS)) == 16`, 2}, // 1 is the initial #acc
		{`all(1..10, all(1..10, # > 0)) && any(XS, # == "a")`, 111},
	} {
		t.Run(tt.when, func(t *testing.T) {
			when := strings.ReplaceAll(tt.when, "XS", `split(event.attrs["l"], ",")`)
			rs := mustCompile(t, "- id: loop\n  when: '"+when+"'\n")
			e := NewEvaluator()
			var out Outcome
			e.Env().Event.Attrs = event.Attrs{"l": "a,bb,ccc"}
			e.Eval(rs, &out)
			if ids(out.Matched) != "loop" || len(out.Errored) != 0 {
				t.Errorf("matched %q errored %q, want a match", ids(out.Matched), out.ErrorTexts)
			}
			if e.ticks != tt.ticks {
				t.Errorf("%d ticks, want %d", e.ticks, tt.ticks)
			}
		})
	}
}

func TestABodylessSumOverDecodedJSONTicks(t *testing.T) {
	rs := mustCompile(t, "- id: sum\n  when: 'sum(fromJSON(event.attrs[\"j\"])) > 2'\n")
	e := NewEvaluator()
	var out Outcome
	e.Env().Event.Attrs = event.Attrs{"j": "[1, 2, 3]"}
	e.Eval(rs, &out)
	if ids(out.Matched) != "sum" || e.ticks != 3 {
		t.Errorf("short list: matched %q after %d ticks, want a match after 3", ids(out.Matched), e.ticks)
	}
	e.Env().Event.Attrs = event.Attrs{"j": "[" + strings.Repeat("1,", 12000) + "1]"}
	e.Eval(rs, &out)
	if len(out.Errored) != 1 || !strings.HasPrefix(out.ErrorTexts[0], errRunStepBudget.Error()+" (") {
		t.Errorf("long list: matched %q errored %q, want over the step budget", ids(out.Matched), out.ErrorTexts)
	}
}

func TestTheHiddenTickIsRefused(t *testing.T) {
	for _, tt := range []struct{ when, want string }{
		{`__tick()`, "auth.yaml:2:10: rule r: unknown name __tick"},
		{`any(1..3, __tick())`, "auth.yaml:2:20: rule r: unknown name __tick"},
		{`$env.__tick()`, "auth.yaml:2:15: rule r: unknown name __tick"},
		{`$env["__w"][0] > 1`, "auth.yaml:2:15: rule r: unknown name __w"},
		{`let __tick = 1; all(1..3, # > 0)`, "auth.yaml:2:14: rule r: unknown name __tick"},
	} {
		_, err := compileOne(t, "- id: r\n  when: '"+tt.when+"'\n")
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: got %v, want %s", tt.when, err, tt.want)
		}
	}
}

// TestALoopingRuleWithExamplesCompiles: the examples run at compile time
// with the same step budget as the Evaluator, so a rule that loops can carry
// examples, and an example over the budget is refused as the engine would
// error on it.
func TestALoopingRuleWithExamplesCompiles(t *testing.T) {
	files := map[string][]byte{"loop.yaml": []byte(`- id: vpn-tag
  when: 'event.type == "login" && any(split(event.attrs["tags"], ","), # == "vpn")'
  action: review
  examples:
    - event: {type: login, attrs: {tags: "home,vpn"}}
    - event: {type: login, attrs: {tags: "home"}}
      expect: no_match
`)}
	if _, err := Compile(files, nil); err != nil {
		t.Fatalf("a looping rule with examples: %v", err)
	}
	long := strings.Repeat("a,", RunStepBudget+1)
	files["loop.yaml"] = []byte(`- id: vpn-tag
  when: 'event.type == "login" && any(split(event.attrs["tags"], ","), # == "vpn")'
  action: review
  examples:
    - event: {type: login, attrs: {tags: "` + long + `"}}
      expect: no_match
`)
	_, err := Compile(files, nil)
	if err == nil || !strings.Contains(err.Error(), "run-time budget of") {
		t.Fatalf("an example over the step budget: err = %v, want the budget named", err)
	}
}
