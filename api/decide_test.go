package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
	// The wallet reads a fallback like the action it falls back to.
	if resp.Code != api.CodeTimeout || resp.Category != "verify_identity" || resp.StepUp != "mfa" ||
		resp.Message != rules.WalletDefault(rules.Challenge).UserMessage {
		t.Fatalf("fallback answer's wallet fields: %+v", resp)
	}
	if raw, _ := json.Marshal(resp); loadSchema(t).validateJSON(raw) != nil {
		t.Fatalf("fallback answer %s: %v", raw, loadSchema(t).validateJSON(raw))
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

// TestDecideAnswersTheWalletContract decides, through the hook's route,
// one event for each screen the wallet has (docs/WALLET.md), checks each
// answer's code, category, message and step-up, and validates every raw
// answer against docs/decide-response.v1.schema.json.
func TestDecideAnswersTheWalletContract(t *testing.T) {
	// A deadline far above any wait: this test is about the answer's
	// content, and a fallback under -race on a loaded machine is not it.
	env := newRig(t, api.DecideConfig{Deadline: 10 * time.Second})
	schema := loadSchema(t)
	seen := map[string]bool{}
	decide := func(body string) api.DecideResponse {
		t.Helper()
		code, raw := env.c.Do(api.RoleHook, "POST", "/v1/decide", body)
		if code != 200 {
			t.Fatalf("decide %s: %d %s", body, code, raw)
		}
		if err := schema.validateJSON(raw); err != nil {
			t.Fatalf("answer %s: not valid against the schema: %v", raw, err)
		}
		var resp api.DecideResponse
		if err := json.Unmarshal(raw, &resp); err != nil {
			t.Fatal(err)
		}
		if (resp.StepUp != "") != (resp.Action == rules.Challenge) {
			t.Fatalf("answer %s: step_up must be there exactly for a challenge", raw)
		}
		for _, r := range resp.Reasons {
			if (r.StepUp != "") != (r.Action == rules.Challenge) {
				t.Fatalf("answer %s: reason %s: step_up must be there exactly for a challenge", raw, r.RuleID)
			}
		}
		seen[resp.Category] = true
		t.Logf("%s", raw)
		return resp
	}
	payment := func(id, account string, ts int64, extra string) string {
		return fmt.Sprintf(`{"event_id":%q,"type":"payment","ts":%d,"account_id":%q,"currency":"EUR"%s}`, id, ts, account, extra)
	}
	type want struct{ action, code, category, message, stepUp string }
	check := func(what string, got api.DecideResponse, w want) {
		t.Helper()
		g := want{got.Action.String(), got.Code, got.Category, got.Message, got.StepUp}
		if g != w {
			t.Fatalf("%s: answered %+v, want %+v", what, g, w)
		}
	}
	def := rules.WalletDefault

	// Nothing matched.
	check("an ordinary payment", decide(payment("w-ok", "acct-w-ok", baseTS, `,"amount":1500,"channel":"nfc"`)),
		want{"allow", "clear", "allowed", "", ""})

	// A payee reported for scams: the rule's own code, category and message.
	scam := payment("w-scam", "acct-w-scam", baseTS, `,"amount":25000,"channel":"transfer","payee_id":"payee-scam-0003"`)
	got := decide(scam)
	check("a payment to a scam payee", got, want{"block", "scam.payee_reported", "suspected_scam",
		"This payee was reported for scams. Our staff will never ask you to move money. The payment was not sent.", ""})
	if len(got.Reasons) != 1 || got.Reasons[0].RuleID != "scam-payee" || got.Reasons[0].Code != got.Code {
		t.Fatalf("scam payment reasons: %+v", got.Reasons)
	}
	// The same event again: the action is repeated, under the duplicate code.
	check("the scam payment again", decide(scam), want{"block", "duplicate", "declined", def(rules.Block).UserMessage, ""})

	// Wrong passwords: a notice at the third, a lock at the fifth, then
	// every payment refused as account_locked until the lock ends.
	var last api.DecideResponse
	for i := range 5 {
		last = decide(fmt.Sprintf(`{"event_id":"w-bf-%d","type":"login_failed","ts":%d,"account_id":"acct-w-bf","ip":"198.51.100.7"}`,
			i, baseTS+int64(i)*1000))
		if i == 2 {
			check("the third wrong password", last, want{"alert", "login.failed_attempts", "security_notice", def(rules.Alert).UserMessage, ""})
		}
	}
	check("the fifth wrong password", last, want{"lock", "login.brute_force", "account_locked",
		"Your wallet is locked for 30 minutes after several wrong passwords. Support can unlock it sooner.", ""})
	got = decide(payment("w-bf-pay", "acct-w-bf", baseTS+10_000, `,"amount":4000,"channel":"online"`))
	// The locking rule's message, which says why and for how long.
	check("a payment while locked", got, want{"lock", "account_locked", "account_locked",
		"Your wallet is locked for 30 minutes after several wrong passwords. Support can unlock it sooner.", ""})
	if !got.Locked || got.LockUntil == nil || got.Reason != "account_locked" || len(got.Reasons) != 0 {
		t.Fatalf("payment while locked: %+v, want locked with lock_until and no reasons", got)
	}

	// A step-up of each kind.
	check("a large payment from a rooted phone", decide(payment("w-rooted", "acct-w-rooted", baseTS,
		`,"amount":25000,"channel":"qr","device":{"id":"d-r","rooted":true}`)),
		want{"challenge", "device.rooted", "verify_identity", def(rules.Challenge).UserMessage, "mfa"})
	decide(fmt.Sprintf(`{"event_id":"w-reset","type":"password_reset","ts":%d,"account_id":"acct-w-pts"}`, baseTS))
	check("points redeemed after a password reset", decide(fmt.Sprintf(
		`{"event_id":"w-pts","type":"points_redeem","ts":%d,"account_id":"acct-w-pts","amount":100}`, baseTS+60_000)),
		want{"challenge", "points.after_password_reset", "verify_identity", def(rules.Challenge).UserMessage, "reenter_password"})
	decide(fmt.Sprintf(`{"event_id":"w-payee","type":"payee_add","ts":%d,"account_id":"acct-w-urgent","payee_id":"p-w-0"}`, baseTS))
	check("a large payment to a new payee minutes after adding a payee", decide(payment("w-urgent", "acct-w-urgent", baseTS+120_000,
		`,"amount":150000,"channel":"transfer","payee_id":"p-w-1"`)),
		want{"challenge", "scam.pressure_pattern", "suspected_scam",
			"If someone is pressuring you to pay quickly or in secret, it may be a scam. Call us before you send this.", "call_support"})

	// A limit: the fifth redemption of points in a day.
	for i := range 5 {
		last = decide(fmt.Sprintf(`{"event_id":"w-redeem-%d","type":"points_redeem","ts":%d,"account_id":"acct-w-limit","amount":100}`,
			i, baseTS+int64(i)*1000))
	}
	check("the fifth redemption today", last, want{"block", "points.redeem_limit", "limit_exceeded",
		"You reached the number of point redemptions allowed today. Try again tomorrow.", ""})

	// Every category was answered (declined by the duplicate).
	for _, c := range rules.Categories {
		if !seen[c] {
			t.Errorf("category %s: no answer in this test has it", c)
		}
	}
}

// TestWalletDocsShowEveryCategory: docs/WALLET.md has an example answer
// for every category of the schema and every step-up, each valid against
// the schema; the schema's enums are the rules package's sets.
func TestWalletDocsShowEveryCategory(t *testing.T) {
	schema := loadSchema(t)
	defs := schema.Defs
	if got := enumStrings(defs["category"]); !slices.Equal(got, rules.Categories) {
		t.Fatalf("schema categories %v, rules.Categories %v", got, rules.Categories)
	}
	if got := enumStrings(defs["step_up"]); !slices.Equal(got, rules.StepUps) {
		t.Fatalf("schema step-ups %v, rules.StepUps %v", got, rules.StepUps)
	}
	doc, err := os.ReadFile("../docs/WALLET.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	categories, stepUps := map[string]bool{}, map[string]bool{}
	for i, b := range blocks {
		var m map[string]any
		if err := json.Unmarshal(b[1], &m); err != nil {
			t.Fatalf("WALLET.md json block %d: %v", i+1, err)
		}
		if _, isAnswer := m["schema_version"]; !isAnswer {
			continue
		}
		if err := schema.validate(m, "$"); err != nil {
			t.Fatalf("WALLET.md json block %d is not a valid answer: %v", i+1, err)
		}
		categories[m["category"].(string)] = true
		if s, ok := m["step_up"].(string); ok {
			stepUps[s] = true
		}
	}
	for _, c := range rules.Categories {
		if !categories[c] {
			t.Errorf("WALLET.md has no example answer with category %s", c)
		}
	}
	for _, s := range rules.StepUps {
		if !stepUps[s] {
			t.Errorf("WALLET.md has no example answer with step_up %s", s)
		}
	}
}

// jsonSchema is the subset of JSON Schema (2020-12) the decide answer's
// schema uses. Decoding refuses any other keyword, so the schema cannot
// grow a rule this validator would silently skip.
type jsonSchema struct {
	Schema               string                 `json:"$schema"`
	ID                   string                 `json:"$id"`
	Title                string                 `json:"title"`
	Description          string                 `json:"description"`
	Ref                  string                 `json:"$ref"`
	Defs                 map[string]*jsonSchema `json:"$defs"`
	Type                 string                 `json:"type"`
	Format               string                 `json:"format"` // an annotation, as the spec's default
	Required             []string               `json:"required"`
	Properties           map[string]*jsonSchema `json:"properties"`
	AdditionalProperties *bool                  `json:"additionalProperties"`
	Items                *jsonSchema            `json:"items"`
	Enum                 []any                  `json:"enum"`
	Const                any                    `json:"const"`
	Pattern              string                 `json:"pattern"`
	MaxLength            *int                   `json:"maxLength"`
	Minimum              *float64               `json:"minimum"`

	root *jsonSchema
}

func loadSchema(t *testing.T) *jsonSchema {
	t.Helper()
	b, err := os.ReadFile("../docs/decide-response.v1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s jsonSchema
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("decide-response.v1.schema.json: %v", err)
	}
	s.root = &s
	return &s
}

func (s *jsonSchema) validateJSON(raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	return s.validate(v, "$")
}

// validate checks v (as encoding/json decodes into any) against s; the
// error names the path of the first value that fails.
func (s *jsonSchema) validate(v any, path string) error {
	if s.Ref != "" {
		name, ok := strings.CutPrefix(s.Ref, "#/$defs/")
		def := s.root.Defs[name]
		if !ok || def == nil {
			return fmt.Errorf("%s: unknown $ref %s", path, s.Ref)
		}
		def.root = s.root
		if err := def.validate(v, path); err != nil {
			return err
		}
	}
	switch s.Type {
	case "":
	case "object":
		if _, ok := v.(map[string]any); !ok {
			return fmt.Errorf("%s: %v is not an object", path, v)
		}
	case "array":
		if _, ok := v.([]any); !ok {
			return fmt.Errorf("%s: %v is not an array", path, v)
		}
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: %v is not a string", path, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %v is not a boolean", path, v)
		}
	case "number", "integer":
		f, ok := v.(float64)
		if !ok || s.Type == "integer" && f != math.Trunc(f) {
			return fmt.Errorf("%s: %v is not an %s", path, v, s.Type)
		}
	default:
		return fmt.Errorf("%s: the validator knows no type %q", path, s.Type)
	}
	if s.Enum != nil && !slices.Contains(s.Enum, v) {
		return fmt.Errorf("%s: %v is not one of %v", path, v, s.Enum)
	}
	if s.Const != nil && v != s.Const {
		return fmt.Errorf("%s: %v is not %v", path, v, s.Const)
	}
	if str, ok := v.(string); ok {
		if s.MaxLength != nil && utf8.RuneCountInString(str) > *s.MaxLength {
			return fmt.Errorf("%s: %d characters, at most %d", path, utf8.RuneCountInString(str), *s.MaxLength)
		}
		if s.Pattern != "" && !regexp.MustCompile(s.Pattern).MatchString(str) {
			return fmt.Errorf("%s: %q does not match %s", path, str, s.Pattern)
		}
	}
	if f, ok := v.(float64); ok && s.Minimum != nil && f < *s.Minimum {
		return fmt.Errorf("%s: %v is below %v", path, f, *s.Minimum)
	}
	if obj, ok := v.(map[string]any); ok {
		for _, k := range s.Required {
			if _, ok := obj[k]; !ok {
				return fmt.Errorf("%s: %s is missing", path, k)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			p, ok := s.Properties[k]
			if !ok {
				if s.AdditionalProperties != nil && !*s.AdditionalProperties {
					return fmt.Errorf("%s: %s is not in the schema", path, k)
				}
				continue
			}
			p.root = s.root
			if err := p.validate(obj[k], path+"."+k); err != nil {
				return err
			}
		}
	}
	if arr, ok := v.([]any); ok && s.Items != nil {
		s.Items.root = s.root
		for i, e := range arr {
			if err := s.Items.validate(e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// enumStrings returns s's enum as strings.
func enumStrings(s *jsonSchema) []string {
	var out []string
	for _, e := range s.Enum {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// TestSchemaValidatorRefusesWhatItShould: the validator is a test's
// judge, so it is tested too, on answers broken one way each.
func TestSchemaValidatorRefusesWhatItShould(t *testing.T) {
	schema := loadSchema(t)
	good := `{"schema_version":1,"event_id":"e","action":"challenge","score":45,"code":"scam.x","category":"suspected_scam",` +
		`"message":"m","step_up":"call_support","reasons":[{"rule_id":"r","action":"challenge","score":45,"code":"scam.x",` +
		`"category":"suspected_scam","message":"m","step_up":"call_support"}],"locked":false,"latency_ms":0.2,"fallback":false}`
	if err := schema.validateJSON([]byte(good)); err != nil {
		t.Fatalf("a good answer: %v", err)
	}
	cases := []struct{ from, to, want string }{
		{`"category":"suspected_scam","message":"m","step_up":"call_support","reasons"`, `"category":"scam","message":"m","step_up":"call_support","reasons"`,
			"$.category: scam is not one of"},
		{`"schema_version":1`, `"schema_version":2`, "$.schema_version: 2 is not 1"},
		{`"code":"scam.x","category":"suspected_scam","message":"m","step_up":"call_support","reasons"`, `"code":"Scam","category":"suspected_scam","message":"m","step_up":"call_support","reasons"`,
			`$.code: "Scam" does not match`},
		{`"step_up":"call_support"}]`, `"step_up":"selfie"}]`, "$.reasons[0].step_up: selfie is not one of"},
		{`"score":45,"code"`, `"score":4.5,"code"`, "$.score: 4.5 is not an integer"},
		{`"fallback":false}`, `"fallback":false,"extra":1}`, "$: extra is not in the schema"},
		{`"locked":false,`, ``, "$: locked is missing"},
		{`"message":"m","step_up":"call_support","reasons"`, `"message":"` + strings.Repeat("x", rules.MaxUserMessage+1) + `","step_up":"call_support","reasons"`,
			"$.message: 201 characters, at most 200"},
	}
	for _, c := range cases {
		bad := strings.Replace(good, c.from, c.to, 1)
		if bad == good {
			t.Fatalf("case %q changes nothing", c.want)
		}
		if err := schema.validateJSON([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", bad, err, c.want)
		}
	}
}
