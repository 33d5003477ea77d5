package engine

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
	"riskd/rules"
)

// TestSuppressedRuleDoesNotCountUntilItEnds: a rule suppressed for one
// account matches without effect (no action, score, alert or lock; listed
// in Suppressed) until the wall clock passes the end, and fires again
// after it; other accounts and other rules are untouched.
func TestSuppressedRuleDoesNotCountUntilItEnds(t *testing.T) {
	set, holder := loadTestdata(t)
	clock := newFakeClock(t0)
	s := NewScorer(Config{Now: clock.Now}, set, holder)
	if err := s.Suppress("a1", "scam-payee", clock.ms(time.Hour), "support:agent"); err != nil {
		t.Fatal(err)
	}
	if err := s.Suppress("a1", "brute-force-lock", clock.ms(time.Hour), "support:agent"); err != nil {
		t.Fatal(err)
	}

	d := score(t, s, payment("p1", "a1", clock.ms(0), 500, "payee-scam-1"))
	if d.Action != rules.Allow || d.Score != 0 || len(d.Matched) != 0 || len(d.Alerts) != 0 ||
		!slices.Equal(d.Suppressed, []string{"scam-payee"}) {
		t.Fatalf("suppressed scam-payee for a1: %v score %d matched %v alerts %v suppressed %v; want allow, nothing matched, scam-payee suppressed",
			d.Action, d.Score, ruleIDs(d.Matched), d.Alerts, d.Suppressed)
	}
	if d := score(t, s, payment("p2", "a2", clock.ms(0), 500, "payee-scam-1")); d.Action != rules.Block || len(d.Suppressed) != 0 {
		t.Fatalf("a2 is not suppressed: %v suppressed %v, want block", d.Action, d.Suppressed)
	}
	// Five failed logins: the lock rule matches and is suppressed.
	for i := 1; i <= 5; i++ {
		d = score(t, s, login("f"+strconv.Itoa(i), "a1", clock.ms(time.Duration(i)*time.Second), true))
	}
	if d.Action != rules.Allow || !d.LockUntil.IsZero() || !slices.Equal(d.Suppressed, []string{"brute-force-lock"}) {
		t.Fatalf("fifth failed login with brute-force-lock suppressed: %v until %v suppressed %v; want allow, no lock",
			d.Action, d.LockUntil, d.Suppressed)
	}
	if got := s.Suppressions("a1"); len(got) != 2 || got[0].RuleID != "brute-force-lock" || got[1].RuleID != "scam-payee" ||
		!got[1].Until.Equal(clock.Now().Add(time.Hour).UTC()) || got[1].By != "support:agent" {
		t.Fatalf("Suppressions(a1) = %+v", got)
	}

	// Lifted early: brute-force-lock counts again at once.
	if !s.Unsuppress("a1", "brute-force-lock") || s.Unsuppress("a1", "brute-force-lock") {
		t.Fatal("Unsuppress: want true for the suppressed rule, then false")
	}
	if d := score(t, s, login("f6", "a1", clock.ms(6*time.Second), true)); d.Action != rules.Lock || len(d.Suppressed) != 0 {
		t.Fatalf("failed login after the lift: %v suppressed %v, want lock", d.Action, d.Suppressed)
	}
	s.Unlock("a1")

	// One millisecond before the end: still suppressed; at the end: fires.
	clock.Advance(time.Hour - time.Millisecond)
	if d := score(t, s, payment("p3", "a1", clock.ms(0), 500, "payee-scam-2")); d.Action != rules.Allow ||
		!slices.Equal(d.Suppressed, []string{"scam-payee"}) {
		t.Fatalf("1ms before the end: %v suppressed %v, want allow with scam-payee suppressed", d.Action, d.Suppressed)
	}
	clock.Advance(time.Millisecond)
	d = score(t, s, payment("p4", "a1", clock.ms(0), 500, "payee-scam-2"))
	if d.Action != rules.Block || len(d.Suppressed) != 0 || len(d.Alerts) != 1 {
		t.Fatalf("at the end: %v suppressed %v alerts %v, want block with its alert", d.Action, d.Suppressed, d.Alerts)
	}
	if got := s.Suppressions("a1"); len(got) != 0 {
		t.Fatalf("Suppressions(a1) after the end = %+v, want none", got)
	}
	if len(s.suppressed.byAccount) != 0 {
		t.Fatalf("the table keeps %d accounts after every entry ended", len(s.suppressed.byAccount))
	}
}

