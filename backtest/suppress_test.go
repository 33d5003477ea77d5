package backtest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"riskd/backtest"
	"riskd/bench/traffic"
	"riskd/engine"
	"riskd/event"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/chstore"
)

// TestASuppressionInTheHistoryIsHonoured: support suppressed a rule for
// an account a third of the way through live traffic, and some of the
// account's later decisions came out otherwise because of it. A replay of
// the live set over the stored history applies the stored suppression at
// its time and reproduces every recorded decision.
func TestASuppressionInTheHistoryIsHonoured(t *testing.T) {
	set, rs := referenceSet(t)
	const n = 6000
	tc := traffic.Config{Accounts: 60, Seed: 3, FraudRate: 0.3, Start: trafficStart,
		EventsPerSecond: float64(n) / (24 * 3600), IDPrefix: "s-"}
	evs := make([]event.Event, n)
	gen := traffic.New(tc)
	for i := range evs {
		gen.Next(&evs[i])
	}
	at := n / 3

	// Which account and rule to suppress: the pair whose active rule
	// (not a lock) matches most often after the point, in a run without it.
	holder := &rules.Holder{}
	holder.Install(rs, 1)
	plain := engine.NewScorer(engine.Config{}, set, holder)
	hits := map[[2]string]int{}
	for i := range evs {
		var d engine.Decision
		if err := plain.Score(evs[i].AppendJSON(nil), engine.Source{}, &d); err != nil {
			t.Fatal(err)
		}
		for _, h := range d.Matched {
			if i >= at && h.Action != rules.Lock { // a lock would refuse the account's later events
				hits[[2]string{evs[i].AccountID, h.RuleID}]++
			}
		}
	}
	var pick [2]string
	for k, c := range hits {
		if c > hits[pick] || (c == hits[pick] && (k[0]+k[1]) < (pick[0]+pick[1])) {
			pick = k
		}
	}
	if hits[pick] < 2 {
		t.Fatalf("no rule matches an account twice after event %d (%d pairs)", at, len(hits))
	}
	account, rule := pick[0], pick[1]

	st := chtest.Open(t)
	writeVersion(t, st, 1, readReferenceFiles(t))
	eng := engine.New(engine.Config{Shards: 4}, set, holder)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { eng.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	var ds []*engine.Decision
	suppressed := 0
	for i := range evs {
		if i == at {
			now := time.Now().UTC().Truncate(time.Millisecond)
			until := now.Add(72 * time.Hour)
			var serr error
			if err := eng.Do(ctx, account, func(s *engine.Scorer) { serr = s.Suppress(account, rule, until.UnixMilli(), "support:t") }); err != nil || serr != nil {
				t.Fatal(err, serr)
			}
			if err := st.WriteSuppression(t.Context(), chstore.SuppressionRow{AccountID: account, RuleID: rule,
				Action: chstore.SuppressionSuppress, Until: until, Reason: "verified", Actor: "api:t", At: now, RequestID: "s-1"}); err != nil {
				t.Fatal(err)
			}
		}
		d, err := eng.Decide(ctx, engine.Message{Value: evs[i].AppendJSON(nil), Key: []byte(evs[i].AccountID),
			Source: engine.Source{Topic: "payments", Partition: 0, Offset: int64(i)}})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Suppressed) > 0 {
			suppressed++
		}
		ds = append(ds, d)
	}
	if suppressed == 0 {
		t.Fatalf("no live decision had %s suppressed for %s: the test proves nothing", rule, account)
	}
	if err := st.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}

	from := time.UnixMilli(evs[n/2].TS).UTC().Truncate(time.Hour)
	rep, err := backtest.Run(t.Context(), backtest.Config{Store: st, Features: set, Rules: rs, From: from,
		To: time.UnixMilli(evs[n-1].TS + 1).UTC(), Warmup: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.Reproduction; !p.Exact || p.Differing != 0 || p.Compared == 0 || rep.Totals.Changed != 0 {
		t.Fatalf("reproduction %+v, changed %d (%v): want every recorded decision reproduced", p, rep.Totals.Changed, rep.Totals.Changes)
	}
	t.Logf("%s suppressed for %s: %d live decisions had it suppressed; %d compared, all identical", rule, account, suppressed,
		rep.Reproduction.Compared)
}
