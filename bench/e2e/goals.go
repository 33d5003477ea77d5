package main

import (
	"fmt"
	"io"
	"strings"
)

// Goal statuses. A goal whose figure the run could not take is "not
// measured", never met.
const (
	goalMet         = "met"
	goalMissed      = "missed"
	goalNotMeasured = "not measured"
)

// goal is one of issue 17's goals as this run measured it.
type goal struct {
	Number int    `json:"number"` // the goal's number in issue 17
	Name   string `json:"name"`
	Label  string `json:"label"` // short, for the table
	Goal   string `json:"goal"`
	// Measured is in Unit; null when not measured.
	Measured *float64 `json:"measured"`
	Limit    float64  `json:"limit"`
	Unit     string   `json:"unit"`
	AtMost   bool     `json:"at_most"` // the limit is an upper bound (else a lower one)
	Status   string   `json:"status"`
	// Detail names the figures Measured comes from; Caveat what may make
	// it wrong in this run.
	Detail string `json:"detail"`
	Caveat string `json:"caveat,omitempty"`
	// Load1 is the 1-minute load average when each of those figures was
	// taken.
	Load1 []float64 `json:"load1"`
}

// judge sets the status from the measured value (nil: not measured) and
// ok, a further condition the goal needs (a rate held, say).
func (g *goal) judge(measured *float64, ok bool) {
	g.Measured = measured
	switch {
	case measured == nil:
		g.Status = goalNotMeasured
	case ok && g.AtMost && *measured <= g.Limit, ok && !g.AtMost && *measured >= g.Limit:
		g.Status = goalMet
	default:
		g.Status = goalMissed
	}
}

func ptr(v float64) *float64 { return &v }

// setGoals compares the run with issue 17's goals, each read as one figure
// or one ratio of figures from this run.
func (r *results) setGoals() {
	sat := &r.Saturation
	riskdNs := 1000 * r.CPUMicrosPerEvent

	g1 := goal{Number: 1, Name: "riskd_cpu_vs_score_benchmark", Label: "riskd CPU per event / score benchmark", Goal: "riskd CPU per event end to end <= 2.5x BenchmarkScoreReference score",
		Limit: 2.5, Unit: "x", AtMost: true, Load1: []float64{sat.Load1}}
	if b := r.ScoreBench; b != nil && b.Error == "" && riskdNs > 0 {
		g1.judge(ptr(riskdNs/b.NsPerOp), true)
		g1.Detail = fmt.Sprintf("riskd %.0f ns CPU per event over the saturation phase (%d events) / score %.0f ns/op",
			riskdNs, sat.Events, b.NsPerOp)
		if sat.GCCPU > 0 {
			g1.Detail += fmt.Sprintf("; of riskd's, its collector %.0f ns (the runtime's estimate)",
				float64(sat.GCCPU.Nanoseconds())/float64(sat.Events))
		}
		if a := r.ScoreAtScale; a != nil && a.Error == "" {
			g1.Detail += fmt.Sprintf("; the engine alone on the phase's stream (%s) %.0f ns/op = %.2fx the reference, %.0f ns beside it in riskd",
				scoreAtScale, a.NsPerOp, a.NsPerOp/b.NsPerOp, riskdNs-a.NsPerOp)
		}
		g1.Load1 = append(g1.Load1, b.Load1)
	} else {
		g1.judge(nil, false)
		g1.Detail = "the score benchmark did not run"
		if b := r.ScoreBench; b != nil && b.Error != "" {
			g1.Detail = "the score benchmark failed: " + firstLine(b.Error)
		}
	}

	g2 := goal{Number: 2, Name: "clickhouse_cpu_vs_riskd", Label: "ClickHouse CPU per event / riskd's", Goal: "ClickHouse server CPU per stored event <= riskd CPU per event",
		Limit: 1, Unit: "x", AtMost: true, Load1: []float64{sat.Load1}}
	if ch := r.ClickHouseMicrosPerEvent; ch != nil && riskdNs > 0 {
		g2.judge(ptr(1000**ch/riskdNs), true)
		g2.Detail = fmt.Sprintf("ClickHouse %.1f us per stored event (%.1f s while storing + %.1f s in the %.0f s after) / riskd %.1f us",
			*ch, sat.ClickHouseCPU.Seconds(), sat.ClickHouseCPUAfter.Seconds(), sat.IdleAfter.Seconds(), r.CPUMicrosPerEvent)
		if n := len(sat.ClickHouseOtherClients); n > 0 {
			g2.Caveat = fmt.Sprintf("%d other processes used the same ClickHouse server meanwhile; its CPU includes their work", n)
		}
	} else {
		g2.judge(nil, false)
		g2.Detail = "ClickHouse server CPU not measured: " + sat.ClickHouseFoundBy
	}

	l := r.Latency
	at := fmt.Sprintf("at %.0f%% of saturation (%.0f events/s)", 100*l.Fraction, l.RatePerSec)
	var caveats []string
	if l.Fraction != 0.5 {
		caveats = append(caveats, fmt.Sprintf("the latency phase ran at %.0f%% of saturation, not 50%% (-latency-rate)", 100*l.Fraction))
	}
	if l.StateSnapshots > 0 {
		caveats = append(caveats, fmt.Sprintf("%.0f engine state snapshots in the window (-snapshot-interval %v)",
			l.StateSnapshots, r.Settings.SnapshotInterval))
	}
	halfCaveat := strings.Join(caveats, "; ")
	g3 := goal{Number: 3, Name: "decision_p99_riskd_histogram", Label: "decision p99 at half sat., riskd histogram", Goal: "decision latency p99 <= 50 ms at half saturation (riskd's histogram)",
		Limit: 50, Unit: "ms", AtMost: true, Load1: []float64{l.Load1}, Caveat: halfCaveat}
	if l.Riskd.Decisions > 0 {
		g3.judge(ptr(l.Riskd.P99MS), true)
		g3.Detail = fmt.Sprintf("%s %s over %.0f decisions; the p99 lies in its %g..%g ms bucket",
			kafkaToDecision, at, l.Riskd.Decisions, l.Riskd.P99BucketMS[0], l.Riskd.P99BucketMS[1])
		if l.Riskd.AboveLastBucket {
			g3.Caveat = strings.TrimPrefix(g3.Caveat+"; above the histogram's last bound", "; ")
		}
	} else {
		g3.judge(nil, false)
		g3.Detail = "no decisions in riskd's histogram over the latency phase"
	}
	g3c := goal{Number: 3, Name: "decision_p99_clickhouse", Label: "decision p99 at half sat., ClickHouse", Goal: "decision latency p99 <= 50 ms at half saturation (ClickHouse, decided_at - event_ts)",
		Limit: 50, Unit: "ms", AtMost: true, Load1: []float64{l.Load1}, Caveat: halfCaveat}
	if l.Measured > 0 {
		g3c.judge(ptr(l.P99MS), true)
		g3c.Detail = fmt.Sprintf("decided_at_ms - event_ts_ms %s over %d stored decisions (1 ms resolution)", at, l.Measured)
	} else {
		g3c.judge(nil, false)
		g3c.Detail = "no latency phase decisions read back from ClickHouse"
	}

	g4 := goal{Number: 4, Name: "decide_vs_healthz_p99", Label: "decide p99 / healthz p99, 10k/s + stream", Goal: "decide API p99 <= 2x /healthz p99 at 10,000 req/s, stream at half saturation",
		Limit: 2, Unit: "x", AtMost: true}
	switch m := r.Mixed; {
	case m == nil:
		g4.judge(nil, false)
		g4.Detail = "no mixed run"
	case m.Decide == nil:
		g4.judge(nil, false)
		g4.Detail = "the decide API was not loaded: " + m.DecideNote
		g4.Load1 = []float64{m.Healthz.Load1}
	default:
		held := m.Healthz.Held && m.Decide.Held
		g4.judge(ptr(m.DecideToHealthzP99), held && m.Healthz.P99MS > 0)
		g4.Detail = fmt.Sprintf("decide p99 %.2f ms (%s) / healthz p99 %.2f ms (%s); stream %.0f events/s",
			m.Decide.P99MS, heldText(*m.Decide), m.Healthz.P99MS, heldText(m.Healthz), m.StreamRatePerSec)
		g4.Load1 = []float64{m.Healthz.Load1, m.Decide.Load1}
		if !held {
			g4.Caveat = "a rate not held misses the goal whatever the ratio"
		}
	}

	g5 := goal{Number: 5, Name: "e2e_events_per_sec", Label: "events/s end to end (steady)", Goal: "150,000 events/s end to end (saturation, steady)", Limit: 150_000,
		Unit: "events/s", Load1: []float64{sat.Load1}}
	if r.E2EEventsPerSec > 0 {
		g5.judge(ptr(r.E2EEventsPerSec), true)
		g5.Detail = fmt.Sprintf("decisions stored per second between 10%% and 90%% of the %d events", sat.Events)
	} else {
		g5.judge(nil, false)
	}
	r.Goals = []goal{g1, g2, g3, g3c, g4, g5}
}

