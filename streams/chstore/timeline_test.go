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

// timelineFixture stores, twice over (a retried write must count once),
// an account's history: 12 decisions, 8 of them in one millisecond, with
// alerts, a rule lock, a label; a support unlock; and another account's
// decisions in the same millisecond.
func timelineFixture(t *testing.T) (*chstore.Store, time.Time) {
	t.Helper()
	st, err := chstore.Open(t.Context(), chtest.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	var ds []*engine.Decision
	for i := range 12 {
		ts := base.Add(time.Second) // 8 share a millisecond
		if i >= 8 {
			ts = base.Add(time.Duration(i) * time.Minute)
		}
		d := &engine.Decision{EventID: fmt.Sprintf("tl-%02d", i), AccountID: "acct-t", EventType: "login",
			EventTS: ts.UnixMilli(), DecidedAt: ts.Add(time.Millisecond), Action: rules.Allow, RuleSetVersion: "1-aaaaaaaa",
			Features: []engine.FeatureValue{{Name: "failed_logins_10m", Value: float64(i)}}}
		if i%3 == 0 {
			d.Action = rules.Review
			d.Matched = []engine.RuleHit{{RuleID: "odd-login", Action: rules.Review}}
			d.Alerts = []engine.AlertMessage{{RuleID: "odd-login", Message: "New login"}, {RuleID: "odd-login-2", Message: "Again"}}
		}
		if i == 4 {
			d.Shadow = []engine.RuleHit{{RuleID: "shadow-x", Action: rules.Block}}
			d.Label = "fraud"
		}
		if i == 5 {
			d.Action, d.Reason, d.LockUntil = rules.Lock, "rule", ts.Add(time.Hour)
			d.Matched = []engine.RuleHit{{RuleID: "brute-force-lock", Action: rules.Lock}}
		}
		ds = append(ds, d)
		other := *d
		other.EventID, other.AccountID, other.Alerts, other.Label = fmt.Sprintf("ot-%02d", i), "acct-other", nil, ""
		ds = append(ds, &other)
	}
	for range 2 {
		if err := st.WriteDecisions(t.Context(), ds); err != nil {
			t.Fatal(err)
		}
		err := st.WriteLock(t.Context(), chstore.LockRow{AccountID: "acct-t", Action: "unlock", Reason: "owner verified",
			Actor: "api:support-1", At: base.Add(time.Second), RequestID: "req-1"})
		if err != nil {
			t.Fatal(err)
		}
	}
	return st, base
}

func entryKey(e chstore.Entry) string {
	c := e.Cursor()
	return fmt.Sprintf("%d/%s/%s/%s", c.TS, c.Kind, c.A, c.B)
}

func TestTimelinePagesLoseAndRepeatNothingWithinAMillisecond(t *testing.T) {
	st, base := timelineFixture(t)
	q := chstore.TimelineQuery{AccountID: "acct-t", From: base.Add(-time.Hour), To: base.Add(time.Hour), Limit: chstore.MaxPageLimit}
	all, err := st.Timeline(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	// 12 decisions, 4 reviews x 2 alerts, 1 lock, 1 unlock, 1 label.
	count := map[string]int{}
	for _, e := range all.Entries {
		count[e.Kind]++
	}
	want := map[string]int{"decision": 12, "alert": 8, "lock": 1, "unlock": 1, "label": 1}
	if fmt.Sprint(count) != fmt.Sprint(want) || !all.Next.IsZero() {
		t.Fatalf("kinds %v, next %v; want %v and no next", count, all.Next, want)
	}
	if first := all.Entries[0]; first.Kind != "decision" || first.EventID != "tl-11" {
		t.Errorf("newest entry %s, want decision tl-11", entryKey(first))
	}
	for i := 1; i < len(all.Entries); i++ {
		if all.Entries[i].TS > all.Entries[i-1].TS {
			t.Errorf("entry %d (%s) is newer than the one before", i, entryKey(all.Entries[i]))
		}
	}
	for _, e := range all.Entries {
		switch {
		case e.Kind == "lock" && (e.Reason != "rule:brute-force-lock" || e.Actor != "engine" || e.Until.IsZero()):
			t.Errorf("lock entry %+v", e)
		case e.Kind == "unlock" && (e.Actor != "api:support-1" || e.Reason != "owner verified"):
			t.Errorf("unlock entry %+v", e)
		case e.Kind == "decision" && e.EventID == "tl-04" && (len(e.Decision.ShadowRules) != 1 || e.Decision.Features[0].Value != 4):
			t.Errorf("decision tl-04 %+v", e.Decision)
		}
	}

	// Pages of 3 give the same entries in the same order.
	var paged []string
	q.Limit = 3
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("paging does not end")
		}
		p, err := st.Timeline(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			paged = append(paged, entryKey(e))
		}
		if p.Next.IsZero() {
			break
		}
		// The cursor goes through its text form, as the API sends it.
		if q.Before, err = chstore.ParseCursor(p.Next.String()); err != nil {
			t.Fatal(err)
		}
	}
	var whole []string
	for _, e := range all.Entries {
		whole = append(whole, entryKey(e))
	}
	if !slices.Equal(paged, whole) {
		t.Errorf("paged:\n%v\nwhole:\n%v", paged, whole)
	}

	known, err := st.AccountKnown(t.Context(), "acct-t")
	if err != nil || !known {
		t.Errorf("AccountKnown(acct-t) = %v, %v", known, err)
	}
	known, err = st.AccountKnown(t.Context(), "acct-never")
	if err != nil || known {
		t.Errorf("AccountKnown(acct-never) = %v, %v", known, err)
	}
}

