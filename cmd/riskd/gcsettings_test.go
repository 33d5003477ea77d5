package main

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// TestRuntimeConfigIsChecked: every bad value is refused when the config
// loads, naming its key, before riskd touches anything.
func TestRuntimeConfigIsChecked(t *testing.T) {
	for _, tc := range []struct {
		yaml, want string
		limit      int64
	}{
		{yaml: "runtime: {memory_limit: 6GiB}", limit: 6 << 30},
		{yaml: "runtime: {memory_limit: 512 MiB, gc_percent: 400}", limit: 512 << 20},
		{yaml: "runtime: {memory_limit: \"1048576\"}", limit: 1 << 20},
		{yaml: "runtime: {memory_limit: 2TiB, gc_percent: -1}", limit: 2 << 40},
		{yaml: "runtime: {gc_percent: -1}", want: "runtime.gc_percent -1"},
		{yaml: "runtime: {gc_percent: -2}", want: "runtime.gc_percent -2"},
		{yaml: "runtime: {memory_limit: 6GB}", want: `runtime.memory_limit "6GB"`},
		{yaml: "runtime: {memory_limit: 0MiB}", want: `runtime.memory_limit "0MiB"`},
		{yaml: "runtime: {memory_limit: 9999999TiB}", want: `runtime.memory_limit "9999999TiB"`},
		{yaml: "runtime: {gc_pct: 400}", want: "gc_pct"},
	} {
		path := filepath.Join(t.TempDir(), "riskd.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(path, nil)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.yaml, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one naming %q", tc.yaml, err, tc.want)
		case tc.want == "":
			if got, _ := cfg.Runtime.limit(); got != tc.limit {
				t.Errorf("%s: limit %d, want %d", tc.yaml, got, tc.limit)
			}
		}
	}
	cfg, err := LoadConfig("", []string{"RISKD_RUNTIME_GC_PERCENT=300", "RISKD_RUNTIME_MEMORY_LIMIT=4GiB"})
	if err != nil || cfg.Runtime.GCPercent != 300 || cfg.Runtime.MemoryLimit != "4GiB" {
		t.Fatalf("from the environment: %+v, %v", cfg.Runtime, err)
	}
}

// TestApplyRuntimeSetsTheCollector: the settings reach Go's runtime and
// the log says what riskd runs with; zero values leave the runtime alone.
func TestApplyRuntimeSetsTheCollector(t *testing.T) {
	percent := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	if err := applyRuntime(RuntimeConfig{}, log); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("zero config changed gc percent to %d", got)
	}
	if !strings.Contains(logged.String(), "gc_percent=100 memory_limit=none") {
		t.Errorf("log: %s", logged.String())
	}
	logged.Reset()
	if err := applyRuntime(RuntimeConfig{GCPercent: 400, MemoryLimit: "3GiB"}, log); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("gc percent %d, want 400", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Errorf("memory limit %d, want %d", got, int64(3<<30))
	}
	if !strings.Contains(logged.String(), "gc_percent=400 memory_limit_bytes=3221225472") {
		t.Errorf("log: %s", logged.String())
	}
	if err := applyRuntime(RuntimeConfig{GCPercent: -1}, log); err == nil {
		t.Error("gc_percent -1 without a memory limit was applied")
	}
}

// TestMetricsSplitTheCPU: riskd's registry carries the runtime's split of
// its CPU time beside the memory statistics the harness and dashboards
// read, so that the collector's share of a rise in CPU per event can be
// read off /metrics.
func TestMetricsSplitTheCPU(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(goCPUClasses))
	runtime.GC()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
	}
	for _, name := range []string{
		"go_cpu_classes_gc_total_cpu_seconds_total",
		"go_cpu_classes_user_cpu_seconds_total",
		"go_cpu_classes_total_cpu_seconds_total",
		"go_memstats_heap_inuse_bytes",
	} {
		if !seen[name] {
			t.Errorf("%s not exposed", name)
		}
	}
}
