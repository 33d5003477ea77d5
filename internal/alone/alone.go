// Package alone runs a test in a test process of its own, for
// measurements the rest of the package's tests would disturb.
//
// testing.AllocsPerRun counts every allocation in the process. A test that
// measures it after tests which leave clients winding down (Kafka readers
// retrying, group members leaving, engines draining) counts their
// allocations as its own, and fails now and then. A child process started
// for the one test has nothing else running.
package alone

import (
	"os"
	"os/exec"
	"regexp"
	"testing"
)

// env names the test a child test binary was started to run.
const env = "RISKD_TEST_ALONE"

// Process reports whether this process runs t alone. In the package's own
// run it is false: it starts the test binary again for t alone and fails
// t, with the child's output, when the child fails. In that child it is
// true, and the test measures. Call it first, and return when false.
func Process(t *testing.T) bool {
	t.Helper()
	if os.Getenv(env) == t.Name() {
		return true
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0],
		"-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a process of its own: %v\n%s", t.Name(), err, out)
	}
	return false
}
