package rules

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"riskd/event"
	"riskd/features"
)

// What a rule made of one event in a TestReport.
const (
	ResultMatch   = "match"
	ResultNoMatch = "no_match"
	ResultError   = "error"
)

// TestEvent is one ad-hoc event for RuleSet.RunTest, shaped like a rule
// example: the event's JSON fields, profile and window feature values by
// name, and the account. Missing event fields get defaults: event_id
// "test-N" (N counts from 1), account_id "test-account", ts the time
// RunTest is given, type "payment".
type TestEvent struct {
	// Event holds the event's fields by their JSON names.
	Event map[string]any `json:"event"`
	// F holds feature values by name: profile fields (true or false for
	// flags) and the window features the set was compiled against. A
	// feature left out is zero.
	F map[string]any `json:"f,omitempty"`
	// Account is AccountInfo as JSON with its snake_case names
	// (age_days, locked_before); unknown keys are ignored.
	Account json.RawMessage `json:"account,omitempty"`
}

// RuleResult is what one rule made of one test event.
type RuleResult struct {
	ID string `json:"id"`
	// Result is ResultMatch, ResultNoMatch or ResultError.
	Result string `json:"result"`
	// Mode is active or shadow; a shadow match does not act.
	Mode string `json:"mode"`
	// Error is the run-time error of an errored rule.
	Error string `json:"error,omitempty"`
	// Features holds the value of each feature the rule reads, as the
	// engine records it in a decision (booleans as 0 or 1).
	Features map[string]float64 `json:"features,omitempty"`
}

// EventResult is the decision the set makes on one test event.
type EventResult struct {
	// Index is the event's place in the events given, from 0.
	Index   int    `json:"index"`
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	// Action and Score are the decision policy's (Decide).
	Action Action `json:"action"`
	Score  int    `json:"score"`
	// Rules holds every rule of the set, in set order; a rule the event's
	// type does not concern did not run and reads no_match.
	Rules []RuleResult `json:"rules"`
}

// ExampleResult is one of the set's own rule examples, run again.
type ExampleResult struct {
	RuleID string `json:"rule_id"`
	// Index is the example's place among its rule's examples, from 1.
	Index int `json:"index"`
	// File is the rule's file (Rule.File).
	File string `json:"file"`
	// Expect is match or no_match; Result is ResultMatch, ResultNoMatch or
	// ResultError, and Error the error's text.
	Expect string `json:"expect"`
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	// Pass tells whether Result is Expect.
	Pass bool `json:"pass"`
}

// TestReport is what RunTest found.
type TestReport struct {
	// Hash is the set's Version.Hash and Rules its number of rules.
	Hash  string `json:"hash"`
	Rules int    `json:"rules"`
	// Events holds one result per test event, in order.
	Events []EventResult `json:"events"`
	// Examples holds one result per rule example, in rule order.
	Examples []ExampleResult `json:"examples"`
	// ExamplesPassed is true when every example gave its expected result
	// (always so for a set that compiled, since compiling runs them too).
	ExamplesPassed bool `json:"examples_passed"`
}

