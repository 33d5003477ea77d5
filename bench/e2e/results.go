package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"riskd/bench/detection"
)

// results is one run's record. The top-level numeric keys are the
// headline figures bench/RESULTS.md quotes; the rest is the detail they
// come from. decide_* are null when POST /v1/decide is not served.
type results struct {
	Stamp    string      `json:"stamp"`
	Command  string      `json:"command"`
	Machine  machineInfo `json:"machine"`
	Settings settings    `json:"settings"`

	E2EEventsPerSec   float64 `json:"e2e_events_per_sec"`
	BareConsumePerSec float64 `json:"bare_consume_events_per_sec"`
	E2EP50MS          float64 `json:"e2e_p50_ms"`
	E2EP99MS          float64 `json:"e2e_p99_ms"`
	E2EP999MS         float64 `json:"e2e_p999_ms"`
	// RiskdP50MS and RiskdP99MS are the headline latency phase read from
	// riskd's riskd_kafka_to_decision_seconds histogram.
	RiskdP50MS float64 `json:"riskd_kafka_to_decision_p50_ms"`
	RiskdP99MS float64 `json:"riskd_kafka_to_decision_p99_ms"`
	// MixedHealthzP99MS and MixedDecideP99MS are the mixed run's p99s at
	// 10,000 requests/s while the stream runs (decide null when not served).
	MixedHealthzP99MS   *float64 `json:"mixed_healthz_p99_ms"`
	MixedDecideP99MS    *float64 `json:"mixed_decide_p99_ms"`
	DecideRPS           *float64 `json:"decide_rps"`
	DecideP99MS         *float64 `json:"decide_p99_ms"`
	HealthzRPS          float64  `json:"healthz_rps"`
	HealthzP99MS        float64  `json:"healthz_p99_ms"`
	HeapBytesPerAccount float64  `json:"heap_bytes_per_account"`
	RSSBytes            uint64   `json:"rss_bytes"`
	PeakRSSBytes        uint64   `json:"peak_rss_bytes"`
	CPUMicrosPerEvent   float64  `json:"cpu_us_per_event"`
	// ClickHouseMicrosPerEvent is the ClickHouse server's CPU per event
	// stored in the saturation phase, the merges in the idle seconds after
	// it included; null when the server's process is not visible.
	ClickHouseMicrosPerEvent *float64 `json:"clickhouse_cpu_us_per_event"`
	Precision                float64  `json:"precision"`
	Recall                   float64  `json:"recall"`

	Produce       produceResult    `json:"produce"`
	Bare          bareResult       `json:"bare_consumer"`
	Saturation    saturationResult `json:"saturation"`
	Latency       latencyResult    `json:"latency"`
	LatencyLadder []latencyResult  `json:"latency_ladder"`
	Detection     detectionResult  `json:"detection"`
	Healthz       loadResult       `json:"healthz_load"`
	Decide        *loadResult      `json:"decide_load"`
	DecideNote    string           `json:"decide_note,omitempty"`
	Profile       *profileResult   `json:"profile,omitempty"`
	// Mixed is the decide API and /healthz under the stream at half
	// saturation; ScoreBench the score micro-benchmark run after riskd
	// stopped. Goals compares the run with issue 17, Targets with issue 5.
	Mixed      *mixedResult      `json:"mixed"`
	ScoreBench *scoreBenchResult `json:"score_benchmark"`
	// ScoreAtScale is BenchmarkScoreAtBenchScale over as many events as
	// the saturation phase: the engine's share of goal 1's numerator.
	ScoreAtScale *scoreBenchResult `json:"score_benchmark_at_bench_scale,omitempty"`
	Goals        []goal            `json:"goals"`
	Targets      []target          `json:"targets"`
	Timeline     []sample          `json:"timeline"`
}

type produceResult struct {
	Events       int           `json:"events"`
	Fraud        int           `json:"fraud_events"`
	GenSetup     time.Duration `json:"generator_setup_ns"`
	Duration     time.Duration `json:"duration_ns"`
	EventsPerSec float64       `json:"events_per_sec"`
	Load1        float64       `json:"load1"`
}

