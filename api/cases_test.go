package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
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

// caseNow is the fixed wall clock of the case routes under test.
var caseNow = time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)

// caseRig serves the case routes over a fresh database holding reviews
// of ev-0 .. ev-(n-1) (account acct-c, one second apart) and one allow.
func caseRig(t *testing.T, n int) (*chstore.Store, apitest.Client) {
	t.Helper()
	st := chtest.Open(t)
	var ds []*engine.Decision
	for i := range n + 1 {
		d := &engine.Decision{
			EventID: "ev-" + string(rune('0'+i)), AccountID: "acct-c", EventType: "payment",
			EventTS: baseTS + int64(i)*1000, DecidedAt: time.UnixMilli(baseTS + int64(i)*1000 + 3),
			Action: rules.Review, Score: 60, Reason: "rule", RuleSetVersion: "1-abcdef12",
			Matched: []engine.RuleHit{{RuleID: "new-payee-big", Action: rules.Review, Score: 60}},
			Raw:     []byte(`{}`),
		}
		if i == n {
			d.EventID, d.Action, d.Matched = "ev-allow", rules.Allow, nil
		}
		ds = append(ds, d)
	}
	if err := st.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(apitest.Tokens(t), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	srv.Handle(api.CaseRoutes(st, func() time.Time { return caseNow })...)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return st, apitest.Client{T: t, Base: hs.URL}
}

type casePage struct {
	Cases []chstore.Case `json:"cases"`
	Next  string         `json:"next"`
}

// callJSON sends the request and decodes a 200 answer into a T.
func callJSON[T any](t *testing.T, c apitest.Client, role api.Role, method, path string, req any) T {
	t.Helper()
	var v T
	code, body := c.Do(role, method, path, req)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return v
}

func TestCaseRoutesRoles(t *testing.T) {
	_, c := caseRig(t, 1)
	id := chstore.CaseID("acct-c", "ev-0")
	for _, rt := range api.CaseRoutes(nil, time.Now) {
		allowedRoles, ok := apitest.RouteRoles[rt.Pattern]
		if !ok {
			t.Fatalf("route %s has no row in apitest.RouteRoles", rt.Pattern)
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = strings.Replace(path, "{id}", id, 1)
		for _, role := range []api.Role{"", api.RoleHook, api.RoleViewer, api.RoleSupport, api.RoleAnalyst, api.RoleAdmin} {
			// A bad outcome: allowed callers get 400, and nothing changes.
			body := `{"outcome":"?"}`
			if method == "GET" {
				body = ""
			} else if strings.HasSuffix(path, "/take") {
				body = `{"force":"no"}`
			}
			code := c.Status(role, method, path, body)
			switch {
			case role == "":
				if code != http.StatusUnauthorized {
					t.Errorf("%s without a token: %d, want 401", rt.Pattern, code)
				}
			case role == api.RoleAdmin || slices.Contains(allowedRoles, role):
				if want := map[string]int{"GET": 200, "POST": 400}[method]; code != want {
					t.Errorf("%s as %s: %d, want %d", rt.Pattern, role, code, want)
				}
			default:
				if code != http.StatusForbidden {
					t.Errorf("%s as %s: %d, want 403", rt.Pattern, role, code)
				}
			}
		}
	}
}

func TestCaseTakeAndCloseThroughTheAPI(t *testing.T) {
	st, c := caseRig(t, 1)
	id := chstore.CaseID("acct-c", "ev-0")
	page := callJSON[casePage](t, c, api.RoleSupport, "GET", "/v1/cases?status=open", nil)
	if len(page.Cases) != 1 || page.Cases[0].ID != id || page.Cases[0].Rules[0] != "new-payee-big" || page.Next != "" {
		t.Fatalf("open cases: %+v", page)
	}

	got := callJSON[chstore.Case](t, c, api.RoleSupport, "POST", "/v1/cases/"+id+"/take", nil)
	if got.Status != "taken" || got.Assignee != "support-token" || !got.TakenAt.Equal(caseNow) {
		t.Errorf("take as support: %+v", got)
	}
	code, body := c.Do(api.RoleAnalyst, "POST", "/v1/cases/"+id+"/take", `{}`)
	if want := `{"error":"case ` + id + `: taken by someone else (support-token); send {\"force\": true} to take it over"}`; code != http.StatusConflict || strings.TrimSpace(string(body)) != want {
		t.Errorf("second take: %d %s, want 409 %s", code, body, want)
	}
	got = callJSON[chstore.Case](t, c, api.RoleAnalyst, "POST", "/v1/cases/"+id+"/take", `{"force": true}`)
	if got.Assignee != "analyst-token" {
		t.Errorf("forced take: %+v", got)
	}
	if code, body := c.Do(api.RoleSupport, "POST", "/v1/cases/"+id+"/close", `{"outcome":"not_fraud"}`); code != http.StatusConflict {
		t.Errorf("support closes the analyst's case: %d %s, want 409", code, body)
	}
	code, body = c.Do(api.RoleAnalyst, "POST", "/v1/cases/"+id+"/close", `{"outcome":"maybe"}`)
	if want := `{"error":"close case ` + id + `: invalid outcome \"maybe\": want fraud, not_fraud or inconclusive"}`; code != http.StatusBadRequest || strings.TrimSpace(string(body)) != want {
		t.Errorf("bad outcome: %d %s, want 400 %s", code, body, want)
	}
	got = callJSON[chstore.Case](t, c, api.RoleAnalyst, "POST", "/v1/cases/"+id+"/close", `{"outcome":"fraud","note":"payee is a mule"}`)
	if got.Status != "closed" || got.Outcome != "fraud" || got.ClosedBy != "analyst-token" || got.Note != "payee is a mule" {
		t.Errorf("close: %+v", got)
	}
	code, body = c.Do(api.RoleAdmin, "POST", "/v1/cases/"+id+"/close", `{"outcome":"not_fraud","force":true}`)
	if want := `{"error":"case ` + id + `: already closed (fraud by analyst-token)"}`; code != http.StatusConflict || strings.TrimSpace(string(body)) != want {
		t.Errorf("second close: %d %s, want 409 %s", code, body, want)
	}

	labels, err := st.LabelsByEvent(t.Context(), []string{"ev-0"})
	if err != nil {
		t.Fatal(err)
	}
	if l := labels["ev-0"]; l.Label != "fraud" || l.Source != "review" || l.LabelledBy != "analyst-token" || l.Note != "payee is a mule" {
		t.Errorf("label: %+v", l)
	}
	audit, err := st.AuditLog(t.Context(), caseNow.Add(-time.Second), 10)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, a := range audit {
		rows = append(rows, strings.Join([]string{a.Actor, a.Role, a.Action, a.Object, a.OldVersion, a.NewVersion, a.Detail}, "|"))
	}
	slices.Sort(rows) // one timestamp for all: the order in the table is not the calls'
	want := []string{
		"analyst-token|analyst|cases.close|case:" + id + "|3|4|closed fraud: payee is a mule",
		"analyst-token|analyst|cases.take|case:" + id + "|2|3|taken by analyst-token, forced over support-token",
		"support-token|support|cases.take|case:" + id + "|1|2|taken by support-token",
	}
	if !slices.Equal(rows, want) {
		t.Errorf("audit rows:\n%s\nwant\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}

	got = callJSON[chstore.Case](t, c, api.RoleSupport, "GET", "/v1/cases/"+id, nil)
	if got.Status != "closed" || got.Version != 4 {
		t.Errorf("GET closed case: %+v", got)
	}
	if code, _ := c.Do(api.RoleSupport, "GET", "/v1/cases/"+chstore.CaseID("acct-c", "nope"), nil); code != http.StatusNotFound {
		t.Errorf("unknown case: %d, want 404", code)
	}
	if code, _ := c.Do(api.RoleSupport, "POST", "/v1/cases/"+chstore.CaseID("acct-c", "nope")+"/take", nil); code != http.StatusNotFound {
		t.Errorf("take of an unknown case: %d, want 404", code)
	}
}

func TestCaseListQueryAndBounds(t *testing.T) {
	_, c := caseRig(t, 5)
	var ids []string
	path := "/v1/cases?account=acct-c&limit=2"
	for range 5 {
		page := callJSON[casePage](t, c, api.RoleAnalyst, "GET", path, nil)
		for _, cs := range page.Cases {
			ids = append(ids, cs.EventID)
		}
		if page.Next == "" {
			break
		}
		path = "/v1/cases?account=acct-c&limit=2&before=" + page.Next
	}
	if got := strings.Join(ids, " "); got != "ev-4 ev-3 ev-2 ev-1 ev-0" {
		t.Errorf("pages of 2: %s", got)
	}
	if page := callJSON[casePage](t, c, api.RoleAnalyst, "GET", "/v1/cases?status=closed", nil); len(page.Cases) != 0 {
		t.Errorf("closed: %+v", page)
	}
	for _, bad := range []struct{ query, want string }{
		{"status=pending", `status \"pending\": want open, taken or closed`},
		{"limit=501", `limit \"501\": want 1 to 500`},
		{"limit=0", `limit \"0\": want 1 to 500`},
		{"before=yesterday", `cursor \"yesterday\": want the \"next\" value of the previous page (EVENT_TS_MS.CASE_ID)`},
		{"acount=x", `unknown query parameter \"acount\": want status, account, limit, before`},
		{"account=" + strings.Repeat("a", 300), "account: 300 bytes, over the 256-byte limit"},
	} {
		code, body := c.Do(api.RoleAnalyst, "GET", "/v1/cases?"+bad.query, nil)
		if want := `{"error":"` + bad.want + `"}`; code != http.StatusBadRequest || strings.TrimSpace(string(body)) != want {
			t.Errorf("%s: %d %s, want 400 %s", bad.query, code, body, want)
		}
	}
	code, body := c.Do(api.RoleAnalyst, "GET", "/v1/cases/ev-0", nil)
	if want := `{"error":"case id \"ev-0\": want c and 16 hex digits, as GET /v1/cases lists them"}`; code != http.StatusBadRequest || strings.TrimSpace(string(body)) != want {
		t.Errorf("bad id: %d %s, want 400 %s", code, body, want)
	}
	id := chstore.CaseID("acct-c", "ev-0")
	big := `{"outcome":"fraud","note":"` + strings.Repeat("x", 9<<10) + `"}`
	if code, _ := c.Do(api.RoleAnalyst, "POST", "/v1/cases/"+id+"/close", big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized close body: %d, want 413", code)
	}
	if code, _ := c.Do(api.RoleAnalyst, "POST", "/v1/cases/"+id+"/take", `{"force":true`+strings.Repeat(" ", 1<<10)+`}`); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized take body: %d, want 413", code)
	}
	long := `{"outcome":"fraud","note":"` + strings.Repeat("x", 1001) + `"}`
	code, body = c.Do(api.RoleAnalyst, "POST", "/v1/cases/"+id+"/close", long)
	if want := `{"error":"close case ` + id + `: invalid note: 1001 bytes, over the 1000-byte limit"}`; code != http.StatusBadRequest || strings.TrimSpace(string(body)) != want {
		t.Errorf("long note: %d %s, want 400 %s", code, body, want)
	}
}

// TestReviewDecisionOpensACaseWhoseOutcomeIsALabel is the flow on
// the real parts: a top-up the reference rules send to review, decided
// through POST /v1/decide and stored by the pipeline, opens a case that
// support takes and closes as fraud; the outcome is the event's label.
func TestReviewDecisionOpensACaseWhoseOutcomeIsALabel(t *testing.T) {
	env := newRig(t, api.DecideConfig{Deadline: waitLong})
	env.srv.Handle(api.CaseRoutes(env.store, func() time.Time { return caseNow })...)
	resp := env.c.Decide(`{"event_id":"topup-1","type":"topup","ts":1795478400000,"account_id":"acct-new","amount":250000}`)
	if resp.Action != rules.Review {
		t.Fatalf("decide: %+v, want review", resp)
	}
	env.waitStored(t, 1)
	// The case row is written after the decision's, in the same batch.
	var page casePage
	for deadline := time.Now().Add(waitLong); ; time.Sleep(50 * time.Millisecond) {
		if page = callJSON[casePage](t, env.c, api.RoleSupport, "GET", "/v1/cases?account=acct-new", nil); len(page.Cases) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(page.Cases) != 1 || page.Cases[0].EventID != "topup-1" || page.Cases[0].Status != "open" ||
		!slices.Equal(page.Cases[0].Rules, []string{"new-account-large-topup"}) {
		t.Fatalf("cases of acct-new: %+v", page)
	}
	id := page.Cases[0].ID
	callJSON[chstore.Case](t, env.c, api.RoleSupport, "POST", "/v1/cases/"+id+"/take", nil)
	closed := callJSON[chstore.Case](t, env.c, api.RoleSupport, "POST", "/v1/cases/"+id+"/close", `{"outcome":"fraud","note":"stolen card top-up"}`)
	if closed.Status != "closed" || closed.Outcome != "fraud" {
		t.Fatalf("close: %+v", closed)
	}
	labels, err := env.store.LabelsByEvent(t.Context(), []string{"topup-1"})
	if l := labels["topup-1"]; err != nil || l.Label != "fraud" || l.Source != "review" || l.LabelledBy != "support-token" {
		t.Errorf("label of topup-1: %+v, %v", l, err)
	}
}
