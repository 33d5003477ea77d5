package rules

import (
	"testing"
	"time"
)

func TestDecidePolicy(t *testing.T) {
	thresholds := []Threshold{{Score: 50, Action: Review}, {Score: 90, Action: Challenge}}
	rule := func(id string, a Action, score int, lockFor time.Duration) *Rule {
		return &Rule{ID: id, Action: a, Score: score, LockFor: lockFor}
	}
	tests := []struct {
		name    string
		matched []*Rule
		want    Verdict
	}{
		{"nothing matched allows", nil, Verdict{Action: Allow}},
		{"the most severe matched action wins",
			[]*Rule{rule("a", Alert, 0, 0), rule("b", Block, 0, 0), rule("c", Review, 0, 0)},
			Verdict{Action: Block}},
		{"scores add up and reach a threshold",
			[]*Rule{rule("a", Allow, 30, 0), rule("b", Allow, 25, 0)},
			Verdict{Action: Review, Score: 55, Raised: true}},
		{"the highest threshold reached applies",
			[]*Rule{rule("a", Alert, 95, 0)},
			Verdict{Action: Challenge, Score: 95, Raised: true}},
		{"a threshold never lowers a severe action",
			[]*Rule{rule("a", Lock, 95, time.Hour)},
			Verdict{Action: Lock, Score: 95, LockFor: time.Hour, LockRule: "a"}},
		{"a score below every threshold leaves the action",
			[]*Rule{rule("a", Alert, 49, 0)},
			Verdict{Action: Alert, Score: 49}},
		{"the longest lock wins and the first rule giving it names it",
			[]*Rule{rule("short", Lock, 0, time.Minute), rule("long", Lock, 0, time.Hour), rule("again", Lock, 0, time.Hour)},
			Verdict{Action: Lock, LockFor: time.Hour, LockRule: "long"}},
		{"a lock_for on a rule that does not lock is no lock",
			[]*Rule{rule("a", Block, 0, time.Hour)},
			Verdict{Action: Block}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.matched, thresholds); got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecideAllocatesNothing(t *testing.T) {
	matched := []*Rule{{ID: "a", Action: Lock, Score: 70, LockFor: time.Hour}, {ID: "b", Action: Alert, Score: 30}}
	thresholds := []Threshold{{Score: 60, Action: Review}, {Score: 90, Action: Block}}
	var v Verdict
	if n := testing.AllocsPerRun(100, func() { v = Decide(matched, thresholds) }); n != 0 {
		t.Errorf("Decide allocates %v times per call, want 0", n)
	}
	if v.Action != Lock || v.Score != 100 || v.LockRule != "a" {
		t.Errorf("Decide = %+v", v)
	}
}
