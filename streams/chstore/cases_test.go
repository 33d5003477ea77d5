package chstore_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"riskd/engine"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/chstore"
)

var caseBase = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

// reviewDecision is a review of event id for account, i seconds after caseBase.
func reviewDecision(account, id string, i int) *engine.Decision {
	return &engine.Decision{
		EventID: id, AccountID: account, EventType: "payment",
		EventTS: caseBase.Add(time.Duration(i) * time.Second).UnixMilli(), DecidedAt: caseBase.Add(time.Duration(i)*time.Second + 2*time.Millisecond),
		Action: rules.Review, Score: 55, Reason: "rule", RuleSetVersion: "7-1a2b3c4d",
		Matched: []engine.RuleHit{{RuleID: "velocity", Action: rules.Review, Score: 55}},
		Raw:     []byte(`{"event_id":"` + id + `"}`),
	}
}

func writeDecisions(t *testing.T, st *chstore.Store, ds ...*engine.Decision) {
	t.Helper()
	if err := st.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
}

func listCases(t *testing.T, st *chstore.Store, f chstore.CaseFilter) []chstore.Case {
	t.Helper()
	cs, err := st.Cases(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestReviewDecisionOpensOneCase(t *testing.T) {
	st := chtest.Open(t)
	review := reviewDecision("acct-1", "ev-r", 0)
	allow := reviewDecision("acct-1", "ev-a", 1)
	allow.Action = rules.Allow
	writeDecisions(t, st, review, allow)
	writeDecisions(t, st, review, allow) // a retried or replayed batch
	dup := reviewDecision("acct-1", "ev-r", 5)
	dup.EventTS, dup.Reason, dup.Matched, dup.Duplicate = review.EventTS, engine.ReasonDuplicate, nil, true
	writeDecisions(t, st, dup) // the engine's repeat of the event opens nothing

	cs := listCases(t, st, chstore.CaseFilter{})
	if len(cs) != 1 {
		t.Fatalf("%d cases, want 1: %+v", len(cs), cs)
	}
	c := cs[0]
	want := chstore.Case{ID: chstore.CaseID("acct-1", "ev-r"), EventID: "ev-r", AccountID: "acct-1", EventType: "payment",
		EventTS: review.EventTS, OpenedAt: review.DecidedAt.UTC(), Score: 55, Reason: "rule", Rules: []string{"velocity"},
		RuleSetVersion: "7-1a2b3c4d", Status: chstore.CaseOpen, Version: 1}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("case\n got %+v\nwant %+v", c, want)
	}
	got, ok, err := st.Case(t.Context(), want.ID)
	if err != nil || !ok || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Case(%s) = %+v, %v, %v", want.ID, got, ok, err)
	}
	if _, ok, err := st.Case(t.Context(), chstore.CaseID("acct-1", "ev-a")); ok || err != nil {
		t.Errorf("the allow decision has a case (%v, %v)", ok, err)
	}
	if _, ok, err := st.Case(t.Context(), "not-a-case-id"); ok || err != nil {
		t.Errorf("a malformed id found a case (%v, %v)", ok, err)
	}
}

