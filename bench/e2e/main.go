// Command e2e is riskd's end-to-end benchmark harness (make bench). In one
// run it pre-produces the reference workload into an embedded broker,
// drains it with a bare kafka-go consumer (the yardstick), lets riskd (a
// child process, so its CPU and memory can be read from /proc) decide it
// all into ClickHouse, then measures event-to-decision latency at half the
// measured saturation rate, the detection quality of the reference rules,
// HTTP load on /healthz and /v1/decide (alone, and at 10,000 requests/s
// while the stream runs at half saturation), profiles the same pipeline
// in-process, and runs the score micro-benchmark, so that issue 17's goals
// are read as ratios of figures from one run. It writes
// bench/results/<stamp>.json, latest.json, latest.png and the profiles.
// With -fleet it measures fleets of riskd instead, each held to a CPU
// quota, and a partition move (fleet.go).
//
// The broker runs in the harness process, not in riskd: the workload must
// exist before riskd starts (so the timed window is consume, decide and
// store only), the bare consumer must read the same broker, and riskd's
// /proc figures then count riskd's own work, not the broker's.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// settings are the knobs of one run; they are recorded in the results.
type settings struct {
	Events      int           `json:"events"`
	Accounts    int           `json:"accounts"`
	FraudRate   float64       `json:"fraud_rate"`
	Seed        uint64        `json:"seed"`
	Partitions  int           `json:"partitions"`
	LatencyFor  time.Duration `json:"latency_phase_ns"`
	LoadStep    time.Duration `json:"load_step_ns"`
	ProfileFor  time.Duration `json:"profile_ns"`
	ClickHouse  string        `json:"clickhouse"`
	Database    string        `json:"database"`
	OutDir      string        `json:"-"`
	Timeout     time.Duration `json:"-"`
	RiskdBinary string        `json:"-"`
	SkipProfile bool          `json:"-"`
	SampleEvery time.Duration `json:"sample_interval_ns"`
	// TraceFor is the length of riskd's execution trace taken in the
	// headline latency phase, after its warm-up (latency-trace.out in
	// OutDir); 0 takes none. The trace shows where an event waits: which
	// goroutine holds the shards, the garbage collector, the scheduler.
	TraceFor time.Duration `json:"latency_trace_ns"`
	// RiskdHeap saves riskd's heap profile after the saturation phase
	// (riskd-heap.pprof in OutDir).
	RiskdHeap bool `json:"riskd_heap,omitempty"`
	// RiskdCPU is the length of riskd's CPU profile taken from the start
	// of the saturation phase (riskd-cpu.pprof in OutDir); 0 takes none.
	RiskdCPU      time.Duration `json:"riskd_cpu_ns,omitempty"`
	LatencyFactor float64       `json:"latency_rate_fraction"`
	// LatencyBase, when set, is the rate in events/s that the latency
	// phases' fractions apply to instead of the measured end-to-end rate:
	// an A/B of two builds or settings then offers both the same rates,
	// whatever their saturation phases measured on a noisy machine.
	LatencyBase float64 `json:"latency_base_eps,omitempty"`
	// OutputMaxBytes is max.message.bytes of the output topics (see
	// createTopics); 0 leaves the broker's 1 MiB default.
	OutputMaxBytes int `json:"output_topic_max_message_bytes"`
	// StateKafka and SnapshotInterval are riskd's state.kafka and
	// state.snapshot_interval: what keeping the engine state in Kafka costs.
	StateKafka       bool          `json:"state_kafka"`
	SnapshotInterval time.Duration `json:"snapshot_interval_ns"`
	// Shards is riskd's engine.shards; 0 leaves riskd's default (one per
	// CPU).
	Shards int `json:"engine_shards,omitempty"`
	// GCPercent and MemoryLimit are riskd's runtime.gc_percent and
	// runtime.memory_limit (0 and "" leave Go's defaults).
	GCPercent   int    `json:"gc_percent"`
	MemoryLimit string `json:"memory_limit"`
	// DecidePublish is riskd's decide.publish_events: each event decided
	// through the API appended to its input topic and read back.
	DecidePublish bool `json:"decide_publish_events"`
	// ScoreBenchtime is -benchtime of the score benchmark run at the end
	// (goal 1 of issue 17); empty skips it.
	ScoreBenchtime string `json:"score_benchtime"`
}

