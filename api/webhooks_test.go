package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"riskd/api"
	"riskd/internal/apitest"
	"riskd/internal/chtest"
	"riskd/streams/chstore"
	"riskd/streams/notify"
)

// hookRig serves the webhook routes over a real notifier and a fresh
// ClickHouse database, with one config file subscriber ("from-config").
type hookRig struct {
	store *chstore.Store
	n     *notify.Notifier
	c     apitest.Client
	logs  *syncBuffer
	stop  func()
}

// syncBuffer is a log sink shared by the server and the notifier.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newHookRig starts a riskd's worth of webhook parts on store (a fresh
// database when nil); stop ends them, as a daemon restart would.
func newHookRig(t *testing.T, store *chstore.Store) *hookRig {
	t.Helper()
	if store == nil {
		store = chtest.Open(t)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := notify.New(notify.Config{
		Subscribers: []notify.Subscriber{{Name: "from-config", URL: "http://127.0.0.1:1/never", Secret: "config-secret", Kinds: []string{notify.KindUnlock}}},
		DeadLetters: store, MaxAttempts: 2, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, Logger: log,
	})
	svc := api.NewWebhookService(store, n, []string{"from-config"}, time.Now, log)
	if err := svc.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(apitest.Tokens(t), log, nil)
	srv.Handle(svc.Routes()...)
	hs := httptest.NewServer(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			hs.Close()
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return &hookRig{store: store, n: n, c: apitest.Client{T: t, Base: hs.URL}, logs: logs, stop: stop}
}

// hookReceiver is a subscriber's endpoint: it verifies every request
// with the secret it was given (from the create answer) and answers
// status (200 when 0).
type hookReceiver struct {
	mu     sync.Mutex
	secret string
	status int
	ids    []string
	bad    int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := notify.Verify([]byte(h.secret), r.Header.Get(notify.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		h.bad++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if h.status != 0 {
		http.Error(w, "not now", h.status)
		return
	}
	h.ids = append(h.ids, r.Header.Get(notify.HeaderDelivery))
	w.WriteHeader(http.StatusOK)
}

func (h *hookReceiver) set(secret string, status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secret, h.status = secret, status
}

func (h *hookReceiver) got() (ids []string, bad int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ids), h.bad
}

// created is POST /v1/webhooks' answer.
type created struct {
	api.WebhookView
	Secret string `json:"secret"`
}

func (e *hookRig) create(t *testing.T, name, url string, kinds ...string) created {
	t.Helper()
	body := map[string]any{"name": name, "url": url}
	if kinds != nil {
		body["kinds"] = kinds
	}
	code, out := e.c.Do(api.RoleAdmin, "POST", "/v1/webhooks", body)
	if code != http.StatusCreated {
		t.Fatalf("create %s: %d %s", name, code, out)
	}
	var c created
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Secret) != 64 || c.SecretFingerprint != notify.Fingerprint([]byte(c.Secret)) {
		t.Fatalf("create answer %s: want a 64-hex secret and its fingerprint", out)
	}
	return c
}

func (e *hookRig) list(t *testing.T) map[string]api.WebhookView {
	t.Helper()
	code, out := e.c.Do(api.RoleAdmin, "GET", "/v1/webhooks", nil)
	if code != http.StatusOK {
		t.Fatalf("list: %d %s", code, out)
	}
	var body struct{ Webhooks []api.WebhookView }
	if err := json.Unmarshal(out, &body); err != nil {
		t.Fatal(err)
	}
	m := map[string]api.WebhookView{}
	for _, v := range body.Webhooks {
		m[v.Name] = v
	}
	return m
}

func (e *hookRig) parked(t *testing.T, name string) []api.ParkedView {
	t.Helper()
	code, out := e.c.Do(api.RoleAdmin, "GET", "/v1/webhooks/"+name+"/parked?limit=50", nil)
	if code != http.StatusOK {
		t.Fatalf("parked: %d %s", code, out)
	}
	var body struct{ Parked []api.ParkedView }
	if err := json.Unmarshal(out, &body); err != nil {
		t.Fatal(err)
	}
	return body.Parked
}

func (e *hookRig) publish(kind, account string, i int) {
	e.n.Publish(notify.Notification{Kind: kind, AccountID: account, EventID: fmt.Sprintf("ev-%d", i),
		Body: []byte(fmt.Sprintf(`{"event_id":"ev-%d","account_id":%q}`, i, account))})
}

// audit returns the webhook audit rows as "action object detail".
func (e *hookRig) audit(t *testing.T) []string {
	t.Helper()
	rows, err := e.store.AuditLog(t.Context(), time.Unix(0, 0), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		if strings.HasPrefix(r.Action, "webhook.") {
			out = append(out, r.Action+" "+r.Object+" "+r.OldVersion+" "+r.NewVersion+" "+r.Detail+" by "+r.Actor)
		}
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWebhookRoutesAreForAdminsOnly(t *testing.T) {
	e := newHookRig(t, nil)
	for _, rt := range api.NewWebhookService(nil, nil, nil, time.Now, nil).Routes() {
		allowedRoles, ok := apitest.RouteRoles[rt.Pattern]
		if !ok {
			t.Fatalf("route %s has no row in apitest.RouteRoles", rt.Pattern)
		}
		if len(allowedRoles) != 0 {
			t.Errorf("RouteRoles[%s] = %v, want admin only", rt.Pattern, allowedRoles)
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = strings.NewReplacer("{name}", "nobody", "{id}", "1").Replace(path)
		for _, role := range []api.Role{"", api.RoleHook, api.RoleViewer, api.RoleSupport, api.RoleAnalyst, api.RoleAdmin} {
			code := e.c.Status(role, method, path, "{}")
			want := http.StatusForbidden
			switch {
			case role == "":
				want = http.StatusUnauthorized
			case role == api.RoleAdmin:
				// Listing works; the rest refuse the empty body or the unknown name.
				want = map[string]int{"GET /v1/webhooks": 200, "POST /v1/webhooks": 400}[rt.Pattern]
				if want == 0 {
					want = http.StatusNotFound
				}
			}
			if code != want {
				t.Errorf("%s as %q: %d, want %d", rt.Pattern, role, code, want)
			}
		}
	}
}

func TestWebhookAddedThroughTheAPIReceivesSignedDeliveriesWithoutARestart(t *testing.T) {
	e := newHookRig(t, nil)
	rc := &hookReceiver{}
	hs := httptest.NewServer(rc)
	defer hs.Close()
	c := e.create(t, "crm", hs.URL, notify.KindAlert, notify.KindLock)
	rc.set(c.Secret, 0)
	if c.Source != api.SourceAPI || !slices.Equal(c.Kinds, []string{"alert", "lock"}) || c.Paused {
		t.Errorf("create answer %+v", c.WebhookView)
	}
	e.publish(notify.KindAlert, "acct-1", 1)
	e.publish(notify.KindUnlock, "acct-1", 2) // not wanted
	e.publish(notify.KindLock, "acct-2", 3)
	waitUntil(t, "2 signed deliveries", func() bool { ids, _ := rc.got(); return len(ids) == 2 })
	if _, bad := rc.got(); bad != 0 {
		t.Errorf("%d deliveries with a bad signature", bad)
	}
	waitUntil(t, "2 deliveries counted", func() bool { return e.list(t)["crm"].Delivered == 2 })

	views := e.list(t)
	if v := views["from-config"]; v.Source != api.SourceConfig || v.SecretFingerprint != notify.Fingerprint([]byte("config-secret")) {
		t.Errorf("config subscriber listed as %+v", v)
	}
	// The secret is shown once: never in a later answer, nor in the logs
	// or the audit log.
	_, out := e.c.Do(api.RoleAdmin, "GET", "/v1/webhooks", nil)
	_, parked := e.c.Do(api.RoleAdmin, "GET", "/v1/webhooks/crm/parked", nil)
	_, patched := e.c.Do(api.RoleAdmin, "PATCH", "/v1/webhooks/crm", `{"url":"`+hs.URL+`/v2"}`)
	for what, text := range map[string]string{"GET /v1/webhooks": string(out), "GET parked": string(parked),
		"PATCH": string(patched), "the logs": e.logs.String(), "the audit log": strings.Join(e.audit(t), "\n")} {
		if strings.Contains(text, c.Secret) || strings.Contains(text, "config-secret") {
			t.Errorf("%s shows a secret: %s", what, text)
		}
	}
	if !strings.Contains(string(out), c.SecretFingerprint) {
		t.Errorf("GET /v1/webhooks lacks the fingerprint %s: %s", c.SecretFingerprint, out)
	}
	audit := e.audit(t)
	if len(audit) != 2 || !strings.HasPrefix(audit[0], "webhook.create webhook:crm  ") ||
		!strings.Contains(audit[0], "url "+hs.URL+", kinds alert,lock, secret "+c.SecretFingerprint+" by admin-token") ||
		!strings.HasPrefix(audit[1], "webhook.update webhook:crm ") || !strings.Contains(audit[1], "url "+hs.URL+"/v2 by admin-token") {
		t.Errorf("audit rows:\n%s", strings.Join(audit, "\n"))
	}
}

func TestPausedWebhookReceivesNothingUntilResumedAndLosesNothing(t *testing.T) {
	e := newHookRig(t, nil)
	rc := &hookReceiver{}
	hs := httptest.NewServer(rc)
	defer hs.Close()
	c := e.create(t, "crm", hs.URL)
	rc.set(c.Secret, 0)
	if code, out := e.c.Do(api.RoleAdmin, "PATCH", "/v1/webhooks/crm", `{"paused":true}`); code != 200 || !strings.Contains(string(out), `"paused":true`) {
		t.Fatalf("pause: %d %s", code, out)
	}
	for i := range 3 {
		e.publish(notify.KindAlert, "acct-1", i)
	}
	waitUntil(t, "3 parked", func() bool { return len(e.parked(t, "crm")) == 3 })
	if ids, _ := rc.got(); len(ids) != 0 {
		t.Fatalf("a paused webhook received %v", ids)
	}
	if v := e.list(t)["crm"]; !v.Paused || v.Parked != 3 {
		t.Errorf("listed as %+v, want paused with 3 parked", v)
	}
	if code, out := e.c.Do(api.RoleAdmin, "POST", "/v1/webhooks/crm/parked/resend", nil); code != http.StatusConflict {
		t.Errorf("resend while paused: %d %s, want 409", code, out)
	}
	if code, out := e.c.Do(api.RoleAdmin, "PATCH", "/v1/webhooks/crm", `{"paused":false}`); code != 200 {
		t.Fatalf("resume: %d %s", code, out)
	}
	code, out := e.c.Do(api.RoleAdmin, "POST", "/v1/webhooks/crm/parked/resend", nil)
	if code != 200 || !strings.Contains(string(out), `"resent":[`) || strings.Contains(string(out), "failed") {
		t.Fatalf("resend all: %d %s", code, out)
	}
	if ids, bad := rc.got(); len(ids) != 3 || bad != 0 {
		t.Errorf("after resume and resend: %v delivered, %d bad; want 3", ids, bad)
	}
	if p := e.parked(t, "crm"); len(p) != 0 {
		t.Errorf("still parked after resend: %+v", p)
	}
	// Nothing is resent twice.
	if code, out := e.c.Do(api.RoleAdmin, "POST", "/v1/webhooks/crm/parked/resend", nil); code != 200 || string(out) != `{"resent":[]}`+"\n" {
		t.Errorf("second resend all: %d %s", code, out)
	}
	if ids, _ := rc.got(); len(ids) != 3 {
		t.Errorf("%d deliveries after a second resend, want 3", len(ids))
	}
	var actions []string
	for _, a := range e.audit(t) {
		actions = append(actions, strings.Fields(a)[0])
	}
	if !slices.Equal(actions, []string{"webhook.create", "webhook.pause", "webhook.resume", "webhook.resend", "webhook.resend"}) {
		t.Errorf("audit actions %v", actions)
	}
}

func TestParkedDeliveryIsListedAndResentWithTheCurrentSecret(t *testing.T) {
	e := newHookRig(t, nil)
	rc := &hookReceiver{}
	hs := httptest.NewServer(rc)
	defer hs.Close()
	c := e.create(t, "crm", hs.URL)
	rc.set(c.Secret, http.StatusInternalServerError)
	e.publish(notify.KindAlert, "acct-1", 7)
	waitUntil(t, "the delivery parked", func() bool { return len(e.parked(t, "crm")) == 1 })
	p := e.parked(t, "crm")[0]
	if p.Attempts != 2 || p.LastError != "HTTP 500: not now" || p.Kind != "alert" || p.AccountID != "acct-1" ||
		p.EventID != "ev-7" || string(p.Body) != `{"event_id":"ev-7","account_id":"acct-1"}` {
		t.Errorf("parked %+v", p)
	}
	path := fmt.Sprintf("/v1/webhooks/crm/parked/%d/resend", p.ID)

	// Still failing: 502, and the row counts the attempt.
	if code, out := e.c.Do(api.RoleAdmin, "POST", path, nil); code != http.StatusBadGateway || !strings.Contains(string(out), "HTTP 500: not now") {
		t.Errorf("resend to a failing receiver: %d %s", code, out)
	}
	if p2 := e.parked(t, "crm"); len(p2) != 1 || p2[0].Attempts != 3 || p2[0].LastError != "resend: notify: resend crm/"+fmt.Sprint(p.ID)+": HTTP 500: not now" {
		t.Errorf("after a failed resend: %+v", p2)
	}

	// A rotated secret signs the resend.
	code, out := e.c.Do(api.RoleAdmin, "POST", "/v1/webhooks/crm/rotate-secret", nil)
	var rot created
	if code != 200 || json.Unmarshal(out, &rot) != nil || len(rot.Secret) != 64 || rot.Secret == c.Secret {
		t.Fatalf("rotate: %d %s", code, out)
	}
	rc.set(rot.Secret, 0)
	if code, out := e.c.Do(api.RoleAdmin, "POST", path, nil); code != 200 || string(out) != fmt.Sprintf(`{"resent":[%d]}`+"\n", p.ID) {
		t.Fatalf("resend: %d %s", code, out)
	}
	if ids, bad := rc.got(); !slices.Equal(ids, []string{fmt.Sprint(p.ID)}) || bad != 0 {
		t.Errorf("receiver got %v with %d bad signatures; want the original id once", ids, bad)
	}
	if code, _ := e.c.Do(api.RoleAdmin, "POST", path, nil); code != http.StatusNotFound {
		t.Errorf("resending a resent notification: %d, want 404", code)
	}
	if v := e.list(t)["crm"]; v.Parked != 0 || v.Delivered != 1 || v.SecretFingerprint != notify.Fingerprint([]byte(rot.Secret)) {
		t.Errorf("listed as %+v", v)
	}
	if strings.Contains(e.logs.String(), rot.Secret) || strings.Contains(strings.Join(e.audit(t), "\n"), rot.Secret) {
		t.Error("the rotated secret is in the logs or the audit log")
	}
}

func TestWebhookChangesAreValidatedAndConfigSubscribersAreReadOnly(t *testing.T) {
	e := newHookRig(t, nil)
	e.create(t, "crm", "https://crm.example/riskd")
	tests := []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"a name with capitals", "POST", "/v1/webhooks", `{"name":"CRM","url":"https://x"}`, 400, `name: "CRM" is not 1 to 64 of a-z, 0-9 and -`},
		{"a name over 64", "POST", "/v1/webhooks", `{"name":"` + strings.Repeat("a", 65) + `","url":"https://x"}`, 400, ""},
		{"no url", "POST", "/v1/webhooks", `{"name":"a"}`, 400, "url: missing; the subscriber's http(s) endpoint"},
		{"a ftp url", "POST", "/v1/webhooks", `{"name":"a","url":"ftp://x"}`, 400, `url: "ftp://x" is not an http(s) URL`},
		{"a url over 2048", "POST", "/v1/webhooks", `{"name":"a","url":"https://` + strings.Repeat("x", 2043) + `"}`, 400, "url: 2051 characters, over the limit of 2048"},
		{"an unknown kind", "POST", "/v1/webhooks", `{"name":"a","url":"https://x","kinds":["alerts"]}`, 400, `kinds: unknown kind "alerts"; want alert, lock or unlock`},
		{"an unknown field", "POST", "/v1/webhooks", `{"name":"a","url":"https://x","secret":"mine"}`, 400, `invalid JSON body: json: unknown field "secret"`},
		{"a taken name", "POST", "/v1/webhooks", `{"name":"crm","url":"https://x"}`, 409, "webhook crm already exists"},
		{"a config name", "POST", "/v1/webhooks", `{"name":"from-config","url":"https://x"}`, 409, "webhook from-config already exists"},
		{"a bad patch", "PATCH", "/v1/webhooks/crm", `{"url":"nope"}`, 400, `url: "nope" is not an http(s) URL`},
		{"a rename", "PATCH", "/v1/webhooks/crm", `{"name":"other"}`, 400, "name: a webhook cannot be renamed; create one and delete the other"},
		{"changing a config subscriber", "PATCH", "/v1/webhooks/from-config", `{"paused":true}`, 409, "webhook from-config comes from the config file (notify.webhooks); change it there"},
		{"rotating a config secret", "POST", "/v1/webhooks/from-config/rotate-secret", ``, 409, "webhook from-config comes from the config file (notify.webhooks); change it there"},
		{"removing a config subscriber", "DELETE", "/v1/webhooks/from-config", ``, 409, "webhook from-config comes from the config file (notify.webhooks); change it there"},
		{"an unknown webhook", "PATCH", "/v1/webhooks/nobody", `{}`, 404, "webhook nobody: no such webhook"},
		{"a limit over 1000", "GET", "/v1/webhooks/crm/parked?limit=1001", ``, 400, `limit: "1001" is not a number from 1 to 1000`},
		{"a resend limit over 100", "POST", "/v1/webhooks/crm/parked/resend?limit=101", ``, 400, `limit: "101" is not a number from 1 to 100`},
		{"a bad id", "POST", "/v1/webhooks/crm/parked/x/resend", ``, 400, `id: "x" is not a notification id (a decimal number)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.c.Do(api.RoleAdmin, tt.method, tt.path, tt.body)
			var body api.ErrorBody
			json.Unmarshal(out, &body)
			if code != tt.code || (tt.msg != "" && body.Error != tt.msg) {
				t.Errorf("%d %q, want %d %q", code, body.Error, tt.code, tt.msg)
			}
		})
	}
	// Config subscribers can still have their parked deliveries listed.
	if code, out := e.c.Do(api.RoleAdmin, "GET", "/v1/webhooks/from-config/parked", nil); code != 200 {
		t.Errorf("parked of a config subscriber: %d %s", code, out)
	}
}

func TestAtMostMaxWebhooksAreManagedThroughTheAPI(t *testing.T) {
	e := newHookRig(t, nil)
	for i := range api.MaxWebhooks {
		e.create(t, fmt.Sprintf("hook-%d", i), "https://x.example/riskd")
	}
	code, out := e.c.Do(api.RoleAdmin, "POST", "/v1/webhooks", `{"name":"one-more","url":"https://x"}`)
	if code != http.StatusConflict || !strings.Contains(string(out), "at most 100 webhooks may be managed through the API; remove one first") {
		t.Fatalf("webhook %d: %d %s, want 409", api.MaxWebhooks+1, code, out)
	}
	if code, out := e.c.Do(api.RoleAdmin, "DELETE", "/v1/webhooks/hook-0", nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", code, out)
	}
	e.create(t, "one-more", "https://x.example/riskd")
}

func TestWebhooksCreatedThroughTheAPISurviveARestart(t *testing.T) {
	first := newHookRig(t, nil)
	rc := &hookReceiver{}
	hs := httptest.NewServer(rc)
	defer hs.Close()
	c := first.create(t, "crm", hs.URL, notify.KindLock)
	rc.set(c.Secret, 0)
	first.create(t, "sleepy", hs.URL)
	first.create(t, "gone", hs.URL)
	if code, out := first.c.Do(api.RoleAdmin, "PATCH", "/v1/webhooks/sleepy", `{"paused":true}`); code != 200 {
		t.Fatalf("pause: %d %s", code, out)
	}
	if code, out := first.c.Do(api.RoleAdmin, "DELETE", "/v1/webhooks/gone", nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", code, out)
	}
	if code, _ := first.c.Do(api.RoleAdmin, "DELETE", "/v1/webhooks/gone", nil); code != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", code)
	}
	before := first.list(t)
	first.stop()

	second := newHookRig(t, first.store)
	after := second.list(t)
	if len(after) != 3 {
		t.Fatalf("after the restart: %v, want from-config, crm and sleepy", after)
	}
	for _, name := range []string{"crm", "sleepy"} {
		b, a := before[name], after[name]
		if a.URL != b.URL || !slices.Equal(a.Kinds, b.Kinds) || a.Paused != b.Paused || a.SecretFingerprint != b.SecretFingerprint ||
			a.Version != b.Version || a.Source != api.SourceAPI {
			t.Errorf("%s after the restart %+v, before %+v", name, a, b)
		}
	}
	if !after["sleepy"].Paused {
		t.Error("sleepy is no longer paused")
	}
	// The restarted riskd signs with the secret the create answer gave.
	second.publish(notify.KindLock, "acct-1", 1)
	waitUntil(t, "a delivery after the restart", func() bool { ids, _ := rc.got(); return len(ids) == 1 })
	if _, bad := rc.got(); bad != 0 {
		t.Errorf("%d bad signatures after the restart", bad)
	}
}
