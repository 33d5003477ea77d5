package backtest_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"riskd/backtest"
	"riskd/engine"
	"riskd/event"
	"riskd/internal/chtest"
	"riskd/rules"
)

// The live rule set replayed over a period of stored, live-decided
// traffic reproduces every recorded decision, and each rule's hits equal
// an independent SQL count over the stored decisions.
func TestTheLiveSetReproducesTheRecordedDecisions(t *testing.T) {
	set, rs := referenceSet(t)
	st, first, last := storeGenerated(t, set, rs, 30_000)
	from := first.Add(last.Sub(first) / 2).Truncate(time.Hour)
	to := last.Add(time.Second)

	rep, err := backtest.Run(t.Context(), backtest.Config{Store: st, Features: set, Rules: rs, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if rep.EventsWarmup == 0 || rep.EventsPeriod == 0 || rep.EventsWarmup+rep.EventsPeriod != 30_000 {
		t.Fatalf("replayed %d warm-up + %d period events, want 30000 with both > 0", rep.EventsWarmup, rep.EventsPeriod)
	}
	if rep.Totals.Changed != 0 || rep.Totals.RulesDiffer != 0 || rep.Totals.Compared != rep.EventsPeriod {
		t.Errorf("changed %d (%v), rules differ %d (%v), compared %d of %d: want 0, 0, all",
			rep.Totals.Changed, rep.Totals.Changes, rep.Totals.RulesDiffer, rep.Totals.RulesDifferExamples, rep.Totals.Compared, rep.EventsPeriod)
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("warnings: %q", rep.Warnings)
	}
	if p := rep.Reproduction; !p.Exact || p.Compared != rep.EventsPeriod || p.Identical != p.Compared || p.Differing != 0 ||
		p.NotReplayed != 0 || len(p.MissingVersions) != 0 || rep.Totals.ComparedWithRecorded != 0 {
		t.Errorf("reproduction %+v (compared with recorded %d): want exact over all %d events", p, rep.Totals.ComparedWithRecorded, rep.EventsPeriod)
	}
	for _, a := range rep.Totals.Actions {
		if a.Candidate != a.Recorded || a.Baseline != a.Recorded {
			t.Errorf("action %s: candidate %d, baseline %d, recorded %d", a.Action, a.Candidate, a.Baseline, a.Recorded)
		}
	}
	active, shadow := ruleHitsSQL(t, st, from, to)
	var hits int64
	for _, r := range rep.Rules {
		if r.Hits != active[r.ID] || r.ShadowHits != shadow[r.ID] {
			t.Errorf("rule %s: %d active and %d shadow hits, SQL counts %d and %d", r.ID, r.Hits, r.ShadowHits, active[r.ID], shadow[r.ID])
		}
		if r.Changed != 0 || r.RecordedHits != r.Hits+r.ShadowHits || r.BaselineHits != r.RecordedHits {
			t.Errorf("rule %s: changed %d, recorded %d, baseline %d, hits %d", r.ID, r.Changed, r.RecordedHits, r.BaselineHits, r.Hits+r.ShadowHits)
		}
		hits += r.Hits + r.ShadowHits
	}
	if hits == 0 || rep.Totals.Events.Fraud == 0 || rep.Totals.Attacks.Attacks == 0 {
		t.Fatalf("a test with no hits (%d), fraud (%d) or attacks (%d) proves nothing", hits, rep.Totals.Events.Fraud, rep.Totals.Attacks.Attacks)
	}
	if len(rep.Recorded) != 1 || rep.Recorded[0].Version != "1-"+rs.Version.Hash[:8] {
		t.Errorf("recorded versions %v, want one: 1-%s", rep.Recorded, rs.Version.Hash[:8])
	}

	// The support lock refused some of the account's events live; the
	// replay refused the same ones (no change above).
	acct, _ := supportAccount.Load(st.Database())
	var refused uint64
	if err := sqlConn(t).QueryRow(t.Context(), "SELECT count() FROM `"+st.Database()+"`.decisions FINAL WHERE account_id = ? AND reason = ?",
		acct, engine.ReasonAccountLocked).Scan(&refused); err != nil {
		t.Fatal(err)
	}
	if refused == 0 {
		t.Errorf("support's lock of %v refused no event: the test does not check locks", acct)
	}
	if rep.Totals.Actions[rules.Lock].Recorded == 0 {
		t.Errorf("no lock decision in the period: the test does not check rule locks")
	}

	// A warm-up shorter than the stored history says reproduction is not
	// guaranteed.
	rep, err = backtest.Run(t.Context(), backtest.Config{Store: st, Features: set, Rules: rs, From: from, To: to, Warmup: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Warnings) == 0 || !strings.Contains(rep.Warnings[0], "reproduction is not guaranteed") {
		t.Errorf("warnings with a 1h warm-up: %q", rep.Warnings)
	}
}

// A candidate with one rule removed changes exactly the decisions that
// an independent computation (the policy over the recorded matches less
// that rule) says, and no others.
func TestOneRuleRemovedChangesExactlyItsDecisions(t *testing.T) {
	set, rs := referenceSet(t)
	st, first, last := storeGenerated(t, set, rs, 20_000)
	from, to := first, last.Add(time.Second)
	conn := sqlConn(t)

	// The rule: a non-lock active rule with hits, none of them on a locked
	// decision (a lock changes later events, which this test does not
	// compute).
	var removed *rules.Rule
	for _, r := range rs.Rules {
		if r.Mode != rules.Active || r.Action == rules.Lock || r.Action < rules.Challenge {
			continue
		}
		var hits, locks uint64
		err := conn.QueryRow(t.Context(), "SELECT countIf(has(matched_rules, ?)), countIf(has(matched_rules, ?) AND action = 'lock') FROM `"+
			st.Database()+"`.decisions FINAL", r.ID, r.ID).Scan(&hits, &locks)
		if err != nil {
			t.Fatal(err)
		}
		if hits > 0 && locks == 0 {
			removed = r
			break
		}
	}
	if removed == nil {
		t.Fatal("no rule fits the test")
	}
	files := readReferenceFiles(t)
	candidate := compileWithout(t, files, removed.ID, set)

	// Independently: each recorded decision that matched the rule, decided
	// again by the policy from its other matched rules.
	want := map[string][2]string{}
	rows, err := conn.Query(t.Context(), "SELECT event_id, action, matched_rules FROM `"+st.Database()+
		"`.decisions FINAL WHERE has(matched_rules, ?)", removed.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, action string
		var matched []string
		if err := rows.Scan(&id, &action, &matched); err != nil {
			t.Fatal(err)
		}
		var rest []*rules.Rule
		for _, m := range matched {
			if m != removed.ID {
				rest = append(rest, candidate.Rule(m))
			}
		}
		if v := rules.Decide(rest, candidate.Thresholds); v.Action.String() != action {
			want[id] = [2]string{action, v.Action.String()}
		}
	}
	rows.Close()
	if len(want) == 0 {
		t.Fatalf("removing %s changes nothing: the test proves nothing", removed.ID)
	}
	t.Logf("removing %s changes %d decisions", removed.ID, len(want))

	rep, err := backtest.Run(t.Context(), backtest.Config{Store: st, Features: set, Rules: candidate, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Changed != int64(len(want)) {
		t.Errorf("removing %s: %d changed decisions, want %d", removed.ID, rep.Totals.Changed, len(want))
	}
	var n int64
	for _, c := range rep.Totals.Changes {
		n += c.Count
		for _, id := range c.Examples {
			if w, ok := want[id]; !ok || w != [2]string{c.From, c.To} {
				t.Errorf("%s changed %s -> %s; the independent computation says %v (changed: %v)", id, c.From, c.To, w, ok)
			}
		}
	}
	byPair := map[[2]string]int64{}
	for _, w := range want {
		byPair[w]++
	}
	for _, c := range rep.Totals.Changes {
		if byPair[[2]string{c.From, c.To}] != c.Count {
			t.Errorf("%s -> %s: %d, want %d", c.From, c.To, c.Count, byPair[[2]string{c.From, c.To}])
		}
	}
	if n != rep.Totals.Changed {
		t.Errorf("changes add up to %d, changed is %d", n, rep.Totals.Changed)
	}
	for _, r := range rep.Rules {
		if r.ID == removed.ID && (r.Mode != "absent" || r.LostHits != r.RecordedHits || r.LostHits == 0) {
			t.Errorf("removed rule's stats: %+v", r)
		}
	}
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "not the candidate") }) {
		t.Errorf("no warning that the recorded version differs: %q", rep.Warnings)
	}
}

// A candidate without the lock rules parts from the baseline at the first
// event of an account only the baseline has locked: the replay then
// splits its one feature state in two, and the baseline, going on alone
// from a copy of the state, still reproduces every recorded decision.
func TestTheBaselineStaysExactAfterTheReplaysPart(t *testing.T) {
	set, rs := referenceSet(t)
	st, first, last := storeGenerated(t, set, rs, 20_000)
	from, to := first, last.Add(time.Second)
	files := readReferenceFiles(t)
	var removed []string
	for _, r := range rs.Rules {
		if r.Action == rules.Lock {
			files = ruleFilesWithout(files, r.ID)
			removed = append(removed, r.ID)
		}
	}
	if len(removed) == 0 {
		t.Fatal("the reference rules have no lock rule")
	}
	candidate, err := rules.Compile(files, set)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := backtest.Run(t.Context(), backtest.Config{Store: st, Features: set, Rules: candidate, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	all := rep.EventsWarmup + rep.EventsPeriod
	if rep.SharedState == 0 || rep.SharedState >= all {
		t.Fatalf("shared state for %d of %d events: want the replays to part somewhere inside the stream", rep.SharedState, all)
	}
	if p := rep.Reproduction; !p.Exact || p.Compared != rep.EventsPeriod || p.Identical != p.Compared {
		t.Errorf("after parting at event %d: reproduction %+v, want exact over all %d events", rep.SharedState, p, rep.EventsPeriod)
	}
	if rep.Totals.Changed == 0 {
		t.Errorf("removing %v changed no decision", removed)
	}
	t.Logf("removing %v: parted after %d of %d events, %d decisions changed", removed, rep.SharedState, all, rep.Totals.Changed)
}

// Bad requests are refused before anything is read, naming what is wrong.
func TestBadRequestsAreRefused(t *testing.T) {
	set, rs := referenceSet(t)
	st, first, _ := storeGenerated(t, set, rs, 2_000)
	day := first.Truncate(24 * time.Hour)
	for _, c := range []struct {
		name string
		cfg  backtest.Config
		want string
	}{
		{"from after to", backtest.Config{From: day.Add(time.Hour), To: day},
			"bad backtest request: from 2026-11-24T01:00:00Z is not before to 2026-11-24T00:00:00Z"},
		{"period too long", backtest.Config{From: day, To: day.Add(32 * 24 * time.Hour)},
			"bad backtest request: period from 2026-11-24T00:00:00Z to 2026-12-26T00:00:00Z is 768h0m0s, longer than the limit of 744h0m0s: backtest a shorter period"},
		{"period over a custom limit", backtest.Config{From: day, To: day.Add(2 * time.Hour), Limits: backtest.Limits{MaxPeriod: time.Hour}},
			"bad backtest request: period from 2026-11-24T00:00:00Z to 2026-11-24T02:00:00Z is 2h0m0s, longer than the limit of 1h0m0s: backtest a shorter period"},
		{"no period", backtest.Config{}, "bad backtest request: from and to are both required"},
		{"negative warm-up", backtest.Config{From: day, To: day.Add(time.Hour), Warmup: -time.Hour},
			"bad backtest request: warmup -1h0m0s is negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Store, c.cfg.Features, c.cfg.Rules = st, set, rs
			_, err := backtest.Run(t.Context(), c.cfg)
			if !errors.Is(err, backtest.ErrBadRequest) || err.Error() != c.want {
				t.Errorf("got %v\nwant %s", err, c.want)
			}
		})
	}
	_, err := backtest.Run(t.Context(), backtest.Config{Store: st, Features: set, Rules: rs, From: day, To: day.Add(4 * 24 * time.Hour),
		Limits: backtest.Limits{MaxEvents: 1999}})
	if !errors.Is(err, backtest.ErrTooManyEvents) ||
		err.Error() != "backtest: too many events to replay: 2000 stored events from 2026-11-24T00:00:00Z to 2026-11-28T00:00:00Z (warm-up included), the limit is 1999: shorten the period or the warm-up" {
		t.Errorf("over MaxEvents: %v", err)
	}
	if _, err := backtest.Run(t.Context(), backtest.Config{Store: st, Features: set, Rules: rs, From: day, To: day.Add(4 * 24 * time.Hour),
		Limits: backtest.Limits{MaxEvents: 2000}}); err != nil {
		t.Errorf("at MaxEvents: %v", err)
	}
}

func readReferenceFiles(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := rules.ReadFiles(osDirFS("../bench/reference/rules"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// compileWithout compiles files less the rule id (its YAML item removed).
func compileWithout(t *testing.T, files map[string][]byte, id string, set rules.FeatureIndex) *rules.RuleSet {
	t.Helper()
	rs, err := rules.Compile(ruleFilesWithout(files, id), set)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Rule(id) != nil {
		t.Fatalf("rule %s still in the set", id)
	}
	return rs
}

// ruleFilesWithout returns the rule files less rule id's entry.
func ruleFilesWithout(files map[string][]byte, id string) map[string][]byte {
	out := maps.Clone(files)
	for name, b := range files {
		lines := strings.Split(string(b), "\n")
		start := slices.Index(lines, "- id: "+id)
		if start < 0 {
			continue
		}
		end := start + 1
		for end < len(lines) && !strings.HasPrefix(lines[end], "- ") {
			end++
		}
		out[name] = []byte(strings.Join(slices.Delete(lines, start, end), "\n"))
	}
	return out
}

// Label statistics on a small hand-checked case: per rule, per event,
// per attack and in money.
func TestLabelStatistics(t *testing.T) {
	set, _ := referenceSet(t)
	files := map[string][]byte{"r.yaml": []byte(`- id: big
  when: event.type == "payment" && event.amount > 1000
  action: block
- id: login-watch
  when: event.type == "login"
  action: alert
  mode: shadow
`)}
	rs, err := rules.Compile(files, set)
	if err != nil {
		t.Fatal(err)
	}
	st := chtest.Open(t)
	writeVersion(t, st, 1, files)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	evs := []event.Event{
		{ID: "e1", AccountID: "a1", Type: event.TypePayment, TS: t0.UnixMilli(), Amount: 5000, Label: "ato"},                      // big, caught
		{ID: "e2", AccountID: "a1", Type: event.TypePayment, TS: t0.Add(time.Hour).UnixMilli(), Amount: 500, Label: "ato"},        // same attack
		{ID: "e3", AccountID: "a2", Type: event.TypeWithdrawal, TS: t0.Add(2 * time.Hour).UnixMilli(), Amount: 800, Label: "ato"}, // missed
		{ID: "e4", AccountID: "a3", Type: event.TypePayment, TS: t0.Add(3 * time.Hour).UnixMilli(), Amount: 3000, Label: "not_fraud"},
		{ID: "e5", AccountID: "a4", Type: event.TypePayment, TS: t0.Add(4 * time.Hour).UnixMilli(), Amount: 1500},
		{ID: "e6", AccountID: "a4", Type: event.TypeLogin, TS: t0.Add(5 * time.Hour).UnixMilli()},
		{ID: "e7", AccountID: "a1", Type: event.TypeLogin, TS: t0.Add(6 * time.Hour).UnixMilli(), Label: "card_testing"},
		{ID: "e8", AccountID: "a1", Type: event.TypePayment, TS: t0.Add(30 * time.Hour).UnixMilli(), Amount: 2000, Label: "ato"}, // a new attack
	}
	holder := &rules.Holder{}
	holder.Install(rs, 1)
	sc := engine.NewScorer(engine.Config{}, set, holder)
	var ds []*engine.Decision
	for i, ev := range evs {
		if ev.Type == event.TypePayment || ev.Type == event.TypeWithdrawal {
			ev.Currency = "EUR"
		}
		var d engine.Decision
		if err := sc.Score(ev.AppendJSON(nil), engine.Source{Topic: "t", Offset: int64(i)}, &d); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d.Clone())
	}
	if err := st.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}

	rep, err := backtest.Run(t.Context(), backtest.Config{Store: st, Features: set, Rules: rs, From: t0.Add(-time.Hour), To: t0.Add(31 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	half, twoThirds := 0.5, 2.0/3
	type ruleWant struct {
		hits, shadow, fraud, notFraud, unlabelled int64
		precision, labelled                       *float64
	}
	want := map[string]ruleWant{
		"big":         {4, 0, 2, 1, 1, &half, &twoThirds},
		"login-watch": {0, 2, 1, 0, 1, &half, ptr(1.0)},
	}
	for _, r := range rep.Rules {
		w := want[r.ID]
		got := ruleWant{r.Hits, r.ShadowHits, r.Fraud, r.NotFraud, r.Unlabelled, r.Precision, r.LabelledPrecision}
		if got.hits != w.hits || got.shadow != w.shadow || got.fraud != w.fraud || got.notFraud != w.notFraud ||
			got.unlabelled != w.unlabelled || *got.precision != *w.precision || *got.labelled != *w.labelled {
			t.Errorf("rule %s: got %+v (precision %v, labelled %v), want %+v", r.ID, got, *got.precision, *got.labelled, w)
		}
	}
	ev := rep.Totals.Events
	if (ev != backtest.Detection{Fraud: 5, Caught: 2, CaughtRecorded: 2, Good: 3, GoodHit: 2, GoodHitRec: 2, NotFraud: 1, NotFraudHit: 1}) {
		t.Errorf("events: %+v", ev)
	}
	at := rep.Totals.Attacks
	wantAt := backtest.AttackDetection{Attacks: 4, Caught: 2, CaughtRecorded: 2, ByLabel: []backtest.LabelAttack{
		{Label: "ato", Attacks: 3, Caught: 2, CaughtRecorded: 2}, {Label: "card_testing", Attacks: 1}}}
	if !reflect.DeepEqual(at, wantAt) {
		t.Errorf("attacks: %+v\nwant %+v", at, wantAt)
	}
	if want := []backtest.AmountStopped{{Currency: "EUR", Total: 8300, Stopped: 7000, StoppedRecorded: 7000}}; !reflect.DeepEqual(rep.Totals.Amount, want) {
		t.Errorf("amount: %+v, want %+v", rep.Totals.Amount, want)
	}
	if rep.EventsPeriod != 8 || rep.Totals.Changed != 0 || len(rep.Warnings) != 0 {
		t.Errorf("period events %d, changed %d, warnings %q", rep.EventsPeriod, rep.Totals.Changed, rep.Warnings)
	}
}

func ptr[T any](v T) *T { return &v }

// A backtest stops when its context ends (the API's client went away),
// and reports progress on the way.
func TestCancelStopsTheReplay(t *testing.T) {
	set, rs := referenceSet(t)
	st, first, last := storeGenerated(t, set, rs, 20_000)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var seen []backtest.Progress
	_, err := backtest.Run(ctx, backtest.Config{Store: st, Features: set, Rules: rs, From: first, To: last.Add(time.Second),
		Progress: func(p backtest.Progress) { seen = append(seen, p); cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if len(seen) != 1 || seen[0].Done != 8192 || seen[0].Total != 20_000 {
		t.Errorf("progress %+v, want one call at 8192 of 20000", seen)
	}
}
