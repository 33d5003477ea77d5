package engine

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"riskd/features"
	"riskd/rules"
)

// A trial decides a list of test events through the live path (Score:
// decode, skew check, dedupe, locks, feature observation, rules, alert
// throttle, policy) on a Scorer of its own, so that features are computed
// from the trial's earlier events and start from a fresh, empty state:
// never the live state. It is what POST /v1/rules/test and riskctl rules
// test run.
//
// Two things differ from a live shard, both so that a test reads as the
// events would have been decided had they arrived at their own time: the
// Scorer's wall clock is each event's ts while it is scored (so lock
// expiry and the future-skew check follow the test's timeline), and a
// feature value given with an event replaces the computed one for that
// event (the event still counts in the windows for later ones).

// Feature sources in a TrialFeature.
const (
	SourceComputed = "computed"
	SourceGiven    = "given"
)

// TrialFeature is a feature value the rules read on one test event.
type TrialFeature struct {
	Name string `json:"name"`
	// Value is what the rules read, booleans as 0 or 1.
	Value float64 `json:"value"`
	// Source is SourceGiven (supplied with the event) or SourceComputed
	// (by the engine from the trial's earlier events, or its live default
	// when there are none: "seconds since" features read
	// features.NeverSecs, new_* flags read true).
	Source string `json:"source"`
}

// TrialHit is one rule of a test decision.
type TrialHit struct {
	RuleID string       `json:"rule_id"`
	Action rules.Action `json:"action"`
	Score  int          `json:"score"`
	// Error is the run-time error of an errored rule.
	Error string `json:"error,omitempty"`
}

// TrialAlert is a user alert of a test decision.
type TrialAlert struct {
	RuleID  string `json:"rule_id"`
	Message string `json:"message"`
}

// TrialEvent is the decision on one test event.
type TrialEvent struct {
	// Index is the event's place in the events given, from 0.
	Index     int    `json:"index"`
	EventID   string `json:"event_id"`
	AccountID string `json:"account_id"`
	Type      string `json:"type"`
	// TS is the event time (Unix ms), given or assigned (see RunTrial).
	TS     int64        `json:"ts"`
	Action rules.Action `json:"action"`
	Score  int          `json:"score"`
	// Reason is empty or one of the Reason constants (account_locked,
	// duplicate, score_threshold).
	Reason  string     `json:"reason,omitempty"`
	Matched []TrialHit `json:"matched"`
	Shadow  []TrialHit `json:"shadow"`
	Errored []TrialHit `json:"errored"`
	// LockUntil is set when the account is locked after this event, on
	// the trial's clock (the event times).
	LockUntil       *time.Time   `json:"lock_until,omitempty"`
	Alerts          []TrialAlert `json:"alerts,omitempty"`
	ThrottledAlerts []TrialAlert `json:"throttled_alerts,omitempty"`
	// Late and LateFor are as in Decision.
	Late    bool     `json:"late,omitempty"`
	LateFor []string `json:"late_for,omitempty"`
	// Features holds each feature read by the rules that ran on the event
	// (those whose when concerns its type), in rule order, once each;
	// empty when no rule ran (a locked account, a duplicate).
	Features []TrialFeature `json:"features"`
	// Rules holds every rule of the set, in set order, with what it made
	// of the event (a rule that did not run reads no_match) and the values
	// it read, as rules.RuleSet.RunTest reports them.
	Rules []rules.RuleResult `json:"rules"`
}

// TrialExample is one rule example decided through the engine.
type TrialExample struct {
	RuleID string `json:"rule_id"`
	// Index is the example's place among its rule's examples, from 1.
	Index int    `json:"index"`
	File  string `json:"file"`
	// Expect is match or no_match; Result is rules.ResultMatch,
	// ResultNoMatch or ResultError, and Error the run-time error.
	Expect string `json:"expect"`
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	// Pass tells whether Result is Expect.
	Pass bool `json:"pass"`
	// Features are the values the example's rule read.
	Features []TrialFeature `json:"features"`
}

// TrialReport is what RunTrial found.
type TrialReport struct {
	// Hash is the set's Version.Hash and Rules its number of rules.
	Hash  string `json:"hash"`
	Rules int    `json:"rules"`
	// Events holds one decision per test event, in order.
	Events []TrialEvent `json:"events"`
	// Examples holds one result per rule example, in rule order; each
	// example is decided alone on a fresh state.
	Examples []TrialExample `json:"examples"`
	// ExamplesPassed is true when every example gave its expected result.
	ExamplesPassed bool `json:"examples_passed"`
}

