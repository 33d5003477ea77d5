package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"riskd/rules"
)

// TestUnlockResetsTheLockingCounter: after support unlocks a brute-force
// lock, one more wrong password does not lock again (the rule's
// failed_logins_15m was reset for the account), and when five more do,
// the new lock's alert goes out instead of being throttled by the first.
func TestUnlockResetsTheLockingCounter(t *testing.T) {
	s, _, _ := newTestScorer(t)
	for i := range 5 {
		d := score(t, s, login("f"+strconv.Itoa(i), "a1", t0+int64(i)*1000, true))
		if i == 4 && (d.Action != rules.Lock || len(d.Alerts) != 1) {
			t.Fatalf("fifth wrong password: %v alerts %v, want lock with its alert", d.Action, d.Alerts)
		}
	}
	// Another account's counter and lock are its own.
	for i := range 5 {
		score(t, s, login("g"+strconv.Itoa(i), "a2", t0+int64(i)*1000, true))
	}
	u, ok := s.UnlockAccount("a1")
	if !ok || u.Was.By != "brute-force-lock" || !slices.Equal(u.Cleared, []string{"failed_logins_15m"}) {
		t.Fatalf("unlock: %+v %v, want brute-force-lock's lock lifted and failed_logins_15m cleared", u, ok)
	}
	if _, ok := s.UnlockAccount("a1"); ok {
		t.Fatal("a second unlock found a lock")
	}
	d := score(t, s, login("f5", "a1", t0+5000, true))
	if d.Action == rules.Lock {
		t.Fatalf("one wrong password after the unlock: %v (%s), want no lock", d.Action, d.Reason)
	}
	if v := lastWindow(s, "failed_logins_15m"); v != 1 {
		t.Errorf("failed_logins_15m after the unlock and one more: %v, want 1", v)
	}
	for i := 6; i < 10; i++ {
		d = score(t, s, login("f"+strconv.Itoa(i), "a1", t0+int64(i)*1000, true))
	}
	if d.Action != rules.Lock || len(d.Alerts) != 1 || len(d.ThrottledAlerts) != 0 {
		t.Fatalf("fifth wrong password after the unlock: %v alerts %v throttled %v, want a lock whose alert goes out",
			d.Action, d.Alerts, d.ThrottledAlerts)
	}
	if st, ok := s.LockState("a2"); !ok || st.By != "brute-force-lock" {
		t.Errorf("a2's lock: %+v %v, want it untouched", st, ok)
	}
}

// TestSupportUnlockResetsNothing: a support lock names no features, so
// its unlock resets none.
func TestSupportUnlockResetsNothing(t *testing.T) {
	s, _, _ := newTestScorer(t)
	for i := range 3 {
		score(t, s, login("f"+strconv.Itoa(i), "a1", t0+int64(i)*1000, true))
	}
	s.Lock("a1", t0+time.Hour.Milliseconds(), "support:agent")
	u, ok := s.UnlockAccount("a1")
	if !ok || len(u.Cleared) != 0 || u.Was.By != "support:agent" {
		t.Fatalf("unlock of a support lock: %+v %v", u, ok)
	}
	score(t, s, login("f3", "a1", t0+3000, true))
	if v := lastWindow(s, "failed_logins_15m"); v != 4 {
		t.Errorf("failed_logins_15m after a support unlock: %v, want 4", v)
	}
}

