package rules

import (
	"encoding/json"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	"riskd/event"
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
