package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"riskd/api"
	"riskd/internal/apitest"
)

// TestRoleMatrix calls every route with every role, no token and a wrong
// token: 401 without a valid token, 403 for a role that may not, and
// neither for one that may.
func TestRoleMatrix(t *testing.T) {
	env := newRig(t, api.DecideConfig{})
	c := env.c
	for _, pattern := range env.srv.Patterns() {
		allowedRoles, ok := apitest.RouteRoles[pattern]
		if !ok {
			t.Errorf("route %s has no row in the role matrix (apitest.RouteRoles)", pattern)
			continue
		}
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.NewReplacer("{id}", "acct-matrix", "{name}", "scam_payees", "{seq}", "1", "{entry}", "x", "{rule}", "r").Replace(path)
		body := `{}`
		if method == "GET" {
			body = ""
		}
		for _, role := range []api.Role{"", "not-a-token-at-all", api.RoleHook, api.RoleAnalyst, api.RoleSupport, api.RoleViewer, api.RoleAdmin} {
			code := c.Status(role, method, path, body)
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
	if code := c.Status("", "DELETE", "/v1/decide", ""); code != http.StatusUnauthorized {
		t.Errorf("DELETE /v1/decide without a token: %d, want 401", code)
	}
	if code := c.Status(api.RoleViewer, "DELETE", "/v1/decide", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /v1/decide as viewer: %d, want 405", code)
	}
	// Bodies are size-limited.
	big := `{"event_id":"big","type":"payment","ts":1795478400000,"account_id":"a","attrs":{"x":"` + strings.Repeat("y", 70<<10) + `"}}`
	if code, _ := c.Do(api.RoleHook, "POST", "/v1/decide", big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized decide body: %d, want 413", code)
	}
}