type saturationResult struct {
	Events          int           `json:"events"`
	StoredInCH      uint64        `json:"stored_in_clickhouse"`
	FirstConsumedS  float64       `json:"first_consumed_s"`
	AllStoredS      float64       `json:"all_stored_s"`
	AvgEventsPerSec float64       `json:"avg_events_per_sec"`
	SteadyFrom      float64       `json:"steady_from_fraction"`
	SteadyTo        float64       `json:"steady_to_fraction"`
	CPU             time.Duration `json:"cpu_ns"`
	CPUCoresUsed    float64       `json:"cpu_cores_used"`
	// GCCPU is the part of CPU riskd's runtime estimates its garbage
	// collector took (go_cpu_classes_gc_total_cpu_seconds_total, mark
	// workers, assists and pauses), read before and after the phase; 0
	// when riskd does not expose it.
	GCCPU     time.Duration `json:"gc_cpu_ns"`
	HeapInuse float64       `json:"heap_inuse_bytes"`
	// HeapLive is the live heap after riskd's last GC (riskd_heap_live_bytes):
	// heap per account is computed from it, since in-use heap also holds
	// garbage not collected yet.
	HeapLive       float64 `json:"heap_live_bytes"`
	ActiveAccounts float64 `json:"active_accounts"`
	StateEntities  float64 `json:"state_entities"`
	RSSBytes       uint64  `json:"rss_bytes"`
	HWMBytes       uint64  `json:"hwm_bytes"`
	DecideEnabled  bool    `json:"decide_auth_configured"`
	// Output batches and the mean time to make one durable, per sink,
	// from riskd_sink_seconds: the output stage flushes one batch at a
	// time, so these bound the pipeline when the CPU is not busy.
	OutputBatches   float64 `json:"output_batches"`
	MeanBatchSize   float64 `json:"mean_batch_size"`
	ClickHouseMeanS float64 `json:"clickhouse_flush_mean_s"`
	KafkaMeanS      float64 `json:"kafka_flush_mean_s"`
	// ClickHouseCPU is the ClickHouse server's CPU time over the same
	// window, when its process is visible in /proc (0 otherwise), and
	// ClickHouseCPUAfter its CPU time in the idle wait after it
	// (IdleAfter long; merging the parts the phase wrote).
	// ClickHouseBackground is the server's CPU rate, in cores, while the
	// harness produced and the bare consumer read, before riskd started:
	// what the server spends without riskd (housekeeping, other clients
	// of a shared server), which the figures above include too.
	ClickHouseCPU time.Duration `json:"clickhouse_server_cpu_ns"`
	// ClickHouseWork is what the server counted it did over ClickHouseCPU's
	// and ClickHouseCPUAfter's windows: its inserts and its merges.
	ClickHouseWork       *serverWork   `json:"clickhouse_server_work,omitempty"`
	ClickHouseCPUAfter   time.Duration `json:"clickhouse_server_cpu_after_ns"`
	IdleAfter            time.Duration `json:"idle_after_ns"`
	ClickHouseBackground float64       `json:"clickhouse_background_cores"`
	ClickHousePID        int           `json:"clickhouse_pid"`
	ClickHouseFoundBy    string        `json:"clickhouse_found_by"`
	// ClickHouseOtherClients are the processes other than riskd and the
	// harness seen connected to the server (checked every second) while
	// its CPU was read: a shared server's CPU includes their work.
	ClickHouseOtherClients []string `json:"clickhouse_other_clients"`
	// Load1 is the 1-minute load average when all events were stored.
	Load1 float64 `json:"load1"`
}

