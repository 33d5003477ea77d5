package api_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"riskd/api"
	"riskd/internal/apitest"
	"riskd/streams"
)

// owners is a fixed view of the fleet: account id to owner.
type owners map[string]streams.Member

func (o owners) Owner(account string) (streams.Member, bool) {
	m, ok := o[account]
	return m, ok
}

func (o owners) HasPeers() bool { return len(o) > 0 }

// TestDecideForwardsToTheOwnerAndDecidesHereWhenItCannot: a call for an
// account another instance owns gets that instance's answer (the call
// reached it with the caller's credentials, marked as forwarded, body
// untouched); a call for an account this instance owns, or whose owner is
// unknown, down or failing, or one that was forwarded already, is decided
// here. riskd_decide_forwarded_total counts both outcomes.
func TestDecideForwardsToTheOwnerAndDecidesHereWhenItCannot(t *testing.T) {
	type seen struct{ auth, by, body string }
	got := make(chan seen, 1)
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Header.Get("Authorization"), r.Header.Get(api.HeaderForwardedBy), string(body)}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"schema_version":1,"event_id":"x","action":"block","score":0,"code":"c","category":"declined","message":"m","reasons":[],"locked":false,"latency_ms":0.1,"fallback":false,"instance":"owner"}`)
	}))
	defer owner.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // refuses connections from now on

	router := owners{
		"acct-remote":  {Instance: "owner", API: owner.URL},
		"acct-here":    {Instance: "self", API: "http://self.invalid"},
		"acct-gone":    {Instance: "gone", API: gone.URL},
		"acct-failing": {Instance: "failing", API: failing.URL},
		"acct-mute":    {Instance: "mute"}, // says nothing of its API
	}
	env := newRig(t, api.DecideConfig{Instance: "self", Router: router, Deadline: 2 * time.Second})
	pay := func(id, account string) string {
		return fmt.Sprintf(`{"event_id":%q,"type":"payment","ts":%d,"account_id":%q,"amount":100}`, id, time.Now().UnixMilli(), account)
	}

	raw := pay("fwd-1", "acct-remote")
	if r := env.c.Decide(raw); r.Instance != "owner" || r.Action.String() != "block" {
		t.Fatalf("call for the owner's account: %+v, want the owner's answer", r)
	}
	s := <-got
	if s.auth != "Bearer "+apitest.Secrets[api.RoleHook] || s.by != "self" || s.body != raw {
		t.Fatalf("the owner saw authorization %q, forwarded by %q, body %q; want the hook's token, self, the call's body", s.auth, s.by, s.body)
	}
	for _, account := range []string{"acct-here", "acct-unknown", "acct-gone", "acct-failing", "acct-mute"} {
		if r := env.c.Decide(pay("fwd-"+account, account)); r.Instance != "self" || r.Fallback {
			t.Errorf("call for %s: %+v, want decided here", account, r)
		}
	}
	// A forwarded call is decided where it lands, even if another
	// instance owns the account by this one's view.
	req, _ := http.NewRequest(http.MethodPost, env.c.Base+"/v1/decide", strings.NewReader(pay("fwd-again", "acct-remote")))
	req.Header.Set("Authorization", "Bearer "+apitest.Secrets[api.RoleHook])
	req.Header.Set(api.HeaderForwardedBy, "another")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"instance":"self"`) {
		t.Fatalf("a forwarded call: %d %s, want decided here", resp.StatusCode, body)
	}
	select {
	case s := <-got:
		t.Fatalf("the owner was asked again: %+v", s)
	default:
	}

	if err := testutil.GatherAndCompare(env.reg, strings.NewReader(`
# HELP riskd_decide_forwarded_total POST /v1/decide calls for an account another instance owns, by outcome (forwarded: that instance answered; failed: it did not in time, so this one decided).
# TYPE riskd_decide_forwarded_total counter
riskd_decide_forwarded_total{outcome="failed"} 2
riskd_decide_forwarded_total{outcome="forwarded"} 1
`), "riskd_decide_forwarded_total"); err != nil {
		t.Fatal(err)
	}
}
