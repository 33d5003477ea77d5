package rules

import "time"

// Verdict is what the decision policy makes of the active rules that
// matched one event.
type Verdict struct {
	// Action is the most severe action of the matched rules, raised by the
	// highest threshold Score reaches; Allow when nothing matched.
	Action Action
	// Score is the sum of the matched rules' scores.
	Score int
	// Raised tells whether a threshold set Action above every matched
	// rule's.
	Raised bool
	// LockFor is the longest lock_for among the matched lock rules and
	// LockRule the first of them that gives it. Both are zero when no lock
	// rule matched: a lock then comes from a threshold, and how long it
	// lasts is up to the caller.
	LockFor  time.Duration
	LockRule string
}

// Decide applies the decision policy to matched, the active rules that
// matched an event (Outcome.Matched), and thresholds, sorted by ascending
// score (RuleSet.Thresholds). It allocates nothing: the engine calls it
// for every event.
func Decide(matched []*Rule, thresholds []Threshold) Verdict {
	var v Verdict
	for _, r := range matched {
		v.Action = max(v.Action, r.Action)
		v.Score += r.Score
		if r.Action == Lock && r.LockFor > v.LockFor {
			v.LockFor, v.LockRule = r.LockFor, r.ID
		}
	}
	for _, t := range thresholds {
		if v.Score >= t.Score && t.Action > v.Action {
			v.Action = t.Action
			v.Raised = true
		}
	}
	return v
}
