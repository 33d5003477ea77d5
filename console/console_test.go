package console_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"riskd/api"
	"riskd/console"
	"riskd/internal/apitest"
)

// rig serves the console in front of an API with one route per kind: a
// viewer read and a support change.
func rig(t *testing.T, now func() time.Time) *httptest.Server {
	t.Helper()
	srv := api.NewServer(apitest.Tokens(t), slog.New(slog.DiscardHandler), nil)
	srv.Handle(api.Route{Pattern: "GET /v1/who", Roles: []api.Role{api.RoleViewer, api.RoleSupport},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := api.CallerFrom(r.Context())
			api.WriteJSON(w, 200, map[string]string{"name": c.Name, "auth": r.Header.Get("Authorization")})
		})})
	srv.Handle(api.Route{Pattern: "POST /v1/change", Roles: []api.Role{api.RoleSupport},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { api.WriteJSON(w, 200, "changed") })})
	// wait answers when its request's context ends: a stand-in for the
	// live alert stream.
	srv.Handle(api.Route{Pattern: "GET /v1/wait", Roles: []api.Role{api.RoleViewer},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})})
	c, err := console.New(console.Config{SessionTTL: time.Hour, Now: now}, srv, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console", c)
	mux.Handle("/console/", c)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs
}

type browser struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, http: &http.Client{Jar: jar}}
}

func (b *browser) do(method, path, body string, hdr map[string]string) (int, string, http.Header) {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(out), res.Header
}

func (b *browser) signIn(role api.Role) {
	b.t.Helper()
	code, body, hdr := b.do("POST", "/console/session", `{"token":"`+apitest.Secrets[role]+`"}`, nil)
	if code != 200 {
		b.t.Fatalf("sign in: %d %s", code, body)
	}
	ck := hdr.Get("Set-Cookie")
	for _, want := range []string{"riskd_session=", "Path=/console", "Max-Age=3600", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(ck, want) {
			b.t.Errorf("cookie %q lacks %s", ck, want)
		}
	}
	_, after, _ := strings.Cut(body, `"csrf":"`)
	b.csrf, _, _ = strings.Cut(after, `"`)
}

func TestSessionCSRFAndRoles(t *testing.T) {
	now := time.Now()
	hs := rig(t, func() time.Time { return now })
	b := newBrowser(t, hs.URL)

	if code, _, _ := b.do("GET", "/console/api/v1/who", "", nil); code != 401 {
		t.Fatalf("API before sign-in: %d, want 401", code)
	}
	if code, _, _ := b.do("POST", "/console/session", `{"token":"wrong-token-0000000000"}`, nil); code != 401 {
		t.Fatalf("sign-in with a wrong token: %d, want 401", code)
	}
	if code, _, _ := b.do("POST", "/console/session", strings.Repeat("x", 5000), nil); code != 413 {
		t.Fatalf("oversized sign-in: %d, want 413", code)
	}
	// The sign-in form's own encoding works too.
	form := newBrowser(t, hs.URL)
	if code, body, _ := form.do("POST", "/console/session", "token="+apitest.Secrets[api.RoleSupport],
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); code != 200 || !strings.Contains(body, `"role":"support"`) {
		t.Fatalf("form sign-in: %d %s", code, body)
	}
	b.signIn(api.RoleViewer)
	code, body, hdr := b.do("GET", "/console/api/v1/who", "", map[string]string{"Authorization": "Bearer " + apitest.Secrets[api.RoleAdmin]})
	if code != 200 || !strings.Contains(body, `"name":"viewer-token"`) || !strings.Contains(body, `"auth":""`) {
		t.Fatalf("API as the viewer's session: %d %s (the bearer header must not pass)", code, body)
	}
	for k, want := range map[string]string{"Cache-Control": "no-store", "X-Frame-Options": "DENY",
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
		if hdr.Get(k) != want {
			t.Errorf("%s: %q, want %q", k, hdr.Get(k), want)
		}
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP: %q", csp)
	}
	// The viewer may not change: with the CSRF token the API refuses (403
	// from the role check); without it the console refuses first.
	if code, body, _ := b.do("POST", "/console/api/v1/change", "{}", map[string]string{"X-CSRF-Token": b.csrf}); code != 403 || !strings.Contains(body, "role viewer") {
		t.Fatalf("viewer's change: %d %s, want the API's 403", code, body)
	}
	sup := newBrowser(t, hs.URL)
	sup.signIn(api.RoleSupport)
	if code, body, _ := sup.do("POST", "/console/api/v1/change", "{}", nil); code != 403 || !strings.Contains(body, "CSRF") {
		t.Fatalf("change without CSRF: %d %s, want 403", code, body)
	}
	if code, body, _ := sup.do("POST", "/console/api/v1/change", "{}", map[string]string{"X-CSRF-Token": b.csrf}); code != 403 {
		t.Fatalf("change with another session's CSRF: %d %s, want 403", code, body)
	}
	if code, body, _ := sup.do("POST", "/console/api/v1/change", "{}", map[string]string{"X-CSRF-Token": sup.csrf, "Origin": "http://evil.example"}); code != 403 {
		t.Fatalf("change from another origin: %d %s, want 403", code, body)
	}
	if code, body, _ := sup.do("POST", "/console/api/v1/change", "{}", map[string]string{"X-CSRF-Token": sup.csrf, "Origin": hs.URL}); code != 200 {
		t.Fatalf("change with CSRF from this origin: %d %s", code, body)
	}
	// Signing out ends the session on the server.
	if code, _, _ := sup.do("DELETE", "/console/session", "", map[string]string{"X-CSRF-Token": sup.csrf}); code != 204 {
		t.Fatalf("sign out: %d", code)
	}
	if code, _, _ := sup.do("GET", "/console/session", "", nil); code != 401 {
		t.Fatalf("after sign-out: %d, want 401", code)
	}
	// Sessions expire.
	now = now.Add(time.Hour)
	if code, _, _ := b.do("GET", "/console/api/v1/who", "", nil); code != 401 {
		t.Fatalf("after the TTL: %d, want 401", code)
	}
}

