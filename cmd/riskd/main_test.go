package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"riskd/internal/chtest"
	"riskd/internal/kafkatest"
	"riskd/streams/chstore"
)

// TestBinaryRunsAndStopsCleanlyOnSIGTERM builds riskd, runs it as an
// operator would (config file plus an environment override, embedded
// broker), checks its HTTP endpoints and a decision, then sends SIGTERM and
// expects a drained, checkpointed exit with status 0.
func TestBinaryRunsAndStopsCleanlyOnSIGTERM(t *testing.T) {
	cmd := riskdCommand(t, "")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	logs := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs <- sc.Text()
		}
		close(logs)
	}()
	var all strings.Builder
	waitLog := func(re *regexp.Regexp) []string {
		t.Helper()
		deadline := time.After(waitLong)
		for {
			select {
			case line, ok := <-logs:
				if !ok {
					t.Fatalf("riskd exited before logging %s:\n%s", re, all.String())
				}
				all.WriteString(line + "\n")
				if m := re.FindStringSubmatch(line); m != nil {
					return m
				}
			case <-deadline:
				t.Fatalf("no log line matching %s:\n%s", re, all.String())
			}
		}
	}
	broker := waitLog(regexp.MustCompile(`broker listening" addr=(\S+)`))[1]
	httpAddr := waitLog(regexp.MustCompile(`http listening" addr=(\S+)`))[1]
	waitLog(regexp.MustCompile(`riskd running`))

	// Ready comes once the group has assigned the partitions: wait for it.
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": `"ready":true`, "/metrics": `riskd_decisions_total{action="lock"} 0`} {
		deadline := time.Now().Add(waitLong)
		for {
			resp, err := http.Get("http://" + httpAddr + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %d %.300q, want 200 containing %q", path, resp.StatusCode, body, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	kafkatest.Produce(t, broker, "payments", ev("bin-1", "payment", "acct-bin", baseTS,
		`,"amount":900,"currency":"EUR","channel":"qr"`))
	kafkatest.ReadAll(t, broker, "risk.decisions", 1, waitLong)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog(regexp.MustCompile(`engine state saved at the committed offsets`))
	waitLog(regexp.MustCompile(`riskd stopped`))
	for range logs { // drain until the pipe closes
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("riskd exited with %v after SIGTERM:\n%s", err, all.String())
	}
	if strings.Contains(all.String(), "level=ERROR") {
		t.Fatalf("errors logged:\n%s", all.String())
	}
}

// TestUnreachableKafkaNamesTheAddressAndTheFix: a new user who starts riskd
// with no broker running learns where riskd looked and what to set.
func TestUnreachableKafkaNamesTheAddressAndTheFix(t *testing.T) {
	clearRiskdEnv(t)
	t.Setenv("RISKD_KAFKA_BROKERS", "127.0.0.1:1")
	t.Setenv("RISKD_HTTP_LISTEN", "127.0.0.1:0")
	err := run(t.Context(), nil, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("riskd started without a reachable broker")
	}
	for _, want := range []string{"kafka.brokers 127.0.0.1:1", "RISKD_KAFKA_BROKERS", "kafka.embedded: true"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestHelpListsTheDemoAndExitsCleanly(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), []string{"--help"}, &out, &out); err != nil {
		t.Fatalf("riskd --help: %v", err)
	}
	if !strings.Contains(out.String(), "riskd demo") || !strings.Contains(out.String(), "-config") {
		t.Errorf("riskd --help says:\n%s\nwant the demo command and the -config flag", out.String())
	}
}

// clearRiskdEnv removes every RISKD_* variable until the test ends. riskd
// refuses RISKD_* variables it does not know, and the suite's own
// (RISKD_TEST_KAFKA, RISKD_TEST_CLICKHOUSE) are such variables: a test that
// runs riskd's config loading on the process environment starts clean.
func clearRiskdEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "RISKD_") {
			t.Setenv(k, v) // restored when the test ends
			os.Unsetenv(k)
		}
	}
}

// riskdCommand builds riskd and returns the command that runs it as an
// operator would: a config file with the embedded broker and the HTTP
// listener on free ports, a fresh ClickHouse database, the reference rules
// and a state directory of the test's own, followed by extraYAML; an
// environment override (RISKD_OUTPUT_FLUSH_INTERVAL) and env. The suite's
// own RISKD_TEST_* variables are left out: riskd refuses unknown RISKD_*
// variables, as an operator's typo should be refused.
func riskdCommand(t *testing.T, extraYAML string, env ...string) *exec.Cmd {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "riskd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfgPath, _ := writeRiskdConfig(t, extraYAML)
	cmd := exec.Command(bin, "--config", cfgPath)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RISKD_TEST_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "RISKD_OUTPUT_FLUSH_INTERVAL=20ms", "RISKD_CLICKHOUSE_PASSWORD=")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// writeRiskdConfig writes the config the tests run riskd with and returns
// its path: the embedded broker and the HTTP listener on free ports, a
// fresh ClickHouse database, the reference rules and a state directory of
// the test's own, followed by extraYAML. ch is that database.
func writeRiskdConfig(t *testing.T, extraYAML string) (path string, ch chstore.Config) {
	t.Helper()
	ch = chtest.Config(t)
	dir := t.TempDir()
	config := fmt.Sprintf(`kafka:
  embedded: true
  listen: 127.0.0.1:0
  partitions: 2
clickhouse:
  addr: %s
  database: %s
rules:
  dir: ../../bench/reference/rules
  features: ../../bench/reference/features.yaml
http:
  listen: 127.0.0.1:0
state:
  dir: %s
`, ch.Addr, ch.Database, filepath.Join(dir, "state")) + extraYAML
	path = filepath.Join(dir, "riskd.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, ch
}
