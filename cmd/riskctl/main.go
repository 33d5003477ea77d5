// Command riskctl is the analysts' and operators' command line for riskd.
//
//	riskctl gen [flags]                 produce synthetic wallet traffic to Kafka
//	riskctl rules lint DIR              every problem of a rule set, file:line:col
//	riskctl rules test DIR [EVENTS]     run examples and events through the engine path
//	riskctl rules backtest DIR          replay stored history through candidate rules
//	riskctl rules push DIR -m MSG       publish a rule set to a running riskd
//	riskctl rules history | diff A B | rollback VERSION
//	riskctl rules features [FILE]       the running window features; publish new ones
//	riskctl rules stats                 hits, precision and silent rules from ClickHouse
//	riskctl labels import FILE          record confirmed fraud and false positives
//	riskctl account show|lock|unlock ID an account's timeline; support's lock and unlock
//	riskctl cases [list|show|take|close] the review queue
//	riskctl decide FILE|-               decide events as the payment hook does
//
// Commands that talk to a running riskd read its address from RISKCTL_URL
// (default http://127.0.0.1:8080) and the API token from RISKCTL_TOKEN.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"riskd/bench/produce"
	"riskd/bench/traffic"
	"riskd/streams"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "riskctl:", err)
		os.Exit(exitCode(err))
	}
}

const usage = `usage: riskctl COMMAND [flags]

commands:
  gen       produce synthetic wallet traffic (with labelled fraud scenarios) to Kafka
  rules     lint, test, backtest, push, history, diff, rollback, features, stats (riskctl rules -h)
  labels    import labels: confirmed fraud and false positives (riskctl labels -h)
  account   show an account's timeline; lock, unlock (riskctl account -h)
  cases     the review queue: list, show, take, close (riskctl cases -h)
  decide    decide events from a file or stdin as the payment hook does

Commands that call riskd use RISKCTL_URL (default http://127.0.0.1:8080) and
RISKCTL_TOKEN (an API token: analyst for changes, viewer to read).
`

// run runs the command args name; a usage printed for -h is success.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := runCommand(ctx, args, stdout, stderr)
	if errors.Is(err, errHelped) {
		return nil
	}
	return err
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "gen":
		return runGen(ctx, args[1:], stdout, stderr)
	case "rules":
		return runRules(ctx, args[1:], stdout, stderr)
	case "labels":
		return runLabels(ctx, args[1:], stdout, stderr)
	case "account":
		return runAccount(ctx, args[1:], stdout, stderr)
	case "cases":
		return runCases(ctx, args[1:], stdout, stderr)
	case "decide":
		return runDecide(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func runGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap addresses")
	cfg := produce.Config{Events: 100_000, PaymentsTopic: "payments", AccountTopic: "account-events",
		Traffic: traffic.Config{Accounts: 100_000, Seed: 1, FraudRate: 0.01}}
	cfg.AddFlags(fs)
	fs.StringVar(&cfg.Traffic.IDPrefix, "id-prefix", "", "event id prefix (default \"e-\"); ids are the prefix and a sequence number, so a second run\ninto the same topics repeats the first run's ids and riskd decides them as duplicates: give each run its own prefix")
	fs.StringVar(&cfg.PaymentsTopic, "payments-topic", cfg.PaymentsTopic, "topic for payments, top-ups, withdrawals, refunds, points")
	fs.StringVar(&cfg.AccountTopic, "account-topic", cfg.AccountTopic, "topic for logins, resets, device binding, payees, profile changes")
	partitions := fs.Int("partitions", 8, "partitions for topics that do not exist yet")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h asked for the usage, which fs printed
		}
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	addrs := strings.Split(*brokers, ",")
	if err := streams.EnsureTopics(ctx, addrs, *partitions, cfg.PaymentsTopic, cfg.AccountTopic); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	cfg.Brokers = addrs
	lastReport := time.Now()
	cfg.Progress = func(n int) {
		if time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
			fmt.Fprintf(stderr, "  %d events written\n", n)
		}
	}
	stats, err := produce.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %d events (%d from fraud scenarios) in %.1fs (%.0f events/s): %s %d, %s %d\n",
		stats.Events, stats.Fraud, stats.Duration.Seconds(), float64(stats.Events)/stats.Duration.Seconds(),
		cfg.PaymentsTopic, stats.ByTopic[cfg.PaymentsTopic], cfg.AccountTopic, stats.ByTopic[cfg.AccountTopic])
	return nil
}
