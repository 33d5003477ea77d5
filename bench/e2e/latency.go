package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"riskd/bench/traffic"
)

const latencyDefinition = "decided_at_ms - event_ts_ms from the decisions table: event_ts_ms is the producer's " +
	"wall clock (ms) when it handed the event to the Kafka writer, decided_at_ms riskd's wall clock (ms) when the " +
	"shard decided it; same host, same clock; includes produce, broker, fetch, shard queue and scoring, " +
	"not the ClickHouse write"

// latencyLadder are the lower rates (fractions of saturation) measured
// after the headline one.
var latencyLadder = []float64{0.25, 0.1}

// latencyWarmup is left out of the latency percentiles (see latencyResult).
const latencyWarmup = 5 * time.Second

// latencyPhase offers events at a fixed fraction of the measured
// saturation rate, event time = wall clock, and reads the
// event-to-decision latencies back from ClickHouse.
func latencyPhase(ctx context.Context, smp *sampler, ch *chConn, s settings, brokers []string, stamp string,
	fraction, e2eRate float64, measure time.Duration, riskdPID int) (latencyResult, error) {
	rate := fraction * e2eRate
	prefix := fmt.Sprintf("lat-%s-%02.0f-", stamp, 100*fraction)
	smp.setPhase(fmt.Sprintf("latency %.0f%%", 100*fraction))
	before := smp.latest().settled()
	warmup := latencyWarmup
	logf("latency phase: %.0f events/s (%.0f%% of saturation) for %v, the first %v warm-up",
		rate, 100*fraction, warmup+measure, warmup)
	self0, _ := readProc(os.Getpid())
	riskd0, _ := readProc(riskdPID)
	start := time.Now()
	pp := pacedProducer{brokers: brokers, rate: rate, dur: warmup + measure, gen: traffic.Config{
		Accounts: s.Accounts, Seed: s.Seed + 1, FraudRate: s.FraudRate, Start: start,
		EventsPerSecond: rate, FlatRate: true, IDPrefix: prefix}} // event time tracks the wall clock
	sent, err := pp.run(ctx)
	if err != nil {
		return latencyResult{}, err
	}
	produced := time.Since(start)
	load := load1()
	self1, _ := readProc(os.Getpid())
	riskd1, _ := readProc(riskdPID)
	if err := smp.waitSettled(ctx, before+float64(sent)); err != nil {
		return latencyResult{}, fmt.Errorf("latency phase: %w", err)
	}
	measuredFrom := start.Add(warmup).UnixMilli()
	lats, err := ch.latenciesMS(ctx, prefix, measuredFrom, 1<<62)
	if err != nil {
		return latencyResult{}, err
	}
	early, err := ch.latenciesMS(ctx, prefix, 0, measuredFrom)
	if err != nil {
		return latencyResult{}, err
	}
	l := latencyResult{Fraction: fraction, RatePerSec: rate, Sent: sent, Measured: len(lats),
		Definition: latencyDefinition, Warmup: warmup, WarmupP99MS: float64(quantile(early, 0.99)),
		P50MS: float64(quantile(lats, 0.5)), P99MS: float64(quantile(lats, 0.99)),
		P999MS:       float64(quantile(lats, 0.999)),
		HarnessCores: (self1.CPU - self0.CPU).Seconds() / produced.Seconds(),
		RiskdCores:   (riskd1.CPU - riskd0.CPU).Seconds() / produced.Seconds(), Load1: load}
	if len(lats) > 0 {
		l.MaxMS = float64(lats[len(lats)-1])
	}
	logf("latency at %.0f/s over %d events after warm-up: p50 %.0f ms, p99 %.0f ms, p99.9 %.0f ms, max %.0f ms "+
		"(warm-up p99 %.0f ms); CPU cores: riskd %.2f, harness (producer + broker) %.2f; load %.2f",
		rate, len(lats), l.P50MS, l.P99MS, l.P999MS, l.MaxMS, l.WarmupP99MS, l.RiskdCores, l.HarnessCores, l.Load1)
	return l, nil
}