// RunTest decides events with rs as a shard would, given the feature
// values each event carries (no state is read or changed), and runs the
// set's rule examples again. It evaluates with Evaluator.Eval, as the
// engine does, and decides with Decide. now is the ts of events that give
// none. The error, for an event that cannot be read, names the event:
// "events[2]: unknown feature f.x".
//
// A rule that errors counts on the rule (Rule.Errors), as in the engine.
func (rs *RuleSet) RunTest(events []TestEvent, now time.Time) (*TestReport, error) {
	rep := &TestReport{Hash: rs.Version.Hash, Rules: len(rs.Rules), Events: []EventResult{}, Examples: []ExampleResult{}, ExamplesPassed: true}
	ev := NewEvaluator()
	env := ev.Env()
	var dec event.Decoder
	var out Outcome
	for i, te := range events {
		var acct AccountInfo
		if len(te.Account) > 0 {
			// JSON is YAML: decoding through yaml uses AccountInfo's
			// snake_case tags (age_days, locked_before).
			if err := yaml.Unmarshal(te.Account, &acct); err != nil {
				return nil, fmt.Errorf("events[%d].account: %v", i, err)
			}
		}
		defaults := map[string]any{"event_id": fmt.Sprintf("test-%d", i+1), "account_id": "test-account",
			"ts": now.UnixMilli(), "type": "payment"}
		if err := fillEnv(env, &dec, te.Event, defaults, te.F, acct, rs.feats); err != nil {
			return nil, fmt.Errorf("events[%d]: %v", i, err)
		}
		ev.Eval(rs, &out)
		rep.Events = append(rep.Events, rs.eventResult(i, env, &out))
	}
	for _, r := range rs.Rules {
		if len(r.examples) == 0 {
			continue
		}
		// Each rule's examples run against that rule alone, through the
		// same per-type index as a whole set.
		one := &RuleSet{Rules: []*Rule{r}, Lists: rs.Lists}
		one.index()
		for i, ex := range r.examples {
			er := ExampleResult{RuleID: r.ID, Index: i + 1, File: r.File, Expect: ex.Expect}
			if er.Expect == "" {
				er.Expect = ResultMatch
			}
			if err := fillEnv(env, &dec, ex.Event, exampleDefaults(r, i), ex.F, ex.Account, rs.feats); err != nil {
				er.Result, er.Error = ResultError, err.Error()
			} else {
				ev.Eval(one, &out)
				er.Result, er.Error = resultOf(r, &out)
			}
			er.Pass = er.Result == er.Expect
			rep.ExamplesPassed = rep.ExamplesPassed && er.Pass
			rep.Examples = append(rep.Examples, er)
		}
	}
	return rep, nil
}

// eventResult reports what out, evaluated on env, means for event index.
func (rs *RuleSet) eventResult(index int, env *Env, out *Outcome) EventResult {
	v := Decide(out.Matched, rs.Thresholds)
	er := EventResult{Index: index, EventID: env.Event.ID, Type: env.Event.Type, Action: v.Action, Score: v.Score,
		Rules: make([]RuleResult, 0, len(rs.Rules))}
	for _, r := range rs.Rules {
		rr := RuleResult{ID: r.ID, Mode: r.Mode.String()}
		rr.Result, rr.Error = resultOf(r, out)
		if len(r.Features) > 0 {
			rr.Features = make(map[string]float64, len(r.Features))
			for _, name := range r.Features {
				rr.Features[name] = featureValue(env, name, rs.feats)
			}
		}
		er.Rules = append(er.Rules, rr)
	}
	return er
}

// resultOf says what out found for r, with the error text of an errored
// rule.
func resultOf(r *Rule, out *Outcome) (result, errText string) {
	for _, m := range out.Matched {
		if m == r {
			return ResultMatch, ""
		}
	}
	for _, m := range out.Shadow {
		if m == r {
			return ResultMatch, ""
		}
	}
	for i, m := range out.Errored {
		if m == r {
			return ResultError, out.ErrorTexts[i]
		}
	}
	return ResultNoMatch, ""
}

// MaxTestEvents bounds the events of one test run (RunTest, and the
// engine's trial behind POST /v1/rules/test and riskctl rules test): each
// event is decided on one goroutine of a request, so the bound is what
// keeps a request's work and answer bounded.
const MaxTestEvents = 10000

// ErrTooManyTestEvents is returned (wrapped, with the count) when a test
// run is given more than MaxTestEvents events.
var ErrTooManyTestEvents = fmt.Errorf("more than %d test events: split them into several runs", MaxTestEvents)

// Given is a feature value a test event or rule example supplies: it
// replaces the value the engine computed, for that event only.
type Given struct {
	// Name is the feature's rule name (f.<name>).
	Name string
	// Value is the value; a profile flag is 1 (true) or 0 (false).
	Value float64
}

// PreparedEvent is a test event or rule example made ready to be decided
// by the engine: its JSON with defaults filled in, and what it supplies.
type PreparedEvent struct {
	// Raw is the event as JSON, as a producer would send it.
	Raw []byte
	// TS is the event's time in Unix milliseconds (read back from Raw).
	TS int64
	// Given are the feature values supplied with the event, in name order.
	Given []Given
	// Account is what rules see as account for this event.
	Account AccountInfo
}

