package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"riskd/features"
	"riskd/rules"
)

const trialFeatures = `payments_1h: {count: payment, by: account, window: 1h}
`

const trialRules = `- id: payment-after-reset
  when: event.type == "payment" && f.secs_since_password_reset < 3600
  action: challenge
  score: 30
- id: busy
  when: event.type == "payment" && f.payments_1h >= 3
  action: review
  score: 20
- id: wrong-password
  when: event.type == "login_failed"
  action: lock
  lock_for: 10m
`

// trialSet compiles the trial features and rules.
func trialSet(t *testing.T, featsYAML, rulesYAML string) (*features.Set, *rules.RuleSet) {
	t.Helper()
	defs, err := features.ParseDefinitions([]byte(featsYAML))
	if err != nil {
		t.Fatal(err)
	}
	set, err := features.Compile(defs, features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Compile(map[string][]byte{"r.yaml": []byte(rulesYAML)}, set)
	if err != nil {
		t.Fatal(err)
	}
	return set, rs
}

func trialFeature(t *testing.T, ev TrialEvent, name string) TrialFeature {
	t.Helper()
	for _, f := range ev.Features {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("event %d (%s) read no %s: %+v", ev.Index, ev.EventID, name, ev.Features)
	return TrialFeature{}
}

func TestTrialComputesFeaturesFromTheEarlierEvents(t *testing.T) {
	set, rs := trialSet(t, trialFeatures, trialRules)
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	at := func(min int) int64 { return now.Add(time.Duration(min) * time.Minute).UnixMilli() }
	rep, err := RunTrial(Config{}, set, rs, []rules.TestEvent{
		{Event: map[string]any{"account_id": "a", "ts": at(0)}},
		{Event: map[string]any{"account_id": "a", "type": "password_reset", "ts": at(1)}},
		{Event: map[string]any{"account_id": "a", "ts": at(11)}},
		{Event: map[string]any{"account_id": "b", "ts": at(12)}},
		{Event: map[string]any{"account_id": "a", "ts": at(13)}, F: map[string]any{"secs_since_password_reset": 7200}},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	e := rep.Events
	if len(e) != 5 {
		t.Fatalf("%d events decided, want 5", len(e))
	}
	// The first payment of a: no reset ever, so the live default, never.
	if f := trialFeature(t, e[0], "secs_since_password_reset"); f.Value != features.NeverSecs || f.Source != SourceComputed {
		t.Errorf("first event reads %+v, want never (%v), computed", f, features.NeverSecs)
	}
	if e[0].Action != rules.Allow {
		t.Errorf("first event: %v, want allow", e[0].Action)
	}
	// Ten minutes after a's reset: computed from the reset before it.
	if f := trialFeature(t, e[2], "secs_since_password_reset"); f.Value != 600 || f.Source != SourceComputed {
		t.Errorf("payment after the reset reads %+v, want 600 computed", f)
	}
	if e[2].Action != rules.Challenge || len(e[2].Matched) != 1 || e[2].Matched[0].RuleID != "payment-after-reset" {
		t.Errorf("payment after the reset: %v %+v, want a challenge by payment-after-reset", e[2].Action, e[2].Matched)
	}
	// Account b has its own state.
	if f := trialFeature(t, e[3], "secs_since_password_reset"); f.Value != features.NeverSecs {
		t.Errorf("account b reads %+v, want never", f)
	}
	if f := trialFeature(t, e[3], "payments_1h"); f.Value != 1 || f.Source != SourceComputed {
		t.Errorf("account b payments_1h = %+v, want 1 computed", f)
	}
	// A given value replaces the computed one, for that event only, and
	// says so; the window still counts the event.
	if f := trialFeature(t, e[4], "secs_since_password_reset"); f.Value != 7200 || f.Source != SourceGiven {
		t.Errorf("given secs_since_password_reset = %+v, want 7200 given", f)
	}
	if f := trialFeature(t, e[4], "payments_1h"); f.Value != 3 || f.Source != SourceComputed {
		t.Errorf("a's third payment reads payments_1h %+v, want 3 computed", f)
	}
	if e[4].Action != rules.Review || e[4].Score != 20 {
		t.Errorf("last event: %v %d, want review 20 (busy only: the reset is given as 2h ago)", e[4].Action, e[4].Score)
	}
}

func TestTrialGivenWindowValueOverridesTheComputedOne(t *testing.T) {
	set, rs := trialSet(t, trialFeatures, trialRules)
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	rep, err := RunTrial(Config{}, set, rs, []rules.TestEvent{
		{Event: map[string]any{}},
		{Event: map[string]any{}, F: map[string]any{"payments_1h": 40}},
		{Event: map[string]any{}},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []TrialFeature{{"payments_1h", 1, SourceComputed}, {"payments_1h", 40, SourceGiven},
		{"payments_1h", 3, SourceComputed}} {
		if got := trialFeature(t, rep.Events[i], "payments_1h"); got != want {
			t.Errorf("event %d: %+v, want %+v", i, got, want)
		}
	}
	if rep.Events[1].Action != rules.Review || rep.Events[2].Action != rules.Review || rep.Events[0].Action != rules.Allow {
		t.Errorf("actions %v %v %v, want allow review review", rep.Events[0].Action, rep.Events[1].Action, rep.Events[2].Action)
	}
	// Events without ts follow each other by TrialGap, from now.
	for i, ev := range rep.Events {
		if want := now.Add(time.Duration(i) * TrialGap).UnixMilli(); ev.TS != want || ev.EventID != "test-"+string(rune('1'+i)) {
			t.Errorf("event %d: ts %d id %s, want %d test-%d", i, ev.TS, ev.EventID, want, i+1)
		}
	}
}

func TestTrialLocksOnTheEventsClock(t *testing.T) {
	set, rs := trialSet(t, trialFeatures, trialRules)
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	at := func(min int) int64 { return now.Add(time.Duration(min) * time.Minute).UnixMilli() }
	rep, err := RunTrial(Config{}, set, rs, []rules.TestEvent{
		{Event: map[string]any{"type": "login_failed", "ts": at(0)}},
		{Event: map[string]any{"ts": at(5)}},
		{Event: map[string]any{"ts": at(11)}},
		{Event: map[string]any{"event_id": "test-3", "ts": at(11)}},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	e := rep.Events
	if e[0].Action != rules.Lock || e[0].LockUntil == nil || !e[0].LockUntil.Equal(now.Add(10*time.Minute)) {
		t.Errorf("login_failed: %v until %v, want a lock until 08:10", e[0].Action, e[0].LockUntil)
	}
	if e[1].Reason != ReasonAccountLocked || len(e[1].Features) != 0 {
		t.Errorf("payment 5 minutes later: %q %+v, want account_locked with no feature read", e[1].Reason, e[1].Features)
	}
	if e[2].Reason != "" || e[2].Action != rules.Allow {
		t.Errorf("payment 11 minutes later: %v %q, want allow: the lock ended", e[2].Action, e[2].Reason)
	}
	if e[3].Reason != ReasonDuplicate {
		t.Errorf("the same event again: %q, want duplicate", e[3].Reason)
	}
}

func TestTrialRefusesTooManyEvents(t *testing.T) {
	set, rs := trialSet(t, trialFeatures, trialRules)
	_, err := RunTrial(Config{}, set, rs, make([]rules.TestEvent, rules.MaxTestEvents+1), time.Now())
	if !errors.Is(err, rules.ErrTooManyTestEvents) ||
		err.Error() != "10001 events: more than 10000 test events: split them into several runs" {
		t.Errorf("err = %v", err)
	}
	if _, err := RunTrial(Config{}, set, rs, make([]rules.TestEvent, rules.MaxTestEvents), time.Now()); err != nil {
		t.Errorf("%d events: %v", rules.MaxTestEvents, err)
	}
}

func TestTrialNamesTheEventItCannotRead(t *testing.T) {
	set, rs := trialSet(t, trialFeatures, trialRules)
	for _, tt := range []struct {
		name string
		ev   rules.TestEvent
		want string
	}{
		{"an unknown feature", rules.TestEvent{F: map[string]any{"payments_1": 1}}, "events[1]: unknown feature f.payments_1"},
		{"a flag given as a number", rules.TestEvent{F: map[string]any{"new_device": 1}}, "events[1]: f.new_device must be true or false"},
		{"a bad event", rules.TestEvent{Event: map[string]any{"amount": "ten"}}, "events[1]: event: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RunTrial(Config{}, set, rs, []rules.TestEvent{{}, tt.ev}, time.Now())
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// Examples read the features they leave out at their live defaults, both
// when a set is compiled and when its examples run through the engine: an
// example that needs a recent login and does not give one does not match
// (zero, "just now", would have let it).
func TestTrialExamplesReadLiveDefaults(t *testing.T) {
	const rule = `- id: soon-after-login
  when: event.type == "payment" && f.secs_since_login < 60
  action: review
  examples:
    - event: {amount: 10}
      f: {secs_since_login: 30}
    - event: {amount: 10}
      expect: EXPECT
`
	set, _ := trialSet(t, trialFeatures, trialRules)
	_, err := rules.Compile(map[string][]byte{"r.yaml": []byte(strings.Replace(rule, "EXPECT", "match", 1))}, set)
	if err == nil || !strings.Contains(err.Error(), "example 2: expected match, got no_match") {
		t.Fatalf("compiling an example that relies on a missing feature reading 0: err = %v", err)
	}
	set, rs := trialSet(t, trialFeatures, strings.Replace(rule, "EXPECT", "no_match", 1))
	rep, err := RunTrial(Config{}, set, rs, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Examples) != 2 || !rep.ExamplesPassed || rep.Examples[1].Result != rules.ResultNoMatch {
		t.Fatalf("examples = %+v", rep.Examples)
	}
	want := []TrialFeature{{"secs_since_login", features.NeverSecs, SourceComputed}}
	if got := rep.Examples[1].Features; len(got) != 1 || got[0] != want[0] {
		t.Errorf("example 2 read %+v, want %+v", got, want)
	}
}

// Every example of the reference rule pack passes when decided through the
// engine with live defaults.
func TestTrialReferenceExamplesPass(t *testing.T) {
	set, err := features.LoadFile(filepath.Join(referenceDir, "features.yaml"), features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	files, err := rules.ReadFiles(os.DirFS(filepath.Join(referenceDir, "rules")))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Compile(files, set)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := RunTrial(Config{}, set, rs, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Examples) == 0 {
		t.Fatal("no examples")
	}
	for _, ex := range rep.Examples {
		if !ex.Pass {
			t.Errorf("%s example %d: expected %s, got %s %s (read %+v)", ex.RuleID, ex.Index, ex.Expect, ex.Result, ex.Error, ex.Features)
		}
	}
}
