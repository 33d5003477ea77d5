package engine

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"riskd/bench/reference"
	"riskd/bench/traffic"
	"riskd/features"
	"riskd/rules"
)

// TestAnalystTestAgreesWithTheEngine scores generated reference traffic
// and feeds every event the rules ran on, with the feature values the shard
// computed for it, through the analyst's test (rules.RuleSet.RunTest,
// behind POST /v1/rules/test). Both must decide it alike: action, score,
// matched, shadow and errored rules, and the feature values recorded.
//
// The reference thresholds never raise a decision (every rule that scores
// high also acts), so the set runs a second time with thresholds low
// enough to raise, a lock among them.
func TestAnalystTestAgreesWithTheEngine(t *testing.T) {
	for _, tt := range []struct {
		name     string
		settings []byte // nil keeps the reference settings.yaml
	}{
		{"reference thresholds", nil},
		{"thresholds that raise", []byte("thresholds:\n  - {score: 30, action: review}\n  - {score: 60, action: block}\n  - {score: 100, action: lock}\n")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			set, holder := loadReferenceForTest(t, tt.settings)
			c := compareWithTheTest(t, set, holder)
			if c.acted == 0 || c.locked == 0 || c.shadowed == 0 || (tt.settings != nil && c.raised == 0) {
				t.Fatalf("the traffic does not exercise the policy: %+v", c)
			}
		})
	}
}

// loadReferenceForTest loads the reference workload with settings.yaml
// replaced by settings (unless nil) and a shadow rule that always matches
// and reads every window feature, so every decision that runs the rules
// records the value of each.
func loadReferenceForTest(t *testing.T, settings []byte) (*features.Set, *rules.Holder) {
	t.Helper()
	set, err := features.LoadFile(filepath.Join(referenceDir, "features.yaml"), features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	files, err := rules.ReadFiles(os.DirFS(filepath.Join(referenceDir, "rules")))
	if err != nil {
		t.Fatal(err)
	}
	files["zz_probe.yaml"] = reference.ProbeRule(set.Names())
	if settings != nil {
		files[rules.SettingsFile] = settings
	}
	rs, err := rules.Compile(files, set)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Swap(rs)
	return set, holder
}

// coverage counts what the compared decisions exercised.
type coverage struct {
	decisions, acted, raised, locked, shadowed int
}

// compareWithTheTest scores generated traffic with a Scorer over holder's
// set and runs the same events through RuleSet.RunTest, failing on the
// first decision they do not agree on.
func compareWithTheTest(t *testing.T, set *features.Set, holder *rules.Holder) coverage {
	t.Helper()
	g := traffic.New(traffic.Config{Accounts: 300, Seed: 13, FraudRate: 0.3,
		Start: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)})
	// The traffic's hours run ahead of the fixed wall clock: no skew bound.
	s := NewScorer(Config{Now: fixedClock(), MaxFutureSkew: -1}, set, holder)
	var decisions []*Decision
	var events []rules.TestEvent
	var d Decision
	for _, raw := range generate(g, 4000) {
		if err := s.Score(raw, Source{}, &d); err != nil {
			t.Fatal(err)
		}
		if d.Duplicate || d.Reason == ReasonAccountLocked {
			continue // decided without running the rules
		}
		decisions = append(decisions, d.Clone())
		events = append(events, rules.TestEvent{Event: eventFields(t, raw), F: featureFields(set, &s.values)})
	}
	rep, err := holder.Load().RunTest(events, fixedClock()())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Events) != len(decisions) {
		t.Fatalf("the test decided %d events, the engine %d", len(rep.Events), len(decisions))
	}
	c := coverage{decisions: len(decisions)}
	for i, d := range decisions {
		got := rep.Events[i]
		matched, shadow, errored := testResultIDs(got)
		if got.EventID != d.EventID || got.Type != d.EventType || got.Action != d.Action || got.Score != d.Score ||
			!slices.Equal(matched, ruleIDs(d.Matched)) || !slices.Equal(shadow, ruleIDs(d.Shadow)) ||
			!slices.Equal(errored, ruleIDs(d.Errored)) {
			t.Fatalf("event %d (%s %s):\nengine: %v score %d matched %v shadow %v errored %v\ntest:   %v score %d matched %v shadow %v errored %v",
				i, d.EventID, d.EventType, d.Action, d.Score, ruleIDs(d.Matched), ruleIDs(d.Shadow), ruleIDs(d.Errored),
				got.Action, got.Score, matched, shadow, errored)
		}
		if want, have := d.Features, testFeatures(t, got); !maps.Equal(featureMap(want), have) || len(have) != len(want) {
			t.Fatalf("event %d (%s): features differ\nengine: %v\ntest:   %v", i, d.EventID, want, have)
		}
		if d.Action != rules.Allow {
			c.acted++
		}
		if d.Reason == ReasonScoreThreshold {
			c.raised++
		}
		if d.Action == rules.Lock {
			c.locked++
		}
		if len(d.Shadow) > 1 { // the probe rule always matches
			c.shadowed++
		}
	}
	return c
}

// eventFields returns an event's JSON as the fields of a rules.TestEvent,
// numbers kept as written.
func eventFields(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// featureFields returns every feature value of v by the name rules call
// it: profile fields by their expr names, window features by theirs.
func featureFields(set *features.Set, v *features.Values) map[string]any {
	m := make(map[string]any)
	p := reflect.ValueOf(v.Profile)
	for i := range p.NumField() {
		if name := p.Type().Field(i).Tag.Get("expr"); name != "" && name != "-" {
			m[name] = p.Field(i).Interface()
		}
	}
	for i, name := range set.Names() {
		m[name] = v.Windows[i]
	}
	return m
}

// testResultIDs splits a test result's rules into matched active, matched
// shadow and errored ids, in rule order.
func testResultIDs(er rules.EventResult) (matched, shadow, errored []string) {
	for _, r := range er.Rules {
		switch {
		case r.Result == rules.ResultMatch && r.Mode == rules.Shadow.String():
			shadow = append(shadow, r.ID)
		case r.Result == rules.ResultMatch:
			matched = append(matched, r.ID)
		case r.Result == rules.ResultError:
			errored = append(errored, r.ID)
		}
	}
	return matched, shadow, errored
}

// testFeatures gathers the feature values the matched rules of a test
// result read, which is what a decision records; two rules reading one
// feature must have seen the same value.
func testFeatures(t *testing.T, er rules.EventResult) map[string]float64 {
	t.Helper()
	out := make(map[string]float64)
	for _, r := range er.Rules {
		if r.Result != rules.ResultMatch {
			continue
		}
		for name, v := range r.Features {
			if have, ok := out[name]; ok && have != v {
				t.Fatalf("event %s: rule %s read %s = %v, another rule %v", er.EventID, r.ID, name, v, have)
			}
			out[name] = v
		}
	}
	return out
}

func featureMap(fs []FeatureValue) map[string]float64 {
	m := make(map[string]float64, len(fs))
	for _, f := range fs {
		m[f.Name] = f.Value
	}
	return m
}