// TestCaseTakeCloseAndLabel also pins that the status filter sees only
// each case's latest row: the open row and the taken row are two
// parts until a merge, and FINAL must collapse them before WHERE.
func TestCaseTakeCloseAndLabel(t *testing.T) {
	st := chtest.Open(t)
	ctx := t.Context()
	d := reviewDecision("acct-1", "ev-1", 0)
	writeDecisions(t, st, d)
	id := chstore.CaseID("acct-1", "ev-1")
	at := caseBase.Add(time.Hour)

	ch, err := st.TakeCase(ctx, id, "alice", false, at)
	if err != nil || !ch.Changed || ch.After.Status != chstore.CaseTaken || ch.After.Assignee != "alice" || ch.After.Version != 2 {
		t.Fatalf("take: %+v, %v", ch, err)
	}
	if ch, err := st.TakeCase(ctx, id, "alice", false, at); err != nil || ch.Changed {
		t.Errorf("alice takes her own case again: %+v, %v; want no change", ch, err)
	}
	_, err = st.TakeCase(ctx, id, "bob", false, at)
	if want := "chstore: case " + id + ": taken by someone else (alice); force to take it over"; !errors.Is(err, chstore.ErrCaseTaken) || err.Error() != want {
		t.Errorf("bob takes alice's case: %v, want %q", err, want)
	}
	if _, err := st.CloseCase(ctx, id, "bob", "fraud", "", false, at); !errors.Is(err, chstore.ErrCaseTaken) {
		t.Errorf("bob closes alice's case: %v, want ErrCaseTaken", err)
	}
	if cs := listCases(t, st, chstore.CaseFilter{Status: chstore.CaseOpen}); len(cs) != 0 {
		t.Errorf("status open lists the taken case: %+v", cs)
	}
	if ch, err := st.TakeCase(ctx, id, "bob", true, at.Add(time.Minute)); err != nil || ch.Before.Assignee != "alice" || ch.After.Assignee != "bob" {
		t.Fatalf("bob forces: %+v, %v", ch, err)
	}
	for _, bad := range []struct{ outcome, note, want string }{
		{"maybe", "", `chstore: close case ` + id + `: invalid outcome "maybe": want fraud, not_fraud or inconclusive`},
		{"fraud", strings.Repeat("n", chstore.MaxLabelNoteBytes+1), "chstore: close case " + id + ": invalid note: 1001 bytes, over the 1000-byte limit"},
		{"fraud", "\xff", "chstore: close case " + id + ": invalid note: not valid UTF-8"},
	} {
		if _, err := st.CloseCase(ctx, id, "bob", bad.outcome, bad.note, false, at); !errors.Is(err, chstore.ErrCaseInput) || err.Error() != bad.want {
			t.Errorf("close %q: %v, want %q", bad.outcome, err, bad.want)
		}
	}
	closedAt := at.Add(2 * time.Minute)
	ch, err = st.CloseCase(ctx, id, "bob", chstore.CaseFraud, "owner confirmed it was not them", false, closedAt)
	if err != nil || ch.After.Status != chstore.CaseClosed || ch.After.Version != 4 {
		t.Fatalf("close: %+v, %v", ch, err)
	}
	labels, err := st.LabelsByEvent(ctx, []string{"ev-1"})
	if err != nil {
		t.Fatal(err)
	}
	l := labels["ev-1"]
	if l.Label != "fraud" || l.Source != "review" || l.LabelledBy != "bob" || l.Note != "owner confirmed it was not them" || !l.LabelledAt.Equal(closedAt) {
		t.Errorf("label after close: %+v", l)
	}
	_, err = st.CloseCase(ctx, id, "bob", chstore.CaseNotFraud, "", true, closedAt)
	if want := "chstore: case " + id + ": already closed (fraud by bob)"; !errors.Is(err, chstore.ErrCaseClosed) || err.Error() != want {
		t.Errorf("second close: %v, want %q", err, want)
	}
	if _, err := st.TakeCase(ctx, id, "carol", true, closedAt); !errors.Is(err, chstore.ErrCaseClosed) {
		t.Errorf("take of a closed case: %v, want ErrCaseClosed", err)
	}
	if _, err := st.TakeCase(ctx, chstore.CaseID("acct-1", "nope"), "carol", false, closedAt); !errors.Is(err, chstore.ErrCaseNotFound) {
		t.Errorf("take of an unknown case: %v, want ErrCaseNotFound", err)
	}

	// The decision replayed after the close does not reopen the case.
	writeDecisions(t, st, d)
	c, ok, err := st.Case(ctx, id)
	if err != nil || !ok || c.Status != chstore.CaseClosed || c.Outcome != "fraud" || c.ClosedBy != "bob" ||
		!c.ClosedAt.Equal(closedAt) || c.Assignee != "bob" || c.Version != 4 {
		t.Errorf("after a replay: %+v, %v, %v", c, ok, err)
	}
	if cs := listCases(t, st, chstore.CaseFilter{Status: chstore.CaseOpen}); len(cs) != 0 {
		t.Errorf("a replay reopened the case: %+v", cs)
	}
	if cs := listCases(t, st, chstore.CaseFilter{Status: chstore.CaseClosed}); len(cs) != 1 || cs[0].ID != id {
		t.Errorf("closed cases: %+v", cs)
	}
}

