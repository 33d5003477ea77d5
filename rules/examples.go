package rules

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"riskd/event"
	"riskd/features"
)

// example is one of a rule's examples as its rule file gives it.
type example struct {
	// Event holds the event's fields by their JSON names; missing ones
	// get exampleDefaults.
	Event map[string]any `yaml:"event"`
	// F holds feature values by name: profile fields and window features.
	F map[string]any `yaml:"f"`
	// Account is what the rule sees as account.
	Account AccountInfo `yaml:"account"`
	// Expect is match (also when empty) or no_match.
	Expect string `yaml:"expect"`
	// node is where the example is written, for compile errors.
	node *yaml.Node
}

// runExamples checks each example of a rule in expr's VM; the first
// failure rejects it.
func (c *compiler) runExamples(pr *parsedRule) error {
	r := pr.rule
	var dec event.Decoder
	// The examples run under the memory budget of the engine's Evaluator,
	// so that an example that passes here cannot fail there.
	m := vm.VM{MemoryBudget: RunMemoryBudget}
	for i, ex := range r.examples {
		env := new(Env)
		if err := fillEnv(env, &dec, ex.Event, exampleDefaults(r, i), ex.F, ex.Account, c.feats); err != nil {
			return pr.errAt(ex.node, "example %d: %v", i+1, err)
		}
		env.InList = c.rs.inList
		ticks := 0 // the Evaluator's step budget too, for the same reason
		env.Tick = func() bool {
			if ticks++; ticks > RunStepBudget {
				panic(errRunStepBudget)
			}
			return true
		}
		want := true
		switch ex.Expect {
		case "", "match":
		case "no_match":
			want = false
		default:
			return pr.errAt(ex.node, "example %d: expect must be match or no_match, not %q", i+1, ex.Expect)
		}
		out, err := m.Run(r.program, env)
		if err != nil {
			return pr.errAt(ex.node, "example %d: run-time error: %v", i+1, err)
		}
		if got, _ := out.(bool); got != want {
			return pr.errAt(ex.node, "example %d: expected %s, got %s", i+1, matchWord(want), matchWord(got))
		}
	}
	return nil
}

func matchWord(b bool) string {
	if b {
		return "match"
	}
	return "no_match"
}

// exampleDefaults are the event fields example i (0-based) of r gets when
// it leaves them out; the type is the first the rule tests for.
func exampleDefaults(r *Rule, i int) map[string]any {
	defaults := map[string]any{
		"event_id":   fmt.Sprintf("example-%s-%d", r.ID, i+1),
		"account_id": "example-account",
		"ts":         int64(1700000000000),
		"type":       "payment",
	}
	if len(r.Types) > 0 {
		defaults["type"] = r.Types[0]
	}
	return defaults
}

// fillEnv sets env to what a shard would evaluate for an event written
// as fields (JSON names, over defaults for the ones missing), the feature
// values f by name (profile fields by their expr names, window features
// by the names feats resolves) and the account. It leaves InList nil. It
// is how both rule examples and test events become an Env.
func fillEnv(env *Env, dec *event.Decoder, fields, defaults, f map[string]any, acct AccountInfo, feats FeatureIndex) error {
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
	*env = Env{Account: acct}
	if err := dec.Decode(raw, &env.Event); err != nil {
		return fmt.Errorf("event: %v", err)
	}
	env.Event = env.Event.Clone() // the decoder's strings alias raw
	// Features not given read what they read live on an account's first
	// event: "seconds since" ones never, new_* true, the windows counting
	// this event alone. Zero would mean "just now" and mislead.
	firstEventFeatures(env, feats)
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
			x, ok := ToFloat(v)
			if !ok {
				return fmt.Errorf("f.%s must be a number", name)
			}
			fv.SetFloat(x)
			continue
		}
		slot, ok := windowSlot(feats, name)
		if !ok {
			return fmt.Errorf("unknown feature f.%s", name)
		}
		x, ok := ToFloat(v)
		if !ok {
			return fmt.Errorf("f.%s must be a number", name)
		}
		env.W[slot] = x
	}
	return nil
}

// noWindows is a feature set with profiles only, for examples compiled
// without window features.
var noWindows = func() *features.Set {
	set, err := features.Compile(nil, features.DefaultConfig())
	if err != nil {
		panic("rules: a feature set without windows does not compile: " + err.Error())
	}
	return set
}()

// firstEventFeatures sets env's features to their values for the first
// event of an account with no history: computed by a fresh store when
// feats is a *features.Set, else the profile's no-history values.
func firstEventFeatures(env *Env, feats FeatureIndex) {
	set, ok := feats.(*features.Set)
	if !ok || set == nil {
		set = noWindows
	}
	var v features.Values
	set.NewStore().Observe(&env.Event, &v)
	env.F, env.W = v.Profile, v.Windows
}

// featureValue is the value of the feature a rule calls name in env, as
// decision records hold it: booleans as 0 or 1, 0 for an unknown name.
func featureValue(env *Env, name string, feats FeatureIndex) float64 {
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
	if slot, ok := windowSlot(feats, name); ok {
		return env.W[slot]
	}
	return 0
}

// windowSlot resolves a window feature name to its slot in Env.W; a nil
// feats knows none.
func windowSlot(feats FeatureIndex, name string) (int, bool) {
	if feats == nil {
		return 0, false
	}
	slot, ok := feats.Index(name)
	return slot, ok && slot >= 0 && slot < features.MaxWindows
}
