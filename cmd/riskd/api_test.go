package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/api"
	"riskd/engine"
	"riskd/internal/kafkatest"
	"riskd/streams"
)

// Tokens for every role; secrets are test values.
var roleTokens = map[api.Role]string{
	api.RoleHook:    "hook-secret-000000000001",
	api.RoleAnalyst: "analyst-secret-00000001",
	api.RoleSupport: "support-secret-00000001",
	api.RoleViewer:  "viewer-secret-000000001",
	api.RoleAdmin:   "admin-secret-0000000001",
}

func withTokens(cfg *Config) {
	cfg.Auth.Tokens = nil
	for role, secret := range roleTokens {
		cfg.Auth.Tokens = append(cfg.Auth.Tokens, fmt.Sprintf("%s-token:%s:%s", role, role, secret))
	}
}

type apiClient struct {
	t    *testing.T
	base string
}

func (c apiClient) do(role api.Role, method, path string, body any) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if secret, ok := roleTokens[role]; ok {
		req.Header.Set("Authorization", "Bearer "+secret)
	} else if role != "" {
		req.Header.Set("Authorization", "Bearer "+string(role)) // a made-up token
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// status makes a request and returns its status code without reading the
// body, so streaming routes can be probed too.
func (c apiClient) status(role api.Role, method, path, body string) int {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if secret, ok := roleTokens[role]; ok {
		req.Header.Set("Authorization", "Bearer "+secret)
	} else if role != "" {
		req.Header.Set("Authorization", "Bearer "+string(role))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (c apiClient) decide(raw string) api.DecideResponse {
	c.t.Helper()
	code, body := c.do(api.RoleHook, "POST", "/v1/decide", raw)
	if code != 200 {
		c.t.Fatalf("decide: %d %s", code, body)
	}
	var resp api.DecideResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		c.t.Fatalf("decide response %s: %v", body, err)
	}
	return resp
}

func startAPI(t *testing.T, e *testEnv) (*daemon, apiClient) {
	withTokens(&e.cfg)
	d, _ := e.start(t)
	return d, apiClient{t: t, base: "http://" + d.httpAddr}
}

// TestDecideSharesStateWithTheStream: five failed logins arrive on Kafka;
// the hook's payment is then refused because the stream locked the
// account. The decision is recorded, and the same event arriving later on
// Kafka counts once.
func TestDecideSharesStateWithTheStream(t *testing.T) {
	e := newTestEnv(t)
	d, c := startAPI(t, e)
	var logins []string
	for i := range 5 {
		logins = append(logins, fmt.Sprintf("bf-%d", i))
		kafkatest.Produce(t, e.broker.Addr(), "account-events", ev(logins[i], "login_failed", "acct-hook", baseTS+int64(i)*1000,
			`,"ip":"198.51.100.9"`))
	}
	e.waitStored(t, 5)

	payment := fmt.Sprintf(`{"event_id":"hook-pay-1","type":"payment","ts":%d,"account_id":"acct-hook","amount":4000,"currency":"EUR","channel":"online"}`, baseTS+60_000)
	resp := c.decide(payment)
	if resp.Action.String() != "lock" || resp.Reason != "account_locked" || !resp.Locked || resp.LockUntil == nil || resp.Fallback {
		t.Fatalf("decide after brute force: %+v, want lock/account_locked, locked", resp)
	}
	e.waitStored(t, 6) // the API's decision is recorded
	if sd := e.decision(t, "hook-pay-1"); sd.Source.Topic != "api" || sd.Reason != "account_locked" {
		t.Fatalf("stored API decision: %+v", sd)
	}
	again := c.decide(payment)
	if !again.Duplicate || again.Action.String() != "lock" {
		t.Fatalf("repeated decide: %+v, want duplicate with the same action", again)
	}
	// The same event on Kafka is a duplicate: no second row, no second output.
	kafkatest.Produce(t, e.broker.Addr(), "payments", kafkaMsg("acct-hook", payment))
	waitMetric(t, d, "riskd_duplicate_events_total", 1)
	e.assertStoredOnce(t, 6)

	// A good customer's payment is allowed, with its reasons listed.
	ok := c.decide(fmt.Sprintf(`{"event_id":"hook-pay-2","type":"payment","ts":%d,"account_id":"acct-fine","amount":1500,"currency":"EUR","channel":"nfc"}`, baseTS))
	if ok.Action.String() != "allow" || ok.Locked || ok.RuleSetVersion == "" || ok.Reasons == nil {
		t.Fatalf("ordinary payment: %+v", ok)
	}
	// An invalid event is a 400 naming the problem.
	code, body := c.do(api.RoleHook, "POST", "/v1/decide", `{"event_id":"x","type":"payment","ts":"yesterday"}`)
	if code != 400 || !strings.Contains(string(body), "ts") || !strings.Contains(string(body), "account_id") {
		t.Fatalf("invalid event: %d %s", code, body)
	}
}

// TestDecideDeadlineFallsBackAndSaysSo: while the account's shard is busy
// past the deadline, the configured fail-closed action is answered, marked
// as a fallback; the event is still decided and recorded afterwards.
func TestDecideDeadlineFallsBackAndSaysSo(t *testing.T) {
	e := newTestEnv(t)
	e.cfg.Decide.Deadline = 100 * time.Millisecond
	e.cfg.Decide.OnTimeout = "challenge"
	d, c := startAPI(t, e)
	release := make(chan struct{})
	held := make(chan struct{})
	go d.eng.Do(t.Context(), "acct-s", func(*engine.Scorer) { close(held); <-release })
	<-held
	resp := c.decide(fmt.Sprintf(`{"event_id":"slow-1","type":"payment","ts":%d,"account_id":"acct-s","amount":100}`, baseTS))
	close(release)
	if !resp.Fallback || resp.Action.String() != "challenge" || resp.Reason != api.ReasonTimeout || resp.EventID != "slow-1" {
		t.Fatalf("fallback answer: %+v", resp)
	}
	e.waitStored(t, 1)
	if sd := e.decision(t, "slow-1"); sd.Source.Topic != "api" {
		t.Fatalf("the late decision was not recorded: %+v", sd)
	}
}

// TestSupportLocksAndUnlocks: a support lock refuses the next payment, is
// in the history and on risk.actions; the unlock lets payments through.
func TestSupportLocksAndUnlocks(t *testing.T) {
	e := newTestEnv(t)
	_, c := startAPI(t, e)
	pay := func(id string) api.DecideResponse {
		return c.decide(fmt.Sprintf(`{"event_id":%q,"type":"payment","ts":%d,"account_id":"acct-sup","amount":700,"currency":"EUR","channel":"qr"}`,
			id, time.Now().UnixMilli()))
	}
	code, body := c.do(api.RoleSupport, "POST", "/v1/accounts/acct-sup/lock", map[string]string{"reason": "owner reported a stolen phone", "duration": "2h"})
	if code != 200 {
		t.Fatalf("lock: %d %s", code, body)
	}
	if r := pay("sup-1"); r.Action.String() != "lock" || r.Reason != "account_locked" {
		t.Fatalf("payment on a support-locked account: %+v", r)
	}
	code, body = c.do(api.RoleSupport, "POST", "/v1/accounts/acct-sup/unlock", map[string]string{"reason": "owner verified by video call"})
	if code != 200 {
		t.Fatalf("unlock: %d %s", code, body)
	}
	if r := pay("sup-2"); r.Action.String() == "lock" {
		t.Fatalf("payment after unlock: %+v", r)
	}
	code, body = c.do(api.RoleViewer, "GET", "/v1/accounts/acct-sup/locks", nil)
	var hist struct{ Locks []api.LockEvent }
	if code != 200 || json.Unmarshal(body, &hist) != nil || len(hist.Locks) != 2 ||
		hist.Locks[0].Action != "unlock" || hist.Locks[1].Action != "lock" || hist.Locks[1].Actor != "api:support-token" ||
		hist.Locks[1].Reason != "owner reported a stolen phone" {
		t.Fatalf("lock history: %d %s", code, body)
	}
	actions := kafkatest.ReadAll(t, e.broker.Addr(), "risk.actions", 2, waitLong)
	var kinds []string
	for _, m := range actions {
		var a streams.ActionRecord
		if err := json.Unmarshal(m.Value, &a); err == nil && a.AccountID == "acct-sup" {
			kinds = append(kinds, a.Type)
		}
	}
	if !slices.Equal(kinds, []string{"lock", "unlock"}) {
		t.Fatalf("risk.actions for acct-sup: %v, want lock then unlock", kinds)
	}
	if code, _ := c.do(api.RoleSupport, "POST", "/v1/accounts/acct-sup/lock", map[string]string{"reason": "", "duration": "2h"}); code != 400 {
		t.Fatalf("lock without a reason: %d, want 400", code)
	}
}

// routeRoles is the role matrix as the product defines it; admin may call
// everything. The test fails if a route is added without a row here.
var routeRoles = map[string][]api.Role{
	"POST /v1/decide":               {api.RoleHook},
	"POST /v1/accounts/{id}/lock":   {api.RoleSupport},
	"POST /v1/accounts/{id}/unlock": {api.RoleSupport},
	"GET /v1/accounts/{id}/locks":   {api.RoleSupport, api.RoleViewer},

	"GET /v1/rules":                           {api.RoleAnalyst, api.RoleViewer},
	"GET /v1/rules/{id}":                      {api.RoleAnalyst, api.RoleViewer},
	"GET /v1/rules/versions":                  {api.RoleAnalyst, api.RoleViewer},
	"GET /v1/rules/versions/{seq}":            {api.RoleAnalyst, api.RoleViewer},
	"GET /v1/lists":                           {api.RoleAnalyst, api.RoleViewer},
	"GET /v1/lists/{name}":                    {api.RoleAnalyst, api.RoleViewer},
	"POST /v1/rules/validate":                 {api.RoleAnalyst},
	"POST /v1/rules/test":                     {api.RoleAnalyst},
	"POST /v1/rules/publish":                  {api.RoleAnalyst},
	"POST /v1/rules/rollback":                 {api.RoleAnalyst},
	"PUT /v1/lists/{name}":                    {api.RoleAnalyst},
	"POST /v1/lists/{name}/entries":           {api.RoleAnalyst},
	"DELETE /v1/lists/{name}/entries/{entry}": {api.RoleAnalyst},
	"DELETE /v1/lists/{name}":                 {api.RoleAnalyst},

	"GET /v1/alerts/stream": {api.RoleViewer, api.RoleSupport, api.RoleAnalyst},
}

// TestRoleMatrix calls every route with every role, no token and a wrong
// token: 401 without a valid token, 403 for a role that may not, and
// neither for one that may.
func TestRoleMatrix(t *testing.T) {
	e := newTestEnv(t)
	d, c := startAPI(t, e)
	for _, pattern := range d.api.Patterns() {
		allowedRoles, ok := routeRoles[pattern]
		if !ok {
			t.Errorf("route %s has no row in the role matrix", pattern)
			continue
		}
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.NewReplacer("{id}", "acct-matrix", "{name}", "scam_payees", "{seq}", "1", "{entry}", "x").Replace(path)
		body := `{}`
		if method == "GET" {
			body = ""
		}
		for _, role := range []api.Role{"", "not-a-token-at-all", api.RoleHook, api.RoleAnalyst, api.RoleSupport, api.RoleViewer, api.RoleAdmin} {
			code := c.status(role, method, path, body)
			resp := ""
			switch {
			case role == "" || role == "not-a-token-at-all":
				if code != http.StatusUnauthorized {
					t.Errorf("%s with token %q: %d, want 401", pattern, role, code)
				}
			case role == api.RoleAdmin || slices.Contains(allowedRoles, role):
				if code == http.StatusUnauthorized || code == http.StatusForbidden {
					t.Errorf("%s as %s: %d %s, want allowed", pattern, role, code, resp)
				}
			default:
				if code != http.StatusForbidden {
					t.Errorf("%s as %s: %d, want 403", pattern, role, code)
				}
			}
		}
	}
	// Without a token nothing is revealed, not even which methods a route takes.
	if code := c.status("", "DELETE", "/v1/decide", ""); code != http.StatusUnauthorized {
		t.Errorf("DELETE /v1/decide without a token: %d, want 401", code)
	}
	if code := c.status(api.RoleViewer, "DELETE", "/v1/decide", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /v1/decide as viewer: %d, want 405", code)
	}
	// Bodies are size-limited.
	big := `{"event_id":"big","type":"payment","ts":1795478400000,"account_id":"a","attrs":{"x":"` + strings.Repeat("y", 70<<10) + `"}}`
	if code, _ := c.do(api.RoleHook, "POST", "/v1/decide", big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized decide body: %d, want 413", code)
	}
}

func kafkaMsg(key, value string) kafka.Message {
	return kafka.Message{Key: []byte(key), Value: []byte(value)}
}

// waitMetric polls until the sum of a metric's series reaches want.
func waitMetric(t *testing.T, d *daemon, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		mfs, err := d.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var v float64
		for _, mf := range mfs {
			if mf.GetName() == name {
				for _, m := range mf.GetMetric() {
					v += m.GetCounter().GetValue()
				}
			}
		}
		if v >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, never reached %v", name, v, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPublishBadPushAndRollbackThroughTheDaemon: an analyst's published rule
// decides the hook's next payment; a bad push is refused with its position
// while the published version keeps deciding; a rollback brings an earlier
// version back.
func TestPublishBadPushAndRollbackThroughTheDaemon(t *testing.T) {
	e := newTestEnv(t)
	_, c := startAPI(t, e)
	payment := func(id string) api.DecideResponse {
		return c.decide(fmt.Sprintf(`{"event_id":%q,"type":"payment","ts":%d,"account_id":"acct-pub","amount":4242,"currency":"EUR","channel":"nfc"}`,
			id, baseTS))
	}
	matched := func(r api.DecideResponse) bool {
		return slices.ContainsFunc(r.Reasons, func(x api.Reason) bool { return x.RuleID == "hook-marker" })
	}
	publish := func(body map[string]any) (int, map[string]any) {
		t.Helper()
		code, raw := c.do(api.RoleAnalyst, "POST", "/v1/rules/publish", body)
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
	code, raw := c.do(api.RoleAnalyst, "POST", "/v1/rules/rollback", map[string]any{"seq": v1["seq"], "message": "bring the marker back"})
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
		if code := c.status(role, "GET", "/debug/pprof/cmdline", ""); code != want {
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
		req, err := http.NewRequestWithContext(t.Context(), "POST", c.base+"/v1/rules/publish", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+roleTokens[api.RoleAnalyst])
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