// TrialGap is the time an event without a ts is given after the event
// before it, so that the order of the list is the order of event time.
const TrialGap = time.Second

// RunTrial decides events in order with rs on a fresh state built from
// set, with cfg's dedupe, alert throttle and skew settings (the daemon's
// engine.Config), and decides each rule example of rs alone on a fresh
// state too. Missing event fields get defaults: event_id "test-N" (N from
// 1), account_id "test-account", type "payment", and ts now for the first
// event without one, then TrialGap after the event before it. More than
// rules.MaxTestEvents events is an error wrapping
// rules.ErrTooManyTestEvents; an event that cannot be read or decided is an
// error naming it ("events[2]: ...").
func RunTrial(cfg Config, set *features.Set, rs *rules.RuleSet, events []rules.TestEvent, now time.Time) (*TrialReport, error) {
	if len(events) > rules.MaxTestEvents {
		return nil, fmt.Errorf("%d events: %w", len(events), rules.ErrTooManyTestEvents)
	}
	rep := &TrialReport{Hash: rs.Version.Hash, Rules: len(rs.Rules), Events: []TrialEvent{},
		Examples: []TrialExample{}, ExamplesPassed: true}
	t := NewTrial(cfg, set, rs, len(events))
	var prev int64
	for i, te := range events {
		ts := now.UnixMilli()
		if i > 0 {
			ts = prev + TrialGap.Milliseconds()
		}
		defaults := map[string]any{"event_id": fmt.Sprintf("test-%d", i+1), "account_id": "test-account",
			"ts": ts, "type": "payment"}
		p, err := rs.Prepare(te, defaults)
		if err != nil {
			return nil, fmt.Errorf("events[%d]: %w", i, err)
		}
		prev = p.TS
		res, err := t.Decide(p)
		if err != nil {
			return nil, fmt.Errorf("events[%d]: %w", i, err)
		}
		res.Index = i
		rep.Events = append(rep.Events, res)
	}
	examples, err := rs.TestExamples()
	if err != nil {
		return nil, err
	}
	for _, ex := range examples {
		res, err := NewTrial(cfg, set, rs, 1).Decide(ex.Event)
		te := TrialExample{RuleID: ex.Rule.ID, Index: ex.Index, File: ex.Rule.File, Expect: ex.Expect}
		if err != nil {
			te.Result, te.Error = rules.ResultError, err.Error()
		} else {
			for _, rr := range res.Rules {
				if rr.ID == ex.Rule.ID {
					te.Result, te.Error = rr.Result, rr.Error
				}
			}
			for _, f := range res.Features {
				if slices.Contains(ex.Rule.Features, f.Name) {
					te.Features = append(te.Features, f)
				}
			}
		}
		te.Pass = te.Result == te.Expect
		rep.ExamplesPassed = rep.ExamplesPassed && te.Pass
		rep.Examples = append(rep.Examples, te)
	}
	return rep, nil
}

// Trial is a Scorer on a fresh state whose events carry given feature
// values and whose clock is the event being scored. One goroutine uses it.
type Trial struct {
	set   *features.Set
	rs    *rules.RuleSet
	s     *Scorer
	clock time.Time
	over  trialOverride
	d     Decision
}

// NewTrial returns a Trial deciding with rs; capacity is how many events
// it will see at most (the dedupe memory is sized to remember them all, as
// a live shard remembers far more than a test holds).
func NewTrial(cfg Config, set *features.Set, rs *rules.RuleSet, capacity int) *Trial {
	holder := &rules.Holder{}
	holder.Swap(rs)
	t := &Trial{set: set, rs: rs}
	cfg.DedupeCapacity = max(capacity, 1)
	cfg.Now = func() time.Time { return t.clock }
	t.s = NewScorer(cfg, set, holder)
	t.over.set = set
	t.s.trial = &t.over
	return t
}

// trialOverride is what a Trial's Scorer applies between computing an
// event's features and running the rules on them (see Scorer.trial).
type trialOverride struct {
	set     *features.Set
	given   []resolvedGiven
	account rules.AccountInfo
}

// resolvedGiven is a given value with its place in features.Values: a
// window slot, or else a Profile field index.
type resolvedGiven struct {
	window bool
	index  int
	value  float64
}