// TestSuppressedShadowRuleIsNotRecorded: a suppressed shadow rule is
// listed in Suppressed, not in Shadow.
func TestSuppressedShadowRuleIsNotRecorded(t *testing.T) {
	set, holder := loadTestdata(t)
	clock := newFakeClock(t0)
	s := NewScorer(Config{Now: clock.Now}, set, holder)
	if d := score(t, s, payment("p1", "a1", clock.ms(0), 500, "payee-1")); !slices.Equal(ruleIDs(d.Shadow), []string{"new-device-watch"}) {
		t.Fatalf("first payment from a new device: shadow %v, want new-device-watch", ruleIDs(d.Shadow))
	}
	if err := s.Suppress("a2", "new-device-watch", clock.ms(time.Minute), "support:agent"); err != nil {
		t.Fatal(err)
	}
	d := score(t, s, payment("p2", "a2", clock.ms(0), 500, "payee-1"))
	if len(d.Shadow) != 0 || !slices.Equal(d.Suppressed, []string{"new-device-watch"}) {
		t.Fatalf("suppressed shadow rule: shadow %v suppressed %v", ruleIDs(d.Shadow), d.Suppressed)
	}
}

// TestSuppressionsPerAccountAreBounded: the 65th rule of one account is
// refused; suppressing one of the 64 again (a new end) is not; once they
// end there is room again, and another account has its own room.
func TestSuppressionsPerAccountAreBounded(t *testing.T) {
	set, holder := loadTestdata(t)
	clock := newFakeClock(t0)
	s := NewScorer(Config{Now: clock.Now}, set, holder)
	for i := range MaxSuppressionsPerAccount {
		if err := s.Suppress("a1", "r"+strconv.Itoa(i), clock.ms(time.Hour), "support:x"); err != nil {
			t.Fatalf("suppression %d: %v", i+1, err)
		}
	}
	err := s.Suppress("a1", "one-too-many", clock.ms(time.Hour), "support:x")
	if !errors.Is(err, ErrTooManySuppressions) || err.Error() != "suppress one-too-many: too many suppressed rules for one account (64)" {
		t.Fatalf("65th suppression: %v", err)
	}
	if err := s.Suppress("a1", "r0", clock.ms(2*time.Hour), "support:y"); err != nil {
		t.Fatalf("suppressing r0 again: %v", err)
	}
	if got := s.Suppressions("a1"); len(got) != MaxSuppressionsPerAccount || got[0].RuleID != "r0" ||
		!got[0].Until.Equal(clock.Now().Add(2*time.Hour).UTC()) || got[0].By != "support:y" {
		t.Fatalf("after suppressing r0 again: %d entries, first %+v", len(got), got[0])
	}
	if err := s.Suppress("a2", "r0", clock.ms(time.Hour), "support:x"); err != nil {
		t.Fatalf("another account: %v", err)
	}
	clock.Advance(time.Hour)
	if err := s.Suppress("a1", "one-too-many", clock.ms(time.Hour), "support:x"); err != nil {
		t.Fatalf("after 63 ended: %v", err)
	}
	if err := s.Suppress("a1", "", clock.ms(time.Hour), "support:x"); err == nil {
		t.Fatal("an empty rule id was accepted")
	}
	if err := s.Suppress("a1", string(make([]byte, MaxSuppressionRuleBytes+1)), clock.ms(time.Hour), "support:x"); err == nil {
		t.Fatal("a rule id over the bound was accepted")
	}
}