func TestSearchDecisionsFiltersAndPagesAcrossAccounts(t *testing.T) {
	st, base := timelineFixture(t)
	from, to := base.Add(-time.Hour), base.Add(time.Hour)
	search := func(q chstore.DecisionQuery) []string {
		t.Helper()
		q.From, q.To = from, to
		var ids []string
		for {
			p, err := st.SearchDecisions(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Entries {
				ids = append(ids, e.EventID)
			}
			if p.Next.IsZero() {
				return ids
			}
			q.Before = p.Next
		}
	}
	if got := search(chstore.DecisionQuery{Rule: "shadow-x"}); fmt.Sprint(got) != "[tl-04 ot-04]" {
		t.Errorf("rule shadow-x: %v", got)
	}
	if got := search(chstore.DecisionQuery{Action: "lock", AccountID: "acct-t"}); fmt.Sprint(got) != "[tl-05]" {
		t.Errorf("lock of acct-t: %v", got)
	}
	if got := search(chstore.DecisionQuery{Rule: "odd-login", Action: "review", Limit: 1}); len(got) != 8 {
		t.Errorf("odd-login reviews, a page of 1 at a time: %v, want 8", got)
	}
	if got := search(chstore.DecisionQuery{Limit: 5}); len(got) != 24 {
		t.Errorf("all, by pages of 5: %d, want 24", len(got))
	}
}

func TestTimelineAndSearchRefuseUnboundedRequests(t *testing.T) {
	st, base := timelineFixture(t)
	ctx := t.Context()
	year := chstore.TimelineQuery{AccountID: "acct-t", From: base.Add(-367 * 24 * time.Hour), To: base}
	_, err := st.Timeline(ctx, year)
	if want := "chstore: timeline acct-t: period: 2025-11-18T08:00:00Z to 2026-11-20T08:00:00Z is longer than 8784h"; err == nil || err.Error() != want {
		t.Errorf("367 days: %v\nwant %s", err, want)
	}
	year.From = base.Add(-366 * 24 * time.Hour)
	if _, err := st.Timeline(ctx, year); err != nil {
		t.Errorf("366 days: %v", err)
	}
	year.Limit = chstore.MaxPageLimit + 1
	if _, err := st.Timeline(ctx, year); err == nil || err.Error() != "chstore: timeline acct-t: limit 1001: want 1 to 1000" {
		t.Errorf("limit 1001: %v", err)
	}
	_, err = st.SearchDecisions(ctx, chstore.DecisionQuery{From: base.Add(-32 * 24 * time.Hour), To: base})
	if err == nil || err.Error() != "chstore: search decisions: period: 2026-10-19T08:00:00Z to 2026-11-20T08:00:00Z is longer than 744h" {
		t.Errorf("32 days over all accounts: %v", err)
	}
	if _, err := st.SearchDecisions(ctx, chstore.DecisionQuery{AccountID: "acct-t", From: base.Add(-32 * 24 * time.Hour), To: base}); err != nil {
		t.Errorf("32 days of one account: %v", err)
	}
	for _, bad := range []string{"!!", "eA", string(make([]byte, 5000))} {
		if _, err := chstore.ParseCursor(bad); !errors.Is(err, chstore.ErrBadCursor) {
			t.Errorf("ParseCursor(%.10q) = %v, want ErrBadCursor", bad, err)
		}
	}
}
