package rulesapi

import (
	"encoding/json"
	"fmt"
	"path"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"riskd/event"
	"riskd/features"
	"riskd/rules"
)

// testEvent is one ad-hoc event for POST /v1/rules/test, shaped like a
// rule example: the event's JSON, profile and window feature values by
// name, and the account. Missing event fields get defaults: event_id
// "test-N", account_id "test-account", ts now, type "payment".
type testEvent struct {
	Event   map[string]any  `json:"event"`
	F       map[string]any  `json:"f,omitempty"`
	Account json.RawMessage `json:"account,omitempty"`
}

// ruleResult is what one rule made of one event.
type ruleResult struct {
	ID string `json:"id"`
	// Result is match, no_match or error.
	Result string `json:"result"`
	// Mode is active or shadow; a shadow match does not act.
	Mode  string `json:"mode"`
	Error string `json:"error,omitempty"`
	// Features holds the value of each feature the rule reads.
	Features map[string]float64 `json:"features,omitempty"`
}

// eventResult is the decision the set makes on one event.
type eventResult struct {
	Index   int          `json:"index"`
	EventID string       `json:"event_id"`
	Type    string       `json:"type"`
	Action  string       `json:"action"`
	Score   int          `json:"score"`
	Rules   []ruleResult `json:"rules"`
}

// exampleResult is one of the set's own rule examples, run again.
type exampleResult struct {
	RuleID string `json:"rule_id"`
	Index  int    `json:"index"`
	File   string `json:"file"`
	Expect string `json:"expect"`
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	Pass   bool   `json:"pass"`
}

type testResult struct {
	Hash     string          `json:"hash"`
	Rules    int             `json:"rules"`
	Events   []eventResult   `json:"events"`
	Examples []exampleResult `json:"examples"`
	// ExamplesPassed is true when every example gave its expected result
	// (always so for a set that compiled, since compiling runs them too).
	ExamplesPassed bool `json:"examples_passed"`
}

// profileFields maps features.Profile's expr names to field indexes.
var profileFields = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[features.Profile]()
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("expr"); name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}()

// runTests evaluates events and the set's examples against rs.
func (s *Service) runTests(rs *rules.RuleSet, files map[string][]byte, events []testEvent) (testResult, error) {
	res := testResult{Hash: rs.Version.Hash, Rules: len(rs.Rules), Events: []eventResult{}, Examples: []exampleResult{}, ExamplesPassed: true}
	ev := rules.NewEvaluator()
	var dec event.Decoder
	for i, te := range events {
		var acct rules.AccountInfo
		if len(te.Account) > 0 {
			// JSON is YAML: decoding through yaml uses AccountInfo's
			// snake_case tags (age_days, locked_before).
			if err := yaml.Unmarshal(te.Account, &acct); err != nil {
				return res, fmt.Errorf("events[%d].account: %v", i, err)
			}
		}
		defaults := map[string]any{"event_id": fmt.Sprintf("test-%d", i+1), "account_id": "test-account",
			"ts": s.cfg.Now().UnixMilli(), "type": "payment"}
		if err := s.fillEnv(ev.Env(), &dec, te.Event, defaults, te.F, acct); err != nil {
			return res, fmt.Errorf("events[%d]: %v", i, err)
		}
		res.Events = append(res.Events, s.evalEvent(ev, rs, i))
	}
	examples, err := collectExamples(files)
	if err != nil {
		return res, err
	}
	for _, ex := range examples {
		r := rs.Rule(ex.ruleID)
		if r == nil {
			continue
		}
		er := exampleResult{RuleID: ex.ruleID, Index: ex.index, File: ex.file, Expect: ex.Expect}
		if er.Expect == "" {
			er.Expect = "match"
		}
		defaults := map[string]any{"event_id": fmt.Sprintf("example-%s-%d", r.ID, ex.index), "account_id": "example-account",
			"ts": int64(1700000000000), "type": "payment"}
		if len(r.Types) > 0 {
			defaults["type"] = r.Types[0]
		}
		if err := s.fillEnv(ev.Env(), &dec, ex.Event, defaults, ex.F, ex.Account); err != nil {
			er.Result, er.Error = "error", err.Error()
		} else {
			var out rules.Outcome
			ev.EvalAll(&rules.RuleSet{Rules: []*rules.Rule{r}, Lists: rs.Lists}, &out)
			er.Result, _, er.Error = resultOf(r, &out)
		}
		er.Pass = er.Result == er.Expect
		res.ExamplesPassed = res.ExamplesPassed && er.Pass
		res.Examples = append(res.Examples, er)
	}
	return res, nil
}

