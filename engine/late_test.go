package engine

import (
	"slices"
	"testing"

	"riskd/event"
)

// TestDecisionNamesTheGroupsAnEventWasLateFor: an event late for its device
// (another account used it later) but in time for its account is Late with
// LateFor ["device.id"]; one behind both is late for both; the next
// decision into the same Decision starts with no LateFor, and a clone
// keeps its own.
func TestDecisionNamesTheGroupsAnEventWasLateFor(t *testing.T) {
	set, holder := loadWorkload(t, "../bench/reference/features.yaml", "../bench/reference/rules")
	s := NewScorer(Config{Now: fixedClock()}, set, holder)
	const minute = 60_000
	ev := func(id, account string, ts int64) []byte {
		return msg(event.Event{ID: id, Type: event.TypeLogin, TS: ts, AccountID: account, Device: event.Device{ID: "dev-shared"}})
	}
	var d Decision
	for _, raw := range [][]byte{ev("e1", "a", t0-60*minute), ev("e2", "b", t0-10*minute)} {
		if err := s.Score(raw, Source{Topic: "test"}, &d); err != nil {
			t.Fatal(err)
		}
		if d.Late || len(d.LateFor) != 0 {
			t.Fatalf("in-time event %s: late %v for %q", d.EventID, d.Late, d.LateFor)
		}
	}
	if err := s.Score(ev("e3", "a", t0-30*minute), Source{Topic: "test"}, &d); err != nil {
		t.Fatal(err)
	}
	if !d.Late || !slices.Equal(d.LateFor, []string{"device.id"}) {
		t.Fatalf("late %v for %q, want late for device.id only", d.Late, d.LateFor)
	}
	kept := d.Clone()
	// Behind a's latest (e3) and the device's (e2) alike.
	if err := s.Score(ev("e4", "a", t0-90*minute), Source{Topic: "test"}, &d); err != nil {
		t.Fatal(err)
	}
	if !d.Late || !slices.Equal(d.LateFor, []string{"account", "device.id"}) {
		t.Fatalf("late %v for %q, want late for account and device.id", d.Late, d.LateFor)
	}
	if err := s.Score(ev("e5", "a", t0-5*minute), Source{Topic: "test"}, &d); err != nil {
		t.Fatal(err)
	}
	if d.Late || len(d.LateFor) != 0 {
		t.Fatalf("the next decision kept late %v for %q", d.Late, d.LateFor)
	}
	if !kept.Late || !slices.Equal(kept.LateFor, []string{"device.id"}) {
		t.Fatalf("the clone changed with the Scorer's Decision: late %v for %q", kept.Late, kept.LateFor)
	}
}
