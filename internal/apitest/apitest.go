// Package apitest is how tests call riskd's HTTP API: one bearer token per
// role and a Client that sends requests as one of them, the same way in
// every package that serves the API (api's own tests, the daemon's).
//
//	srv := api.NewServer(apitest.Tokens(t), log, nil)
//	hs := httptest.NewServer(srv)
//	c := apitest.Client{T: t, Base: hs.URL}
//	code, body := c.Do(api.RoleViewer, "GET", "/v1/accounts/acct-1/locks", nil)
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"riskd/api"
)

// Secrets are the test bearer tokens, one per role.
var Secrets = map[api.Role]string{
	api.RoleHook:    "hook-secret-000000000001",
	api.RoleAnalyst: "analyst-secret-00000001",
	api.RoleSupport: "support-secret-00000001",
	api.RoleViewer:  "viewer-secret-000000001",
	api.RoleAdmin:   "admin-secret-0000000001",
}

// TokenEntries are Secrets as auth.tokens entries: "<role>-token:<role>:<secret>",
// so a caller's name in audit records is "<role>-token".
func TokenEntries() []string {
	var entries []string
	for role, secret := range Secrets {
		entries = append(entries, fmt.Sprintf("%s-token:%s:%s", role, role, secret))
	}
	return entries
}

// Tokens parses TokenEntries for api.NewServer.
func Tokens(t testing.TB) []api.Token {
	t.Helper()
	tokens, err := api.ParseTokens(TokenEntries())
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

// Client calls the API served at Base (scheme and host, no trailing
// slash). A role of "" sends no token; a role that is not in Secrets is
// sent as a made-up token.
type Client struct {
	T    testing.TB
	Base string
}

// Do sends body (nil, []byte, string, or anything else as JSON) and
// returns the status code and the whole response body.
func (c Client) Do(role api.Role, method, path string, body any) (int, []byte) {
	c.T.Helper()
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
			c.T.Fatal(err)
		}
		r = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(c.T.Context(), method, c.Base+path, r)
	if err != nil {
		c.T.Fatal(err)
	}
	authorize(req, role)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.T.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// Status makes a request and returns its status code without reading the
// body, so streaming routes can be probed too.
func (c Client) Status(role api.Role, method, path, body string) int {
	c.T.Helper()
	ctx, cancel := context.WithTimeout(c.T.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, strings.NewReader(body))
	if err != nil {
		c.T.Fatal(err)
	}
	authorize(req, role)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.T.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Decide posts raw to /v1/decide as the hook and fails the test unless it
// is answered 200 with a DecideResponse.
func (c Client) Decide(raw string) api.DecideResponse {
	c.T.Helper()
	code, body := c.Do(api.RoleHook, "POST", "/v1/decide", raw)
	if code != 200 {
		c.T.Fatalf("decide: %d %s", code, body)
	}
	var resp api.DecideResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		c.T.Fatalf("decide response %s: %v", body, err)
	}
	return resp
}

func authorize(req *http.Request, role api.Role) {
	if secret, ok := Secrets[role]; ok {
		req.Header.Set("Authorization", "Bearer "+secret)
	} else if role != "" {
		req.Header.Set("Authorization", "Bearer "+string(role)) // a made-up token
	}
}

// RouteRoles is the role matrix as the product defines it; admin may call
// everything. api's TestRoleMatrix calls every route of its rig with every
// role, and cmd/riskd checks that every route the daemon serves has a row,
// so a route added anywhere without a row here fails a test.
var RouteRoles = map[string][]api.Role{
	"POST /v1/decide":                              {api.RoleHook},
	"POST /v1/accounts/{id}/lock":                  {api.RoleSupport},
	"POST /v1/accounts/{id}/unlock":                {api.RoleSupport},
	"GET /v1/accounts/{id}/locks":                  {api.RoleSupport, api.RoleViewer},
	"POST /v1/accounts/{id}/suppressions":          {api.RoleSupport, api.RoleAnalyst},
	"GET /v1/accounts/{id}/suppressions":           {api.RoleSupport, api.RoleAnalyst, api.RoleViewer},
	"DELETE /v1/accounts/{id}/suppressions/{rule}": {api.RoleSupport, api.RoleAnalyst},
	"GET /v1/accounts/{id}/timeline":               {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"GET /v1/decisions":                            {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"GET /v1/overview":                             {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"GET /v1/alerts":                               {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"GET /v1/dlq":                                  {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"GET /v1/pipeline/partitions":                  {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},

	"GET /v1/rules":                           {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"GET /v1/rules/{id}":                      {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"GET /v1/rules/versions":                  {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"GET /v1/rules/versions/{seq}":            {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"GET /v1/rules/versions/{a}/diff/{b}":     {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"GET /v1/lists":                           {api.RoleAnalyst, api.RoleViewer},
	"GET /v1/lists/{name}":                    {api.RoleAnalyst, api.RoleViewer},
	"POST /v1/rules/validate":                 {api.RoleAnalyst},
	"POST /v1/rules/test":                     {api.RoleAnalyst},
	"POST /v1/rules/publish":                  {api.RoleAnalyst},
	"POST /v1/rules/rollback":                 {api.RoleAnalyst},
	"GET /v1/rules/candidate":                 {api.RoleAnalyst, api.RoleViewer},
	"POST /v1/rules/candidate/promote":        {api.RoleAnalyst},
	"DELETE /v1/rules/candidate":              {api.RoleAnalyst},
	"POST /v1/rules/backtest":                 {api.RoleAnalyst},
	"GET /v1/rules/stats":                     {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"GET /v1/rules/vocabulary":                {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"GET /v1/features":                        {api.RoleAnalyst, api.RoleSupport, api.RoleViewer},
	"PUT /v1/features":                        {api.RoleAnalyst},
	"POST /v1/labels":                         {api.RoleAnalyst, api.RoleSupport},
	"PUT /v1/lists/{name}":                    {api.RoleAnalyst},
	"POST /v1/lists/{name}/entries":           {api.RoleAnalyst},
	"DELETE /v1/lists/{name}/entries/{entry}": {api.RoleAnalyst},
	"DELETE /v1/lists/{name}":                 {api.RoleAnalyst},

	"GET /v1/alerts/stream": {api.RoleViewer, api.RoleSupport, api.RoleAnalyst},

	"GET /v1/cases":             {api.RoleSupport, api.RoleAnalyst},
	"GET /v1/cases/{id}":        {api.RoleSupport, api.RoleAnalyst},
	"POST /v1/cases/{id}/take":  {api.RoleSupport, api.RoleAnalyst},
	"POST /v1/cases/{id}/close": {api.RoleSupport, api.RoleAnalyst},

	// Alert subscribers (api/webhooks.go): admin only.
	"GET /v1/webhooks":                            {},
	"POST /v1/webhooks":                           {},
	"PATCH /v1/webhooks/{name}":                   {},
	"DELETE /v1/webhooks/{name}":                  {},
	"POST /v1/webhooks/{name}/rotate-secret":      {},
	"GET /v1/webhooks/{name}/parked":              {},
	"POST /v1/webhooks/{name}/parked/{id}/resend": {},
	"POST /v1/webhooks/{name}/parked/resend":      {},
}
