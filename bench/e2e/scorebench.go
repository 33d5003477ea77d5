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

// scoreBenchResult is BenchmarkScoreReference's score sub-benchmark, run
// by the harness after riskd has stopped: issue 17 sets riskd's CPU per
// event end to end against it, and on a shared machine the two must come
// from the same run to be compared.
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
}

// runScoreBench runs the score sub-benchmark for benchtime as a go test
// subprocess and parses its line. A failure is recorded, not returned: the
// rest of the run stands without it, and goal 1 is then not measured.
func runScoreBench(ctx context.Context, benchtime string) scoreBenchResult {
	args := []string{"test", "-run", "^$", "-bench", "^BenchmarkScoreReference$/^score$", "-benchtime", benchtime, "./engine/"}
	r := scoreBenchResult{Command: "go " + strings.Join(args, " ")}
	logf("running %s", r.Command)
	start := time.Now()
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	r.Wall, r.Load1 = time.Since(start), load1()
	if err != nil {
		r.Error = fmt.Sprintf("%v: %s", err, lastLines(out, 10))
		logf("warning: score benchmark failed: %s", r.Error)
		return r
	}
	if err := r.parse(out); err != nil {
		r.Error = err.Error()
		logf("warning: %v", err)
		return r
	}
	logf("BenchmarkScoreReference/score: %.0f ns/op (%.0f events/s, dup-fraction %g) in %.1fs; load %.2f",
		r.NsPerOp, r.EventsPerSec, r.DupFraction, r.Wall.Seconds(), r.Load1)
	return r
}

// parse reads the sub-benchmark's result line from go test's output:
// "BenchmarkScoreReference/score-2  200000  8911 ns/op  0 dup-fraction
// 111937 events/s  1.545 x-encoding_json  146 B/op  1 allocs/op".
func (r *scoreBenchResult) parse(out []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkScoreReference/score") {
			continue
		}
		r.Line = strings.Join(f, " ")
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return fmt.Errorf("score benchmark: %q: %w", r.Line, err)
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
			return fmt.Errorf("score benchmark: no ns/op in %q", r.Line)
		}
		return nil
	}
	return fmt.Errorf("score benchmark: no BenchmarkScoreReference/score line in its output: %s", lastLines(out, 10))
}

// lastLines returns the last n lines of out, for an error message.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
