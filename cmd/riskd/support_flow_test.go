package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/api"
	"riskd/internal/apitest"
	"riskd/internal/kafkatest"
	"riskd/rules"
)

// The wallet guide's brute-force flow, end to end, as the wallet, the
// payment hook and a support agent see it (docs/WALLET.md, README's
// support section): wrong passwords through Kafka lock the account; the
// hook's payment is refused with account_locked and the lock's message;
// support reads the timeline (which rule, which feature value), cannot
// unlock without saying how the owner was verified, unlocks; one more
// wrong password does not lock again (the unlock cleared the counter the
// lock rule declares); the next payment is allowed. On the real broker
// (both, under kafkatest.Run) and ClickHouse.
func TestBruteForceLockSupportUnlockFlow(t *testing.T) {
	kafkatest.Run(t, testBruteForceLockSupportUnlockFlow)
}

func testBruteForceLockSupportUnlockFlow(t *testing.T, b kafkatest.Broker) {
	e := newBrokerEnv(t, b)
	e.cfg.Auth.Tokens = apitest.TokenEntries()
	d, stop := e.start(t)
	defer mustStop(t, stop)
	c := apitest.Client{T: t, Base: "http://" + d.httpAddr}
	const account = "acct-flow"
	// Event times near now: the hook's payments are checked against the
	// wall clock, and locks run on it.
	ts := time.Now().Add(-time.Hour).UnixMilli()
	login := func(id string, at int64) kafka.Message {
		return ev(id, "login_failed", account, at, `,"ip":"198.51.100.9","device":{"id":"dev-flow"}`)
	}
	payment := func(id string) api.DecideResponse {
		return c.Decide(fmt.Sprintf(`{"event_id":%q,"type":"payment","ts":%d,"account_id":%q,"amount":2500,"currency":"EUR","channel":"online","merchant_id":"m-flow"}`,
			id, time.Now().UnixMilli(), account))
	}

	// Five wrong passwords: the fifth locks.
	var logins []kafka.Message
	for i := range 5 {
		logins = append(logins, login(fmt.Sprintf("flow-bf-%d", i), ts+int64(i)*1000))
	}
	kafkatest.Produce(t, e.addr, e.accountEvents, logins...)
	e.waitStored(t, 5)
	if got := e.decision(t, "flow-bf-4"); got.Action != "lock" || !contains(got.MatchedRules, "brute-force-lock") {
		t.Fatalf("fifth wrong password: %s by %v, want lock by brute-force-lock", got.Action, got.MatchedRules)
	}

	// The hook's payment is refused, with a reason the wallet shows.
	if r := payment("flow-pay-1"); r.Action != rules.Lock || r.Category != "account_locked" || r.Message == "" || !r.Locked {
		t.Fatalf("payment while locked: %+v, want lock, category account_locked, a message, locked", r)
	}

	// Support sees why: the lock, its rule and the feature value it read.
	code, body := c.Do(api.RoleSupport, "GET", "/v1/accounts/"+account+"/timeline", nil)
	if code != 200 || !strings.Contains(string(body), `"brute-force-lock"`) || !strings.Contains(string(body), `"failed_logins_15m"`) {
		t.Fatalf("timeline: %d %s", code, body)
	}
	var tl struct {
		Live struct {
			Locked bool   `json:"locked"`
			By     string `json:"by"`
		} `json:"live"`
	}
	if err := json.Unmarshal(body, &tl); err != nil || !tl.Live.Locked || tl.Live.By != "brute-force-lock" {
		t.Fatalf("timeline's live lock: %+v (%v) in %s", tl.Live, err, body)
	}

	// An unlock must say how the owner was verified; then it is done.
	if code, body := c.Do(api.RoleSupport, "POST", "/v1/accounts/"+account+"/unlock",
		map[string]string{"reason": "owner called, ticket 123"}); code != 400 {
		t.Fatalf("unlock without verification: %d %s, want 400", code, body)
	}
	code, body = c.Do(api.RoleSupport, "POST", "/v1/accounts/"+account+"/unlock",
		map[string]string{"reason": "owner called, ticket 123", "verification": "id_document"})
	if code != 200 {
		t.Fatalf("unlock: %d %s", code, body)
	}
	// Not locked any more: a second unlock is a conflict.
	if code, body := c.Do(api.RoleSupport, "POST", "/v1/accounts/"+account+"/unlock",
		map[string]string{"reason": "again", "verification": "id_document"}); code != 409 {
		t.Fatalf("second unlock: %d %s, want 409", code, body)
	}

	// One more wrong password, right after the five: it does not lock.
	kafkatest.Produce(t, e.addr, e.accountEvents, login("flow-bf-5", ts+5000))
	e.waitStored(t, 6+1) // five logins, the refused payment, this login
	if got := e.decision(t, "flow-bf-5"); got.Action == "lock" {
		t.Fatalf("a wrong password after the unlock: %s by %v, want no lock (the counter was reset)", got.Action, got.MatchedRules)
	}

	// And the owner can pay.
	if r := payment("flow-pay-2"); r.Action != rules.Allow || r.Locked {
		t.Fatalf("payment after the unlock: %+v, want allow", r)
	}
}