// TestIndefiniteLock: a rule with lock_for: indefinite locks until an
// unlock, whatever the wall clock says; LockState says it is indefinite
// and has no until in JSON; the decision's LockUntil is IndefiniteUntil.
func TestIndefiniteLock(t *testing.T) {
	set, holder := loadInline(t, "failed_logins_15m: {count: login_failed, by: account, window: 15m}\n", `
- id: takeover
  when: event.type == "login_failed" && f.failed_logins_15m >= 3
  action: lock
  lock_for: indefinite
`)
	now := time.UnixMilli(t0)
	s := NewScorer(Config{Now: func() time.Time { return now }}, set, holder)
	var d *Decision
	for i := range 3 {
		d = score(t, s, login("f"+strconv.Itoa(i), "a1", t0+int64(i), true))
	}
	if d.Action != rules.Lock || !d.LockUntil.Equal(IndefiniteUntil) {
		t.Fatalf("third wrong password: %v until %v, want lock until %v", d.Action, d.LockUntil, IndefiniteUntil)
	}
	now = now.Add(100 * 365 * 24 * time.Hour)
	st, ok := s.LockState("a1")
	if !ok || !st.Indefinite || !st.Until.IsZero() {
		t.Fatalf("a century later: %+v %v, want an indefinite lock", st, ok)
	}
	b, err := json.Marshal(st)
	if err != nil || string(b) != `{"indefinite":true,"by":"takeover"}` {
		t.Errorf("LockState JSON: %s %v", b, err)
	}
	if d := score(t, s, payment("p1", "a1", t0+10, 100, "x")); d.Reason != ReasonAccountLocked || !d.LockUntil.Equal(IndefiniteUntil) {
		t.Errorf("payment while locked indefinitely: %q until %v", d.Reason, d.LockUntil)
	}
	// A support lock may be indefinite too, and a shorter lock does not
	// shorten it.
	s.Lock("a2", IndefiniteMs, "support:agent")
	s.Lock("a2", now.Add(time.Hour).UnixMilli(), "support:agent")
	if st, ok := s.LockState("a2"); !ok || !st.Indefinite {
		t.Errorf("support's indefinite lock: %+v %v", st, ok)
	}
	if u, ok := s.UnlockAccount("a1"); !ok || !u.Was.Indefinite || !slices.Equal(u.Cleared, []string{"failed_logins_15m"}) {
		t.Errorf("unlock of the indefinite lock: %+v %v", u, ok)
	}
}

// TestUnlockDecidesTheSameAcrossShardsAndRestore decides one stream with
// an unlock in it three ways: one shard straight through, two shards
// straight through, and two shards cut and restored in the middle (after
// the unlock, before the events it matters for). Every decision is the
// same, features and alerts included.
func TestUnlockDecidesTheSameAcrossShardsAndRestore(t *testing.T) {
	set, holder := loadTestdata(t)
	var stream [][]byte
	for i := range 40 {
		acct := "a" + strconv.Itoa(i%4)
		ts := t0 + int64(i)*500
		if i%5 == 4 {
			stream = append(stream, payment("p"+strconv.Itoa(i), acct, ts, 300, "payee-scam-1"))
		} else {
			stream = append(stream, login("l"+strconv.Itoa(i), acct, ts, true))
		}
	}
	const unlockAt, cutAt = 25, 30 // every account is locked by then
	run := func(shards int, cut bool) []string {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cfg := Config{Shards: shards, Now: fixedClock()}
		e := New(cfg, set, holder)
		go e.Run(ctx)
		var out []string
		for i, raw := range stream {
			if i == unlockAt {
				for _, acct := range []string{"a0", "a1"} {
					var u Unlocked
					if err := e.Do(ctx, acct, func(s *Scorer) { u, _ = s.UnlockAccount(acct) }); err != nil {
						t.Fatal(err)
					}
					out = append(out, fmt.Sprintf("unlock %s: %v %v", acct, u.Was.By, u.Cleared))
				}
			}
			if i == cutAt && cut {
				var buf bytes.Buffer
				if err := e.Checkpoint(ctx, &buf); err != nil {
					t.Fatal(err)
				}
				cancel()
				ctx, cancel = context.WithCancel(context.Background())
				defer cancel()
				r, err := Restore(cfg, set, holder, bytes.NewReader(buf.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				e = r
				go e.Run(ctx)
			}
			out = append(out, describe(mustDecide(t, ctx, e, raw)))
		}
		return out
	}
	want := run(1, false)
	if !strings.Contains(strings.Join(want, "\n"), "unlock a0: brute-force-lock [failed_logins_15m]") {
		t.Fatalf("the stream never unlocked a brute-force lock:\n%s", strings.Join(want, "\n"))
	}
	for _, way := range []struct {
		shards int
		cut    bool
	}{{2, false}, {2, true}} {
		got := run(way.shards, way.cut)
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%d shards, cut %v: step %d: %s, want %s", way.shards, way.cut, i, got[i], want[i])
			}
		}
	}
}

// describe is what TestUnlockDecidesTheSameAcrossShardsAndRestore
// compares of a decision.
func describe(d *Decision) string {
	return fmt.Sprintf("%s %s %s score %d matched %v alerts %v throttled %v features %v until %v",
		d.EventID, d.Action, d.Reason, d.Score, ruleIDs(d.Matched), d.Alerts, d.ThrottledAlerts, d.Features, d.LockUntil)
}

// lastWindow is the value of a window feature for the event s decided last.
func lastWindow(s *Scorer, name string) float64 {
	i, ok := s.set.Index(name)
	if !ok {
		return -1
	}
	return s.values.Windows[i]
}
