package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"riskd/bench/traffic"
)

const latencyDefinition = "decided_at_ms - event_ts_ms from the decisions table: event_ts_ms is the producer's " +
	"wall clock (ms) when it handed the event to the Kafka writer, decided_at_ms riskd's wall clock (ms) when the " +
	"shard decided it; same host, same clock; includes produce, broker, fetch, shard queue and scoring, " +
	"not the ClickHouse write"

// kafkaToDecision is riskd's own latency histogram, read around each
// latency phase.
const kafkaToDecision = "riskd_kafka_to_decision_seconds"

const riskdLatencyDefinition = kafkaToDecision + " scraped from riskd's /metrics when the warm-up ended and " +
	"again when the producer stopped; the difference of the cumulative bucket counts, quantiles interpolated " +
	"linearly within a bucket (buckets double from 0.5 ms). Each observation runs from the message's Kafka " +
	"timestamp (set by the producer's client as it encodes the batch, ms resolution) to the shard's decision. " +
	"It holds the decisions riskd made in the measured window, whichever events they were for: warm-up events " +
	"still queued when it began are in, events still queued when it ended are not"

// latencyLadder are the lower rates (fractions of saturation) measured
// after the headline one.
var latencyLadder = []float64{0.25, 0.1}

// latencyWarmup is left out of the latency percentiles (see latencyResult).
const latencyWarmup = 5 * time.Second

