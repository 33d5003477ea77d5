package reference

import (
	"fmt"
	"sort"
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
// while few normal events are stopped. It is the workload's sanity check,
// not a benchmark: with -v it logs the report of bench/detection (attacks
// stopped before loss, amount kept, honest accounts disturbed per 10,000,
// time to flag) and the rule hits.
func TestDetection(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	set := loadFeatures(t)
	rs, err := rules.Load("rules", set)
	if err != nil {
		t.Fatal(err)
	}
	g := traffic.New(traffic.Config{
		Accounts: 5000, Seed: 11, FraudRate: 0.03,
		Start:           time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC),
		EventsPerSecond: 0,
	})
	store := set.NewStore()
	ev := rules.NewEvaluator()
	var vals features.Values
	var out rules.Outcome

	tally := detection.NewTally()
	type tally2 struct{ instances, caught int }
	scen := map[string]*tally2{}
	caught := map[uint64]bool{} // attacks with a decision of review or worse
	hits := map[string]int{}
	normalHits := map[string]int{}
	var normal, normalStopped int
	var e event.Event
	const n, warmup = 90000, 30000 // profiles start empty: skip their cold start
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
		if err := tally.Add(detection.Event{ID: e.ID, Account: e.AccountID, Scenario: e.Label, Attack: attack,
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
			continue
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
	if err := tally.Report().WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("as a wallet counts it (honest accounts after warm-up, every attack):\n%s", table.String())
	t.Logf("rule hits, all events: %s", formatHits(hits))
	t.Logf("rule hits, normal events: %s", formatHits(normalHits))
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