// fillEnv decodes an event (with defaults for missing fields) and feature
// values into env, as the shard would have them.
func (s *Service) fillEnv(env *rules.Env, dec *event.Decoder, fields, defaults, f map[string]any, acct rules.AccountInfo) error {
	m := make(map[string]any, len(fields)+len(defaults))
	for k, v := range defaults {
		m[k] = v
	}
	for k, v := range fields {
		m[k] = v
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("event: %v", err)
	}
	*env = rules.Env{Account: acct}
	if err := dec.Decode(raw, &env.Event); err != nil {
		return fmt.Errorf("event: %v", err)
	}
	env.Event = env.Event.Clone()
	pv := reflect.ValueOf(&env.F).Elem()
	for name, v := range f {
		if fi, ok := profileFields[name]; ok {
			fv := pv.Field(fi)
			if fv.Kind() == reflect.Bool {
				b, ok := v.(bool)
				if !ok {
					return fmt.Errorf("f.%s must be true or false", name)
				}
				fv.SetBool(b)
				continue
			}
			x, ok := rules.ToFloat(v)
			if !ok {
				return fmt.Errorf("f.%s must be a number", name)
			}
			fv.SetFloat(x)
			continue
		}
		slot, ok := s.windowSlot(name)
		if !ok {
			return fmt.Errorf("unknown feature f.%s", name)
		}
		x, ok := rules.ToFloat(v)
		if !ok {
			return fmt.Errorf("f.%s must be a number", name)
		}
		env.W[slot] = x
	}
	return nil
}

func (s *Service) windowSlot(name string) (int, bool) {
	if s.cfg.Features == nil {
		return 0, false
	}
	slot, ok := s.cfg.Features.Index(name)
	return slot, ok && slot >= 0 && slot < features.MaxWindows
}

// evalEvent runs every rule of rs on the Env's event and applies the
// engine's decision policy: the most severe matched active action, raised
// by the highest score threshold reached.
func (s *Service) evalEvent(ev *rules.Evaluator, rs *rules.RuleSet, index int) eventResult {
	env := ev.Env()
	var out rules.Outcome
	ev.EvalAll(rs, &out)
	er := eventResult{Index: index, EventID: env.Event.ID, Type: env.Event.Type, Rules: make([]ruleResult, 0, len(rs.Rules))}
	var action rules.Action
	for _, r := range out.Matched {
		action = max(action, r.Action)
		er.Score += r.Score
	}
	for _, t := range rs.Thresholds {
		if er.Score >= t.Score && t.Action > action {
			action = t.Action
		}
	}
	er.Action = action.String()
	for _, r := range rs.Rules {
		rr := ruleResult{ID: r.ID, Mode: r.Mode.String()}
		rr.Result, _, rr.Error = resultOf(r, &out)
		if len(r.Features) > 0 {
			rr.Features = make(map[string]float64, len(r.Features))
			for _, name := range r.Features {
				rr.Features[name] = s.featureValue(env, name)
			}
		}
		er.Rules = append(er.Rules, rr)
	}
	return er
}

// resultOf says what out found for r.
func resultOf(r *rules.Rule, out *rules.Outcome) (result string, shadow bool, errText string) {
	for _, m := range out.Matched {
		if m == r {
			return "match", false, ""
		}
	}
	for _, m := range out.Shadow {
		if m == r {
			return "match", true, ""
		}
	}
	for i, m := range out.Errored {
		if m == r {
			return "error", false, out.ErrorTexts[i]
		}
	}
	return "no_match", false, ""
}

func (s *Service) featureValue(env *rules.Env, name string) float64 {
	if fi, ok := profileFields[name]; ok {
		fv := reflect.ValueOf(&env.F).Elem().Field(fi)
		if fv.Kind() == reflect.Bool {
			if fv.Bool() {
				return 1
			}
			return 0
		}
		return fv.Float()
	}
	if slot, ok := s.windowSlot(name); ok {
		return env.W[slot]
	}
	return 0
}

// example is one rule example found in a rule file.
type example struct {
	ruleID, file string
	index        int
	Event        map[string]any    `yaml:"event"`
	F            map[string]any    `yaml:"f"`
	Account      rules.AccountInfo `yaml:"account"`
	Expect       string            `yaml:"expect"`
}

// collectExamples reads the examples of every rule file, in file order.
// The files compiled already, so only the parts examples need are read.
func collectExamples(files map[string][]byte) ([]example, error) {
	var out []example
	for _, name := range sortedKeys(files) {
		if strings.Contains(name, "/") || name == rules.SettingsFile || (path.Ext(name) != ".yaml" && path.Ext(name) != ".yml") {
			continue
		}
		var doc []struct {
			ID       string    `yaml:"id"`
			Examples []example `yaml:"examples"`
		}
		if err := yaml.Unmarshal(files[name], &doc); err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		for _, r := range doc {
			for i, ex := range r.Examples {
				ex.ruleID, ex.file, ex.index = r.ID, name, i+1
				out = append(out, ex)
			}
		}
	}
	return out, nil
}
