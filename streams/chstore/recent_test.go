package chstore_test

import (
	"slices"
	"testing"
	"time"

	"riskd/engine"
	"riskd/internal/chtest"
	"riskd/streams/chstore"
)

// An account's recent events come oldest first, the newest limit of them,
// each once though stored twice, and no other account's.
func TestRecentEventsOfAnAccount(t *testing.T) {
	cfg := chtest.Config(t)
	cfg.RecoveryWindow = -1 // store the repeats below, as a replay past the window does
	st, err := chstore.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)
	ds := sampleDecisions("recent", 40, base) // acct-0 .. acct-9, 4 events each
	for _, batch := range [][]*engine.Decision{ds, replayedCopies(ds)} {
		if err := st.WriteDecisions(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		limit int
		want  []string
	}{
		{10, []string{"recent-ev-00003", "recent-ev-00013", "recent-ev-00023", "recent-ev-00033"}},
		{2, []string{"recent-ev-00023", "recent-ev-00033"}},
	} {
		got, err := st.RecentEvents(t.Context(), "acct-3", c.limit)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range got {
			ids = append(ids, e.EventID)
			if want := `{"event_id":"` + e.EventID + `","type":"payment"}`; string(e.Raw) != want {
				t.Errorf("%s: raw %s, want %s", e.EventID, e.Raw, want)
			}
		}
		if !slices.Equal(ids, c.want) {
			t.Errorf("limit %d: %v, want %v", c.limit, ids, c.want)
		}
	}
}
