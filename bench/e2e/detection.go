package main

// scoreDetection turns per-label counts into precision and recall: an
// event is flagged when its action is not allow, fraud when it has a
// label.
func scoreDetection(c labelCounts) detectionResult {
	d := detectionResult{Scenarios: map[string]scenarioResult{}}
	for label, n := range c {
		d.Events += n.Events
		d.Flagged += n.Flagged
		if label == "" {
			d.FlaggedNormal += n.Flagged
			continue
		}
		d.FraudEvents += n.Events
		d.FlaggedFraud += n.Flagged
		d.Scenarios[label] = scenarioResult{Events: n.Events, Flagged: n.Flagged, Recall: ratio(float64(n.Flagged), float64(n.Events))}
	}
	d.Precision = ratio(float64(d.FlaggedFraud), float64(d.Flagged))
	d.Recall = ratio(float64(d.FlaggedFraud), float64(d.FraudEvents))
	return d
}
