package main

import (
	"net/http"
	"strings"
	"testing"

	"riskd/api"
	"riskd/internal/apitest"
	"riskd/internal/browsertest"
)

// consoleEnv is a daemon with the test tokens (so the console is on), on
// the embedded broker and the local ClickHouse, and a headless Chromium.
func consoleEnv(t *testing.T) (*testEnv, *daemon, *browsertest.Browser) {
	t.Helper()
	b := browsertest.Start(t) // first: without Chromium there is nothing to start
	e := newTestEnv(t)
	e.cfg.Auth.Tokens = apitest.TokenEntries()
	d, stop := e.start(t)
	t.Cleanup(func() { stop() })
	return e, d, b
}

// A support agent signs in with a token, sees the nav of the pages their
// role opens and whom they are signed in as, and signs out: the session
// ends on the server too, so the old cookie opens nothing.
func TestConsoleSignInShowsTheNavAndSignOutEndsTheSession(t *testing.T) {
	_, d, b := consoleEnv(t)
	base := "http://" + d.httpAddr
	tab := b.Tab(t, base)

	tab.Open("")
	tab.WaitFor("signin-form")
	tab.Screenshot("signin")
	tab.Fill("signin-token", "not-a-token-at-all-000")
	tab.Click("signin-submit")
	tab.WaitText("signin-error", "Unknown token")

	tab.SignIn(apitest.Secrets[api.RoleSupport])
	if got := tab.Text("whoami"); !strings.Contains(got, "support-token") || !strings.Contains(got, "support") {
		t.Fatalf("whoami: %q", got)
	}
	for _, page := range []string{"overview", "accounts", "review"} {
		if !tab.Present("nav-" + page) {
			t.Errorf("support's nav has no %s", page)
		}
	}
	if tab.Present("nav-alerts") {
		t.Error("support's nav shows the admin-only alerts page")
	}
	// The cookie is HttpOnly: the page's script cannot read it.
	if c := browsertest.Eval[string](tab, "document.cookie"); strings.Contains(c, "riskd_session") {
		t.Errorf("document.cookie shows the session: %q", c)
	}
	whoAmI := "fetch('/console/session').then(r => r.status)"
	if got := browsertest.Eval[int](tab, whoAmI); got != http.StatusOK {
		t.Fatalf("GET /console/session while signed in: %d", got)
	}

	tab.Click("signout")
	tab.WaitFor("signin-form")
	if got := browsertest.Eval[int](tab, whoAmI); got != http.StatusUnauthorized {
		t.Fatalf("GET /console/session after signing out: %d, want 401", got)
	}
}

// With no token configured no one could sign in: the console is off.
func TestConsoleIsOffWithoutTokens(t *testing.T) {
	e := newTestEnv(t)
	e.cfg.Auth.Tokens = nil
	d, stop := e.start(t)
	defer mustStop(t, stop)
	res, err := http.Get("http://" + d.httpAddr + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /console/ without tokens: %d, want 404", res.StatusCode)
	}
}