func TestInconclusiveCloseWritesNoLabel(t *testing.T) {
	st := chtest.Open(t)
	writeDecisions(t, st, reviewDecision("acct-1", "ev-1", 0))
	id := chstore.CaseID("acct-1", "ev-1")
	if _, err := st.CloseCase(t.Context(), id, "alice", chstore.CaseInconclusive, "", false, caseBase.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	labels, err := st.LabelsByEvent(t.Context(), []string{"ev-1"})
	if err != nil || len(labels) != 0 {
		t.Errorf("labels after an inconclusive close: %v, %v", labels, err)
	}
}

func TestCaseListFiltersAndPages(t *testing.T) {
	st := chtest.Open(t)
	var ds []*engine.Decision
	for i := range 7 {
		ds = append(ds, reviewDecision(fmt.Sprintf("acct-%d", i%2), fmt.Sprintf("ev-%d", i), i))
	}
	// Two events in the same millisecond: the page boundary falls between them.
	ds = append(ds, reviewDecision("acct-0", "ev-same", 6))
	writeDecisions(t, st, ds...)
	if _, err := st.TakeCase(t.Context(), chstore.CaseID("acct-1", "ev-5"), "alice", false, caseBase); err != nil {
		t.Fatal(err)
	}

	var all []string
	f := chstore.CaseFilter{Limit: 3}
	for page := 0; ; page++ {
		cs := listCases(t, st, f)
		for _, c := range cs {
			all = append(all, c.EventID)
		}
		if len(cs) < f.Limit || page > 5 {
			break
		}
		f.Before = cs[len(cs)-1].Cursor()
	}
	// Newest first; ev-6 and ev-same share a time, ordered by case id.
	first, second := "ev-6", "ev-same"
	if chstore.CaseID("acct-0", "ev-same") > chstore.CaseID("acct-0", "ev-6") {
		first, second = second, first
	}
	if got, want := strings.Join(all, " "), first+" "+second+" ev-5 ev-4 ev-3 ev-2 ev-1 ev-0"; got != want {
		t.Errorf("pages of 3: %s, want %s", got, want)
	}
	var ids []string
	for _, c := range listCases(t, st, chstore.CaseFilter{AccountID: "acct-1"}) {
		ids = append(ids, c.EventID)
	}
	if got := strings.Join(ids, " "); got != "ev-5 ev-3 ev-1" {
		t.Errorf("account acct-1: %s", got)
	}
	if cs := listCases(t, st, chstore.CaseFilter{Status: chstore.CaseTaken}); len(cs) != 1 || cs[0].EventID != "ev-5" || cs[0].Assignee != "alice" {
		t.Errorf("taken: %+v", cs)
	}
	if cs := listCases(t, st, chstore.CaseFilter{Status: chstore.CaseOpen, AccountID: "acct-1"}); len(cs) != 2 {
		t.Errorf("open of acct-1: %d cases, want 2", len(cs))
	}

	for _, bad := range []struct {
		f    chstore.CaseFilter
		want string
	}{
		{chstore.CaseFilter{Limit: chstore.MaxCaseList + 1}, "chstore: cases: invalid limit 501: want 1 to 500"},
		{chstore.CaseFilter{Status: "pending"}, `chstore: cases: invalid status "pending": want open, taken or closed`},
		{chstore.CaseFilter{AccountID: "a b"}, "chstore: cases: invalid account: contains the byte 0x20: ids are printable text without spaces"},
		{chstore.CaseFilter{Before: chstore.CaseCursor{EventTS: 1, ID: "x"}}, `chstore: cases: invalid cursor: case id "x"`},
	} {
		if _, err := st.Cases(t.Context(), bad.f); !errors.Is(err, chstore.ErrCaseInput) || err.Error() != bad.want {
			t.Errorf("%+v: %v, want %q", bad.f, err, bad.want)
		}
	}
}

func TestCaseCursorRoundTrips(t *testing.T) {
	c := chstore.CaseCursor{EventTS: 1795521600000, ID: chstore.CaseID("a", "e")}
	got, err := chstore.ParseCaseCursor(c.String())
	if err != nil || got != c {
		t.Errorf("ParseCaseCursor(%q) = %+v, %v", c.String(), got, err)
	}
	for _, bad := range []string{"", "12", "x.c0123456789abcdef", "12.c0123", "012.c0123456789abcdef"} {
		if _, err := chstore.ParseCaseCursor(bad); !errors.Is(err, chstore.ErrCaseInput) {
			t.Errorf("ParseCaseCursor(%q): %v, want ErrCaseInput", bad, err)
		}
	}
}
