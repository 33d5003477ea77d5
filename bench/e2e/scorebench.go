package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// scoreBenchResult is one engine benchmark run by the harness after riskd
// has stopped: BenchmarkScoreReference's score sub-benchmark, which issue
// 17 sets riskd's CPU per event end to end against (on a shared machine the
// two must come from the same run to be compared), or
// BenchmarkScoreAtBenchScale, the engine alone on the saturation phase's
// stream, which says how much of riskd's cost is the engine's.
type scoreBenchResult struct {
	Command       string        `json:"command"`
	NsPerOp       float64       `json:"ns_per_op"`
	EventsPerSec  float64       `json:"events_per_sec"`
	DupFraction   float64       `json:"dup_fraction"`
	XEncodingJSON float64       `json:"x_encoding_json"`
	Line          string        `json:"line"`
	Wall          time.Duration `json:"wall_ns"` // build and setup included
	Load1         float64       `json:"load1"`   // when it finished
	Error         string        `json:"error,omitempty"`
	// name is the benchmark's name as go test prints it, before "-N".
	name string
}

// The engine benchmarks the harness runs.
const (
	scoreReference = "BenchmarkScoreReference/score"
	scoreAtScale   = "BenchmarkScoreAtBenchScale"
)

// runScoreBench runs one of the engine benchmarks above for benchtime as
// a go test subprocess and parses its line. A failure is recorded, not
// returned: the rest of the run stands without it, and what needs it is
// then not measured.
func runScoreBench(ctx context.Context, name, benchtime string) scoreBenchResult {
	pattern := "^" + strings.ReplaceAll(name, "/", "$/^") + "$"
	args := []string{"test", "-run", "^$", "-bench", pattern, "-benchtime", benchtime, "./engine/"}
	r := scoreBenchResult{Command: "go " + strings.Join(args, " "), name: name}
	logf("running %s", r.Command)
	start := time.Now()
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	r.Wall, r.Load1 = time.Since(start), load1()
	if err != nil {
		r.Error = fmt.Sprintf("%v: %s", err, lastLines(out, 10))
		logf("warning: %s failed: %s", name, r.Error)
		return r
	}
	if err := r.parse(out); err != nil {
		r.Error = err.Error()
		logf("warning: %v", err)
		return r
	}
	logf("%s: %.0f ns/op in %.1fs; load %.2f", name, r.NsPerOp, r.Wall.Seconds(), r.Load1)
	return r
}

func (r *scoreBenchResult) parse(out []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], r.name+"-") {
			continue
		}
		r.Line = strings.Join(f, " ")
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return fmt.Errorf("%s: %q: %w", r.name, r.Line, err)
			}
			switch f[i+1] {
			case "ns/op":
				r.NsPerOp = v
			case "events/s":
				r.EventsPerSec = v
			case "dup-fraction":
				r.DupFraction = v
			case "x-encoding_json":
				r.XEncodingJSON = v
			}
		}
		if r.NsPerOp <= 0 {
			return fmt.Errorf("%s: no ns/op in %q", r.name, r.Line)
		}
		return nil
	}
	return fmt.Errorf("no %s line in go test's output: %s", r.name, lastLines(out, 10))
}

// lastLines returns the last n lines of out, for an error message.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
