package rules

import (
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/expr-lang/expr/vm"

	"riskd/event"
)

func TestAttrNum(t *testing.T) {
	attrs := event.Attrs{"int": "12", "neg": "-3.5", "exp": "1e3", "text": "abc", "empty": "", "space": " 12",
		"hex": "0x10", "nan": "NaN", "inf": "Inf", "huge": "1e999", "under": "1_000", "bool": "true",
		"dot": ".5", "trail": "5.", "sign": "+7", "bare-exp": "1e", "dot-only": "."}
	for key, want := range map[string]float64{"int": 12, "neg": -3.5, "exp": 1000, "dot": 0.5, "trail": 5, "sign": 7,
		"missing": -1, "text": -1, "empty": -1, "space": -1, "hex": -1, "nan": -1, "inf": -1, "huge": -1,
		"under": -1, "bool": -1, "bare-exp": -1, "dot-only": -1} {
		if got := AttrNum(attrs, key, -1); got != want {
			t.Errorf("attr_num(%q = %q, -1) = %v, want %v", key, attrs[key], got, want)
		}
	}
	if got := AttrNum(nil, "k", 7); got != 7 {
		t.Errorf("attr_num on an event without attrs = %v, want the default 7", got)
	}
	// Only a number out of float64's range ("1e999") allocates, in
	// strconv's error.
	if n := testing.AllocsPerRun(100, func() { AttrNum(attrs, "text", 0); AttrNum(attrs, "neg", 0) }); n != 0 {
		t.Errorf("attr_num allocates %.0f times", n)
	}
}

