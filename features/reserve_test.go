package features

import (
	"os"
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
)

// Reserve only sizes the account table: a Store that reserved room (too
// little, then enough) reads every feature of every event as one that did
// not, through the table's growth and Expire's deletions alike.
func TestReserveChangesNoValue(t *testing.T) {
	yml, err := os.ReadFile("../bench/reference/features.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := mustSet(t, string(yml))
	g := traffic.New(traffic.Config{Accounts: 3000, Seed: 5, FraudRate: 0.05,
		Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	plain, reserved := s.NewStore(), s.NewStore()
	reserved.Reserve(100) // fewer than the accounts: it still grows
	var ev event.Event
	var a, b Values
	for i := range 40_000 {
		g.Next(&ev)
		if i == 20_000 {
			reserved.Reserve(10_000) // room again, with accounts in it
		}
		la, lb := plain.Observe(&ev, &a), reserved.Observe(&ev, &b)
		if la != lb || a != b {
			t.Fatalf("event %d: late %v %v, values\n%+v\nvs reserved\n%+v", i, la, lb, a, b)
		}
		if i%10_000 == 9_999 {
			plain.Expire(ev.TS)
			reserved.Expire(ev.TS)
		}
	}
	if plain.Accounts() != reserved.Accounts() || plain.Len() != reserved.Len() {
		t.Errorf("accounts %d vs %d, state %d vs %d", plain.Accounts(), reserved.Accounts(), plain.Len(), reserved.Len())
	}
}
