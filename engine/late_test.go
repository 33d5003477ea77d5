package engine

import (
	"slices"
	"testing"
	"unsafe"

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
