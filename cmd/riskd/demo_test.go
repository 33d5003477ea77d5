package main

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"riskd/bench/traffic"
	"riskd/features"
	"riskd/rules"
)

// TestDemoExplainsADecisionAndCountsCaughtAttacks runs the demo as
// `riskd demo` does, on a fresh database, with enough fraud that attacks
// are certain, and checks its summary: the existing sections, one decision
// explained with a rule of the reference set and a feature value, a
// detection table whose labelled events add up to the fraud produced, and
// closing queries that are scoped to the run and run as printed.
func TestDemoExplainsADecisionAndCountsCaughtAttacks(t *testing.T) {
	clearRiskdEnv(t) // the config file says everything
	cfgPath, ch := writeRiskdConfig(t, "output:\n  flush_interval: 20ms\n")
	var stdout, stderr bytes.Buffer
	err := runDemo(t.Context(), []string{"--config", cfgPath, "--events", "3000", "--accounts", "2000",
		"--fraud-rate", "0.2", "--timeout", "2m"}, &stdout, &stderr)
	out := stdout.String()
	if err != nil {
		t.Fatalf("runDemo: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	t.Logf("demo output:\n%s", out)

	for _, want := range []string{"stored     3000 / 3000", "decisions stored  3000 in", "  by action\n", "  top rules\n", "  late events ",
		"\nOne decision explained (read back from ClickHouse)\n", "\nDetection by fraud scenario"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "try: kcat") || strings.Contains(out, "kcat -b 127.0.0.1:0") {
		t.Errorf("output suggests kcat on the demo's own broker, which is gone when the demo ends")
	}
	if !strings.Contains(out, "RISKD_KAFKA_EMBEDDED=true RISKD_KAFKA_LISTEN=127.0.0.1:9092 go run ./cmd/riskd --config "+cfgPath+"\n") ||
		!strings.Contains(out, "kcat -b 127.0.0.1:9092 -C -t risk.decisions") {
		t.Errorf("output does not say how to watch decisions with a broker that stays")
	}
	m := regexp.MustCompile(`events produced\s+3000 \((\d+) from fraud scenarios\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no 'events produced' line")
	}
	fraud, _ := strconv.Atoi(m[1])
	if fraud < 300 {
		t.Fatalf("only %d fraud events at a fraud rate of 0.2", fraud)
	}
	prefix := regexp.MustCompile(`event ids start with (demo-\d+-)`).FindStringSubmatch(out)
	if prefix == nil {
		t.Fatal("no line naming the run's event id prefix")
	}

	// The explained decision: this run's, acted on by a rule of the live
	// (reference) set, with at least one feature value.
	explained := demoSection(out, "One decision explained", "Detection by fraud scenario")
	set, err := features.LoadFile("../../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load("../../bench/reference/rules", set)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^  event id     ` + prefix[1] + `\d+$`).MatchString(explained) {
		t.Errorf("explained decision is not one of this run's events:\n%s", explained)
	}
	if !regexp.MustCompile(`(?m)^  action       (lock|block|challenge|review)$`).MatchString(explained) {
		t.Errorf("explained decision is not one a rule acted on:\n%s", explained)
	}
	for _, field := range []string{"account", "type", "event time", "score", "reason", "rule set"} {
		if !regexp.MustCompile(`(?m)^  ` + field + ` +\S`).MatchString(explained) {
			t.Errorf("explained decision lacks its %s:\n%s", field, explained)
		}
	}
	rule := regexp.MustCompile(`(?m)^matched rules\n    (\S+) +\w+, score [-+]\d+\n      (alert: ".+"|\(no message to the user\))$`).
		FindStringSubmatch(strings.ReplaceAll(explained, "\n  matched rules", "\nmatched rules"))
	if rule == nil || rs.Rule(rule[1]) == nil {
		t.Errorf("explained decision names no rule of the reference set with its alert:\n%s", explained)
	} else if r := rs.Rule(rule[1]); r.Alert != "" && rule[2] != fmt.Sprintf("alert: %q", r.Alert) {
		t.Errorf("rule %s shown with %s; its alert is %q", r.ID, rule[2], r.Alert)
	}
	if !regexp.MustCompile(`(?m)^  feature values recorded\n    \w+ = -?[0-9.e+]+$`).MatchString(explained) {
		t.Errorf("explained decision shows no feature value:\n%s", explained)
	}

	// The detection table: known scenarios, rows adding up to the total,
	// the total's events equal to the fraud produced, some attacks stopped
	// before their first loss event.
	detection := demoSection(out, "Detection by fraud scenario", "Look closer")
	rowRE := regexp.MustCompile(`(?m)^    (\w+) +(\d+) +(\d+) +\d+% +(\d+) +(\d+) +\d+%$`)
	var sum, total [4]int
	var rows int
	for _, r := range rowRE.FindAllStringSubmatch(detection, -1) {
		var v [4]int
		for i := range v {
			v[i], _ = strconv.Atoi(r[2+i])
		}
		if v[1] > v[0] || v[3] > v[2] || v[0] > v[2] {
			t.Errorf("implausible row %q: more stopped than attacks, flagged than events, or attacks than events", r[0])
		}
		if r[1] == "total" {
			total = v
			continue
		}
		if !slices.Contains(traffic.Scenarios, r[1]) {
			t.Errorf("row for %q, which is no scenario of the generator", r[1])
		}
		rows++
		for i := range v {
			sum[i] += v[i]
		}
	}
	if rows < 3 {
		t.Errorf("only %d scenario rows for %d fraud events:\n%s", rows, fraud, detection)
	}
	if total != sum {
		t.Errorf("total row %v is not the sum of the scenario rows %v", total, sum)
	}
	if total[2] != fraud {
		t.Errorf("detection table counts %d scenario events; the demo produced %d", total[2], fraud)
	}
	if total[1] == 0 {
		t.Errorf("no attack stopped before loss:\n%s", detection)
	}
	disturbed := regexp.MustCompile(`honest accounts disturbed \(challenged, blocked or locked\): (\d+) of (\d+) = ([0-9.]+) per 10,000\n`).
		FindStringSubmatch(detection)
	if disturbed == nil {
		t.Fatalf("no honest accounts disturbed line:\n%s", detection)
	}
	if d, _ := strconv.Atoi(disturbed[1]); d > 2000 {
		t.Errorf("%d honest accounts disturbed of a population of 2000", d)
	}
	if n, _ := strconv.Atoi(disturbed[2]); n == 0 || n > 2000 {
		t.Errorf("%d honest accounts active; want some of the 2000", n)
	}
	honest := regexp.MustCompile(`honest events flagged \(false alarms\): (\d+) of (\d+) \(`).FindStringSubmatch(detection)
	if honest == nil {
		t.Fatalf("no false alarm line:\n%s", detection)
	}
	if n, _ := strconv.Atoi(honest[2]); n+fraud != 3000 {
		t.Errorf("%d honest events and %d fraud events; want 3000 in all", n, fraud)
	}

	// The closing queries: each scoped to this run, each runs as printed.
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	queries := regexp.MustCompile(`(?m)^  clickhouse-client .*-q "([^"]+)"$`).FindAllStringSubmatch(out, -1)
	if len(queries) < 2 {
		t.Fatalf("%d clickhouse-client queries printed; want the action counts and more", len(queries))
	}
	for _, q := range queries {
		if !strings.Contains(q[1], "'"+prefix[1]) {
			t.Errorf("printed query is not scoped to this run (%s): %s", prefix[1], q[1])
		}
		rows, err := conn.Query(t.Context(), q[1])
		if err != nil {
			t.Errorf("printed query fails: %v\n%s", err, q[1])
			continue
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if n == 0 {
			t.Errorf("printed query returns no rows: %s", q[1])
		}
	}
}

// demoSection returns the part of out from the line starting with from up to
// the one starting with to.
func demoSection(out, from, to string) string {
	_, s, _ := strings.Cut(out, "\n"+from)
	s, _, _ = strings.Cut(s, "\n"+to)
	return from + s
}
