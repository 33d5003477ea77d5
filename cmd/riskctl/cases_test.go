package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"riskd/api"
	"riskd/engine"
	"riskd/internal/apitest"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/chstore"
)

// casesRiskd serves riskd's case routes over a fresh ClickHouse database
// holding three review decisions (ev-0 .. ev-2 of acct-7, a minute apart),
// and points riskctl at it with a support token.
func casesRiskd(t *testing.T) *chstore.Store {
	t.Helper()
	st := chtest.Open(t)
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var ds []*engine.Decision
	for i := range 3 {
		ds = append(ds, &engine.Decision{
			EventID: fmt.Sprintf("ev-%d", i), AccountID: "acct-7", EventType: "transfer",
			EventTS: base.Add(time.Duration(i) * time.Minute).UnixMilli(), DecidedAt: base.Add(time.Duration(i) * time.Minute),
			Action: rules.Review, Score: 50 + i, Reason: "rule", RuleSetVersion: "2-00c0ffee",
			Matched: []engine.RuleHit{{RuleID: "new-payee-big", Action: rules.Review, Score: 50}},
			Raw:     []byte(`{}`),
		})
	}
	if err := st.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(apitest.Tokens(t), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	srv.Handle(api.CaseRoutes(st, func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) })...)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	t.Setenv(envURL, hs.URL)
	t.Setenv(envToken, apitest.Secrets[api.RoleSupport])
	return st
}

// riskctlCases runs "riskctl cases ARGS" and returns stdout and the error.
func riskctlCases(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runCases(t.Context(), args, &out, &errOut)
	return out.String(), err
}

func TestCasesListTakeClose(t *testing.T) {
	st := casesRiskd(t)
	id := func(ev string) string { return chstore.CaseID("acct-7", ev) }

	out, err := riskctlCases(t, "--limit", "2")
	if err != nil {
		t.Fatal(err)
	}
	want := "CASE               EVENT TIME (UTC)     ACCOUNT  EVENT  SCORE  RULES          STATUS  WHO\n" +
		id("ev-2") + "  2026-11-24 10:02:00  acct-7   ev-2   52     new-payee-big  open    \n" +
		id("ev-1") + "  2026-11-24 10:01:00  acct-7   ev-1   51     new-payee-big  open    \n" +
		"more: riskctl cases list --before 1795514460000." + id("ev-1") + "\n"
	if out != want {
		t.Errorf("cases --limit 2:\n%s\nwant\n%s", out, want)
	}
	out, err = riskctlCases(t, "list", "--before", "1795514460000."+id("ev-1"), "--limit", "2")
	if err != nil || !strings.Contains(out, id("ev-0")) || strings.Contains(out, id("ev-1")) || strings.Contains(out, "more:") {
		t.Errorf("second page: %v\n%s", err, out)
	}

	out, err = riskctlCases(t, "take", id("ev-1"))
	if want := "case " + id("ev-1") + " (event ev-1 of acct-7) is taken by support-token\n"; err != nil || out != want {
		t.Errorf("take: %v %q, want %q", err, out, want)
	}
	t.Setenv(envToken, apitest.Secrets[api.RoleAnalyst])
	_, err = riskctlCases(t, "take", id("ev-1"))
	if want := "cases take: riskd answered 409 Conflict: case " + id("ev-1") + `: taken by someone else (support-token); send {"force": true} to take it over`; err == nil || err.Error() != want || exitCode(err) != 1 {
		t.Errorf("take of support's case: %v, want %q", err, want)
	}
	// Flags after the id, as people type them.
	out, err = riskctlCases(t, "close", id("ev-1"), "--outcome", "not_fraud", "--note", "owner called back", "--force")
	if want := "case " + id("ev-1") + " is closed by analyst-token: event ev-1 labelled not_fraud (source review)\n"; err != nil || out != want {
		t.Errorf("close: %v %q, want %q", err, out, want)
	}
	labels, err := st.LabelsByEvent(t.Context(), []string{"ev-1"})
	if l := labels["ev-1"]; err != nil || l.Label != "not_fraud" || l.Source != "review" || l.LabelledBy != "analyst-token" || l.Note != "owner called back" {
		t.Errorf("label: %+v, %v", l, err)
	}
	if _, err := riskctlCases(t, "close", "--outcome", "fraud", id("ev-1")); err == nil || !strings.Contains(err.Error(), "409 Conflict: case "+id("ev-1")+": already closed (not_fraud by analyst-token)") {
		t.Errorf("second close: %v", err)
	}

	out, err = riskctlCases(t, "list", "--status", "closed", "--json")
	var page struct{ Cases []chstore.Case }
	if err != nil || json.Unmarshal([]byte(out), &page) != nil || len(page.Cases) != 1 || page.Cases[0].Outcome != "not_fraud" {
		t.Errorf("closed --json: %v %s", err, out)
	}
	out, err = riskctlCases(t, "show", id("ev-1"))
	for _, line := range []string{"status:    closed", "outcome:   not_fraud", "note:      owner called back", "closed by: analyst-token", "taken by:  support-token"} {
		if err != nil || !strings.Contains(out, line+"\n") {
			t.Errorf("show: %v; no line %q in\n%s", err, line, out)
		}
	}
	if out, err := riskctlCases(t, "list", "--status", "taken"); err != nil || out != "no taken cases\n" {
		t.Errorf("taken: %v %q", err, out)
	}
}

func TestCasesUsageErrors(t *testing.T) {
	t.Setenv(envToken, "") // refused before riskd is asked
	valid := chstore.CaseID("a", "e")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "--status", "pending"}, `cases list: --status "pending": want open, taken, closed or all`},
		{[]string{"list", "--limit", "501"}, "cases list: --limit 501: want 1 to 500"},
		{[]string{"list", "extra"}, `cases list: unexpected argument "extra"`},
		{[]string{"take"}, "cases take: give a case id (riskctl cases list shows them)"},
		{[]string{"take", "ev-1"}, `cases take: "ev-1" is not a case id: want c and 16 hex digits, as riskctl cases list shows them`},
		{[]string{"take", valid, valid}, `cases take: unexpected argument "` + valid + `" after the case id`},
		{[]string{"close", valid}, "cases close: --outcome is required: fraud, not_fraud or inconclusive"},
		{[]string{"close", "--outcome", "maybe", valid}, `cases close: --outcome "maybe": want fraud, not_fraud or inconclusive`},
		{[]string{"close", "--outcome", "fraud", "--note", strings.Repeat("n", 1001), valid}, "cases close: --note: 1001 bytes, over the 1000-byte limit"},
		{[]string{"reopen"}, `unknown cases command "reopen"`},
	} {
		_, err := riskctlCases(t, tc.args...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("cases %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
		if code := exitCode(err); code != 2 && tc.args[0] != "reopen" {
			t.Errorf("cases %s: exit %d, want 2", strings.Join(tc.args, " "), code)
		}
	}
}
