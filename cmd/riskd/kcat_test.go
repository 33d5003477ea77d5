package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"riskd/internal/kafkatest"
	"riskd/streams"
)

// kcatPath finds kcat (Debian's kafkacat package installs it under both
// names). It is required on CI, where .ci/run installs it.
func kcatPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"kcat", "kafkacat"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "kcat is not installed (apt-get install kafkacat)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestKcatProducesAndReadsDecisions proves the wire protocol with a client
// that is not Go: kcat (librdkafka) writes events into the broker and reads
// riskd's decisions and dead letters back.
func TestKcatProducesAndReadsDecisions(t *testing.T) {
	kcat := kcatPath(t)
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) { testKcatProducesAndReadsDecisions(t, kcat, b) })
}

func testKcatProducesAndReadsDecisions(t *testing.T, kcat string, b kafkatest.Broker) {
	e := newBrokerEnv(t, b)
	e.start(t)
	addr := e.addr

	input := strings.Join([]string{
		`acct-k1|{"event_id":"kcat-1","type":"payment","ts":1795478400000,"account_id":"acct-k1","amount":1200,"currency":"EUR","channel":"nfc"}`,
		`acct-k2|{"event_id":"kcat-2","type":"payment","ts":1795478400000,"account_id":"acct-k2","amount":25000,"currency":"EUR","channel":"transfer","payee_id":"payee-scam-0001"}`,
		`acct-k3|{"event_id":"kcat-3","type":"payment"}`,
	}, "\n") + "\n"
	cmd := exec.CommandContext(t.Context(), kcat, "-b", addr, "-P", "-t", e.payments, "-K", "|")
	cmd.Stdin = strings.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}

	decisions := kcatRead(t, kcat, addr, e.decisions, "%k|%s\n", 2)
	got := map[string]streams.DecisionRecord{}
	for _, line := range decisions {
		key, value, _ := strings.Cut(line, "|")
		var d streams.DecisionRecord
		if err := json.Unmarshal([]byte(value), &d); err != nil {
			t.Fatalf("decision %q: %v", value, err)
		}
		if key != d.AccountID {
			t.Errorf("decision keyed %q for account %q", key, d.AccountID)
		}
		got[d.EventID] = d
	}
	if got["kcat-1"].Action.String() != "allow" || got["kcat-2"].Action.String() != "block" {
		t.Fatalf("kcat read decisions %+v, want kcat-1 allow and kcat-2 block", got)
	}
	dlq := kcatRead(t, kcat, addr, e.dlq, "%k|%h\n", 1)
	if !strings.HasPrefix(dlq[0], "acct-k3|") || !strings.Contains(dlq[0], streams.HeaderError+"=invalid event") {
		t.Fatalf("dead letter read by kcat: %q", dlq[0])
	}
}

// kcatRead consumes topic from the beginning with kcat until it has want
// lines in format, polling because riskd writes asynchronously.
func kcatRead(t *testing.T, kcat, addr, topic, format string, want int) []string {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		cmd := exec.CommandContext(t.Context(), kcat, "-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", format)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kcat consume %s: %v\n%s", topic, err, stderr.String())
		}
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
		if len(lines) >= want {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("kcat read %d lines from %s, want %d", len(lines), topic, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