// apply writes the given values over the computed ones and sets what the
// rules see as account.
func (o *trialOverride) apply(v *features.Values, env *rules.Env) {
	p := reflect.ValueOf(&v.Profile).Elem()
	for _, g := range o.given {
		if g.window {
			v.Windows[g.index] = g.value
			continue
		}
		f := p.Field(g.index)
		if f.Kind() == reflect.Bool {
			f.SetBool(g.value != 0)
		} else {
			f.SetFloat(g.value)
		}
	}
	env.Account = o.account
}

// profileIndex maps each features.Profile expr name to its field index.
var profileIndex = func() map[string]int {
	m := make(map[string]int)
	t := reflect.TypeFor[features.Profile]()
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("expr"); name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}()

// Decide scores one prepared event and reports its decision, the feature
// values the rules read with their source, and each rule's result.
func (t *Trial) Decide(p rules.PreparedEvent) (TrialEvent, error) {
	t.over.given = t.over.given[:0]
	for _, g := range p.Given {
		if i, ok := t.set.Index(g.Name); ok {
			t.over.given = append(t.over.given, resolvedGiven{window: true, index: i, value: g.Value})
		} else if i, ok := profileIndex[g.Name]; ok {
			t.over.given = append(t.over.given, resolvedGiven{index: i, value: g.Value})
		} else {
			return TrialEvent{}, fmt.Errorf("unknown feature f.%s (not in the feature set)", g.Name)
		}
	}
	t.over.account = p.Account
	t.clock = time.UnixMilli(p.TS)
	d := &t.d
	if err := t.s.Score(p.Raw, Source{Topic: "test", Partition: -1}, d); err != nil {
		return TrialEvent{}, err
	}
	// The strings of d alias the Scorer's buffers until the next event.
	res := TrialEvent{EventID: strings.Clone(d.EventID), AccountID: strings.Clone(d.AccountID), Type: strings.Clone(d.EventType), TS: d.EventTS,
		Action: d.Action, Score: d.Score, Reason: d.Reason, Matched: trialHits(d.Matched),
		Shadow: trialHits(d.Shadow), Errored: trialHits(d.Errored), Late: d.Late,
		LateFor: slices.Clone(d.LateFor), Features: []TrialFeature{}, Rules: make([]rules.RuleResult, 0, len(t.rs.Rules))}
	if !d.LockUntil.IsZero() {
		until := d.LockUntil
		res.LockUntil = &until
	}
	for _, a := range d.Alerts {
		res.Alerts = append(res.Alerts, TrialAlert{RuleID: a.RuleID, Message: a.Message})
	}
	for _, a := range d.ThrottledAlerts {
		res.ThrottledAlerts = append(res.ThrottledAlerts, TrialAlert{RuleID: a.RuleID, Message: a.Message})
	}
	ran := !d.Duplicate && d.Reason != ReasonAccountLocked
	for _, r := range t.rs.Rules {
		rr := rules.RuleResult{ID: r.ID, Mode: r.Mode.String(), Result: rules.ResultNoMatch}
		switch {
		case hasHit(d.Matched, r.ID) || hasHit(d.Shadow, r.ID):
			rr.Result = rules.ResultMatch
		case hasHit(d.Errored, r.ID):
			rr.Result = rules.ResultError
			for _, h := range d.Errored {
				if h.RuleID == r.ID {
					rr.Error = h.Error
				}
			}
		}
		if ran && r.Concerns(res.Type) && len(r.Features) > 0 {
			rr.Features = make(map[string]float64, len(r.Features))
			for _, name := range r.Features {
				v, _ := t.set.Value(&t.s.values, name)
				rr.Features[name] = v
				if !slices.ContainsFunc(res.Features, func(f TrialFeature) bool { return f.Name == name }) {
					res.Features = append(res.Features, TrialFeature{Name: name, Value: v, Source: t.source(p, name)})
				}
			}
		}
		res.Rules = append(res.Rules, rr)
	}
	return res, nil
}

// source says whether p gave feature name or the engine computed it.
func (t *Trial) source(p rules.PreparedEvent, name string) string {
	for _, g := range p.Given {
		if g.Name == name {
			return SourceGiven
		}
	}
	return SourceComputed
}

func trialHits(hits []RuleHit) []TrialHit {
	out := make([]TrialHit, len(hits))
	for i, h := range hits {
		out[i] = TrialHit{RuleID: h.RuleID, Action: h.Action, Score: h.Score, Error: h.Error}
	}
	return out
}

func hasHit(hits []RuleHit, id string) bool {
	return slices.ContainsFunc(hits, func(h RuleHit) bool { return h.RuleID == id })
}