// TestSuppressionsAreSwept: entries of accounts that never come back are
// dropped by the sweep once they end.
func TestSuppressionsAreSwept(t *testing.T) {
	set, holder := loadTestdata(t)
	clock := newFakeClock(t0)
	s := NewScorer(Config{Now: clock.Now}, set, holder)
	for i := range 100 {
		if err := s.Suppress("gone-"+strconv.Itoa(i), "scam-payee", clock.ms(time.Minute), "support:x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Suppress("stays", "scam-payee", clock.ms(24*time.Hour), "support:x"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	for i := range sweepEvery {
		score(t, s, payment("p"+strconv.Itoa(i), "active", clock.ms(time.Duration(i)*time.Millisecond), 1, "payee-1"))
	}
	if n := len(s.suppressed.byAccount); n != 1 {
		t.Fatalf("after %d decisions the table holds %d accounts, want the 1 in force", sweepEvery, n)
	}
}

// suppressCmd is a suppression command at a fixed point of a stream:
// before the event at index at.
type suppressCmd struct {
	at            int
	account, rule string
	lift          bool
}

// TestSuppressionsDecideTheSameAcrossShardsAndRestore decides one stream,
// with suppressions and lifts applied before fixed events and a wall clock
// that advances with the stream (so some suppressions end within it),
// straight through on one shard and on two shards with a checkpoint and
// restore in the middle, and compares every decision.
func TestSuppressionsDecideTheSameAcrossShardsAndRestore(t *testing.T) {
	set, holder := loadReferenceProbed(t)
	g := traffic.New(traffic.Config{Accounts: 200, Seed: 11, FraudRate: 0.4,
		Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)})
	evs := generate(g, 6000)
	base := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	const step = 10 * time.Second  // wall clock per event
	const suppressFor = 400 * step // ends within the stream
	wallAt := func(i int) time.Time { return base.Add(time.Duration(i) * step) }

	// run decides the stream on an Engine of shards, restoring it from a
	// checkpoint before event restoreAt (-1: never), applying cmds.
	run := func(shards, restoreAt int, cmds []suppressCmd) []*Decision {
		var clock atomic.Int64
		now := func() time.Time { return time.UnixMilli(clock.Load()) }
		cfg := Config{Shards: shards, Now: now, MaxFutureSkew: -1}
		e := New(cfg, set, holder)
		ctx := startEngine(t, e)
		next := 0
		var out []*Decision
		for i, raw := range evs {
			clock.Store(wallAt(i).UnixMilli())
			if i == restoreAt {
				var buf bytes.Buffer
				if err := e.Checkpoint(ctx, &buf); err != nil {
					t.Fatal(err)
				}
				r, err := Restore(cfg, set, holder, bytes.NewReader(buf.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				e, ctx = r, startEngine(t, r)
			}
			for ; next < len(cmds) && cmds[next].at == i; next++ {
				c := cmds[next]
				var err error
				derr := e.Do(ctx, c.account, func(s *Scorer) {
					if c.lift {
						s.Unsuppress(c.account, c.rule)
					} else {
						err = s.Suppress(c.account, c.rule, wallAt(i).Add(suppressFor).UnixMilli(), "support:test")
					}
				})
				if err = errors.Join(err, derr); err != nil {
					t.Fatal(err)
				}
			}
			out = append(out, mustDecide(t, ctx, e, raw))
		}
		return out
	}
	plainDs := run(1, -1, nil)
	// The commands: at every 300th event, the account and an active rule
	// of a decision a little further on in a run without any; every third
	// one is lifted 150 events later.
	var cmds []suppressCmd
	for at := 300; at < len(evs)-300; at += 300 {
		for j := at; j < at+300; j++ {
			if d := plainDs[j]; len(d.Matched) > 0 {
				cmds = append(cmds, suppressCmd{at: at, account: d.AccountID, rule: d.Matched[0].RuleID})
				if len(cmds)%3 == 0 {
					cmds = append(cmds, suppressCmd{at: at + 150, account: d.AccountID, rule: d.Matched[0].RuleID, lift: true})
				}
				break
			}
		}
	}
	slices.SortStableFunc(cmds, func(a, b suppressCmd) int { return a.at - b.at })
	if len(cmds) < 10 {
		t.Fatalf("only %d commands: the traffic matches too few rules", len(cmds))
	}

	straight := run(1, -1, cmds)
	restored := run(2, len(evs)/2, cmds)
	suppressed, changed := 0, 0
	for i := range evs {
		a, b := straight[i], restored[i]
		if diff := decisionDiff(a, b); diff != "" {
			t.Fatalf("event %d (%s): 1 shard straight and 2 shards restored differ: %s", i, a.EventID, diff)
		}
		if len(a.Suppressed) > 0 {
			suppressed++
			if a.Action != plainDs[i].Action || a.Score != plainDs[i].Score {
				changed++
			}
		}
	}
	if suppressed == 0 || changed == 0 {
		t.Fatalf("%d decisions had a suppressed rule, %d of them changed: the stream does not test suppressions", suppressed, changed)
	}
	t.Logf("%d commands; %d decisions with a suppressed rule, %d of them decided otherwise", len(cmds), suppressed, changed)
}

// decisionDiff names the first difference of two decisions of one event
// in everything the engine decides, or returns "".
func decisionDiff(a, b *Decision) string {
	type view struct {
		Action                       rules.Action
		Score                        int
		Reason                       string
		LockUntil                    time.Time
		Matched, Shadow              []RuleHit
		Suppressed, LateFor, Warming []string
		Features                     []FeatureValue
		Alerts                       []AlertMessage
		Throttled                    []ThrottledAlert
		Late, Duplicate              bool
	}
	va := view{a.Action, a.Score, a.Reason, a.LockUntil, a.Matched, a.Shadow, a.Suppressed, a.LateFor, a.Warming,
		a.Features, a.Alerts, a.ThrottledAlerts, a.Late, a.Duplicate}
	vb := view{b.Action, b.Score, b.Reason, b.LockUntil, b.Matched, b.Shadow, b.Suppressed, b.LateFor, b.Warming,
		b.Features, b.Alerts, b.ThrottledAlerts, b.Late, b.Duplicate}
	if sa, sb := fmt.Sprintf("%+v", va), fmt.Sprintf("%+v", vb); sa != sb {
		return "\n  " + sa + "\n  " + sb
	}
	return ""
}

// TestSuppressionsSurviveACheckpoint: a Scorer's suppressions, with their
// end and author, are in the checkpoint and restored.
func TestSuppressionsSurviveACheckpoint(t *testing.T) {
	set, holder := loadTestdata(t)
	clock := newFakeClock(t0)
	cfg := Config{Shards: 2, Now: clock.Now}
	e := New(cfg, set, holder)
	ctx := startEngine(t, e)
	until := clock.ms(time.Hour)
	for _, acct := range []string{"a1", "a2", "a3"} {
		var err error
		if derr := e.Do(ctx, acct, func(s *Scorer) { err = s.Suppress(acct, "scam-payee", until, "support:"+acct) }); derr != nil || err != nil {
			t.Fatal(derr, err)
		}
	}
	var buf bytes.Buffer
	if err := e.Checkpoint(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	r, err := Restore(cfg, set, holder, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	rctx := startEngine(t, r)
	for _, acct := range []string{"a1", "a2", "a3"} {
		var got []Suppression
		if err := r.Do(rctx, acct, func(s *Scorer) { got = s.Suppressions(acct) }); err != nil {
			t.Fatal(err)
		}
		want := []Suppression{{RuleID: "scam-payee", Until: time.UnixMilli(until).UTC(), By: "support:" + acct}}
		if !slices.Equal(got, want) {
			t.Errorf("%s after restore: %+v, want %+v", acct, got, want)
		}
	}
	d := mustDecide(t, rctx, r, msg(event.Event{ID: "p", Type: event.TypePayment, TS: t0, AccountID: "a2",
		Amount: 5, PayeeID: "payee-scam-1", Channel: "transfer"}))
	if d.Action != rules.Allow || !slices.Equal(d.Suppressed, []string{"scam-payee"}) {
		t.Fatalf("after restore: %v suppressed %v, want allow with scam-payee suppressed", d.Action, d.Suppressed)
	}
}

// TestSuppressionsHoldForBothTwinWorlds: support's suppression applies to
// the twin world's decision too, and to both halves after a Split.
func TestSuppressionsHoldForBothTwinWorlds(t *testing.T) {
	set, holder := loadTestdata(t)
	clock := newFakeClock(t0)
	s := NewTwinScorer(Config{Now: clock.Now}, set, holder, holder)
	if err := s.Suppress("a1", "scam-payee", clock.ms(time.Hour), "support:agent"); err != nil {
		t.Fatal(err)
	}
	var d, td Decision
	if err := s.ScoreTwin(payment("p1", "a1", clock.ms(0), 5, "payee-scam-1"), &d, &td); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*Decision{"live": &d, "twin": &td} {
		if got.Action != rules.Allow || !slices.Equal(got.Suppressed, []string{"scam-payee"}) {
			t.Errorf("%s world: %v suppressed %v, want allow with scam-payee suppressed", name, got.Action, got.Suppressed)
		}
	}
	half, err := s.Split(clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	for name, sc := range map[string]*Scorer{"kept": s, "split off": half} {
		if got := score(t, sc, payment("p2-"+name, "a1", clock.ms(0), 5, "payee-scam-1")); got.Action != rules.Allow ||
			!slices.Equal(got.Suppressed, []string{"scam-payee"}) {
			t.Errorf("%s half: %v suppressed %v, want allow with scam-payee suppressed", name, got.Action, got.Suppressed)
		}
	}
}