func TestAssetsAreEmbedded(t *testing.T) {
	hs := rig(t, time.Now)
	b := newBrowser(t, hs.URL)
	for path, want := range map[string]string{"/console/": "assets/app.js", "/console/assets/app.js": "hashchange",
		"/console/assets/lib.js": "export function h(", "/console/assets/pages/index.js": "export default"} {
		code, body, hdr := b.do("GET", path, "", nil)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d, want a body with %q", path, code, want)
		}
		if strings.HasSuffix(path, ".js") && !strings.Contains(hdr.Get("Content-Type"), "javascript") {
			t.Errorf("%s: Content-Type %q", path, hdr.Get("Content-Type"))
		}
	}
	if code, _, _ := b.do("GET", "/console/assets/pages/", "", nil); code != 404 {
		t.Errorf("a directory of the assets: %d, want 404 (no listing)", code)
	}
}

func TestConfigBoundsTheSessionTTL(t *testing.T) {
	for _, ttl := range []time.Duration{0, time.Minute, 30 * 24 * time.Hour} {
		if err := (console.Config{SessionTTL: ttl}).Validate(); err == nil || !strings.Contains(err.Error(), "console.session_ttl") {
			t.Errorf("ttl %s: %v", ttl, err)
		}
	}
}

// Signing out ends the session's requests still running (a live stream).
func TestSignOutEndsTheSessionsStreams(t *testing.T) {
	hs := rig(t, time.Now)
	b := newBrowser(t, hs.URL)
	b.signIn(api.RoleViewer)
	res, err := b.http.Get(hs.URL + "/console/api/v1/wait")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("stream: %v %v", res, err)
	}
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(res.Body); done <- err }()
	if code, _, _ := b.do("DELETE", "/console/session", "", map[string]string{"X-CSRF-Token": b.csrf}); code != 204 {
		t.Fatalf("sign out: %d", code)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the stream outlived its session")
	}
}

// Ten failed sign-ins from one address in a minute: the next is answered
// 429 with Retry-After, even with a right token, until the minute ends;
// a success does not count.
func TestFailedSignInsAreThrottled(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	hs := rig(t, clock)
	b := newBrowser(t, hs.URL)
	b.signIn(api.RoleViewer) // a success does not count
	for i := range 10 {
		if code, _, _ := b.do("POST", "/console/session", `{"token":"wrong-token-0000000000"}`, nil); code != 401 {
			t.Fatalf("failure %d: %d, want 401", i+1, code)
		}
	}
	code, body, hdr := b.do("POST", "/console/session", `{"token":"`+apitest.Secrets[api.RoleSupport]+`"}`, nil)
	if code != 429 || hdr.Get("Retry-After") != "60" || !strings.Contains(body, "too many failed sign-ins") {
		t.Fatalf("the 11th try: %d %q Retry-After %q, want 429 with Retry-After 60", code, body, hdr.Get("Retry-After"))
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	b.signIn(api.RoleSupport)
}
