package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/api"
	"riskd/internal/apitest"
	"riskd/internal/kafkatest"
	"riskd/rules"
)

// TestSupportCommandsReachEveryInstance runs two instances in one group
// and database, as a fleet does, and takes every support command through
// instance a's API only:
//   - a lock refuses the account's next payment on b's decide API (which
//     names b as the decider), and the account's next payment from the
//     stream, whichever instance owns its partition;
//   - a suppression shows on b; a lift and an unlock reach b the same way;
//   - b restarted keeps a lock it applied from a, and applies one a made
//     while b was down.
//
// On both brokers (kafkatest.Run).
func TestSupportCommandsReachEveryInstance(t *testing.T) {
	kafkatest.Run(t, testSupportCommandsReachEveryInstance)
}

// fleetPair is two instances of one group and database, named a and b,
// each with its own state and API, both ready, as a fleet runs them.
type fleetPair struct {
	e, second    *testEnv // a's and b's settings
	a, b         *daemon
	stopA, stopB func() error
}

func startPair(t *testing.T, broker kafkatest.Broker) *fleetPair {
	t.Helper()
	p := &fleetPair{e: newBrokerEnv(t, broker)}
	p.e.cfg.Auth.Tokens = apitest.TokenEntries()
	p.e.cfg.State.Instance = "a"
	p.a, p.stopA = p.e.start(t)
	second := *p.e
	second.cfg.State.Dir = t.TempDir()
	second.cfg.State.Instance = "b"
	p.second = &second
	p.b, p.stopB = second.start(t)
	waitReady(t, p.a)
	waitReady(t, p.b)
	return p
}

func testSupportCommandsReachEveryInstance(t *testing.T, b kafkatest.Broker) {
	p := startPair(t, b)
	e, second, first, other, stopOther := p.e, p.second, p.a, p.b, p.stopB
	defer mustStop(t, p.stopA)
	onA := apitest.Client{T: t, Base: "http://" + first.httpAddr}
	onB := func(d *daemon) apitest.Client { return apitest.Client{T: t, Base: "http://" + d.httpAddr} }

	// An account b reads: b decides it, from the stream and on its decide
	// API, with no forwarding.
	account := accountOwnedBy(t, p, "b", "acct-fleet-")
	n := 0
	payment := func(account string) string {
		n++
		return fmt.Sprintf(`{"event_id":"fleet-pay-%d","type":"payment","ts":%d,"account_id":%q,"amount":1500,"currency":"EUR","channel":"online","merchant_id":"m-fleet"}`,
			n, time.Now().UnixMilli(), account)
	}
	pay := func(c apitest.Client, account string) api.DecideResponse { return c.Decide(payment(account)) }
	lock := func(account string) {
		t.Helper()
		if code, body := onA.Do(api.RoleSupport, "POST", "/v1/accounts/"+account+"/lock",
			map[string]string{"reason": "fleet test", "duration": "2h"}); code != 200 {
			t.Fatalf("lock %s through a: %d %s", account, code, body)
		}
	}
	// waitLocked polls b's decide API until b's own answer for account
	// says locked (or not). The call is marked as forwarded already, so b
	// decides it whichever instance reads the account after a restart.
	waitLocked := func(d *daemon, account string, want bool) {
		t.Helper()
		waitFor(t, waitLong, fmt.Sprintf("b deciding %s as locked=%v", account, want), func() (bool, string) {
			r := decideHere(t, d, payment(account))
			if r.Instance != "b" {
				t.Fatalf("b's decide answered for instance %q, want b", r.Instance)
			}
			return r.Locked == want, fmt.Sprintf("%s, locked=%v", r.Action, r.Locked)
		})
	}

	if r := pay(onB(other), account); r.Locked || r.Action == rules.Lock {
		t.Fatalf("payment before any lock: %+v", r)
	}
	asked := time.Now()
	lock(account)
	waitFor(t, waitLong, "b refusing the payment of "+account, func() (bool, string) {
		r := pay(onB(other), account)
		if r.Instance != "b" {
			t.Fatalf("b's decide for %s, which b reads, answered for instance %q", account, r.Instance)
		}
		return r.Locked && r.Action == rules.Lock, fmt.Sprintf("%s, locked=%v", r.Action, r.Locked)
	})
	t.Logf("a's lock reached b's decide API within %s", time.Since(asked).Round(time.Millisecond))
	if got := metricSum(t, other, "riskd_fleet_commands_total", "applied"); got < 1 {
		t.Errorf("b's riskd_fleet_commands_total{outcome=\"applied\"} = %v, want at least 1", got)
	}
	if got := metricSum(t, first, "riskd_fleet_commands_total", "applied"); got != 0 {
		t.Errorf("a applied %v commands from the topic; its own are applied once, by its API", got)
	}

	// The stream: the account's next payment is refused by b, which reads
	// its partition.
	kafkatest.Produce(t, e.addr, e.payments, kafka.Message{Key: []byte(account), Value: []byte(fmt.Sprintf(
		`{"event_id":"fleet-stream-1","type":"payment","ts":%d,"account_id":%q,"amount":1500,"currency":"EUR","channel":"online","merchant_id":"m-fleet"}`,
		time.Now().UnixMilli(), account))})
	waitFor(t, waitLong, "the stream's payment decided", func() (bool, string) {
		_, ok, err := e.store.DecisionByEvent(t.Context(), "fleet-stream-1")
		return ok, fmt.Sprint("not stored; ", err)
	})
	if d := e.decision(t, "fleet-stream-1"); d.Action != "lock" || d.Reason != "account_locked" {
		t.Fatalf("the stream's payment of the locked account: %s (%s), want lock (account_locked)", d.Action, d.Reason)
	}
	if m := metricSum(t, other, "riskd_decisions_total", ""); m == 0 {
		t.Fatalf("b decided nothing from the stream, though it reads %s's partition", account)
	}

	// A suppression, and its lift.
	const rule = "brute-force-lock"
	suppressed := func(d *daemon) bool {
		code, body := onB(d).Do(api.RoleSupport, "GET", "/v1/accounts/"+account+"/suppressions", nil)
		var resp api.SuppressionsResponse
		if code != 200 || json.Unmarshal(body, &resp) != nil {
			t.Fatalf("suppressions on b: %d %s", code, body)
		}
		for _, s := range resp.Active {
			if s.RuleID == rule {
				return true
			}
		}
		return false
	}
	if code, body := onA.Do(api.RoleSupport, "POST", "/v1/accounts/"+account+"/suppressions",
		map[string]string{"rule": rule, "duration": "1h", "reason": "fleet test"}); code != 201 {
		t.Fatalf("suppress through a: %d %s", code, body)
	}
	waitFor(t, waitLong, "a's suppression on b", func() (bool, string) { return suppressed(other), "not active" })
	if code, body := onA.Do(api.RoleSupport, "DELETE", "/v1/accounts/"+account+"/suppressions/"+rule, nil); code != 200 {
		t.Fatalf("lift through a: %d %s", code, body)
	}
	waitFor(t, waitLong, "a's lift on b", func() (bool, string) { return !suppressed(other), "still active" })

	// b restarted keeps the lock it applied from a, and applies one a
	// made while it was down.
	const whileDown = "acct-fleet-down"
	mustStop(t, stopOther)
	lock(whileDown)
	other, stopOther = second.start(t)
	defer mustStop(t, stopOther)
	waitReady(t, other)
	waitLocked(other, account, true)
	waitLocked(other, whileDown, true)

	// The unlock, through a, reaches b.
	if code, body := onA.Do(api.RoleSupport, "POST", "/v1/accounts/"+account+"/unlock",
		map[string]string{"reason": "owner verified", "verification": "id_document"}); code != 200 {
		t.Fatalf("unlock through a: %d %s", code, body)
	}
	waitLocked(other, account, false)
	if r := decideHere(t, other, payment(account)); r.Action != rules.Allow {
		t.Fatalf("b's payment after a's unlock: %+v, want allow", r)
	}
}

