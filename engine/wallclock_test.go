package engine

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"riskd/event"
	"riskd/rules"
)

// fakeClock is a wall clock a test moves by hand (Config.Now). One
// goroutine uses it: the test's, or a standalone Scorer's.
type fakeClock struct{ now time.Time }

func newFakeClock(ms int64) *fakeClock       { return &fakeClock{now: time.UnixMilli(ms)} }
func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// ms is the clock's time plus d, in Unix milliseconds (an event's ts).
func (c *fakeClock) ms(d time.Duration) int64 { return c.now.Add(d).UnixMilli() }

// scoreErr scores raw and returns the decision or Score's error.
func scoreErr(s *Scorer, raw []byte) (Decision, error) {
	var d Decision
	err := s.Score(raw, Source{Topic: "test"}, &d)
	return d, err
}

// bruteForce sends the five failed logins of the test rules' brute-force
// lock, dated at the clock, and returns the locking decision.
func bruteForce(t *testing.T, s *Scorer, clock *fakeClock, account string) *Decision {
	t.Helper()
	var d *Decision
	for i := 1; i <= 5; i++ {
		d = score(t, s, login(account+"-f"+strconv.Itoa(i), account, clock.ms(time.Duration(i)*time.Second), true))
	}
	if d.Action != rules.Lock || len(d.Matched) != 1 || d.Matched[0].RuleID != "brute-force-lock" {
		t.Fatalf("fifth failed login: %v %v, want lock by brute-force-lock", d.Action, ruleIDs(d.Matched))
	}
	return d
}

// TestLocksAreNotLiftedByAnEventDatedAhead: a rule lock and a support lock
// end on the wall clock. An event dated hours ahead is refused by the skew
// bound, and with the bound turned off it is still refused by the lock;
// the next correctly dated event is refused as account_locked; the lock
// ends when the wall clock passes its end, whatever the events' ts.
func TestLocksAreNotLiftedByAnEventDatedAhead(t *testing.T) {
	for _, skew := range []time.Duration{0, -1} { // the default bound, and none
		bound := "default skew bound"
		if skew < 0 {
			bound = "no skew bound"
		}
		for _, kind := range []string{"rule lock", "support lock"} {
			t.Run(kind+"/"+bound, func(t *testing.T) {
				set, holder := loadTestdata(t)
				clock := newFakeClock(t0)
				s := NewScorer(Config{Now: clock.Now, MaxFutureSkew: skew}, set, holder)
				lockFor := 30 * time.Minute // the rule's lock_for
				if kind == "rule lock" {
					if d := bruteForce(t, s, clock, "a1"); !d.LockUntil.Equal(clock.Now().Add(lockFor).UTC()) {
						t.Fatalf("rule lock until %v, want the wall clock + lock_for = %v", d.LockUntil, clock.Now().Add(lockFor).UTC())
					}
				} else {
					lockFor = 2 * time.Hour
					s.Lock("a1", clock.ms(lockFor), "support:agent")
				}
				until := clock.Now().Add(lockFor)

				ahead := payment("ahead", "a1", clock.ms(lockFor+time.Hour), 500, "payee-1")
				d, err := scoreErr(s, ahead)
				if skew < 0 {
					if err != nil || d.Reason != ReasonAccountLocked {
						t.Fatalf("payment dated %v ahead, no skew bound: err %v, %v %q; want refused as %s",
							lockFor+time.Hour, err, d.Action, d.Reason, ReasonAccountLocked)
					}
				} else if !errors.As(err, new(*ErrFutureEvent)) {
					t.Fatalf("payment dated %v ahead: err %v, %v %q; want the skew refusal", lockFor+time.Hour, err, d.Action, d.Reason)
				}

				clock.Advance(time.Minute)
				if d := score(t, s, payment("now", "a1", clock.ms(0), 500, "payee-1")); d.Reason != ReasonAccountLocked || !d.LockUntil.Equal(until.UTC()) {
					t.Fatalf("next payment dated now: %v %q until %v; want refused as %s until %v", d.Action, d.Reason, d.LockUntil, ReasonAccountLocked, until.UTC())
				}

				// Event time past the lock's end does not end it (no skew
				// bound here, so only the lock can refuse it)...
				if skew < 0 {
					if d := score(t, s, payment("late-ts", "a1", until.Add(time.Minute).UnixMilli(), 500, "payee-1")); d.Reason != ReasonAccountLocked {
						t.Fatalf("payment dated after the lock's end, wall clock before it: %v %q; want %s", d.Action, d.Reason, ReasonAccountLocked)
					}
				}
				// ... the wall clock does, even for an event dated long before.
				clock.now = until.Add(-time.Millisecond)
				if d := score(t, s, payment("just-before", "a1", t0, 500, "payee-1")); d.Reason != ReasonAccountLocked {
					t.Fatalf("a millisecond before the lock's end: %v %q; want %s", d.Action, d.Reason, ReasonAccountLocked)
				}
				clock.now = until
				if d := score(t, s, payment("after", "a1", t0, 500, "payee-1")); d.Reason == ReasonAccountLocked || d.Action == rules.Lock {
					t.Fatalf("wall clock at the lock's end: %v %q; want decided normally", d.Action, d.Reason)
				}
			})
		}
	}
}