// heldText says how a load step went, for a goal's detail.
func heldText(st loadStep) string {
	if st.Held {
		return fmt.Sprintf("%.0f/s held", st.AchievedRPS)
	}
	return fmt.Sprintf("NOT held: %.0f/s answered of %.0f offered, %d errors, %d not sent on time",
		st.AchievedRPS, st.TargetRPS, st.Errors, st.Dropped)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// printGoals prints the goals table and, under it, what each figure is
// made of and its caveats.
func printGoals(w io.Writer, r *results) {
	fmt.Fprintf(w, "\nissue 17 goals, every figure from this run (%s):\n", r.Stamp)
	fmt.Fprintf(w, "%-46s %14s %16s  %-12s  %s\n", "goal", "measured", "limit", "status", "load1")
	for _, g := range r.Goals {
		measured := "-"
		if g.Measured != nil {
			measured = formatValue(*g.Measured, g.Unit)
		}
		op := ">="
		if g.AtMost {
			op = "<="
		}
		loads := make([]string, len(g.Load1))
		for i, l := range g.Load1 {
			loads[i] = fmt.Sprintf("%.2f", l)
		}
		status := g.Status
		if status == goalMissed {
			status = "MISSED"
		}
		fmt.Fprintf(w, "%d %-44s %14s %16s  %-12s  %s\n", g.Number, g.Label, measured,
			op+" "+formatValue(g.Limit, g.Unit), status, strings.Join(loads, " "))
	}
	for _, g := range r.Goals {
		fmt.Fprintf(w, "  %d %s: %s\n", g.Number, g.Name, g.Detail)
		if g.Caveat != "" {
			fmt.Fprintf(w, "      caveat: %s\n", g.Caveat)
		}
	}
}

// formatValue prints a goal's figure in its unit.
func formatValue(v float64, unit string) string {
	switch unit {
	case "x":
		return fmt.Sprintf("%.2fx", v)
	case "ms":
		return fmt.Sprintf("%.1f ms", v)
	case "events/s":
		return fmt.Sprintf("%.0f/s", v)
	}
	return fmt.Sprintf("%.4g %s", v, unit)
}
