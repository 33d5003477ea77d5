package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/api"
	"riskd/engine"
	"riskd/internal/kafkatest"
	"riskd/rules"
)

// TestDecideSharesStateWithTheStream: five failed logins arrive on Kafka;
// the hook's payment is then refused because the stream locked the
// account. The decision is recorded, and the same event arriving later on
// Kafka counts once.
func TestDecideSharesStateWithTheStream(t *testing.T) {
	env := newRig(t, api.DecideConfig{})
	c := env.c
	var logins []string
	for i := range 5 {
		logins = append(logins, fmt.Sprintf("bf-%d", i))
		kafkatest.Produce(t, env.broker, "account-events", ev(logins[i], "login_failed", "acct-hook", baseTS+int64(i)*1000,
			`,"ip":"198.51.100.9"`))
	}
	env.waitStored(t, 5)

	payment := fmt.Sprintf(`{"event_id":"hook-pay-1","type":"payment","ts":%d,"account_id":"acct-hook","amount":4000,"currency":"EUR","channel":"online"}`, baseTS+60_000)
	resp := c.Decide(payment)
	if resp.Action.String() != "lock" || resp.Reason != "account_locked" || !resp.Locked || resp.LockUntil == nil || resp.Fallback {
		t.Fatalf("decide after brute force: %+v, want lock/account_locked, locked", resp)
	}
	env.waitStored(t, 6) // the API's decision is recorded
	if sd := env.decision(t, "hook-pay-1"); sd.Source.Topic != "api" || sd.Reason != "account_locked" {
		t.Fatalf("stored API decision: %+v", sd)
	}
	again := c.Decide(payment)
	if !again.Duplicate || again.Action.String() != "lock" {
		t.Fatalf("repeated decide: %+v, want duplicate with the same action", again)
	}
	// The same id with another body is a conflict, on the hook (409) and on
	// the stream (the dead-letter topic, with the reason).
	changed := strings.Replace(payment, `"amount":4000`, `"amount":4001`, 1)
	if code, body := c.Do(api.RoleHook, "POST", "/v1/decide", changed); code != 409 ||
		!strings.Contains(string(body), `event_id \"hook-pay-1\" was decided before with a different body`) {
		t.Fatalf("reused event id with another body: %d %s, want 409 naming the conflict", code, body)
	}
	kafkatest.Produce(t, env.broker, "payments", kafkaMsg("acct-hook", changed))
	dead := kafkatest.ReadAll(t, env.broker, "risk.dlq", 1, 30*time.Second)
	if reason := header(dead[0], "riskd-error"); !strings.Contains(reason, "was decided before with a different body") {
		t.Fatalf("conflicting event on the stream: dead letter reason %q", reason)
	}
	// The same event on Kafka is a duplicate: no second row, no second output.
	kafkatest.Produce(t, env.broker, "payments", kafkaMsg("acct-hook", payment))
	env.waitMetric(t, "riskd_duplicate_events_total", 1)
	env.assertStoredOnce(t, 6)

	// A good customer's payment is allowed, with its reasons listed.
	ok := c.Decide(fmt.Sprintf(`{"event_id":"hook-pay-2","type":"payment","ts":%d,"account_id":"acct-fine","amount":1500,"currency":"EUR","channel":"nfc"}`, baseTS))
	if ok.Action.String() != "allow" || ok.Locked || ok.RuleSetVersion == "" || ok.Reasons == nil {
		t.Fatalf("ordinary payment: %+v", ok)
	}
	// An invalid event is a 400 naming the problem.
	code, body := c.Do(api.RoleHook, "POST", "/v1/decide", `{"event_id":"x","type":"payment","ts":"yesterday"}`)
	if code != 400 || !strings.Contains(string(body), "ts") || !strings.Contains(string(body), "account_id") {
		t.Fatalf("invalid event: %d %s", code, body)
	}
}

// TestDecideDeadlineFallsBackAndSaysSo: while the account's shard is busy
// past the deadline, the configured fail-closed action is answered, marked
// as a fallback; the event is still decided and recorded afterwards.
func TestDecideDeadlineFallsBackAndSaysSo(t *testing.T) {
	env := newRig(t, api.DecideConfig{Deadline: 100 * time.Millisecond, OnTimeout: rules.Challenge})
	release := make(chan struct{})
	held := make(chan struct{})
	go env.eng.Do(t.Context(), "acct-s", func(*engine.Scorer) { close(held); <-release })
	<-held
	resp := env.c.Decide(fmt.Sprintf(`{"event_id":"slow-1","type":"payment","ts":%d,"account_id":"acct-s","amount":100}`, baseTS))
	close(release)
	if !resp.Fallback || resp.Action.String() != "challenge" || resp.Reason != api.ReasonTimeout || resp.EventID != "slow-1" {
		t.Fatalf("fallback answer: %+v", resp)
	}
	env.waitStored(t, 1)
	if sd := env.decision(t, "slow-1"); sd.Source.Topic != "api" {
		t.Fatalf("the late decision was not recorded: %+v", sd)
	}
}

// TestDecideRefusesAnEventDatedAheadOfTheClock: a payment dated 3h ahead
// of the wall clock is answered 422 with the reason (how far ahead, the
// bound, the config key); nothing is recorded, so the same event id with a
// sane ts is then decided as a new event.
func TestDecideRefusesAnEventDatedAheadOfTheClock(t *testing.T) {
	env := newRig(t, api.DecideConfig{})
	payment := func(ts time.Time) string {
		return fmt.Sprintf(`{"event_id":"future-1","type":"payment","ts":%d,"account_id":"acct-future","amount":1500,"currency":"EUR","channel":"nfc"}`,
			ts.UnixMilli())
	}
	code, body := env.c.Do(api.RoleHook, "POST", "/v1/decide", payment(time.Now().Add(3*time.Hour)))
	if code != 422 || !strings.Contains(string(body), `invalid event: ts: `) ||
		!strings.Contains(string(body), `ahead of the clock; at most 5m0s is allowed (engine.max_future_skew)`) {
		t.Fatalf("payment dated 3h ahead: %d %s, want 422 with the ts reason", code, body)
	}
	resp := env.c.Decide(payment(time.Now()))
	if resp.Duplicate || resp.Action.String() != "allow" || resp.EventID != "future-1" {
		t.Fatalf("the same id dated now: %+v, want decided as a new event", resp)
	}
	env.waitStored(t, 1)
	env.assertStoredOnce(t, 1)
}

// header returns the value of m's header key, or "".
func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