// TestEventDatedAheadIsRefusedAndLeavesNoTrace: past MaxFutureSkew an
// event is an *event.Error naming ts, its reason says how far ahead and
// the bound; nothing is recorded, so the same id with a sane ts is decided
// as a new event. At the bound it is accepted.
func TestEventDatedAheadIsRefusedAndLeavesNoTrace(t *testing.T) {
	set, holder := loadTestdata(t)
	clock := newFakeClock(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).UnixMilli())
	s := NewScorer(Config{Now: clock.Now}, set, holder)

	_, err := scoreErr(s, payment("p1", "a1", clock.ms(3*time.Hour), 60000, "payee-1"))
	var bad *event.Error
	if !errors.As(err, &bad) || len(bad.Problems) != 1 || bad.Problems[0].Field != "ts" {
		t.Fatalf("payment 3h ahead: %v, want an *event.Error with one problem on ts", err)
	}
	const want = "ts: 2026-11-29T15:00:00Z is 3h0m0s ahead of the clock; at most 5m0s is allowed (engine.max_future_skew)"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("reason %q, want it to contain %q", err.Error(), want)
	}
	var fe *ErrFutureEvent
	if !errors.As(err, &fe) || fe.Ahead != 3*time.Hour || fe.MaxSkew != DefaultMaxFutureSkew {
		t.Errorf("ErrFutureEvent = %+v, want 3h ahead of a 5m bound", fe)
	}

	d := score(t, s, payment("p1", "a1", clock.ms(0), 60000, "payee-1"))
	if d.Duplicate || d.Reason == ReasonDuplicate {
		t.Fatalf("the refused id sent again with a sane ts: %v %q, want decided as new", d.Action, d.Reason)
	}
	if d.Late {
		t.Error("the sane payment is late: the refused one moved the windows' event time")
	}
	for name, want := range map[string]float64{"payments_1h": 1, "amount_24h": 60000} {
		if got, _ := s.set.Value(&s.values, name); got != want {
			t.Errorf("%s = %v after the refused payment and this one, want %v: the refused one was counted", name, got, want)
		}
	}

	if _, err := scoreErr(s, payment("p2", "a1", clock.ms(DefaultMaxFutureSkew), 100, "payee-1")); err != nil {
		t.Errorf("payment exactly at the bound: %v, want accepted", err)
	}
	if _, err := scoreErr(s, payment("p3", "a1", clock.ms(DefaultMaxFutureSkew+time.Millisecond), 100, "payee-1")); !errors.As(err, new(*ErrFutureEvent)) {
		t.Errorf("payment 1ms past the bound: %v, want refused", err)
	}

	s = NewScorer(Config{Now: clock.Now, MaxFutureSkew: time.Hour}, set, holder)
	if _, err := scoreErr(s, payment("p4", "a1", clock.ms(59*time.Minute), 100, "payee-1")); err != nil {
		t.Errorf("59m ahead with a 1h bound: %v, want accepted", err)
	}
	if _, err := scoreErr(s, payment("p5", "a1", clock.ms(61*time.Minute), 100, "payee-1")); err == nil ||
		!strings.Contains(err.Error(), "at most 1h0m0s is allowed") {
		t.Errorf("61m ahead with a 1h bound: %v, want refused naming the bound", err)
	}
}

// TestEventsDatedFarInThePastAreNotRefusedBySkew: the bound is one-sided;
// old events follow the windows' lateness rule.
func TestEventsDatedFarInThePastAreNotRefusedBySkew(t *testing.T) {
	set, holder := loadTestdata(t)
	clock := newFakeClock(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).UnixMilli())
	s := NewScorer(Config{Now: clock.Now}, set, holder)
	old := time.Date(2023, 3, 1, 9, 0, 0, 0, time.UTC).UnixMilli()
	for i := range 3 {
		if _, err := scoreErr(s, payment("old-"+strconv.Itoa(i), "a1", old+int64(i)*1000, 100, "payee-1")); err != nil {
			t.Fatalf("payment dated 2023: %v, want accepted", err)
		}
	}
}
