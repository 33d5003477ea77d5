package main

import "testing"

// statuses maps each goal's name to its status.
func statuses(r *results) map[string]string {
	out := map[string]string{}
	for _, g := range r.Goals {
		out[g.Name] = g.Status
	}
	return out
}

func TestGoalsNotMeasuredAreNeverMet(t *testing.T) {
	r := &results{}
	r.setGoals()
	if len(r.Goals) != 6 {
		t.Fatalf("%d goals, want 6", len(r.Goals))
	}
	for name, st := range statuses(r) {
		if st != goalNotMeasured {
			t.Errorf("%s: %s on an empty run, want %q", name, st, goalNotMeasured)
		}
	}
}

func TestGoalsRatios(t *testing.T) {
	ch := 20.0
	r := &results{CPUMicrosPerEvent: 25, ClickHouseMicrosPerEvent: &ch, E2EEventsPerSec: 160_000,
		ScoreBench: &scoreBenchResult{NsPerOp: 10_000},
		Latency: latencyResult{Fraction: 0.5, Measured: 100, P99MS: 60,
			Riskd: histLatency{Decisions: 100, P99MS: 40}},
		Mixed: &mixedResult{
			Healthz: loadStep{Held: true, P99MS: 4},
			Decide:  &loadStep{Held: false, P99MS: 6}, DecideToHealthzP99: 1.5},
	}
	r.setGoals()
	want := map[string]string{
		"riskd_cpu_vs_score_benchmark": goalMet,    // 25 us / 10 us = 2.5x, at the limit
		"clickhouse_cpu_vs_riskd":      goalMet,    // 20 / 25
		"decision_p99_riskd_histogram": goalMet,    // 40 ms
		"decision_p99_clickhouse":      goalMissed, // 60 ms
		"decide_vs_healthz_p99":        goalMissed, // 1.5x, but 10,000/s not held
		"e2e_events_per_sec":           goalMet,
	}
	got := statuses(r)
	for name, st := range want {
		if got[name] != st {
			t.Errorf("%s: %s, want %s", name, got[name], st)
		}
	}
	if m := *r.Goals[0].Measured; m != 2.5 {
		t.Errorf("goal 1 measured %v, want 2.5", m)
	}
}
