package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"riskd/bench/produce"
	"riskd/bench/traffic"
)

// runDemo runs the whole product in one process: the embedded broker,
// generated wallet traffic with fraud mixed in, the stream scorer and the
// ClickHouse writer. It exits 0 once every generated event has a stored
// decision, after printing a summary.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskd demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file (the broker is always the embedded one)")
	gen := produce.Config{Events: 100_000, Traffic: traffic.Config{Accounts: 20_000, Seed: 1, FraudRate: 0.02}}
	gen.AddFlags(fs)
	timeout := fs.Duration("timeout", 10*time.Minute, "give up when not every event is stored by then")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := gen.Validate(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cfg, err := LoadConfig(*configPath, os.Environ())
	if err != nil {
		return err
	}
	cfg.Kafka.Embedded = true
	cfg.Kafka.DataDir = ""
	cfg.State.Dir = ""   // a demo starts from empty state and leaves none behind
	cfg.HTTP.Listen = "" // nothing to serve in a run that ends by itself; no port to clash
	if cfg.Log.Level == "info" {
		cfg.Log.Level = "warn" // progress lines are the demo's output
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	fmt.Fprintf(stdout, "riskd demo: %d events, %d accounts, %.1f%% fraud, ClickHouse %s database %s\n",
		gen.Events, gen.Traffic.Accounts, gen.Traffic.FraudRate*100, cfg.ClickHouse.Addr, cfg.ClickHouse.Database)
	d, err := startDaemon(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(stdout, "embedded Kafka broker on %s (try: kcat -b %s -C -t %s -c 3)\n",
		d.broker.Addr(), d.broker.Addr(), cfg.Kafka.DecisionsTopic)
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- d.run(runCtx) }()
	stopDaemon := func() error {
		stopRun()
		return <-runDone
	}

	start := time.Now()
	since := start.Add(-time.Second).Truncate(time.Second) // decided_at has second precision
	evRate := float64(gen.Traffic.Accounts) / 7200
	span := time.Duration(float64(gen.Events) / evRate * float64(time.Second))
	prodDone := make(chan error, 1)
	var produced produce.Stats
	go func() {
		var err error
		gen.Brokers = d.brokers
		gen.PaymentsTopic, gen.AccountTopic = cfg.Kafka.Inputs[0], inputOr(cfg.Kafka.Inputs, 1)
		// Event time ends about now, so locks and windows read naturally;
		// the id prefix keeps this run's events apart from earlier runs'.
		gen.Traffic.Start = start.Add(-span)
		gen.Traffic.IDPrefix = fmt.Sprintf("demo-%d-", start.UnixMilli())
		produced, err = produce.Run(ctx, gen)
		prodDone <- err
	}()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var stored uint64
	for stored < uint64(gen.Events) {
		select {
		case err := <-prodDone:
			if err != nil {
				stopDaemon()
				return fmt.Errorf("demo: %w", err)
			}
			prodDone = nil
			continue
		case <-ctx.Done():
			stopDaemon()
			return fmt.Errorf("demo: only %d of %d decisions stored before the timeout: %w", stored, gen.Events, ctx.Err())
		case <-tick.C:
		}
		if n, err := d.store.CountDecisions(ctx, since); err == nil {
			stored = n
		} else if !errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(stdout, "  (counting stored decisions: %v)\n", err)
		}
		el := time.Since(start).Seconds()
		fmt.Fprintf(stdout, "  %5.1fs  stored %8d / %d  (%.0f decisions/s)\n", el, stored, gen.Events, float64(stored)/el)
	}
	elapsed := time.Since(start)
	if prodDone != nil {
		if err := <-prodDone; err != nil {
			stopDaemon()
			return fmt.Errorf("demo: %w", err)
		}
	}
	if err := printSummary(ctx, stdout, d, since, produced, elapsed); err != nil {
		stopDaemon()
		return err
	}
	if err := stopDaemon(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	fmt.Fprintf(stdout, "\nLook closer: clickhouse-client -q \"SELECT action, count() FROM %s.decisions FINAL GROUP BY action\"\n",
		cfg.ClickHouse.Database)
	return nil
}

func inputOr(inputs []string, i int) string {
	if i < len(inputs) {
		return inputs[i]
	}
	return inputs[0]
}

func printSummary(ctx context.Context, w io.Writer, d *daemon, since time.Time, produced produce.Stats, elapsed time.Duration) error {
	counts, err := d.store.ActionCounts(ctx, since)
	if err != nil {
		return fmt.Errorf("demo: summary: %w", err)
	}
	top, err := d.store.TopRules(ctx, since, 8)
	if err != nil {
		return fmt.Errorf("demo: summary: %w", err)
	}
	var total uint64
	actions := make([]string, 0, len(counts))
	for a, n := range counts {
		actions = append(actions, a)
		total += n
	}
	sort.Slice(actions, func(i, j int) bool { return counts[actions[i]] > counts[actions[j]] })
	fmt.Fprintf(w, "\nSummary\n  events produced   %d (%d from fraud scenarios)\n", produced.Events, produced.Fraud)
	fmt.Fprintf(w, "  decisions stored  %d in %.1fs: %.0f events/s end to end (broker, engine, ClickHouse)\n",
		total, elapsed.Seconds(), float64(total)/elapsed.Seconds())
	fmt.Fprintf(w, "  by action\n")
	for _, a := range actions {
		fmt.Fprintf(w, "    %-10s %8d  %5.2f%%\n", a, counts[a], 100*float64(counts[a])/float64(max(total, 1)))
	}
	fmt.Fprintf(w, "  top rules\n")
	for _, r := range top {
		fmt.Fprintf(w, "    %-28s %8d\n", r.RuleID, r.Hits)
	}
	if len(top) == 0 {
		fmt.Fprintf(w, "    %s\n", strings.TrimSpace("(no rule matched)"))
	}
	return nil
}
