package rules

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"riskd/bench/traffic"
	"riskd/event"
	"riskd/features"
)

// loadReferenceRules compiles the reference workload of bench/reference.
func loadReferenceRules(t testing.TB) (*features.Set, *RuleSet) {
	t.Helper()
	set, err := features.LoadFile(filepath.Join("..", "bench", "reference", "features.yaml"), features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Load(filepath.Join("..", "bench", "reference", "rules"), set)
	if err != nil {
		t.Fatal(err)
	}
	return set, rs
}

func TestEveryReferenceRuleRunsNatively(t *testing.T) {
	_, rs := loadReferenceRules(t)
	for _, r := range rs.Rules {
		if r.native == nil {
			t.Errorf("rule %s runs in the VM: %s", r.ID, r.When)
		}
	}
}

func TestRulesTheNativeCompilerDoesNotKnowStayInTheVM(t *testing.T) {
	for _, when := range []string{
		`int(event.attrs["n"]) > 3`,                         // map index and conversion: may fail
		`haversine(event.geo.lat, event.geo.lon, 0, 0) > 1`, // helper with []any arguments
		`event.amount % 7 == 1`,                             // % fails on zero
		`f.new_device == true`,                              // bool equality: left to expr
		`event.device?.id == "x"`,                           // optional chaining
		`len(event.payee_id) > 3`,                           // builtins
		`event.amount > 5 ? true : false`,                   // conditionals
	} {
		tree, err := parser.Parse(when)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if p, _ := compileNative(tree.Node, feats, nil); p != nil {
			t.Errorf("%s: compiled natively, want the VM", when)
		}
	}
}

// TestNativeRulesAgreeWithTheVM runs every reference rule both ways, native
// closure and expr program, over generated traffic with real feature values
// and then over the same events with feature values pushed to the rules'
// thresholds, NaN and infinities, and requires the same result each time.
func TestNativeRulesAgreeWithTheVM(t *testing.T) {
	set, rs := loadReferenceRules(t)
	n := 30_000
	if testing.Short() {
		n = 5_000
	}
	g := traffic.New(traffic.Config{Accounts: 2000, Seed: 3, FraudRate: 0.2,
		Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	store := set.NewStore()
	var dec event.Decoder
	var vals features.Values
	env := &Env{InList: rs.inList}
	r := rand.New(rand.NewPCG(5, 6))
	odd := []float64{0, 1, 2, 3, 5, 10, 15, 300, 500, 600, 900, 1800, 3600, 86400,
		100000, 500000, 1e6, -1, 0.5, math.NaN(), math.Inf(1), math.Inf(-1)}
	pick := func() float64 {
		if r.IntN(3) == 0 {
			return r.Float64() * 1e6
		}
		return odd[r.IntN(len(odd))]
	}
	matches := make(map[string]int)
	check := func(i int, what string) {
		t.Helper()
		for _, rule := range rs.Rules {
			if rule.native == nil {
				continue
			}
			out, err := vm.Run(rule.program, env)
			if err != nil {
				t.Fatalf("event %d (%s): rule %s: VM error %v but the native form cannot fail", i, what, rule.ID, err)
			}
			want, _ := out.(bool)
			if got := rule.native(env); got != want {
				t.Fatalf("event %d (%s): rule %s: native %v, VM %v\nevent %+v\nf %+v\nw %v\naccount %+v",
					i, what, rule.ID, got, want, env.Event, env.F, env.W, env.Account)
			}
			if want {
				matches[rule.ID]++
			}
			if rule.nativeTyped != nil && slices.Contains(rule.Types, env.Event.Type) {
				if got := rule.nativeTyped(env); got != want {
					t.Fatalf("event %d (%s): rule %s without its type test: %v, VM %v", i, what, rule.ID, got, want)
				}
			}
		}
	}
	for i := range n {
		raw := g.AppendJSON(nil)
		if err := dec.Decode(raw, &env.Event); err != nil {
			t.Fatal(err)
		}
		store.Observe(&env.Event, &vals)
		env.F, env.W = vals.Profile, vals.Windows
		env.Account = AccountInfo{AgeDays: float64(r.IntN(5)), LockedBefore: r.IntN(3)}
		check(i, "traffic")

		pv := reflect.ValueOf(&env.F).Elem()
		for j := range pv.NumField() {
			switch f := pv.Field(j); f.Kind() {
			case reflect.Float64:
				f.SetFloat(pick())
			case reflect.Bool:
				f.SetBool(r.IntN(2) == 0)
			}
		}
		for j := range env.W {
			env.W[j] = pick()
		}
		env.Event.Amount = int64(pick()) // NaN and Inf convert to some int64, which is fine here
		env.Event.Device.Rooted = r.IntN(2) == 0
		env.Event.Device.Emulator = r.IntN(2) == 0
		env.Account.AgeDays = pick()
		check(i, "perturbed")
	}
	for _, rule := range rs.Rules {
		if matches[rule.ID] == 0 {
			t.Logf("rule %s never matched; its comparisons were checked only on the false side", rule.ID)
		}
	}
}

// TestNativeOperandsFollowExprTyping compares native and VM results for
// expressions that mix int and float operands, arithmetic and constants on
// either side.
func TestNativeOperandsFollowExprTyping(t *testing.T) {
	exprs := []string{
		`event.amount > 10 * f.avg_amount_30d`,
		`event.amount >= 0.8 * f.payments_1h`,
		`event.amount / 3 > 2`,
		`event.amount * 2 - 1 == 9`,
		`event.amount + 1 != 8`,
		`3 < event.amount`,
		`1.5 <= f.amount_ratio`,
		`-5 < f.km_from_last - 10`,
		`account.locked_before >= 2 || account.locked`,
		`not (event.device.rooted and event.device.emulator)`,
		`!f.new_device && event.geo.has_point`,
		`event.type in ["payment", "topup"] && event.currency != "EUR"`,
		`hour(event.ts) < 5 || hour(event.ts) >= 22`,
		`in_list("scam_payees", event.payee_id) or event.mcc == "5411"`,
		`f.failed_logins_15m > 2.5 and f.failed_logins_15m <= 4`,
		`event.geo.lat - event.geo.lon < 0.25`,
		`event.ts == 1795538400000`,
		`true && event.amount < 1e3`,
	}
	rs := mustCompile(t, "")
	r := rand.New(rand.NewPCG(8, 9))
	for _, src := range exprs {
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
		for i := range 2000 {
			env := &Env{InList: rs.inList}
			env.Event = event.Event{
				Type:     []string{"payment", "topup", "login"}[r.IntN(3)],
				Currency: []string{"EUR", "USD"}[r.IntN(2)],
				Amount:   int64(r.IntN(20)) * []int64{1, 1000}[r.IntN(2)],
				TS:       1795538400000 + int64(r.IntN(48))*1800_000 - int64(r.IntN(2))*3600_000*24*365*60,
				PayeeID:  []string{"payee-bad-1", "payee-7"}[r.IntN(2)],
				MCC:      []string{"5411", "5999"}[r.IntN(2)],
				Device:   event.Device{Rooted: r.IntN(2) == 0, Emulator: r.IntN(2) == 0},
				Geo:      event.Geo{Lat: r.Float64()*2 - 1, Lon: r.Float64()*2 - 1, HasPoint: r.IntN(2) == 0},
			}
			env.F.NewDevice = r.IntN(2) == 0
			env.F.AvgAmount30d = float64(r.IntN(5)) * 0.5
			env.F.AmountRatio = float64(r.IntN(4)) * 0.5
			env.F.KmFromLast = float64(r.IntN(20))
			env.W[0] = float64(r.IntN(10)) * 0.5
			env.W[3] = float64(r.IntN(10))
			env.Account = AccountInfo{LockedBefore: r.IntN(4), Locked: r.IntN(2) == 0}
			out, err := vm.Run(rule.program, env)
			if err != nil {
				t.Fatalf("%s: VM error %v", src, err)
			}
			if got, want := rule.native(env), out.(bool); got != want {
				t.Fatalf("%s #%d: native %v, VM %v for %+v %+v %v", src, i, got, want, env.Event, env.F, env.W[:4])
			}
		}
	}
}
