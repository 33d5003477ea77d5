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
  when: 'len(map(split(event.attrs["blob"], ""), #)) > 0'
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
	// 40000 characters fit an event the decoder accepts (64 KiB); the map
	// builds an array of 40000 elements, over the budget of 32768.
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
