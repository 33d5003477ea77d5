package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/internal/apitest"
	"riskd/internal/kafkatest"
	"riskd/rules"
)

// TestDecideIsForwardedToTheAccountsOwner runs two instances in one group.
// Five wrong passwords on the stream make the instance that reads the
// account's partition lock it by rule, a lock only that instance's state
// holds; the hook's payment for that account sent to the other instance's
// decide API is forwarded to the owner, which refuses it and says it
// decided. A payment for an account the asked instance reads is decided
// there. On both brokers (kafkatest.Run).
func TestDecideIsForwardedToTheAccountsOwner(t *testing.T) {
	kafkatest.Run(t, testDecideIsForwardedToTheAccountsOwner)
}

func testDecideIsForwardedToTheAccountsOwner(t *testing.T, b kafkatest.Broker) {
	p := startPair(t, b)
	defer mustStop(t, p.stopA)
	defer mustStop(t, p.stopB)
	e, first, other := p.e, p.a, p.b

	// An account a reads and one b reads, as both instances see the group.
	ofA, ofB := accountOwnedBy(t, p, "a", "acct-fwd-"), accountOwnedBy(t, p, "b", "acct-fwd-")

	// a locks ofA by rule: five wrong passwords on the stream.
	ts := time.Now().Add(-time.Hour).UnixMilli()
	var logins []kafka.Message
	for i := range 5 {
		logins = append(logins, ev(fmt.Sprintf("fwd-bf-%d", i), "login_failed", ofA, ts+int64(i)*1000,
			`,"ip":"198.51.100.7","device":{"id":"dev-fwd"}`))
	}
	kafkatest.Produce(t, e.addr, e.accountEvents, logins...)
	e.waitStored(t, 5)
	if got := e.decision(t, "fwd-bf-4"); got.Action != "lock" {
		t.Fatalf("fifth wrong password: %s by %v, want lock", got.Action, got.MatchedRules)
	}

	onB := apitest.Client{T: t, Base: "http://" + other.httpAddr}
	pay := func(id, account string) string {
		return fmt.Sprintf(`{"event_id":%q,"type":"payment","ts":%d,"account_id":%q,"amount":1500,"currency":"EUR","channel":"online","merchant_id":"m-fwd"}`,
			id, time.Now().UnixMilli(), account)
	}
	r := onB.Decide(pay("fwd-pay-a", ofA))
	if r.Instance != "a" || !r.Locked || r.Action != rules.Lock {
		t.Fatalf("b's decide for %s, which a reads and a locked: %+v, want a lock decided by a", ofA, r)
	}
	if r := onB.Decide(pay("fwd-pay-b", ofB)); r.Instance != "b" || r.Action != rules.Allow {
		t.Fatalf("b's decide for %s, which b reads: %+v, want allow decided by b", ofB, r)
	}
	if got := metricSum(t, other, "riskd_decide_forwarded_total", "forwarded"); got != 1 {
		t.Errorf("b's riskd_decide_forwarded_total{outcome=\"forwarded\"} = %v, want 1", got)
	}
	if got := metricSum(t, first, "riskd_decide_forwarded_total", ""); got != 0 {
		t.Errorf("a forwarded %v calls; a forwarded call is decided where it lands", got)
	}
	e.waitStored(t, 7)
	if d := e.decision(t, "fwd-pay-a"); d.Action != "lock" || d.Reason != "account_locked" {
		t.Fatalf("stored decision of the forwarded payment: %s (%s), want lock (account_locked)", d.Action, d.Reason)
	}

	// What forwarding costs the hook, for bench/RESULTS.md (logged, not
	// checked): round trips to b's API, answered by b or forwarded to a.
	const calls = 300
	took := map[string][]time.Duration{}
	for i := range calls {
		for _, c := range []struct{ name, account string }{{"decided by b", ofB}, {"forwarded to a", ofA}} {
			start := time.Now()
			onB.Decide(pay(fmt.Sprintf("fwd-lat-%s-%d", c.account, i), c.account))
			took[c.name] = append(took[c.name], time.Since(start))
		}
	}
	for name, d := range took {
		slices.Sort(d)
		t.Logf("decide on b, %s: median %s, p99 %s over %d calls (client round trip, loopback)",
			name, d[len(d)/2].Round(time.Microsecond), d[len(d)*99/100].Round(time.Microsecond), len(d))
	}
}
