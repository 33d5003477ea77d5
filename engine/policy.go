package engine

import "riskd/rules"

// decide applies the decision policy: the most severe action among matched
// active rules, raised by the highest threshold the total score reaches.
// It reports whether a threshold changed the action.
func decide(matched []rules.Action, scores []int, thresholds []rules.Threshold) (action rules.Action, score int, raised bool) {
	for i, a := range matched {
		if a > action {
			action = a
		}
		score += scores[i]
	}
	for _, t := range thresholds {
		if score >= t.Score && t.Action > action {
			action = t.Action
			raised = true
		}
	}
	return action, score, raised
}
