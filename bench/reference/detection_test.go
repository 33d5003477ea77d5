package reference

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"riskd/bench/detection"
	"riskd/bench/traffic"
	"riskd/event"
	"riskd/features"
	"riskd/rules"
)

// TestDetection runs generated traffic through the reference features and
// rules and checks that every fraud scenario is caught by some active rule
// while few normal events are stopped, and, at the default seed and size,
// the wallet figures against issue 15's goals (checkGoals). With -v it
// logs the report of bench/detection (attacks stopped before loss, amount
// kept, honest accounts disturbed per 10,000, time to flag), the rule
// hits, what disturbed honest accounts, and per rule the figures quoted
// in the rule files. RISKD_DETECTION_SEED, RISKD_DETECTION_ACCOUNTS,
// RISKD_DETECTION_EVENTS and RISKD_DETECTION_FRAUD_PCT change the traffic
// (defaults 11, 5,000, 18 events per account and 3% fraud);
// RISKD_DETECTION_BENCH=1 gives it the benchmark's shape instead (owners
// equally busy, start at midnight, honest accounts counted from the first
// event, as bench/e2e counts them), so that with 1,000,000 accounts and
// events, 2% fraud and seed 1 it is the traffic of `make bench`;
// RISKD_DETECTION_SHOW=k logs k disturbed honest accounts' stopping events
// with their profiles.
func TestDetection(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	set := loadFeatures(t)
	rs, err := rules.Load("rules", set)
	if err != nil {
		t.Fatal(err)
	}
	defaults := os.Getenv("RISKD_DETECTION_SEED")+os.Getenv("RISKD_DETECTION_ACCOUNTS")+os.Getenv("RISKD_DETECTION_EVENTS")+
		os.Getenv("RISKD_DETECTION_FRAUD_PCT")+os.Getenv("RISKD_DETECTION_BENCH") == ""
	seed := envInt(t, "RISKD_DETECTION_SEED", 11, 0, math.MaxInt64)
	accounts := envInt(t, "RISKD_DETECTION_ACCOUNTS", 5000, 16, 1_000_000)
	// Events scale with accounts: 18 per account, the first third warm-up.
	n := envInt(t, "RISKD_DETECTION_EVENTS", 18*accounts, 1000, 20_000_000)
	fraudPct := envInt(t, "RISKD_DETECTION_FRAUD_PCT", 3, 1, 20)
	bench := envInt(t, "RISKD_DETECTION_BENCH", 0, 0, 1) == 1
	warmup := n / 3 // profiles start empty: skip their cold start
	cfg := traffic.Config{
		Accounts: accounts, Seed: uint64(seed), FraudRate: float64(fraudPct) / 100, ActivitySpread: 0.9,
		Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC),
	}
	if bench { // bench/e2e's saturationTraffic, counted as bench/e2e counts
		cfg.ActivitySpread, cfg.Start, warmup = 0, time.Time{}, 0
	}
	// With RISKD_DETECTION_SHOW=k, the first k disturbed honest accounts'
	// stopping events are logged with their profile features.
	show := envInt(t, "RISKD_DETECTION_SHOW", 0, 0, 1000)
	shown := map[string]string{}
	t.Logf("seed %d, %d accounts, %d events (warm-up %d), %d%% fraud, benchmark shape %v", seed, accounts, n, warmup, fraudPct, bench)
	g := traffic.New(cfg)
	store := set.NewStore()
	ev := rules.NewEvaluator()
	var vals features.Values
	var out rules.Outcome

	tally := detection.NewTally()
	type tally2 struct{ instances, caught int }
	scen := map[string]*tally2{}
	caught := map[uint64]bool{} // attacks with a decision of review or worse
	hits := map[string]int{}
	// Per rule: the attacks it matched an event of, by scenario, for the
	// figures in the rule files' comments.
	type stat struct {
		attacks   map[uint64]int
		scenarios map[string]int
	}
	stats := map[string]*stat{}
	ruleStat := func(id string) *stat {
		if stats[id] == nil {
			stats[id] = &stat{attacks: map[uint64]int{}, scenarios: map[string]int{}}
		}
		return stats[id]
	}
	normalHits := map[string]int{}
	var normal, normalStopped int
	victims := map[string]bool{}
	// disturbedBy holds, per honest account, the matched rules of its
	// first stopping decision; "(score)" when only the thresholds stopped.
	disturbedBy := map[string][]string{}
	var e event.Event
	for i := 0; i < n; i++ {
		g.Next(&e)
		attack, role := g.Attack()
		store.Observe(&e, &vals)
		env := ev.Env()
		env.Event = e
		env.F = vals.Profile
		env.W = vals.Windows
		env.Account = rules.AccountInfo{ID: e.AccountID, AgeDays: vals.Profile.AccountAgeDays}
		ev.Eval(rs, &out)
		stopped := false
		for _, r := range out.Matched {
			hits[r.ID]++
			if r.Action >= rules.Review {
				stopped = true
			}
			if attack != 0 {
				st := ruleStat(r.ID)
				if st.attacks[attack] == 0 {
					st.scenarios[e.Label]++
				}
				st.attacks[attack]++
			}
		}
		if len(out.Errored) > 0 {
			t.Fatalf("rule %s failed: %s", out.Errored[0].ID, out.ErrorTexts[0])
		}
		if e.Label == "" && i < warmup {
			continue
		}
		// The engine's action: the strongest matched rule's, raised by the
		// pack's score thresholds. (A lock's hold on the account's later
		// events is not played here.)
		action := rules.Decide(out.Matched, rs.Thresholds).Action
		if err := tally.Add(detection.Event{ID: e.ID, Account: e.AccountID, Victim: g.Victim(), Scenario: e.Label, Attack: attack,
			Role: role, TS: e.TS, Amount: e.Amount, Action: action.String()}); err != nil {
			t.Fatal(err)
		}
		if e.Label == "" {
			normal++
			for _, r := range out.Matched {
				normalHits[r.ID]++
			}
			if stopped {
				normalStopped++
			}
			if action >= rules.Challenge && disturbedBy[e.AccountID] == nil {
				var ids []string
				for _, r := range out.Matched {
					if r.Action >= rules.Challenge {
						ids = append(ids, r.ID)
					}
				}
				if ids == nil {
					ids = append(ids, "(score)")
					for _, r := range out.Matched {
						ids = append(ids, r.ID)
					}
				}
				disturbedBy[e.AccountID] = ids
				if show > 0 {
					shown[e.AccountID] = fmt.Sprintf("%s %s %s dev=%s ip=%s %s amount=%d payee=%s card=%s: %v profile=%+v",
						e.ID, e.AccountID, e.Type, e.Device.ID, e.IP, e.Geo.Country, e.Amount, e.PayeeID, e.CardID, ids, vals.Profile)
				}
			}
			continue
		}
		victims[e.AccountID] = true
		if v := g.Victim(); v != "" {
			victims[v] = true
		}
		if role.Has(traffic.RoleFirst) {
			if scen[e.Label] == nil {
				scen[e.Label] = &tally2{}
			}
			scen[e.Label].instances++
		}
		if stopped && !caught[attack] {
			caught[attack] = true
			scen[e.Label].caught++
		}
	}
	for _, name := range traffic.Scenarios {
		s := scen[name]
		if s == nil {
			t.Errorf("scenario %s never generated", name)
			continue
		}
		t.Logf("%-20s caught %d of %d (review or worse at any step)", name, s.caught, s.instances)
		if s.caught*2 < s.instances {
			t.Errorf("scenario %s: only %d of %d instances caught", name, s.caught, s.instances)
		}
	}
	fp := float64(normalStopped) / float64(normal)
	t.Logf("normal events after warm-up reviewed or worse: %d of %d (%.3f%%)", normalStopped, normal, 100*fp)
	if fp > 0.01 {
		t.Errorf("%.2f%% of normal events stopped; the reference pack is too noisy", 100*fp)
	}
	var table strings.Builder
	report := tally.Report()
	if err := report.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("as a wallet counts it (honest accounts after a warm-up of %d events, every attack):\n%s", warmup, table.String())
	if defaults {
		checkGoals(t, report)
	}
	t.Logf("rule hits, all events: %s", formatHits(hits))
	t.Logf("rule hits, normal events: %s", formatHits(normalHits))
	// What disturbed honest accounts (victims' owners left out, as in the
	// report): the stopping rule of each account's first stopping
	// decision, or "(score)" and the rules whose scores added up.
	byRule := map[string]int{}
	for acct, ids := range disturbedBy {
		if !victims[acct] {
			byRule[strings.Join(ids, "+")]++
		}
	}
	t.Logf("honest accounts disturbed, by rule: %s", formatHits(byRule))
	for _, r := range rs.Rules {
		st := ruleStat(r.ID)
		t.Logf("rule %s: attacks matched %d %s; honest events matched %d; honest accounts it disturbed %d",
			r.ID, len(st.attacks), formatHits(st.scenarios), normalHits[r.ID], byRule[r.ID])
	}
	lines := make([]string, 0, len(shown))
	for acct, line := range shown {
		if !victims[acct] {
			lines = append(lines, line)
		}
	}
	sort.Strings(lines)
	for _, line := range lines[:min(show, len(lines))] {
		t.Logf("disturbed honest account: %s", line)
	}
}