// accountOwnedBy returns the first account "<prefix>N" whose partition
// instance reads, once both instances of p see the same owner for it.
func accountOwnedBy(t *testing.T, p *fleetPair, instance, prefix string) string {
	t.Helper()
	return accountsOwnedBy(t, p, instance, prefix, 1)[0]
}

// accountsOwnedBy returns the first n accounts "<prefix>N" whose partition
// instance reads, once both instances of p see the same owner for them.
func accountsOwnedBy(t *testing.T, p *fleetPair, instance, prefix string, n int) []string {
	t.Helper()
	var found []string
	waitFor(t, waitLong, "both instances seeing "+instance+" own accounts", func() (bool, string) {
		found = found[:0]
		for i := range 64 * n {
			account := prefix + strconv.Itoa(i)
			ma, okA := p.a.pipe.Owner(account)
			mb, okB := p.b.pipe.Owner(account)
			if !okA || !okB || ma.Instance != mb.Instance || ma.API == "" {
				return false, fmt.Sprintf("%s: a sees %+v (%v), b sees %+v (%v)", account, ma, okA, mb, okB)
			}
			if ma.Instance == instance {
				if found = append(found, account); len(found) == n {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%d of %d accounts are %s's", len(found), 64*n, instance)
	})
	return found
}

// decideHere posts raw to d's decide API as the hook, marked as forwarded
// already (api.HeaderForwardedBy), so that d decides it itself.
func decideHere(t *testing.T, d *daemon, raw string) api.DecideResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+d.httpAddr+"/v1/decide", strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apitest.Secrets[api.RoleHook])
	req.Header.Set(api.HeaderForwardedBy, "test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r api.DecideResponse
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || json.Unmarshal(body, &r) != nil {
		t.Fatalf("decide on %s: %d %s", d.httpAddr, resp.StatusCode, body)
	}
	return r
}
