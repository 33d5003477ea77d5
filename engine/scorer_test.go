package engine

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"riskd/event"
	"riskd/features"
	"riskd/rules"
)

const t0 = int64(1795538400000) // 2026-11-24T12:00:00Z in ms

// newTestScorer loads testdata's features and rules into a standalone Scorer.
func newTestScorer(t testing.TB) (*Scorer, *features.Set, *rules.Holder) {
	t.Helper()
	set, holder := loadTestdata(t)
	return NewScorer(Config{Now: fixedClock()}, set, holder), set, holder
}

func loadTestdata(t testing.TB) (*features.Set, *rules.Holder) {
	t.Helper()
	return loadWorkload(t, "testdata/features.yaml", "testdata/rules")
}

// loadWorkload compiles a feature file and a rules directory into a Set and
// a Holder with the rule set swapped in.
func loadWorkload(t testing.TB, featuresFile, rulesDir string) (*features.Set, *rules.Holder) {
	t.Helper()
	set, err := features.LoadFile(featuresFile, features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(rulesDir, set)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Swap(rs)
	return set, holder
}

func fixedClock() func() time.Time {
	now := time.Unix(1795538400, 0)
	return func() time.Time { return now }
}

func msg(ev event.Event) []byte { return ev.AppendJSON(nil) }

func login(id string, account string, ts int64, failed bool) []byte {
	typ := event.TypeLogin
	if failed {
		typ = event.TypeLoginFailed
	}
	return msg(event.Event{ID: id, Type: typ, TS: ts, AccountID: account, Device: event.Device{ID: "d1"}})
}

func payment(id, account string, ts, amount int64, payee string) []byte {
	return msg(event.Event{ID: id, Type: event.TypePayment, TS: ts, AccountID: account, Amount: amount,
		PayeeID: payee, Channel: "transfer", Device: event.Device{ID: "d1"}})
}

func score(t *testing.T, s *Scorer, raw []byte) *Decision {
	t.Helper()
	var d Decision
	if err := s.Score(raw, Source{Topic: "test"}, &d); err != nil {
		t.Fatalf("score %s: %v", raw, err)
	}
	return d.Clone()
}

func ruleIDs(hits []RuleHit) []string {
	var ids []string
	for _, h := range hits {
		ids = append(ids, h.RuleID)
	}
	return ids
}

func TestBruteForceLocksAccountAndRefusesNextPayment(t *testing.T) {
	set, holder := loadTestdata(t)
	clock := newFakeClock(t0 + 5000) // the wall clock when the lock is decided
	s := NewScorer(Config{Now: clock.Now}, set, holder)
	for i := 1; i <= 4; i++ {
		d := score(t, s, login("f"+strconv.Itoa(i), "a1", t0+int64(i)*1000, true))
		if d.Action != rules.Allow {
			t.Fatalf("failed login %d: action %v, want allow", i, d.Action)
		}
	}
	d := score(t, s, login("f5", "a1", t0+5000, true))
	if d.Action != rules.Lock || len(d.Matched) != 1 || d.Matched[0].RuleID != "brute-force-lock" {
		t.Fatalf("fifth failed login: %v %v, want lock by brute-force-lock", d.Action, ruleIDs(d.Matched))
	}
	if want := time.UnixMilli(t0 + 5000 + 30*60*1000).UTC(); !d.LockUntil.Equal(want) {
		t.Errorf("lock until %v, want %v (lock_for 30m on the wall clock)", d.LockUntil, want)
	}
	if len(d.Alerts) != 1 || d.Alerts[0].Message == "" {
		t.Errorf("alerts = %v, want the brute-force alert", d.Alerts)
	}
	p := score(t, s, payment("p1", "a1", t0+6000, 500, "payee-1"))
	if p.Action != rules.Lock || p.Reason != ReasonAccountLocked {
		t.Errorf("payment while locked: %v %q, want lock with reason %q", p.Action, p.Reason, ReasonAccountLocked)
	}
	other := score(t, s, payment("p2", "a2", t0+6000, 500, "payee-1"))
	if other.Action != rules.Allow {
		t.Errorf("another account's payment: %v, want allow", other.Action)
	}
	clock.Advance(30 * time.Minute)
	after := score(t, s, payment("p3", "a1", t0+5000+30*60*1000, 500, "payee-1"))
	if after.Reason == ReasonAccountLocked {
		t.Error("payment at the lock's expiry instant still refused")
	}
}

func TestSupportUnlockLiftsLock(t *testing.T) {
	s, _, _ := newTestScorer(t)
	s.Lock("a1", t0+time.Hour.Milliseconds(), "support")
	if d := score(t, s, payment("p1", "a1", t0, 100, "x")); d.Reason != ReasonAccountLocked {
		t.Fatalf("payment of a support-locked account: reason %q", d.Reason)
	}
	if !s.Unlock("a1") {
		t.Fatal("unlock reported no lock")
	}
	if d := score(t, s, payment("p2", "a1", t0+1, 100, "x")); d.Reason != "" || d.Action != rules.Allow {
		t.Errorf("payment after unlock: %v %q, want allow", d.Action, d.Reason)
	}
}

func TestScamPayeeBlockedWithAlert(t *testing.T) {
	s, _, _ := newTestScorer(t)
	d := score(t, s, payment("p1", "a1", t0, 2000, "payee-scam-2"))
	if d.Action != rules.Block || len(d.Alerts) != 1 || d.Alerts[0].RuleID != "scam-payee" {
		t.Errorf("payment to listed scam payee: %v alerts=%v, want block with scam-payee alert", d.Action, d.Alerts)
	}
}

func TestShadowRulesAreRecordedButNeverAct(t *testing.T) {
	s, _, _ := newTestScorer(t)
	d := score(t, s, payment("p1", "a1", t0, 100, "payee-1")) // first device: new
	if got := ruleIDs(d.Shadow); len(got) != 1 || got[0] != "new-device-watch" {
		t.Errorf("shadow hits = %v, want [new-device-watch]", got)
	}
	if d.Action != rules.Allow {
		t.Errorf("action = %v, want allow: a shadow review must not act", d.Action)
	}
}

func TestDuplicateEventCountsOnceAndRepeatsAction(t *testing.T) {
	s, _, _ := newTestScorer(t)
	raw := payment("p1", "a1", t0, 60000, "payee-1")
	first := score(t, s, raw)
	again := score(t, s, raw)
	if !again.Duplicate || again.Reason != ReasonDuplicate || again.Action != first.Action {
		t.Errorf("redelivery: duplicate=%v reason=%q action=%v, want duplicate repeating %v", again.Duplicate, again.Reason, again.Action, first.Action)
	}
	// Had p1 counted twice, amount_24h would pass 100000 with this payment.
	d := score(t, s, payment("p2", "a1", t0+1, 30000, "payee-1"))
	for _, h := range d.Matched {
		if h.RuleID == "big-day" {
			t.Errorf("big-day matched: the duplicate was counted in amount_24h")
		}
	}
}

func TestScoresAddUpAndFeaturesReadAreRecorded(t *testing.T) {
	s, _, _ := newTestScorer(t)
	var d *Decision
	for i := range 4 {
		d = score(t, s, payment("p"+strconv.Itoa(i), "a1", t0+int64(i), 40000, "payee-1"))
	}
	if d.Score != 60 {
		t.Errorf("score = %d (matched %v), want 60 from many-payments and big-day", d.Score, ruleIDs(d.Matched))
	}
	got := map[string]float64{}
	for _, fv := range d.Features {
		got[fv.Name] = fv.Value
	}
	if got["payments_1h"] != 4 || got["amount_24h"] != 160000 {
		t.Errorf("recorded features = %v, want payments_1h=4 amount_24h=160000", got)
	}
}

func TestRuleErrorCountsAsNotMatched(t *testing.T) {
	s, _, _ := newTestScorer(t)
	d := score(t, s, msg(event.Event{ID: "t1", Type: event.TypeTopup, TS: t0, AccountID: "a1", Amount: 100,
		Attrs: event.Attrs{"n": "not-a-number"}}))
	if d.Action != rules.Allow || len(d.Errored) != 1 || d.Errored[0].RuleID != "attr-as-int" || d.Errored[0].Error == "" {
		t.Errorf("errored = %+v action %v, want attr-as-int errored and allow", d.Errored, d.Action)
	}
}

func TestMalformedEventIsAnErrorAndChangesNothing(t *testing.T) {
	s, _, _ := newTestScorer(t)
	var d Decision
	err := s.Score([]byte(`{"type":"payment"}`), Source{}, &d)
	var de *event.Error
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *event.Error", err)
	}
	// A bad message with a valid id must not be remembered as decided,
	// nor count in the features: the corrected message scores normally.
	bad := []byte(`{"event_id":"p1","type":"payment","ts":1795538400000,"account_id":"a1","amount":"lots"}`)
	if err := s.Score(bad, Source{}, &d); err == nil {
		t.Fatal("a string amount was accepted")
	}
	good := score(t, s, payment("p1", "a1", t0, 500, "payee-1"))
	if good.Duplicate {
		t.Error("the corrected event was taken for a duplicate of the refused one")
	}
	// many-payments fires at payments_1h > 3: after three good payments it
	// fires only if the refused message was counted too.
	score(t, s, payment("p2", "a1", t0+1, 500, "payee-1"))
	third := score(t, s, payment("p3", "a1", t0+2, 500, "payee-1"))
	for _, h := range third.Matched {
		if h.RuleID == "many-payments" {
			t.Errorf("many-payments matched on the third payment: payments_1h = %v counts the refused message", featureValue(third, "payments_1h"))
		}
	}
	fourth := score(t, s, payment("p4", "a1", t0+3, 500, "payee-1"))
	if v := featureValue(fourth, "payments_1h"); v != 4 {
		t.Errorf("payments_1h = %v after four good payments, want 4", v)
	}
}