type latencyResult struct {
	Fraction   float64 `json:"fraction_of_saturation"`
	RatePerSec float64 `json:"rate_per_sec"`
	Sent       int     `json:"sent"`
	// Warmup is the start of the phase left out of the percentiles: riskd
	// was idle and meets a new account population; WarmupP99MS is the p99
	// of those events alone.
	Warmup      time.Duration `json:"warmup_ns"`
	WarmupP99MS float64       `json:"warmup_p99_ms"`
	Measured    int           `json:"measured"`
	P50MS       float64       `json:"p50_ms"`
	P99MS       float64       `json:"p99_ms"`
	P999MS      float64       `json:"p999_ms"`
	MaxMS       float64       `json:"max_ms"`
	// RiskdCores and HarnessCores are the CPU each used while the events
	// were produced: the harness produces and hosts the broker on the same
	// two cores, so at high rates it competes with riskd and ClickHouse.
	RiskdCores   float64 `json:"riskd_cores"`
	HarnessCores float64 `json:"harness_cores"`
	Definition   string  `json:"definition"`
	// Riskd is the same phase read from riskd's own histogram
	// (riskd_kafka_to_decision_seconds) instead of ClickHouse.
	Riskd histLatency `json:"riskd_histogram"`
	// StateSnapshots is how many engine state snapshots riskd took in the
	// measured window (riskd_state_snapshots_total).
	StateSnapshots float64 `json:"state_snapshots_in_window"`
	// Stages splits riskd's latency over the same window by stage
	// (riskd_stage_seconds: fetch, merge, queue, score, output), to say
	// where an event waited.
	Stages map[string]histLatency `json:"riskd_stages,omitempty"`
	// Load1 is the 1-minute load average when the producer finished.
	Load1 float64 `json:"load1"`
}

type scenarioResult struct {
	Events  uint64  `json:"events"`
	Flagged uint64  `json:"flagged"`
	Recall  float64 `json:"recall"`
}

type detectionResult struct {
	Events        uint64                    `json:"events"`
	FraudEvents   uint64                    `json:"fraud_events"`
	Flagged       uint64                    `json:"flagged"`
	FlaggedFraud  uint64                    `json:"flagged_fraud"`
	FlaggedNormal uint64                    `json:"flagged_normal"`
	Precision     float64                   `json:"precision"`
	Recall        float64                   `json:"recall"`
	Scenarios     map[string]scenarioResult `json:"scenarios"`
	// Wallet is the saturation workload scored as a wallet counts it:
	// attacks stopped before loss, amount kept, honest accounts disturbed.
	Wallet *detection.Report `json:"wallet,omitempty"`
}

// target is one goal of issue 5 and how the run compares with it.
type target struct {
	Name     string  `json:"name"`
	Goal     string  `json:"goal"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	Met      bool    `json:"met"`
	// Margin is measured/limit for "at least" goals and limit/measured for
	// "at most" goals: above 1 is met by that factor, below 1 missed.
	Margin float64 `json:"margin"`
}

func atLeast(name, goal string, measured, limit float64) target {
	return target{Name: name, Goal: goal, Measured: measured, Limit: limit, Met: measured >= limit, Margin: ratio(measured, limit)}
}

func atMost(name, goal string, measured, limit float64) target {
	return target{Name: name, Goal: goal, Measured: measured, Limit: limit, Met: measured <= limit, Margin: ratio(limit, measured)}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// setTargets compares the headline figures with issue 5's targets.
func (r *results) setTargets() {
	r.Targets = []target{
		atLeast("e2e_vs_bare", "e2e >= half the bare consumer rate", r.E2EEventsPerSec, r.BareConsumePerSec/2),
		atLeast("e2e_absolute", "e2e aim 150k events/s", r.E2EEventsPerSec, 150_000),
		atMost("e2e_p99", "p99 < 50 ms at half saturation", r.E2EP99MS, 50),
		atMost("heap_per_account", "<= 1 KiB heap per active account", r.HeapBytesPerAccount, 1024),
		atLeast("recall", ">= 90% recall", r.Recall, 0.9),
		atLeast("precision", ">= 90% precision", r.Precision, 0.9),
	}
}

// gitCommit reads HEAD without changing anything; "" outside a checkout.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// write saves the run as <dir>/<stamp>.json and copies it to latest.json.
func (r *results) write(dir string) (string, error) {
	r.Machine.GoVersion = runtime.Version()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return "", fmt.Errorf("results: %w", err)
	}
	path := filepath.Join(dir, r.Stamp+".json")
	for _, p := range []string{path, filepath.Join(dir, "latest.json")} {
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			return "", fmt.Errorf("results: %w", err)
		}
	}
	return path, nil
}
