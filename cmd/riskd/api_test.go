package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"riskd/api"
	"riskd/internal/apitest"
)

// The API's own behaviour (decide answers, support locks, the role
// matrix) is tested in package api on real parts; these tests check what
// the daemon wires: the rules API and topic onto the engine's rule holder,
// and the http.pprof switch.

// startAPI starts a daemon with a token for every role (apitest.Secrets)
// and a client for its HTTP listener.
func startAPI(t *testing.T, e *testEnv) (*daemon, apitest.Client) {
	e.cfg.Auth.Tokens = apitest.TokenEntries()
	d, _ := e.start(t)
	return d, apitest.Client{T: t, Base: "http://" + d.httpAddr}
}

// TestPublishBadPushAndRollbackThroughTheDaemon: an analyst's published rule
// decides the hook's next payment; a bad push is refused with its position
// while the published version keeps deciding; a rollback brings an earlier
// version back.
func TestPublishBadPushAndRollbackThroughTheDaemon(t *testing.T) {
	e := newTestEnv(t)
	_, c := startAPI(t, e)
	payment := func(id string) api.DecideResponse {
		return c.Decide(fmt.Sprintf(`{"event_id":%q,"type":"payment","ts":%d,"account_id":"acct-pub","amount":4242,"currency":"EUR","channel":"nfc"}`,
			id, baseTS))
	}
	matched := func(r api.DecideResponse) bool {
		return slices.ContainsFunc(r.Reasons, func(x api.Reason) bool { return x.RuleID == "hook-marker" })
	}
	publish := func(body map[string]any) (int, map[string]any) {
		t.Helper()
		code, raw := c.Do(api.RoleAnalyst, "POST", "/v1/rules/publish", body)
		var out map[string]any
		json.Unmarshal(raw, &out)
		return code, out
	}
	rule := "- id: hook-marker\n  when: event.type == \"payment\" && event.amount == 4242\n  action: block\n  score: 10\n"
	code, v1 := publish(map[string]any{"patch": map[string]string{"hook.yaml": rule}, "message": "block the marker amount"})
	if code != 200 {
		t.Fatalf("publish: %d %v", code, v1)
	}
	if r := payment("pub-1"); !matched(r) || r.Action.String() != "block" {
		t.Fatalf("after publish: %+v", r)
	}
	code, bad := publish(map[string]any{"patch": map[string]string{"hook.yaml": "- id: hook-marker\n  when: event.amount > \"x\"\n  action: block\n"},
		"message": "broken"})
	details, _ := bad["details"].(map[string]any)
	if code != 422 || details["rule_id"] != "hook-marker" || details["line"] == nil || details["column"] == nil {
		t.Fatalf("bad push: %d %v, want 422 naming hook-marker with line and column", code, bad)
	}
	if r := payment("pub-2"); !matched(r) {
		t.Fatalf("after a refused push the published rule stopped deciding: %+v", r)
	}
	if code, out := publish(map[string]any{"delete": []string{"hook.yaml"}, "message": "drop the marker"}); code != 200 {
		t.Fatalf("publish delete: %d %v", code, out)
	}
	if r := payment("pub-3"); matched(r) {
		t.Fatalf("rule still matches after it was removed: %+v", r)
	}
	code, raw := c.Do(api.RoleAnalyst, "POST", "/v1/rules/rollback", map[string]any{"seq": v1["seq"], "message": "bring the marker back"})
	if code != 200 {
		t.Fatalf("rollback: %d %s", code, raw)
	}
	if r := payment("pub-4"); !matched(r) {
		t.Fatalf("after rollback to %v: %+v", v1["seq"], r)
	}
}

// TestPprofIsAdminOnly: the profiler, when switched on, answers admin
// tokens only.
func TestPprofIsAdminOnly(t *testing.T) {
	e := newTestEnv(t)
	e.cfg.HTTP.Pprof = true
	_, c := startAPI(t, e)
	for role, want := range map[api.Role]int{"": 401, api.RoleViewer: 403, api.RoleAnalyst: 403, api.RoleAdmin: 200} {
		if code := c.Status(role, "GET", "/debug/pprof/cmdline", ""); code != want {
			t.Errorf("pprof as %q: %d, want %d", role, code, want)
		}
	}
}

// TestPublishRefusesAStaleBase: an analyst who names the version they
// started from (If-Match) is refused with 412 when another change landed
// in between, instead of silently undoing it.
func TestPublishRefusesAStaleBase(t *testing.T) {
	e := newTestEnv(t)
	d, c := startAPI(t, e)
	base := d.holder.Load().Version.String()
	publish := func(ifMatch, id string) int {
		t.Helper()
		body := fmt.Sprintf(`{"patch": {"%s.yaml": "- id: %s\n  when: event.amount == 1\n  action: alert\n"}, "message": "add %s"}`, id, id, id)
		req, err := http.NewRequestWithContext(t.Context(), "POST", c.Base+"/v1/rules/publish", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+apitest.Secrets[api.RoleAnalyst])
		req.Header.Set("If-Match", ifMatch)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := publish(base, "first"); code != 200 {
		t.Fatalf("publish on the current base: %d", code)
	}
	if code := publish(base, "second"); code != http.StatusPreconditionFailed {
		t.Fatalf("publish on a stale base: %d, want 412", code)
	}
	if rs := d.holder.Load(); rs.Rule("second") != nil || rs.Rule("first") == nil {
		t.Fatal("the refused change was installed, or the first one lost")
	}
	if code := publish(d.holder.Load().Version.String(), "second"); code != 200 {
		t.Fatalf("publish on the new base: %d", code)
	}
}

// TestEveryDaemonRouteIsInTheRoleMatrix: api's TestRoleMatrix calls the
// routes of its own rig; a route that only the daemon wires must have a
// row in the matrix too.
func TestEveryDaemonRouteIsInTheRoleMatrix(t *testing.T) {
	d, _ := startAPI(t, newTestEnv(t))
	patterns := d.api.Patterns()
	if len(patterns) == 0 {
		t.Fatal("the daemon serves no /v1 route")
	}
	for _, pattern := range patterns {
		if _, ok := apitest.RouteRoles[pattern]; !ok {
			t.Errorf("the daemon serves %s, which has no row in apitest.RouteRoles", pattern)
		}
	}
}
