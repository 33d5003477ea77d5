package kafkatest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// ApacheProcess is an Apache Kafka broker of a test's own, run through
// scripts/kafka-up and scripts/kafka-down on free ports with its data in
// the test's temporary directory, so the test may stop and restart it
// without disturbing the shared broker other tests use.
type ApacheProcess struct {
	// Addr is the client listener, 127.0.0.1:PORT.
	Addr    string
	version string
	scripts string
	env     []string
}

// Broker describes the process as a Broker, for test environments.
func (p *ApacheProcess) Broker() Broker {
	return Broker{Name: "apache-kafka-private", addr: p.Addr, Apache: true, Version: p.version}
}

// StartApache starts a private Apache Kafka broker of the version in
// $RISKD_TEST_KAFKA_VERSION (kafka-up's default when unset), stopped and
// removed when t ends. Call Apache(t) first: it decides whether Apache
// Kafka tests run at all.
func StartApache(t testing.TB) *ApacheProcess {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	port, cport := freePort(t), freePort(t)
	p := &ApacheProcess{
		Addr:    "127.0.0.1:" + strconv.Itoa(port),
		scripts: filepath.Join(root, "scripts"),
		env: append(os.Environ(),
			"KAFKA_PORT="+strconv.Itoa(port),
			"KAFKA_CONTROLLER_PORT="+strconv.Itoa(cport),
			"KAFKA_DIR="+filepath.Join(t.TempDir(), "kafka")),
	}
	if p.version = apacheVersion; p.version != "" {
		p.env = append(p.env, "KAFKA_VERSION="+p.version)
	}
	t.Cleanup(func() {
		if out, err := p.script("kafka-down"); err != nil {
			t.Errorf("kafka-down: %v\n%s", err, out)
		}
	})
	p.Start(t)
	return p
}

// Start runs kafka-up: it starts the broker, or restarts it on the data
// an earlier Stop kept, and returns once the broker answers.
func (p *ApacheProcess) Start(t testing.TB) {
	t.Helper()
	out, err := p.script("kafka-up")
	if err != nil {
		t.Fatalf("kafka-up: %v\n%s", err, out)
	}
	t.Logf("kafka-up: %s", out)
}

// Stop runs kafka-down --keep: a clean shutdown (SIGTERM, then KILL after
// a minute) that keeps topics, messages and committed offsets.
func (p *ApacheProcess) Stop(t testing.TB) {
	t.Helper()
	out, err := p.script("kafka-down", "--keep")
	if err != nil {
		t.Fatalf("kafka-down: %v\n%s", err, out)
	}
	t.Logf("kafka-down: %s", out)
}

func (p *ApacheProcess) script(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(p.scripts, name), args...)
	cmd.Env = p.env
	return cmd.CombinedOutput()
}

// repoRoot is the directory holding go.mod, found upwards from the
// working directory (a test's is its package directory).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("kafkatest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// freePort asks the kernel for a free loopback port. Another process
// could take it before the broker binds it; on this machine's loopback
// that race is rare, and kafka-up then fails loudly rather than silently.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