func main() {
	var s settings
	flag.IntVar(&s.Events, "events", 1_000_000, "events to pre-produce for the saturation phase")
	flag.IntVar(&s.Accounts, "accounts", 1_000_000, "accounts in the generated population")
	flag.Float64Var(&s.FraudRate, "fraud-rate", 0.02, "fraction of events from fraud scenarios")
	flag.Uint64Var(&s.Seed, "seed", 1, "traffic seed")
	flag.IntVar(&s.Partitions, "partitions", 8, "partitions per topic")
	flag.DurationVar(&s.LatencyFor, "latency-for", 20*time.Second, "length of the fixed-rate latency phase")
	flag.Float64Var(&s.LatencyFactor, "latency-rate", 0.5, "latency phase rate as a fraction of the measured e2e rate")
	flag.Float64Var(&s.LatencyBase, "latency-base", 0, "events/s the latency phases' fractions apply to; 0 uses the measured e2e rate (for A/B runs at equal rates)")
	flag.DurationVar(&s.LoadStep, "load-step", 3*time.Second, "length of each rate step of the HTTP load")
	flag.DurationVar(&s.ProfileFor, "profile-for", 30*time.Second, "CPU profile length of the in-process pipeline")
	flag.IntVar(&s.OutputMaxBytes, "output-max-bytes", 32<<20, "max.message.bytes of riskd's output topics; 0 keeps the 1 MiB default")
	flag.BoolVar(&s.StateKafka, "state-kafka", true, "riskd's state.kafka: engine state snapshots in Kafka")
	flag.DurationVar(&s.SnapshotInterval, "snapshot-interval", 30*time.Second, "riskd's state.snapshot_interval")
	flag.IntVar(&s.Shards, "shards", 0, "riskd's engine.shards; 0 leaves its default, one per CPU")
	flag.IntVar(&s.GCPercent, "gc-percent", 0, "riskd's runtime.gc_percent (GOGC); 0 leaves Go's 100")
	flag.StringVar(&s.MemoryLimit, "memory-limit", "", "riskd's runtime.memory_limit (GOMEMLIMIT, e.g. 8GiB); empty sets none")
	flag.BoolVar(&s.DecidePublish, "decide-publish", true, "riskd's decide.publish_events")
	flag.BoolVar(&s.SkipProfile, "skip-profile", false, "skip the in-process profile")
	flag.StringVar(&s.ScoreBenchtime, "score-benchtime", "200000x", "-benchtime of BenchmarkScoreReference/score, run after riskd stopped; empty skips it")
	flag.StringVar(&s.ClickHouse, "clickhouse", "127.0.0.1:9000", "ClickHouse native address")
	flag.StringVar(&s.Database, "database", "riskd_bench", "ClickHouse database (dropped and recreated)")
	flag.StringVar(&s.OutDir, "out", "bench/results", "results directory")
	flag.DurationVar(&s.Timeout, "timeout", 9*time.Minute, "give up after this long")
	flag.DurationVar(&s.SampleEvery, "sample", 500*time.Millisecond, "metrics sampling interval")
	flag.DurationVar(&s.RiskdCPU, "riskd-cpu", 0, "length of riskd's CPU profile from the start of the saturation phase (riskd-cpu.pprof); 0 takes none")
	flag.BoolVar(&s.RiskdHeap, "riskd-heap", false, "save riskd's heap profile after the saturation phase (riskd-heap.pprof)")
	flag.DurationVar(&s.TraceFor, "trace-for", 0, "length of riskd's execution trace in the headline latency phase (latency-trace.out); 0 takes none")
	var f fleetFlags
	f.register()
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	var err error
	if f.Sizes != "" {
		err = runFleet(ctx, s, f)
	} else {
		err = run(ctx, s)
	}
	cancel()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

// logf prints a progress line with the time since the harness started.
var started = time.Now()

func logf(format string, args ...any) {
	fmt.Printf("[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}
