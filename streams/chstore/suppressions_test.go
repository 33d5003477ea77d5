package chstore_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"riskd/engine"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/chstore"
)

// TestSuppressionsAreStoredReadAndInTheTimeline writes suppressions and
// lifts twice (a retry collapses), some in one millisecond with a
// decision, and reads them back: the account's history newest first, a
// span's rows oldest first with the bound, and the timeline paged one
// entry at a time without losing or repeating one.
func TestSuppressionsAreStoredReadAndInTheTimeline(t *testing.T) {
	st, err := chstore.Open(t.Context(), chtest.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	at := base.Add(1500 * time.Millisecond) // the decision's millisecond too
	rows := []chstore.SuppressionRow{
		{AccountID: "acct-s", RuleID: "scam-payee", Action: chstore.SuppressionSuppress, Until: at.Add(72*time.Hour + 7*time.Millisecond),
			Reason: "known payee", Actor: "api:alice", At: at, RequestID: "suppress-a"},
		{AccountID: "acct-s", RuleID: "big-day", Action: chstore.SuppressionSuppress, Until: at.Add(time.Hour),
			Reason: "salary day", Actor: "api:alice", At: at, RequestID: "suppress-b"},
		{AccountID: "acct-s", RuleID: "big-day", Action: chstore.SuppressionLift, Reason: "done", Actor: "api:bob",
			At: at, RequestID: "unsuppress-c"},
		{AccountID: "acct-s", RuleID: "scam-payee", Action: chstore.SuppressionLift, Reason: "reported again", Actor: "api:bob",
			At: base.Add(time.Minute), RequestID: "unsuppress-d"},
		{AccountID: "acct-other", RuleID: "scam-payee", Action: chstore.SuppressionSuppress, Until: at.Add(time.Hour),
			Reason: "x", Actor: "api:carol", At: at, RequestID: "suppress-e"},
	}
	d := &engine.Decision{EventID: "ev-s", AccountID: "acct-s", EventType: "payment", EventTS: at.UnixMilli(),
		DecidedAt: at, Action: rules.Allow, RuleSetVersion: "1-aaaaaaaa"}
	for range 2 {
		for _, r := range rows {
			if err := st.WriteSuppression(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.WriteDecisions(t.Context(), []*engine.Decision{d}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.WriteSuppression(t.Context(), chstore.SuppressionRow{AccountID: "a", RuleID: "r", Action: "mute",
		At: at, RequestID: "x"}); err == nil || err.Error() != `chstore: write suppression a/r: action "mute": want suppress or lift` {
		t.Errorf("write of an unknown action: %v", err)
	}

	hist, err := st.SuppressionHistory(t.Context(), "acct-s", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range hist {
		got = append(got, r.RequestID)
	}
	if want := []string{"unsuppress-d", "unsuppress-c", "suppress-b", "suppress-a"}; !slices.Equal(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	if a := hist[3]; !a.Until.Equal(rows[0].Until) || !a.At.Equal(at) || a.Reason != "known payee" || a.Actor != "api:alice" ||
		a.RuleID != "scam-payee" || a.Action != "suppress" {
		t.Errorf("suppress-a read back as %+v", a)
	}
	if !hist[0].Until.IsZero() {
		t.Errorf("a lift has until %v", hist[0].Until)
	}

	span, err := st.SupportSuppressions(t.Context(), base.UnixMilli(), base.Add(time.Hour).UnixMilli(), 5)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, r := range span {
		got = append(got, r.RequestID)
	}
	if want := []string{"suppress-e", "suppress-b", "suppress-a", "unsuppress-c", "unsuppress-d"}; !slices.Equal(got, want) {
		t.Fatalf("span %v, want %v", got, want)
	}
	if _, err := st.SupportSuppressions(t.Context(), base.UnixMilli(), base.Add(time.Hour).UnixMilli(), 4); !errors.Is(err, chstore.ErrTooManySuppressions) {
		t.Fatalf("span of 5 rows with limit 4: %v", err)
	}

	q := chstore.TimelineQuery{AccountID: "acct-s", From: base.Add(-time.Hour), To: base.Add(time.Hour), Limit: chstore.MaxPageLimit}
	all, err := st.Timeline(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	var whole []string
	for _, e := range all.Entries {
		whole = append(whole, fmt.Sprintf("%s/%s/%s", e.Kind, e.EventID, e.RuleID))
	}
	want := []string{"lift/unsuppress-d/scam-payee", "lift/unsuppress-c/big-day", "suppress/suppress-b/big-day",
		"suppress/suppress-a/scam-payee", "decision/ev-s/"}
	if !slices.Equal(whole, want) {
		t.Fatalf("timeline %v, want %v", whole, want)
	}
	if e := all.Entries[3]; !e.Until.Equal(rows[0].Until) || e.Reason != "known payee" || e.Actor != "api:alice" {
		t.Errorf("suppress-a in the timeline: %+v", e)
	}
	var paged []string
	q.Limit = 1
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		p, err := st.Timeline(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			paged = append(paged, fmt.Sprintf("%s/%s/%s", e.Kind, e.EventID, e.RuleID))
		}
		if p.Next.IsZero() {
			break
		}
		if q.Before, err = chstore.ParseCursor(p.Next.String()); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(paged, whole) {
		t.Errorf("paged one at a time:\n%v\nwhole:\n%v", paged, whole)
	}
}