func TestAttrStrRatioZScore(t *testing.T) {
	attrs := event.Attrs{"k": "v", "empty": ""}
	for key, want := range map[string]string{"k": "v", "empty": "", "missing": "dflt"} {
		if got := AttrStr(attrs, key, "dflt"); got != want {
			t.Errorf("attr_str(%q) = %q, want %q", key, got, want)
		}
	}
	for _, c := range []struct{ a, b, want float64 }{{10, 4, 2.5}, {10, 0, 0}, {0, 0, 0}, {-3, 0, 0}, {1, -2, -0.5}} {
		if got := Ratio(c.a, c.b); got != c.want {
			t.Errorf("ratio(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
	for _, c := range []struct{ x, m, sd, want float64 }{{10, 4, 2, 3}, {10, 4, 0, 0}, {10, 4, -1, 0}, {10, 4, math.NaN(), 0}, {1, 4, 3, -1}} {
		if got := ZScore(c.x, c.m, c.sd); got != c.want {
			t.Errorf("zscore(%v, %v, %v) = %v, want %v", c.x, c.m, c.sd, got, c.want)
		}
	}
}

func TestHelperMisuseIsACompileErrorAtItsPosition(t *testing.T) {
	tests := []struct{ when, want string }{
		{`attr_num("k") > 1`, `2:10: rule r: attr_num takes 2 arguments, a constant key and a default (attr_num("k", 0)), got 1`},
		{`attr_num("k", 0, 1) > 1`, `2:10: rule r: attr_num takes 2 arguments, a constant key and a default (attr_num("k", 0)), got 3`},
		{`attr_num(event.type, 0) > 1`, `2:25: rule r: attr_num needs a constant key string as its first argument (attr_num("k", 0))`},
		{`attr_num("k", "0") > 1`, `2:24: rule r: attr_num: the default must be a number, got a string`},
		{`attr_num("k", true) > 1`, `2:24: rule r: attr_num: the default must be a number, got a bool`},
		{`attr_num("k", event.type) > 1`, `2:30: rule r: cannot use string as argument (type float64) to call attr_num`},
		{`attr_num("k", 0) == "x"`, `2:27: rule r: invalid operation: == (mismatched types float64 and string)`},
		{`attr_str("k") == "x"`, `2:10: rule r: attr_str takes 2 arguments, a constant key and a default (attr_str("k", "")), got 1`},
		{`attr_str("k", 0) == "x"`, `2:24: rule r: attr_str: the default must be a string, got a number`},
		{`attr_str("k", -1.5) == "x"`, `2:24: rule r: attr_str: the default must be a string, got a number`},
		{`attr_str("k", event.amount) == "x"`, `2:30: rule r: cannot use int64 as argument (type string) to call attr_str`},
		{`ratio(1) > 1`, `2:10: rule r: not enough arguments to call ratio`},
		{`ratio(1, 2, 3) > 1`, `2:10: rule r: too many arguments to call ratio`},
		{`ratio("a", 1) > 1`, `2:16: rule r: cannot use string as argument (type float64) to call ratio`},
		{`zscore(event.amount, 1) > 1`, `2:10: rule r: not enough arguments to call zscore`},
		{`zscore(1, 2, event.currency) > 1`, `2:29: rule r: cannot use string as argument (type float64) to call zscore`},
		{`local_hour(event.ts) < 5`, `2:10: rule r: local_hour takes no argument or event (it reads the event's ts and tz), got 1 arguments`},
		{`local_hour() == "night"`, `2:23: rule r: invalid operation: == (mismatched types int and string)`},
	}
	for _, tt := range tests {
		_, err := compileOne(t, "- id: r\n  when: '"+tt.when+"'\n")
		if want := "auth.yaml:" + tt.want; err == nil || err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", tt.when, err, want)
		}
	}
}

// helperRules use the helpers and the typed facts, each alone and as a
// rule would.
var helperRules = []string{
	`attr_num("score", 0) > 0.5`,
	`attr_num("score", -1) == -1`,
	`attr_num("score", event.amount) >= 100`,
	`attr_str("campaign", "none") == "none"`,
	`attr_str("campaign", event.currency) == "EUR"`,
	`ratio(event.amount, f.avg_amount_30d) > 3`,
	`ratio(event.amount, 0) == 0 && event.amount > 100`,
	`ratio(attr_num("score", 0), f.payments_1h) >= 1`,
	`zscore(event.amount, f.avg_amount_30d, f.failed_logins_15m) > 2`,
	`zscore(event.amount, 1000, 0) == 0 && event.currency == "EUR"`,
	`local_hour() < 6 || local_hour() >= 22`,
	`local_hour(event) == hour(event.ts)`,
	`event.has_balance_after && event.balance_after < 0`,
	`event.has_balance_before && event.amount > 0.9 * event.balance_before`,
	`event.has_kyc_level && event.kyc_level < 2 && event.amount > 50000`,
	`event.has_mfa_passed && !event.mfa_passed`,
	`event.has_account_created_at && event.account_age_days < 7`,
	`event.tz == "Asia/Kathmandu"`,
}

// TestHelpersRunNativelyAndAgreeWithTheVM compiles each helper rule both
// ways and compares them on events with and without the attributes and
// facts, zero divisors and zones across DST.
func TestHelpersRunNativelyAndAgreeWithTheVM(t *testing.T) {
	rs := mustCompile(t, "")
	r := rand.New(rand.NewPCG(3, 4))
	scores := []string{"", "0.7", "12", "abc", "1e3", "-5", "NaN", "0x10", "150"}
	zones := []string{"", "UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"}
	for _, src := range helperRules {
		c := newCompiler(rs, feats)
		pr := &parsedRule{rule: &Rule{ID: "x", When: src}}
		if err := c.compileRule(pr); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		rule := pr.rule
		if rule.native == nil {
			t.Errorf("%s: not compiled natively", src)
			continue
		}
		matched := 0
		for i := range 3000 {
			env := &Env{InList: rs.inList}
			env.Event = event.Event{
				Type:     "payment",
				Currency: []string{"EUR", "USD"}[r.IntN(2)],
				Amount:   int64(r.IntN(200)) * []int64{1, 1000}[r.IntN(2)],
				// around the 2026 DST changes of Berlin and New York
				TS: []int64{1774745999000, 1774746000000, 1792890000000, 1793512200000, 1795538400000}[r.IntN(5)] +
					int64(r.IntN(4))*1800_000,
				TZ:            zones[r.IntN(len(zones))],
				BalanceBefore: r.Int64N(200000) - 50000, HasBalanceBefore: r.IntN(2) == 0,
				BalanceAfter: r.Int64N(200000) - 50000, HasBalanceAfter: r.IntN(2) == 0,
				KYCLevel: r.IntN(10), HasKYCLevel: r.IntN(2) == 0,
				MFAPassed: r.IntN(2) == 0, HasMFAPassed: r.IntN(2) == 0,
				AccountCreatedAt: 1795538400000 - r.Int64N(30*86400_000), HasAccountCreatedAt: r.IntN(2) == 0,
			}
			env.Event.SetDerived()
			if s := scores[r.IntN(len(scores))]; s != "" {
				env.Event.Attrs = event.Attrs{"score": s}
			}
			if r.IntN(2) == 0 {
				if env.Event.Attrs == nil {
					env.Event.Attrs = event.Attrs{}
				}
				env.Event.Attrs["campaign"] = []string{"EUR", "xmas"}[r.IntN(2)]
			}
			env.F.AvgAmount30d = float64(r.IntN(3)) * 1000
			env.W[0] = float64(r.IntN(3)) // failed_logins_15m: 0 is a zero sd
			env.W[3] = float64(r.IntN(3)) // payments_1h: 0 is a zero divisor
			out, err := vm.Run(rule.program, env)
			if err != nil {
				t.Fatalf("%s: VM error %v for %+v", src, err, env.Event)
			}
			got, want := rule.native(env), out.(bool)
			if got != want {
				t.Fatalf("%s #%d: native %v, VM %v for %+v f %+v w %v", src, i, got, want, env.Event, env.F, env.W[:4])
			}
			if want {
				matched++
			}
		}
		if matched == 0 || matched == 3000 {
			t.Errorf("%s: matched %d of 3000 events; the comparison checked only one side", src, matched)
		}
	}
}

func TestHelpersInExamplesAndTestEvents(t *testing.T) {
	rs := mustCompile(t, `
- id: night-drain
  when: event.type == "payment" && (local_hour() < 6) && event.has_balance_after && event.balance_after < 1000 && attr_num("risk", 0) > 0.5
  action: review
  examples:
    - event: {type: payment, ts: 1795550400000, tz: Asia/Tokyo, balance_after: 500, attrs: {risk: "0.9"}}
      expect: match
    - event: {type: payment, ts: 1795550400000, balance_after: 500, attrs: {risk: "0.9"}}
      expect: no_match
    - event: {type: payment, ts: 1795550400000, tz: Asia/Tokyo, attrs: {risk: "0.9"}}
      expect: no_match
    - event: {type: payment, ts: 1795550400000, tz: Asia/Tokyo, balance_after: 500, attrs: {risk: "high"}}
      expect: no_match
`)
	if r := rs.Rule("night-drain"); r == nil || r.native == nil {
		t.Fatalf("rule missing or not native: %+v", r)
	}
}

func TestLintKnowsTheHelpers(t *testing.T) {
	problems := Lint(map[string][]byte{"r.yaml": []byte(`- id: r
  when: attr_nun("k", 0) > 1 && locl_hour() < 5
`)}, feats)
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := "r.yaml:2:9: r: unknown name attr_nun; did you mean attr_num?\nr.yaml:2:33: r: unknown name locl_hour; did you mean local_hour?"
	if strings.Join(got, "\n") != want {
		t.Errorf("lint:\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
}

// TestEventsDocExamplesCompile compiles the rule examples of
// docs/EVENTS.md, so the page cannot show a rule riskd refuses.
func TestEventsDocExamplesCompile(t *testing.T) {
	doc, err := os.ReadFile("../docs/EVENTS.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	for _, part := range strings.Split(string(doc), "```yaml\n")[1:] {
		src, _, _ := strings.Cut(part, "```")
		blocks++
		if _, err := Compile(map[string][]byte{"doc.yaml": []byte(src)}, testFeatures{"stddev_amount_30d": 0}); err != nil {
			t.Errorf("EVENTS.md yaml block %d: %v", blocks, err)
		}
	}
	if blocks == 0 {
		t.Error("EVENTS.md has no yaml example")
	}
}

func TestLintFlagsUnguardedAttrConversions(t *testing.T) {
	problems := Lint(map[string][]byte{"r.yaml": []byte(`- id: flagged
  when: float(event.attrs["score"]) > 0.5
- id: guarded
  when: '"score" in event.attrs && float(event.attrs["score"]) > 0.5'
- id: helper
  when: attr_num("score", 0) > 0.5
`)}, feats)
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := `r.yaml:2:9: flagged: float(event.attrs["score"]) fails on every event without that attribute or with one that is not a number; write attr_num("score", 0) (0 or another default), or test "score" in event.attrs first`
	if strings.Join(got, "\n") != want {
		t.Errorf("lint:\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
}