// histLatency is a latency distribution read from one of riskd's
// histograms over a window.
type histLatency struct {
	Decisions float64 `json:"decisions"`
	MeanMS    float64 `json:"mean_ms"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	P999MS    float64 `json:"p999_ms"`
	// P99BucketMS are the bounds of the bucket the p99 was interpolated in:
	// the true p99 lies between them.
	P99BucketMS [2]float64 `json:"p99_bucket_ms"`
	// AboveLastBucket is set when a quantile fell in the +Inf bucket and
	// was reported as the last finite bound (the true value is higher).
	AboveLastBucket bool   `json:"above_last_bucket,omitempty"`
	Definition      string `json:"definition"`
}

// latencyFrom turns the difference of two scrapes of a histogram in
// seconds into milliseconds.
func latencyFrom(before, after metrics, name, definition string) (histLatency, error) {
	b, err := histogramOf(before, name)
	if err != nil {
		return histLatency{}, err
	}
	a, err := histogramOf(after, name)
	if err != nil {
		return histLatency{}, err
	}
	d, err := a.sub(b)
	if err != nil {
		return histLatency{}, fmt.Errorf("%s: %w", name, err)
	}
	l := histLatency{Decisions: d.Count, MeanMS: 1000 * ratio(d.Sum, d.Count), Definition: definition}
	var inf50, inf99, inf999 bool
	var lo, hi float64
	l.P50MS, _, _, inf50, _ = d.quantile(0.5)
	l.P99MS, lo, hi, inf99, _ = d.quantile(0.99)
	l.P999MS, _, _, inf999, _ = d.quantile(0.999)
	l.P50MS, l.P99MS, l.P999MS = 1000*l.P50MS, 1000*l.P99MS, 1000*l.P999MS
	l.P99BucketMS = [2]float64{1000 * lo, 1000 * hi}
	l.AboveLastBucket = inf50 || inf99 || inf999
	return l, nil
}

// latencyPhase offers events at a fixed fraction of the measured
// saturation rate, event time = wall clock, and reads the
// event-to-decision latencies back from ClickHouse and from riskd's own
// histogram. trace, when not nil, runs as the warm-up ends (an execution
// trace of riskd); its error is logged, not returned.
func latencyPhase(ctx context.Context, smp *sampler, ch *chConn, s settings, brokers []string, stamp string,
	fraction, e2eRate float64, measure time.Duration, riskdPID int, trace func(context.Context) error) (latencyResult, error) {
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
	// riskd's histogram is scraped as the warm-up ends, while the
	// producer goes on.
	var wg sync.WaitGroup
	var hist0 metrics
	var histErr error
	scrapeCtx, stopScrape := context.WithCancel(ctx)
	wg.Go(func() {
		if histErr = sleepCtx(scrapeCtx, warmup); histErr == nil {
			hist0, histErr = smp.scrapeNow(scrapeCtx)
		}
		if histErr == nil && trace != nil {
			if err := trace(scrapeCtx); err != nil {
				logf("warning: no execution trace of riskd: %v", err)
			}
		}
	})
	sent, err := pp.run(ctx)
	if err != nil {
		stopScrape()
		wg.Wait()
		return latencyResult{}, err
	}
	wg.Wait()
	stopScrape()
	if histErr != nil {
		return latencyResult{}, fmt.Errorf("latency phase: %w", histErr)
	}
	// The measured window ends with the producer: a scrape after the
	// backlog drained would add the end's queued events to the start's.
	hist1, err := smp.scrapeNow(ctx)
	if err != nil {
		return latencyResult{}, fmt.Errorf("latency phase: %w", err)
	}
	produced := time.Since(start)
	load := load1()
	self1, _ := readProc(os.Getpid())
	riskd1, _ := readProc(riskdPID)
	if err := smp.waitSettled(ctx, before+float64(sent)); err != nil {
		return latencyResult{}, fmt.Errorf("latency phase: %w", err)
	}
	riskdLat, err := latencyFrom(hist0, hist1, kafkaToDecision, riskdLatencyDefinition)
	if err != nil {
		return latencyResult{}, fmt.Errorf("latency phase: %w", err)
	}
	snapshots := snapshotsBetween(hist0, hist1)
	stages := stagesFrom(hist0, hist1)
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
		RiskdCores:   (riskd1.CPU - riskd0.CPU).Seconds() / produced.Seconds(), Load1: load,
		Riskd: riskdLat, StateSnapshots: snapshots, Stages: stages}
	if len(lats) > 0 {
		l.MaxMS = float64(lats[len(lats)-1])
	}
	logf("latency at %.0f/s over %d events after warm-up: p50 %.0f ms, p99 %.0f ms, p99.9 %.0f ms, max %.0f ms "+
		"(warm-up p99 %.0f ms); CPU cores: riskd %.2f, harness (producer + broker) %.2f; load %.2f",
		rate, len(lats), l.P50MS, l.P99MS, l.P999MS, l.MaxMS, l.WarmupP99MS, l.RiskdCores, l.HarnessCores, l.Load1)
	logf("  riskd's %s over %.0f decisions: p50 %.1f ms, p99 %.1f ms (in its %g..%g ms bucket), p99.9 %.1f ms, mean %.1f ms; "+
		"%.0f engine state snapshots in the window; load %.2f",
		kafkaToDecision, riskdLat.Decisions, riskdLat.P50MS, riskdLat.P99MS, riskdLat.P99BucketMS[0], riskdLat.P99BucketMS[1],
		riskdLat.P999MS, riskdLat.MeanMS, snapshots, l.Load1)
	if len(stages) > 0 {
		var b strings.Builder
		for _, name := range stageNames {
			if st, ok := stages[name]; ok {
				fmt.Fprintf(&b, " %s %.1f/%.1f/%.1f", name, st.P50MS, st.P99MS, st.MeanMS)
			}
		}
		logf("  where it went (riskd_stage_seconds, p50/p99/mean ms):%s", b.String())
	}
	return l, nil
}

// stageNames are riskd_stage_seconds' stages in an event's order.
var stageNames = []string{"fetch", "merge", "queue", "score", "output"}

// stagesFrom reads riskd_stage_seconds between two scrapes, stage by
// stage; a riskd without the metric gives none.
func stagesFrom(before, after metrics) map[string]histLatency {
	out := map[string]histLatency{}
	for _, name := range stageNames {
		l, err := latencyFrom(stageSeries(before, name), stageSeries(after, name), "riskd_stage_seconds",
			"riskd_stage_seconds{stage=\""+name+"\"} over the measured window")
		if err == nil {
			out[name] = l
		}
	}
	return out
}

// stageSeries keeps the series of one stage of riskd_stage_seconds,
// named as an unlabelled histogram's (histogramOf reads those).
func stageSeries(m metrics, stage string) metrics {
	const name = "riskd_stage_seconds"
	out := metrics{}
	for series, v := range m {
		i := strings.IndexByte(series, '{')
		if i < 0 || !strings.HasPrefix(series, name) {
			continue
		}
		if st, ok := labelValue(series[i:], "stage"); !ok || st != stage {
			continue
		}
		switch base := series[:i]; base {
		case name + "_bucket":
			le, _ := labelValue(series[i:], "le")
			out[base+`{le="`+le+`"}`] = v
		case name + "_sum", name + "_count":
			out[base] = v
		}
	}
	return out
}

// snapshotsBetween is how many engine state snapshots riskd took (saved,
// failed or abandoned) between two scrapes. The shards pause for each cut
// (bench/RESULTS.md, "State in Kafka"), so a latency window holding one
// says where its tail may come from.
func snapshotsBetween(before, after metrics) float64 {
	return after["riskd_state_snapshots_total"] - before["riskd_state_snapshots_total"]
}
