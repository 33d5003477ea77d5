package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"riskd/bench/detection"
	"riskd/bench/produce"
	"riskd/bench/traffic"
	"riskd/engine"
	"riskd/event"
	"riskd/streams/chstore"
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
	// No kcat hint here: the broker lives only as long as the demo, which
	// ends in seconds; the closing lines say how to keep one running.
	fmt.Fprintf(stdout, "embedded Kafka broker on %s (it stops when the demo ends)\n", d.broker.Addr())
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
	// Every event id of this run starts with prefix, which keeps this run's
	// events apart from earlier runs' in the summary and the queries printed.
	prefix := fmt.Sprintf("demo-%d-", start.UnixMilli())
	// Event time ends about now, so locks and windows read naturally, and
	// never ahead of the clock (engine.max_future_skew refuses such an
	// event): at a flat rate the events' offsets from Start do not depend
	// on Start, so a dry run of the generator gives the span exactly. The
	// daily rhythm would stretch a night-time run past the clock.
	gen.Traffic.FlatRate = true
	span := eventSpan(gen.Traffic, gen.Events)
	prodDone := make(chan error, 1)
	var produced produce.Stats
	go func() {
		var err error
		gen.Brokers = d.brokers
		gen.PaymentsTopic, gen.AccountTopic = cfg.Kafka.Inputs[0], inputOr(cfg.Kafka.Inputs, 1)
		gen.Traffic.Start = start.Add(-span)
		gen.Traffic.IDPrefix = prefix
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
	example, err := printExample(ctx, stdout, d, prefix)
	if err != nil {
		stopDaemon()
		return err
	}
	if err := printDetection(ctx, stdout, d, gen.Traffic, produced); err != nil {
		stopDaemon()
		return err
	}
	if err := stopDaemon(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	printLookCloser(stdout, cfg, *configPath, prefix, example)
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
	// Late: more than features.late_tolerance behind the latest event of an
	// entity; decided, and not added to that entity's windows.
	late, err := d.store.LateCounts(ctx, since)
	if err != nil {
		return fmt.Errorf("demo: summary: %w", err)
	}
	if late.Events == 0 {
		fmt.Fprintf(w, "  late events       0\n")
	} else {
		fmt.Fprintf(w, "  late events       %d, by the entity whose windows they were too late for\n", late.Events)
	}
	reasons := make([]string, 0, len(late.ByReason))
	for r := range late.ByReason {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		a, b := reasons[i], reasons[j]
		return late.ByReason[a] > late.ByReason[b] || late.ByReason[a] == late.ByReason[b] && a < b
	})
	for _, r := range reasons {
		fmt.Fprintf(w, "    %-10s %8d\n", r, late.ByReason[r])
	}
	return nil
}

// printExample reads back one decision of this run that a rule acted on and
// explains it: what happened, what was decided and why, with each matched
// rule's message from the live rule set and the feature values the
// decision recorded. It returns the event id, "" when no rule acted.
func printExample(ctx context.Context, w io.Writer, d *daemon, prefix string) (string, error) {
	sd, ok, err := d.store.ExampleDecision(ctx, prefix)
	if err != nil {
		return "", fmt.Errorf("demo: summary: %w", err)
	}
	fmt.Fprintf(w, "\nOne decision explained (read back from ClickHouse)\n")
	if !ok {
		fmt.Fprintf(w, "  (no rule sent an event of this run to review, challenge, block or lock)\n")
		return "", nil
	}
	fmt.Fprintf(w, "  event id     %s\n", sd.EventID)
	fmt.Fprintf(w, "  account      %s\n", sd.AccountID)
	fmt.Fprintf(w, "  type         %s\n", sd.EventType)
	fmt.Fprintf(w, "  event time   %s\n", time.UnixMilli(sd.EventTS).UTC().Format("2006-01-02 15:04:05.000 UTC"))
	fmt.Fprintf(w, "  action       %s\n", sd.Action)
	fmt.Fprintf(w, "  score        %d\n", sd.Score)
	fmt.Fprintf(w, "  reason       %s\n", reasonText(sd.Reason))
	live := d.holder.Load()
	if v := live.Version.String(); v != sd.RuleSetVersion {
		fmt.Fprintf(w, "  rule set     %s (live now: %s, whose rules are shown)\n", sd.RuleSetVersion, v)
	} else {
		fmt.Fprintf(w, "  rule set     %s\n", sd.RuleSetVersion)
	}
	fmt.Fprintf(w, "  matched rules\n")
	for _, id := range sd.MatchedRules {
		r := live.Rule(id)
		if r == nil {
			fmt.Fprintf(w, "    %s (not in the live rule set %s)\n", id, live.Version)
			continue
		}
		fmt.Fprintf(w, "    %-24s %s, score %+d\n", id, r.Action, r.Score)
		if r.Alert == "" {
			fmt.Fprintf(w, "      (no message to the user)\n")
		} else {
			fmt.Fprintf(w, "      alert: %q\n", r.Alert)
		}
	}
	fmt.Fprintf(w, "  feature values recorded\n")
	for _, f := range sd.Features {
		fmt.Fprintf(w, "    %s = %g\n", f.Name, f.Value)
	}
	if len(sd.Features) == 0 {
		fmt.Fprintf(w, "    (none)\n")
	}
	return sd.EventID, nil
}