func TestEngineHandsDecodeErrorsToDone(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 2}, set, holder)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	got := make(chan error, 1)
	if err := e.Submit(ctx, Message{Value: []byte(`not json`), Done: func(d *Decision, err error) {
		if d != nil {
			t.Errorf("a decision for an undecodable message: %+v", d)
		}
		got <- err
	}}); err != nil {
		t.Fatal(err)
	}
	err := <-got
	var de *event.Error
	if !errors.As(err, &de) || !strings.HasPrefix(err.Error(), "invalid event: malformed JSON") {
		t.Errorf("Done got %v, want an *event.Error saying malformed JSON (the dead-letter reason)", err)
	}
}

// featureValue returns a recorded feature value, or -1 if it was not recorded.
func featureValue(d *Decision, name string) float64 {
	for _, fv := range d.Features {
		if fv.Name == name {
			return fv.Value
		}
	}
	return -1
}

func TestEngineKeepsPerAccountOrderAcrossShards(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 4, QueueSize: 8}, set, holder)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)

	const accounts, perAccount = 20, 10
	var mu sync.Mutex
	seen := map[string][]int64{}
	var wg sync.WaitGroup
	for i := range perAccount {
		for a := range accounts {
			acct := "acct-" + strconv.Itoa(a)
			wg.Add(1)
			err := e.Submit(ctx, Message{
				Value: login(acct+"-"+strconv.Itoa(i), acct, t0+int64(i), false),
				Key:   []byte(acct),
				Done: func(d *Decision, err error) {
					defer wg.Done()
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					seen[d.AccountID] = append(seen[d.AccountID], d.EventTS)
					mu.Unlock()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	for acct, ts := range seen {
		for i := 1; i < len(ts); i++ {
			if ts[i] < ts[i-1] {
				t.Fatalf("%s decided out of order: %v", acct, ts)
			}
		}
		if len(ts) != perAccount {
			t.Errorf("%s: %d decisions, want %d", acct, len(ts), perAccount)
		}
	}
}

func TestCheckpointRestoresLocksDedupeAndFeatures(t *testing.T) {
	set, holder := loadTestdata(t)
	ctx, cancel := context.WithCancel(context.Background())
	e := New(Config{Shards: 2, Now: fixedClock()}, set, holder)
	go e.Run(ctx)
	for i := 1; i <= 5; i++ {
		mustDecide(t, ctx, e, login("f"+strconv.Itoa(i), "a1", t0+int64(i), true))
	}
	mustDecide(t, ctx, e, payment("p1", "a2", t0, 90000, "x"))
	if d := mustDecide(t, ctx, e, payment("s1", "a3", t0, 100, "payee-scam-1")); len(d.Alerts) != 1 {
		t.Fatalf("first scam-payee payment: alerts %v, want one", d.Alerts)
	}
	var buf bytes.Buffer
	if err := e.Checkpoint(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	cancel()

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r, err := Restore(Config{Shards: 2, Now: fixedClock()}, set, holder, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	go r.Run(ctx)
	if d := mustDecide(t, ctx, r, payment("p9", "a1", t0+10, 100, "x")); d.Reason != ReasonAccountLocked {
		t.Errorf("after restore a1's payment: reason %q, want account_locked", d.Reason)
	}
	if d := mustDecide(t, ctx, r, payment("p1", "a2", t0, 90000, "x")); !d.Duplicate {
		t.Error("after restore a redelivered event was not recognised as a duplicate")
	}
	d := mustDecide(t, ctx, r, payment("p2", "a2", t0+1, 20000, "x"))
	if len(d.Matched) != 1 || d.Matched[0].RuleID != "big-day" {
		t.Errorf("after restore amount_24h lost its history: matched %v", ruleIDs(d.Matched))
	}
	if d := mustDecide(t, ctx, r, payment("s2", "a3", t0+60_000, 100, "payee-scam-1")); len(d.Alerts) != 0 ||
		len(d.ThrottledAlerts) != 1 || d.ThrottledAlerts[0].SentTS != t0 {
		t.Errorf("after restore a repeat alert a minute later: alerts %v, throttled %v; want it throttled by the alert at t0",
			d.Alerts, d.ThrottledAlerts)
	}
	if _, err := Restore(Config{Shards: 3}, set, holder, bytes.NewReader(buf.Bytes())); err == nil {
		t.Error("restore into a different shard count succeeded")
	}
}

func TestShutdownLosesNoAcceptedMessage(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 2, QueueSize: 4}, set, holder)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan struct{})
	go func() { e.Run(ctx); close(ran) }()

	var mu sync.Mutex
	done := map[int]int{}
	accepted := map[int]bool{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				id := w*1000 + i
				err := e.Submit(context.Background(), Message{
					Value: payment("p"+strconv.Itoa(id), "a"+strconv.Itoa(id%7), t0+int64(i), 100, "x"),
					Done: func(*Decision, error) {
						mu.Lock()
						done[id]++
						mu.Unlock()
					},
				})
				if err != nil {
					if !errors.Is(err, ErrStopped) {
						t.Errorf("submit: %v", err)
					}
					return
				}
				mu.Lock()
				accepted[id] = true
				mu.Unlock()
				if w == 0 && i == 100 {
					cancel() // stop mid-stream while the others keep submitting
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); <-ran; close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Minute): // a deadlock detector, not a speed limit
		t.Fatal("submitters or Run still blocked a minute after shutdown: a message was queued behind stopped shards")
	}
	mu.Lock()
	defer mu.Unlock()
	for id := range accepted {
		if done[id] != 1 {
			t.Errorf("message %d accepted but Done called %d times", id, done[id])
		}
	}
	for id, n := range done {
		if !accepted[id] && n > 0 {
			t.Errorf("message %d refused but Done called", id)
		}
	}
}

// TestCloneSharesOnlyTheRawEvent: a clone keeps the message's bytes
// (its sender never changes them) and copies every text the Scorer's
// buffers hold, which the next event overwrites.
func TestCloneSharesOnlyTheRawEvent(t *testing.T) {
	raw := []byte(`{"id":"e1"}`)
	text := []byte("e1acct-1payment")
	d := &Decision{Raw: raw, EventID: unsafe.String(&text[0], 2), AccountID: unsafe.String(&text[2], 6),
		EventType: unsafe.String(&text[8], 7)}
	c := d.Clone()
	if &c.Raw[0] != &raw[0] || len(c.Raw) != len(raw) {
		t.Error("the clone copied the raw event")
	}
	copy(text, "XXXXXXXXXXXXXXX")
	if c.EventID != "e1" || c.AccountID != "acct-1" || c.EventType != "payment" {
		t.Errorf("the clone's texts changed with the Scorer's buffer: %q %q %q", c.EventID, c.AccountID, c.EventType)
	}
}
