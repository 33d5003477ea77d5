package main

import (
	"fmt"
	"os"
	"sort"
)

// printSummary prints the headline figures and the targets.
func printSummary(r *results, path string) {
	logf("results written to %s (and latest.json, latest.png)", path)
	fmt.Printf("\n%-32s %14s %7s\n", "figure", "value", "load1")
	sat, lat := r.Saturation.Load1, r.Latency.Load1
	// A ramp with no step held has no headline step, so no load for it.
	var mixedH, mixedD, decide, healthz any = "-", "-", "-", "-"
	if r.Healthz.MaxHeldRPS > 0 {
		healthz = r.Healthz.Load1
	}
	if r.Mixed != nil {
		mixedH = r.Mixed.Healthz.Load1
		if r.Mixed.Decide != nil {
			mixedD = r.Mixed.Decide.Load1
		}
	}
	if r.Decide != nil && r.Decide.MaxHeldRPS > 0 {
		decide = r.Decide.Load1
	}
	rows := []struct {
		name    string
		v, load any
	}{
		{"e2e_events_per_sec", r.E2EEventsPerSec, sat}, {"bare_consume_events_per_sec", r.BareConsumePerSec, r.Bare.Load1},
		{"e2e_p50_ms", r.E2EP50MS, lat}, {"e2e_p99_ms", r.E2EP99MS, lat}, {"e2e_p999_ms", r.E2EP999MS, lat},
		{"riskd_kafka_to_decision_p50_ms", r.RiskdP50MS, lat}, {"riskd_kafka_to_decision_p99_ms", r.RiskdP99MS, lat},
		{"mixed_healthz_p99_ms", fmtOpt(r.MixedHealthzP99MS), mixedH}, {"mixed_decide_p99_ms", fmtOpt(r.MixedDecideP99MS), mixedD},
		{"decide_rps", fmtOpt(r.DecideRPS), decide}, {"decide_p99_ms", fmtOpt(r.DecideP99MS), decide},
		{"healthz_p99_ms", r.HealthzP99MS, healthz}, {"heap_bytes_per_account", r.HeapBytesPerAccount, sat},
		{"rss_bytes", r.RSSBytes, sat}, {"cpu_us_per_event", r.CPUMicrosPerEvent, sat},
		{"clickhouse_cpu_us_per_event", fmtOpt(r.ClickHouseMicrosPerEvent), sat},
		{"precision", r.Precision, "-"}, {"recall", r.Recall, "-"},
	}
	for _, row := range rows {
		fmt.Printf("%-32s %14v %7s\n", row.name, fmtAny(row.v), fmtLoad(row.load))
	}
	fmt.Println()
	for _, t := range r.Targets {
		verdict := "MISSED"
		if t.Met {
			verdict = "met"
		}
		fmt.Printf("%-6s %-40s measured %.4g, limit %.4g, margin %.2fx\n", verdict, t.Goal, t.Measured, t.Limit, t.Margin)
	}
	names := make([]string, 0, len(r.Detection.Scenarios))
	for k := range r.Detection.Scenarios {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Println("\nrecall per scenario:")
	for _, k := range names {
		sc := r.Detection.Scenarios[k]
		fmt.Printf("  %-22s %6d events  %6d flagged  %5.1f%%\n", k, sc.Events, sc.Flagged, 100*sc.Recall)
	}
	if w := r.Detection.Wallet; w != nil {
		fmt.Println("\ndetection as a wallet counts it (stopped = challenge, block or lock; see bench/detection):")
		if err := w.WriteTable(os.Stdout); err != nil {
			logf("warning: %v", err)
		}
	}
	printGoals(os.Stdout, r)
}

func fmtOpt(p *float64) any {
	if p == nil {
		return "null"
	}
	return *p
}

func fmtLoad(v any) string {
	if f, ok := v.(float64); ok {
		return fmt.Sprintf("%.2f", f)
	}
	return fmt.Sprint(v)
}

func fmtAny(v any) string {
	if f, ok := v.(float64); ok {
		return fmt.Sprintf("%.4g", f)
	}
	return fmt.Sprint(v)
}