// reasonText says what a stored decision's reason means.
func reasonText(reason string) string {
	switch reason {
	case "":
		return "none: the action is the strongest matched rule's"
	case engine.ReasonScoreThreshold:
		return reason + " (the matched rules' scores added up to a threshold)"
	case engine.ReasonAccountLocked:
		return reason + " (the account was already locked)"
	}
	return reason
}

// detectionWait bounds how long printDetection waits for the last
// decisions to be readable: the stored count can run a moment ahead of
// what a query by event time sees.
const detectionWait = 10 * time.Second

// printDetection prints, per fraud scenario of this run, the attacks and
// how many were stopped before money left (bench/detection: challenge,
// block or lock on or before the attack's first loss event), the events
// and how many were flagged (any action but allow), a total, and the
// honest accounts disturbed per 10,000. The generator makes the run's
// events again (it is deterministic for its configuration) for their
// attack ids and roles; each is matched with its stored decision.
func printDetection(ctx context.Context, w io.Writer, d *daemon, cfg traffic.Config, produced produce.Stats) error {
	actions := make([]string, produced.Events)
	missing := produced.Events
	deadline := time.Now().Add(detectionWait)
	for {
		var err error
		if missing, err = readActions(ctx, d.store, cfg, actions); err != nil {
			return fmt.Errorf("demo: summary: %w", err)
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: summary: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	g := traffic.New(cfg)
	tally := detection.NewTally()
	var ev event.Event
	for _, action := range actions {
		g.Next(&ev)
		if action == "" {
			continue
		}
		id, role := g.Attack()
		if err := tally.Add(detection.Event{ID: ev.ID, Account: ev.AccountID, Scenario: ev.Label, Attack: id,
			Role: role, Victim: g.Victim(), TS: ev.TS, Amount: ev.Amount, Action: action}); err != nil {
			return fmt.Errorf("demo: summary: %w", err)
		}
	}
	r := tally.Report()
	fmt.Fprintf(w, "\nDetection by fraud scenario (this run; stopped = challenge, block or lock on or before the attack's\n"+
		"first payment, transfer or redemption out of the victim; flagged = any action but allow)\n")
	fmt.Fprintf(w, "    %-22s %7s %12s %7s %12s\n", "scenario", "attacks", "stopped", "events", "flagged")
	row := func(s detection.Scenario) {
		fmt.Fprintf(w, "    %-22s %7d %7d %3.0f%% %7d %7d %3.0f%%\n", s.Name, s.Attacks, s.StoppedBeforeLoss,
			100*s.StoppedBeforeLossShare, s.Events, s.FlaggedEvents, 100*s.Recall)
	}
	for _, s := range r.Scenarios {
		row(s)
	}
	row(r.Total)
	if r.Total.Incomplete > 0 {
		fmt.Fprintf(w, "  (%d attacks still playing when the traffic ended are left out of the attack counts)\n", r.Total.Incomplete)
	}
	h := r.Honest
	fmt.Fprintf(w, "  honest accounts disturbed (challenged, blocked or locked): %d of %d = %.1f per 10,000\n",
		h.Disturbed, h.Accounts, h.DisturbedPer10k)
	fmt.Fprintf(w, "  owners of attacked accounts challenged, blocked or locked: %d of %d\n", h.VictimsDisturbed, h.Victims)
	fmt.Fprintf(w, "  honest events flagged (false alarms): %d of %d (%.2f%%)\n",
		h.FlaggedEvents, h.Events, percent(uint64(h.FlaggedEvents), uint64(h.Events)))
	if missing > 0 {
		fmt.Fprintf(w, "  (%d of %d events had no stored decision after %s and are left out)\n", missing, produced.Events, detectionWait)
	}
	return nil
}

// readActions fills actions[i] with the stored action of the run's event
// number i+1 (ids are cfg.IDPrefix and the number) and returns how many
// have none yet. Decisions are read by event time from the run's start,
// and other runs' are skipped by their prefix.
func readActions(ctx context.Context, store *chstore.Store, cfg traffic.Config, actions []string) (missing int, err error) {
	clear(actions)
	from := cfg.Start.UnixMilli()
	to := time.Now().Add(24 * time.Hour).UnixMilli() // past the last event, whose time ends about now
	err = store.ReplayDecisions(ctx, from, to, func(rd chstore.ReplayDecision) error {
		rest, ok := strings.CutPrefix(rd.EventID, cfg.IDPrefix)
		if !ok {
			return nil
		}
		if n, err := strconv.Atoi(rest); err == nil && n >= 1 && n <= len(actions) {
			actions[n-1] = rd.Action
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, a := range actions {
		if a == "" {
			missing++
		}
	}
	return missing, nil
}

// percent is n as a percentage of of, 0 when of is 0.
func percent(n, of uint64) float64 { return 100 * float64(n) / float64(max(of, 1)) }

// printLookCloser prints queries that show this run's decisions (scoped by
// the run's event id prefix; they run as printed with clickhouse-client on
// ClickHouse 18.16 and current releases), and how to watch decisions on
// Kafka with a broker that outlives the demo.
func printLookCloser(w io.Writer, cfg Config, configPath, prefix, example string) {
	client := "clickhouse-client"
	if host, port, err := net.SplitHostPort(cfg.ClickHouse.Addr); err == nil {
		if host != "" && host != "127.0.0.1" && host != "localhost" {
			client += " --host " + host
		}
		if port != "9000" {
			client += " --port " + port
		}
	}
	if u := cfg.ClickHouse.User; u != "" && u != "default" {
		client += " --user " + u
	}
	db, p := cfg.ClickHouse.Database, "'"+prefix+"'" // a plain identifier; a prefix of letters, digits and dashes
	fmt.Fprintf(w, "\nLook closer at this run (its event ids start with %s):\n", prefix)
	fmt.Fprintf(w, "  %s -q \"SELECT action, count() AS n FROM %s.decisions FINAL WHERE startsWith(event_id, %s) "+
		"GROUP BY action ORDER BY n DESC\"\n", client, db, p)
	fmt.Fprintf(w, "  %s -q \"SELECT label, action, count() AS n FROM (SELECT event_id, action FROM %s.decisions FINAL "+
		"WHERE startsWith(event_id, %s)) AS d ANY LEFT JOIN (SELECT event_id, label FROM %s.labels FINAL "+
		"WHERE startsWith(event_id, %s)) AS l USING event_id GROUP BY label, action ORDER BY label, n DESC\"\n",
		client, db, p, db, p)
	if example != "" {
		fmt.Fprintf(w, "  %s -q \"SELECT * FROM %s.decisions FINAL WHERE event_id = '%s' FORMAT Vertical\"\n", client, db, example)
	}
	riskd, addr := "RISKD_KAFKA_EMBEDDED=true", cfg.Kafka.Listen
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		// A listener on any free port cannot be named in advance: use the default.
		addr = DefaultConfig().Kafka.Listen
		riskd += " RISKD_KAFKA_LISTEN=" + addr
	}
	riskd += " go run ./cmd/riskd"
	if configPath != "" {
		riskd += " --config " + configPath
	}
	fmt.Fprintf(w, "Watch decisions on Kafka: the demo's broker stopped with it; run riskd with one that stays (README, \"Run it\"):\n")
	fmt.Fprintf(w, "  %s\n", riskd)
	// A prefix of its own, so a second gen is not decided as duplicates of the first.
	fmt.Fprintf(w, "  go run ./cmd/riskctl gen --brokers %s --events 10000 --id-prefix gen-%d-   # in a second terminal\n",
		addr, time.Now().Unix())
	fmt.Fprintf(w, "  kcat -b %s -C -t %s -o beginning -e -c 3\n", addr, cfg.Kafka.DecisionsTopic)
}

// eventSpan is how far past cfg.Start the latest of the first n events
// the generator makes with cfg is dated.
func eventSpan(cfg traffic.Config, n int) time.Duration {
	if cfg.Start.IsZero() {
		cfg.Start = time.Unix(0, 0)
	}
	g := traffic.New(cfg)
	var ev event.Event
	latest := cfg.Start.UnixMilli()
	for range n {
		g.Next(&ev)
		latest = max(latest, ev.TS)
	}
	return time.Duration(latest-cfg.Start.UnixMilli()) * time.Millisecond
}
