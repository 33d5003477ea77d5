package features

import (
	"testing"

	"riskd/event"
)

// TestResetAccount: resetting an account's failed-login counter empties it
// for that account only; the IP's counter (shared with other accounts),
// the account's other features and other accounts keep their state, and
// events after the reset count from zero.
func TestResetAccount(t *testing.T) {
	s := mustSet(t, `
failed: {count: login_failed, by: account, window: 15m}
pays:   {count: payment, by: account, window: 1h}
ipfail: {count: login_failed, by: ip, window: 15m}
`)
	if !s.ByAccount("failed") || !s.ByAccount("pays") || s.ByAccount("ipfail") || s.ByAccount("nope") {
		t.Fatalf("ByAccount: failed %v pays %v ipfail %v nope %v", s.ByAccount("failed"), s.ByAccount("pays"),
			s.ByAccount("ipfail"), s.ByAccount("nope"))
	}
	st := s.NewStore()
	var v Values
	fail := func(acct string, ts int64) event.Event {
		return event.Event{Type: event.TypeLoginFailed, AccountID: acct, TS: ts, IP: "10.0.0.1"}
	}
	for i := range int64(5) {
		ev := fail("a1", t0+i*1000)
		st.Observe(&ev, &v)
		ev = fail("a2", t0+i*1000+500)
		st.Observe(&ev, &v)
	}
	ev := pay("a1", t0+6000, 100)
	st.Observe(&ev, &v)

	failed, _ := s.Index("failed")
	ipfail, _ := s.Index("ipfail")
	if n := st.ResetAccount("a1", []int{failed, ipfail}); n == 0 {
		t.Fatal("ResetAccount dropped nothing")
	}
	if n := st.ResetAccount("a1", []int{failed}); n != 0 {
		t.Fatalf("a second reset dropped %d items", n)
	}
	if n := st.ResetAccount("nobody", []int{failed}); n != 0 {
		t.Fatalf("reset of an unknown account dropped %d items", n)
	}
	ev = fail("a1", t0+7000)
	st.Observe(&ev, &v)
	if got := win(t, s, &v, "failed"); got != 1 {
		t.Fatalf("a1 failed after reset and one more: %v, want 1", got)
	}
	if got := win(t, s, &v, "pays"); got != 1 {
		t.Fatalf("a1 pays after reset: %v, want 1 (not reset)", got)
	}
	if got := win(t, s, &v, "ipfail"); got != 11 {
		t.Fatalf("ip failed after reset: %v, want 11 (shared entity not reset)", got)
	}
	ev = fail("a2", t0+8000)
	st.Observe(&ev, &v)
	if got := win(t, s, &v, "failed"); got != 6 {
		t.Fatalf("a2 failed: %v, want 6 (other account not reset)", got)
	}
}