// Prepare turns a test event into a PreparedEvent: its fields over
// defaults (JSON names; see TestEvent for the usual ones), checked by the
// event decoder, and its feature values checked against the profile
// fields and the window features the set was compiled against. The error
// says what is wrong without naming the event; callers prefix its place.
func (rs *RuleSet) Prepare(te TestEvent, defaults map[string]any) (PreparedEvent, error) {
	var acct AccountInfo
	if len(te.Account) > 0 {
		// JSON is YAML: decoding through yaml uses AccountInfo's
		// snake_case tags (age_days, locked_before).
		if err := yaml.Unmarshal(te.Account, &acct); err != nil {
			return PreparedEvent{}, fmt.Errorf("account: %v", err)
		}
	}
	return prepare(te.Event, defaults, te.F, acct, rs.feats)
}

func prepare(fields, defaults, f map[string]any, acct AccountInfo, feats FeatureIndex) (PreparedEvent, error) {
	m := make(map[string]any, len(fields)+len(defaults))
	for k, v := range defaults {
		m[k] = v
	}
	for k, v := range fields {
		m[k] = v
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return PreparedEvent{}, fmt.Errorf("event: %v", err)
	}
	var dec event.Decoder
	var ev event.Event
	if err := dec.Decode(raw, &ev); err != nil {
		return PreparedEvent{}, fmt.Errorf("event: %v", err)
	}
	given, err := givenValues(f, feats)
	if err != nil {
		return PreparedEvent{}, err
	}
	return PreparedEvent{Raw: raw, TS: ev.TS, Given: given, Account: acct}, nil
}

// givenValues checks feature values given by name, with the messages
// fillEnv gives for the same mistakes, and returns them in name order.
func givenValues(f map[string]any, feats FeatureIndex) ([]Given, error) {
	out := make([]Given, 0, len(f))
	for _, name := range sortedKeys(f) {
		v := f[name]
		if fi, ok := profileFields[name]; ok && reflect.TypeFor[features.Profile]().Field(fi).Type.Kind() == reflect.Bool {
			b, ok := v.(bool)
			if !ok {
				return nil, fmt.Errorf("f.%s must be true or false", name)
			}
			out = append(out, Given{Name: name, Value: b2f(b)})
			continue
		} else if !ok {
			if _, ok := windowSlot(feats, name); !ok {
				return nil, fmt.Errorf("unknown feature f.%s", name)
			}
		}
		x, ok := ToFloat(v)
		if !ok {
			if n, isNum := v.(json.Number); isNum {
				x, err := n.Float64()
				if err == nil {
					out = append(out, Given{Name: name, Value: x})
					continue
				}
			}
			return nil, fmt.Errorf("f.%s must be a number", name)
		}
		out = append(out, Given{Name: name, Value: x})
	}
	return out, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TestExample is one of a rule's examples made ready to be decided by the
// engine (engine.RunTrial).
type TestExample struct {
	// Rule is the rule the example belongs to.
	Rule *Rule
	// Index is the example's place among its rule's examples, from 1.
	Index int
	// Expect is ResultMatch or ResultNoMatch.
	Expect string
	// Event is the example's event, with the defaults of a rule example
	// (event_id example-RULE-N, account_id example-account, a fixed ts,
	// the first type the rule tests for).
	Event PreparedEvent
}

// TestExamples returns every rule example of the set, in rule order. An
// example that cannot be made an event (the set compiled, so this is rare:
// a feature it names is unknown to feats) is an error naming the rule and
// the example.
func (rs *RuleSet) TestExamples() ([]TestExample, error) {
	var out []TestExample
	for _, r := range rs.Rules {
		for i, ex := range r.examples {
			p, err := prepare(ex.Event, exampleDefaults(r, i), ex.F, ex.Account, rs.feats)
			if err != nil {
				return nil, fmt.Errorf("rule %s example %d: %v", r.ID, i+1, err)
			}
			expect := ex.Expect
			if expect == "" {
				expect = ResultMatch
			}
			out = append(out, TestExample{Rule: r, Index: i + 1, Expect: expect, Event: p})
		}
	}
	return out, nil
}

// Concerns reports whether r runs on events of type typ: the engine
// evaluates a rule only for the event types its when tests for (Types),
// or for every type when it tests for none.
func (r *Rule) Concerns(typ string) bool {
	return r.Types == nil || contains(r.Types, typ)
}