// checkGoals holds the default run to issue 15's goals: at least 90% of
// the attacks of every scenario stopped before loss, at most 10 honest
// accounts disturbed per 10,000. Other seeds and sizes are only reported:
// the figures move with them (see bench/RESULTS.md).
func checkGoals(t *testing.T, r detection.Report) {
	t.Helper()
	for _, s := range r.Scenarios {
		if s.StoppedBeforeLossShare < 0.9 {
			t.Errorf("%s: %.1f%% of attacks stopped before loss, want at least 90%%", s.Name, 100*s.StoppedBeforeLossShare)
		}
	}
	if r.Honest.DisturbedPer10k > 10 {
		t.Errorf("%.1f honest accounts disturbed per 10,000, want at most 10", r.Honest.DisturbedPer10k)
	}
}

// envInt reads a whole number from the environment variable name, def
// when it is unset; it fails the test when the value is not a number in
// [lo, hi].
func envInt(t *testing.T, name string, def, lo, hi int) int {
	t.Helper()
	v, err := parseEnvInt(name, os.Getenv(name), def, lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func parseEnvInt(name, s string, def, lo, hi int) (int, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s=%q: want a whole number from %d to %d", name, s, lo, hi)
	}
	return v, nil
}

// TestDetectionSettingsAreBounded: the sizes the detection test takes from
// the environment are bounded, and a bad one names the variable.
func TestDetectionSettingsAreBounded(t *testing.T) {
	const fraud, accounts = "RISKD_DETECTION_FRAUD_PCT", "RISKD_DETECTION_ACCOUNTS"
	for _, tt := range []struct {
		name, in       string
		def, lo, hi, v int
		want           string
	}{
		{fraud, "", 3, 1, 20, 3, ""},
		{fraud, "1", 3, 1, 20, 1, ""},
		{fraud, "20", 3, 1, 20, 20, ""},
		{fraud, "0", 3, 1, 20, 0, `RISKD_DETECTION_FRAUD_PCT="0": want a whole number from 1 to 20`},
		{fraud, "21", 3, 1, 20, 0, `RISKD_DETECTION_FRAUD_PCT="21": want a whole number from 1 to 20`},
		{fraud, "2.5", 3, 1, 20, 0, `RISKD_DETECTION_FRAUD_PCT="2.5": want a whole number from 1 to 20`},
		{accounts, "", 5000, 16, 1_000_000, 5000, ""},
		{accounts, "16", 5000, 16, 1_000_000, 16, ""},
		{accounts, "1000000", 5000, 16, 1_000_000, 1000000, ""},
		{accounts, "1000001", 5000, 16, 1_000_000, 0, `RISKD_DETECTION_ACCOUNTS="1000001": want a whole number from 16 to 1000000`},
		{accounts, "15", 5000, 16, 1_000_000, 0, `RISKD_DETECTION_ACCOUNTS="15": want a whole number from 16 to 1000000`},
		{accounts, "5k", 5000, 16, 1_000_000, 0, `RISKD_DETECTION_ACCOUNTS="5k": want a whole number from 16 to 1000000`},
	} {
		v, err := parseEnvInt(tt.name, tt.in, tt.def, tt.lo, tt.hi)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want || v != tt.v {
			t.Errorf("%s=%q: %d, %q; want %d, %q", tt.name, tt.in, v, got, tt.v, tt.want)
		}
	}
}

func formatHits(hits map[string]int) string {
	ids := make([]string, 0, len(hits))
	for id := range hits {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%s=%d ", id, hits[id])
	}
	return b.String()
}
