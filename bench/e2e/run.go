package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"riskd/streams"
	"riskd/streams/chstore"
)

// run is the whole benchmark, phase by phase.
func run(ctx context.Context, s settings) error {
	stamp := time.Now().UTC().Format("20060102T150405Z")
	r := &results{Stamp: stamp, Command: "make bench  (go run ./bench/e2e " + strings.Join(os.Args[1:], " ") + ")",
		Machine: readMachine(), Settings: s}
	r.Machine.GitCommit = gitCommit()
	if err := os.MkdirAll(s.OutDir, 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	scratch, err := os.MkdirTemp("", "riskd-e2e-")
	if err != nil {
		return fmt.Errorf("scratch dir: %w", err)
	}
	defer os.RemoveAll(scratch)

	logf("building riskd")
	bin, err := buildRiskd(ctx, scratch)
	if err != nil {
		return err
	}
	ch, err := openClickHouse(ctx, s.ClickHouse, s.Database)
	if err != nil {
		return err
	}
	defer ch.close()
	profDB := s.Database + "_prof"
	if err := ch.reset(ctx, s.Database, profDB); err != nil {
		return err
	}

	broker, err := streams.StartEmbedded("127.0.0.1:0", "")
	if err != nil {
		return err
	}
	defer broker.Close()
	brokers := []string{broker.Addr()}
	topics := streams.DefaultTopics()
	if err := createTopics(ctx, brokers, s.Partitions, s.OutputMaxBytes, topics); err != nil {
		return err
	}
	logf("embedded broker on %s; producing %d events over %d accounts", broker.Addr(), s.Events, s.Accounts)

	chPID, chHow := clickHouseServer(s.ClickHouse)
	logf("ClickHouse server process: pid %d (%s)", chPID, chHow)
	chIdle0, chIdleErr := readProc(chPID)
	idleFrom := time.Now()

	satPrefix := "sat-" + stamp + "-"
	st, genSetup, err := preProduce(ctx, s, brokers, satPrefix)
	if err != nil {
		return err
	}
	r.Produce = produceResult{Events: st.Events, Fraud: st.Fraud, GenSetup: genSetup, Duration: st.Duration,
		EventsPerSec: float64(st.Events) / st.Duration.Seconds(), Load1: load1()}
	logf("produced %d events (%d fraud) in %.1fs (generator setup %.1fs); load %.2f", st.Events, st.Fraud,
		st.Duration.Seconds(), genSetup.Seconds(), r.Produce.Load1)

	ends, err := endOffsets(ctx, brokers, topics.Inputs, s.Partitions)
	if err != nil {
		return err
	}
	logf("bare kafka-go consumer draining the inputs")
	if r.Bare, err = bareConsume(ctx, brokers, ends); err != nil {
		return err
	}
	r.BareConsumePerSec = r.Bare.EventsPerSec
	logf("bare consumer: %d messages in %.2fs = %.0f/s; load %.2f", r.Bare.Messages, r.Bare.Duration.Seconds(),
		r.Bare.EventsPerSec, r.Bare.Load1)

	r.Saturation.ClickHousePID, r.Saturation.ClickHouseFoundBy = chPID, chHow
	if chIdle1, err := readProc(chPID); err == nil && chIdleErr == nil && chPID > 0 {
		r.Saturation.ClickHouseBackground = (chIdle1.CPU - chIdle0.CPU).Seconds() / time.Since(idleFrom).Seconds()
		logf("ClickHouse server used %.3f cores while riskd was not running (produce, bare consumer)",
			r.Saturation.ClickHouseBackground)
	}

	token := "bench-" + stamp
	opts := riskdOptions{Binary: bin, Dir: scratch, Brokers: broker.Addr(), Group: "riskd-bench-" + stamp,
		Partitions: s.Partitions, ClickHouse: s.ClickHouse, DB: s.Database,
		AuthTokens: []string{"bench:hook:" + token}, StateKafka: s.StateKafka, SnapshotInterval: s.SnapshotInterval,
		DecidePublish: s.DecidePublish, GCPercent: s.GCPercent, MemoryLimit: s.MemoryLimit, Shards: s.Shards}
	admin := ""
	if s.TraceFor > 0 || s.RiskdHeap || s.RiskdCPU > 0 {
		admin = "bench-admin-" + stamp
		opts.AuthTokens = append(opts.AuthTokens, "bench-admin:admin:"+admin)
		opts.Pprof = true
	}
	logf("starting riskd")
	proc, err := startRiskd(ctx, opts)
	if errors.Is(err, errConfigRejected) {
		logf("riskd rejected auth.tokens (no decide API in this build); starting it without")
		opts.AuthTokens = nil
		proc, err = startRiskd(ctx, opts)
	}
	if err != nil {
		return err
	}
	r.Saturation.DecideEnabled = len(opts.AuthTokens) > 0
	proc.admin = admin
	defer proc.stop(10 * time.Second)

	smp := newSampler(proc.httpURL, proc.pid(), s.SampleEvery)
	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { smp.run(sctx) })
	defer func() {
		stopSampling()
		wg.Wait()
	}()

	if err := saturation(ctx, r, smp, proc, ch, s, st.Events); err != nil {
		return err
	}
	if s.RiskdHeap {
		if err := proc.heap(ctx, admin, filepath.Join(s.OutDir, "riskd-heap.pprof")); err != nil {
			return err
		}
	}
	store, err := chstore.Open(ctx, chstore.Config{Addr: s.ClickHouse, Database: s.Database})
	if err != nil {
		return err
	}
	if r.Saturation.StoredInCH, err = store.CountDecisions(ctx, time.Time{}); err != nil {
		store.Close()
		return err
	}
	store.Close()
	logf("ClickHouse holds %d decisions (want %d)", r.Saturation.StoredInCH, st.Events)

	counts, err := ch.detection(ctx, satPrefix)
	if err != nil {
		return err
	}
	r.Detection = scoreDetection(counts)
	r.Precision, r.Recall = r.Detection.Precision, r.Detection.Recall
	logf("detection: precision %.3f recall %.3f over %d fraud events", r.Precision, r.Recall, r.Detection.FraudEvents)
	wallet, missing, err := walletDetection(ctx, ch, s, satPrefix, st.Events)
	if err != nil {
		return err
	}
	r.Detection.Wallet = &wallet
	if missing > 0 {
		logf("warning: %d events have no stored decision; the wallet detection report leaves them out", missing)
	}
	logf("detection as a wallet counts it: %d of %d attacks stopped before loss, %.1f honest accounts disturbed per 10,000",
		wallet.Total.StoppedBeforeLoss, wallet.Total.Attacks, wallet.Honest.DisturbedPer10k)

	// The headline latency is at s.LatencyFactor of saturation; lower
	// rates after it show where the knee is on this machine.
	base := r.E2EEventsPerSec
	if s.LatencyBase > 0 {
		base = s.LatencyBase
		logf("latency phases: fractions of %.0f events/s (-latency-base), not of the measured %.0f", base, r.E2EEventsPerSec)
	}
	for i, f := range append([]float64{s.LatencyFactor}, latencyLadder...) {
		measure := s.LatencyFor
		if i > 0 {
			measure = s.LatencyFor / 2
		}
		var trace func(context.Context) error
		if i == 0 && s.TraceFor > 0 {
			trace = func(ctx context.Context) error {
				return proc.trace(ctx, admin, s.TraceFor, filepath.Join(s.OutDir, "latency-trace.out"))
			}
		}
		l, err := latencyPhase(ctx, smp, ch, s, brokers, stamp, f, base, measure, proc.pid(), trace)
		if err != nil {
			return err
		}
		if i == 0 {
			r.Latency = l
			r.E2EP50MS, r.E2EP99MS, r.E2EP999MS = l.P50MS, l.P99MS, l.P999MS
			r.RiskdP50MS, r.RiskdP99MS = l.Riskd.P50MS, l.Riskd.P99MS
		}
		r.LatencyLadder = append(r.LatencyLadder, l)
	}

	mixed, err := mixedRun(ctx, smp, s, brokers, stamp, s.LatencyFactor, base, proc,
		r.Saturation.DecideEnabled, token)
	if err != nil {
		return err
	}
	r.Mixed = &mixed
	r.MixedHealthzP99MS = &mixed.Healthz.P99MS
	if mixed.Decide != nil {
		r.MixedDecideP99MS = &mixed.Decide.P99MS
	}

	smp.setPhase("healthz")
	logf("HTTP load on GET /healthz")
	if r.Healthz, err = ramp(ctx, healthRates, s.LoadStep, getReq(proc.httpURL+"/healthz")); err != nil {
		return err
	}
	r.HealthzRPS, r.HealthzP99MS = r.Healthz.MaxHeldRPS, r.Healthz.P99MS

	smp.setPhase("decide")
	if err := decidePhase(ctx, r, proc, s, token, stamp); err != nil {
		return err
	}

	stopSampling()
	wg.Wait()
	if p, err := readProc(proc.pid()); err == nil {
		r.PeakRSSBytes = p.HWMBytes
	}
	if err := proc.stop(30 * time.Second); err != nil {
		logf("warning: %v", err)
	}
	r.Timeline = smp.timeline()

	if !s.SkipProfile {
		logf("profiling the pipeline in-process for %v", s.ProfileFor)
		pr, err := profilePipeline(ctx, s, brokers, profDB, stamp)
		if err != nil {
			return err
		}
		r.Profile = &pr
		logf("in-process pipeline: %.0f decisions in %.1fs = %.0f/s while profiled; load %.2f", pr.Decided,
			pr.Duration.Seconds(), pr.EventsPerSec, pr.Load1)
	}

	if s.ScoreBenchtime != "" {
		sb := runScoreBench(ctx, scoreReference, s.ScoreBenchtime)
		r.ScoreBench = &sb
		// The engine alone on as many events as the saturation phase
		// scored (its population is make bench's million accounts).
		at := runScoreBench(ctx, scoreAtScale, fmt.Sprintf("%dx", st.Events))
		r.ScoreAtScale = &at
	}

	r.setTargets()
	r.setGoals()
	path, err := r.write(s.OutDir)
	if err != nil {
		return err
	}
	if err := plotTimeline(filepath.Join(s.OutDir, "latest.png"), r.Timeline); err != nil {
		return err
	}
	printSummary(r, path)
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
