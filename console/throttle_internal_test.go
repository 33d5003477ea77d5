package console

import (
	"fmt"
	"testing"
	"time"
)

// An address is refused after its limit of failures until its window
// ends; another address is not; the first refusal alone is to be logged.
func TestThrottleRefusesAnAddressUntilItsWindowEnds(t *testing.T) {
	now := time.Unix(1000, 0)
	th := newThrottle(3, time.Minute, 100, func() time.Time { return now })
	for i := range 3 {
		if _, _, ok := th.check("10.0.0.1"); !ok {
			t.Fatalf("refused before failure %d", i+1)
		}
		th.fail("10.0.0.1")
		now = now.Add(time.Second)
	}
	wait, first, ok := th.check("10.0.0.1")
	if ok || !first || wait != time.Minute-3*time.Second {
		t.Errorf("after 3 failures: ok %v, first %v, wait %s; want refused for 57s, first", ok, first, wait)
	}
	if _, first, ok := th.check("10.0.0.1"); ok || first {
		t.Errorf("second refusal: ok %v, first %v; want refused, not first", ok, first)
	}
	if _, _, ok := th.check("10.0.0.2"); !ok {
		t.Error("another address is refused")
	}
	now = now.Add(57 * time.Second) // the window started at 1000 s
	if _, _, ok := th.check("10.0.0.1"); !ok {
		t.Error("refused after the window ended")
	}
	if th.count() != 0 {
		t.Errorf("%d addresses tracked after the window ended, want 0", th.count())
	}
}

// At the cap, ended windows are swept first, then the oldest dropped.
func TestThrottleIsBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	th := newThrottle(1, time.Minute, 3, func() time.Time { return now })
	for i := range 3 {
		th.fail(fmt.Sprint("a", i))
		now = now.Add(10 * time.Second)
	}
	th.fail("a3") // full: a0, the oldest, goes
	if _, _, ok := th.check("a0"); !ok || th.count() != 3 {
		t.Errorf("a0 still refused (%v) or %d tracked, want dropped and 3", !ok, th.count())
	}
	if _, _, ok := th.check("a1"); ok {
		t.Error("a1 dropped though a0 was older")
	}
	now = now.Add(time.Minute) // a1, a2 and a3's windows ended
	th.fail("b")
	if th.count() != 1 {
		t.Errorf("%d tracked after the sweep, want 1", th.count())
	}
}
