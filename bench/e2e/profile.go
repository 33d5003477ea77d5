package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"riskd/engine"
	"riskd/features"
	"riskd/rules"
	"riskd/streams"
	"riskd/streams/chstore"
)

// profileResult is what the in-process pipeline did while profiled.
type profileResult struct {
	Duration     time.Duration `json:"duration_ns"`
	Decided      float64       `json:"decided"`
	EventsPerSec float64       `json:"events_per_sec"`
	CPUProfile   string        `json:"cpu_profile"`
	AllocProfile string        `json:"alloc_profile"`
	AllocBase    string        `json:"alloc_base_profile"`
	CPUTop       string        `json:"cpu_top"`
	CPUTopCum    string        `json:"cpu_top_cum"`
	AllocTop     string        `json:"alloc_top"`
	Load1        float64       `json:"load1"` // when the profiled window ended
}

// profileLabel tags the pipeline's goroutines in the CPU profile, so its
// share can be told apart from the embedded broker that shares this
// process: go tool pprof -tagfocus part=riskd.
const profileLabel = "riskd"

// profilePipeline runs what riskd runs (engine with the reference
// features and rules, stream pipeline, ClickHouse store) inside this
// process under runtime/pprof, reading the inputs from the start with its
// own consumer group into its own database and output topics, for d. riskd
// exposes no pprof endpoint yet; this is the stand-in.
func profilePipeline(ctx context.Context, s settings, brokers []string, db, stamp string) (profileResult, error) {
	res := profileResult{
		CPUProfile:   filepath.Join(s.OutDir, "cpu.pprof"),
		AllocProfile: filepath.Join(s.OutDir, "allocs.pprof"),
		AllocBase:    filepath.Join(s.OutDir, "allocs-base.pprof"),
	}
	set, holder, err := loadReference()
	if err != nil {
		return res, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	store, err := chstore.Open(ctx, chstore.Config{Addr: s.ClickHouse, Database: db, Logger: log})
	if err != nil {
		return res, fmt.Errorf("profile: %w", err)
	}
	defer store.Close()
	topics := streams.DefaultTopics()
	topics.Decisions, topics.Alerts, topics.Actions, topics.DLQ = "prof.decisions", "prof.alerts", "prof.actions", "prof.dlq"
	if err := createTopics(ctx, brokers, s.Partitions, s.OutputMaxBytes, topics); err != nil {
		return res, fmt.Errorf("profile: %w", err)
	}
	reg := prometheus.NewRegistry()
	m := streams.NewMetrics(reg)
	eng := engine.New(engine.Config{}, set, holder)
	p := streams.New(streams.Config{Brokers: brokers, Group: "riskd-bench-prof-" + stamp, Topics: topics, Logger: log},
		eng, store, m)

	if err := writeAllocs(res.AllocBase); err != nil {
		return res, err
	}
	cpu, err := os.Create(res.CPUProfile)
	if err != nil {
		return res, fmt.Errorf("profile: %w", err)
	}
	defer cpu.Close()
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return res, fmt.Errorf("profile: %w", err)
	}
	runCtx, stop := context.WithTimeout(ctx, s.ProfileFor)
	defer stop()
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	start := time.Now()
	var runErr error
	pprof.Do(runCtx, pprof.Labels("part", profileLabel), func(ctx context.Context) {
		wg.Go(func() { eng.Run(engCtx) })
		runErr = p.Run(ctx) // returns after the drain once runCtx ends
	})
	res.Duration = time.Since(start)
	res.Load1 = load1()
	pprof.StopCPUProfile()
	stopEngine()
	wg.Wait()
	if runErr != nil {
		return res, fmt.Errorf("profile: pipeline: %w", runErr)
	}
	if err := writeAllocs(res.AllocProfile); err != nil {
		return res, err
	}
	res.Decided = gatherSum(reg, "riskd_decisions_total")
	res.EventsPerSec = res.Decided / res.Duration.Seconds()
	res.CPUTop = pprofTop(ctx, "-tagfocus", "part="+profileLabel, res.CPUProfile)
	res.CPUTopCum = pprofTop(ctx, "-cum", "-nodecount=60", "-tagfocus", "part="+profileLabel, res.CPUProfile)
	// The embedded broker's allocations are in the same process; -ignore
	// leaves them out (riskd's own franz-go clients stay in).
	res.AllocTop = pprofTop(ctx, "-sample_index=alloc_space", "-ignore", "kfake",
		"-diff_base", res.AllocBase, res.AllocProfile)
	return res, nil
}

// loadReference compiles the reference features and rules like riskd does.
func loadReference() (*features.Set, *rules.Holder, error) {
	set, err := features.LoadFile("bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		return nil, nil, fmt.Errorf("profile: %w", err)
	}
	rs, err := rules.Load("bench/reference/rules", set)
	if err != nil {
		return nil, nil, fmt.Errorf("profile: rules: %w", err)
	}
	h := &rules.Holder{}
	h.Swap(rs)
	return set, h, nil
}

// writeAllocs writes the cumulative allocation profile after a GC, so two
// snapshots bracket the profiled window (go tool pprof -diff_base).
func writeAllocs(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("profile: %s: %w", path, err)
	}
	return nil
}

// pprofTop runs go tool pprof -top and returns its first lines (or the
// error text: a summary is optional, the profile files are the record).
func pprofTop(ctx context.Context, args ...string) string {
	args = append([]string{"tool", "pprof", "-top", "-nodecount=25"}, args...)
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// gatherSum adds up every series of one metric in reg.
func gatherSum(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
