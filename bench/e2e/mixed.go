package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"riskd/bench/traffic"
)

// The mixed run (issue 17): the decide API's p99 against /healthz's at
// mixedRPS while the stream runs at half the saturation rate, both on the
// same riskd at the same time, as they would in production.
const (
	mixedRPS = 10_000
	// mixedLead is how long the stream runs before the HTTP load starts,
	// so riskd has settled into it.
	mixedLead = 2 * time.Second
	// mixedWarmup starts each HTTP step, unmeasured: new connections and a
	// route riskd has not served yet.
	mixedWarmup = time.Second
	// mixedSettle bounds the wait for the stream's last events after the
	// load: the run's figures do not depend on it, so a slow drain is
	// reported rather than waited out.
	mixedSettle = 20 * time.Second
)

// mixedResult is the mixed run.
type mixedResult struct {
	StreamRatePerSec float64 `json:"stream_rate_per_sec"`
	StreamSent       int     `json:"stream_sent"`
	// Stream is riskd's riskd_kafka_to_decision_seconds over the whole run,
	// from before the stream started to after it settled; it also holds
	// the decide API's events read back from their input topic
	// (decide.publish_events), whose observations end at the duplicate
	// check.
	Stream      histLatency   `json:"stream_riskd_histogram"`
	RequestRate float64       `json:"http_target_rps"`
	Warmup      time.Duration `json:"http_warmup_ns"`
	Healthz     loadStep      `json:"healthz"`
	Decide      *loadStep     `json:"decide"` // nil when the decide API is not served
	DecideNote  string        `json:"decide_note,omitempty"`
	// DecideToHealthzP99 is decide's p99 over healthz's (issue 17: at
	// most 2).
	DecideToHealthzP99 float64 `json:"decide_to_healthz_p99"`
	StateSnapshots     float64 `json:"state_snapshots_in_window"`
	// HandedOver and HandedOverLost count the decide calls that fell back
	// before their event reached a shard (riskd_decide_handed_over_total):
	// appended to their input topic for the stream to decide, or lost.
	HandedOver     float64 `json:"decide_handed_over"`
	HandedOverLost float64 `json:"decide_handed_over_lost"`
	RiskdCores     float64 `json:"riskd_cores"`
	HarnessCores   float64 `json:"harness_cores"`
	Load1          float64 `json:"load1"`
}

// mixedRun streams events at fraction of the saturation rate and, while it
// runs, offers mixedRPS requests/s to GET /healthz, then to POST
// /v1/decide, each step after a warm-up. The HTTP client, producer and
// broker all run in the harness, on the same cores as riskd.
func mixedRun(ctx context.Context, smp *sampler, s settings, brokers []string, stamp string, fraction, e2eRate float64,
	proc *riskdProc, decide bool, token string) (mixedResult, error) {
	res := mixedResult{StreamRatePerSec: fraction * e2eRate, RequestRate: mixedRPS, Warmup: mixedWarmup}
	step := s.LoadStep
	smp.setPhase("mixed")
	logf("mixed run: stream at %.0f events/s (%.0f%% of saturation), and during it %d req/s on GET /healthz, then on "+
		"POST /v1/decide, each %v after a %v warm-up", res.StreamRatePerSec, 100*fraction, mixedRPS, step, mixedWarmup)

	var bodies [][]byte
	if decide {
		bodies = decideRequests(s, s.Seed+3, "mix-dec-"+stamp+"-", int(mixedRPS*(mixedWarmup+step).Seconds())+1000)
	} else {
		res.DecideNote = "no decide API in this build"
	}
	// The first scrape comes before the probe, so the probe's decision is
	// among those the settle below waits for.
	m0, err := smp.scrapeNow(ctx)
	if err != nil {
		return res, fmt.Errorf("mixed run: %w", err)
	}
	probed := 0
	if decide {
		status, answer, err := probe(ctx, proc.httpURL+"/v1/decide", token, bodies[0])
		if err != nil {
			return res, fmt.Errorf("mixed run: %w", err)
		}
		if status != http.StatusOK {
			res.DecideNote = fmt.Sprintf("POST /v1/decide answered %d (%s)", status, answer)
			decide = false
		} else {
			probed = 1
		}
	}
	self0, _ := readProc(os.Getpid())
	riskd0, _ := readProc(proc.pid())
	start := time.Now()
	stop := make(chan struct{})
	pp := pacedProducer{brokers: brokers, rate: res.StreamRatePerSec, stop: stop,
		// An upper bound: the stream stops when the HTTP steps are done.
		dur: mixedLead + 2*(mixedWarmup+step) + time.Minute,
		gen: traffic.Config{Accounts: s.Accounts, Seed: s.Seed + 4, FraudRate: s.FraudRate, Start: start,
			EventsPerSecond: res.StreamRatePerSec, FlatRate: true, IDPrefix: "mix-" + stamp + "-"}}
	var wg sync.WaitGroup
	var sent int
	var produceErr error
	wg.Go(func() { sent, produceErr = pp.run(ctx) })
	decided, httpErr := mixedHTTP(ctx, &res, step, proc.httpURL, token, bodies, decide)
	close(stop)
	wg.Wait()
	if httpErr != nil {
		return res, httpErr
	}
	if produceErr != nil {
		return res, fmt.Errorf("mixed run: %w", produceErr)
	}
	elapsed := time.Since(start)
	res.StreamSent = sent
	res.Load1 = load1()
	self1, _ := readProc(os.Getpid())
	riskd1, _ := readProc(proc.pid())
	res.HarnessCores = (self1.CPU - self0.CPU).Seconds() / elapsed.Seconds()
	res.RiskdCores = (riskd1.CPU - riskd0.CPU).Seconds() / elapsed.Seconds()

	// Every streamed event and every decide answered 2xx is settled once
	// durable (read-backs of decided events are not counted as settled).
	want := m0.settled() + float64(sent+probed+decided)
	settleCtx, cancel := context.WithTimeout(ctx, mixedSettle)
	err = smp.waitSettled(settleCtx, want)
	cancel()
	if err != nil && ctx.Err() == nil {
		logf("warning: mixed run: riskd had not settled %.0f messages %v after the load (%v); its histogram "+
			"misses the last of them", want, mixedSettle, err)
	} else if err != nil {
		return res, fmt.Errorf("mixed run: %w", err)
	}
	m1, err := smp.scrapeNow(ctx)
	if err != nil {
		return res, fmt.Errorf("mixed run: %w", err)
	}
	if res.Stream, err = latencyFrom(m0, m1, kafkaToDecision, "riskd_kafka_to_decision_seconds over the mixed run, "+
		"stream events and the decide API's events read back"); err != nil {
		return res, fmt.Errorf("mixed run: %w", err)
	}
	res.StateSnapshots = snapshotsBetween(m0, m1)
	const handedOver = `riskd_decide_handed_over_total{outcome="appended"}`
	const handedOverLost = `riskd_decide_handed_over_total{outcome="lost"}`
	res.HandedOver, res.HandedOverLost = m1[handedOver]-m0[handedOver], m1[handedOverLost]-m0[handedOverLost]
	if res.HandedOver+res.HandedOverLost > 0 {
		logf("mixed run: %.0f decide calls fell back before their event reached a shard: %.0f handed to the stream, %.0f lost",
			res.HandedOver+res.HandedOverLost, res.HandedOver, res.HandedOverLost)
	}
	logf("mixed run: %d events streamed at %.0f/s; riskd's %s p50 %.1f ms, p99 %.1f ms; %.0f engine state snapshots; "+
		"CPU cores: riskd %.2f, harness (producer, broker, HTTP client) %.2f; load %.2f", sent, res.StreamRatePerSec,
		kafkaToDecision, res.Stream.P50MS, res.Stream.P99MS, res.StateSnapshots, res.RiskdCores, res.HarnessCores, res.Load1)
	if res.Decide != nil {
		res.DecideToHealthzP99 = ratio(res.Decide.P99MS, res.Healthz.P99MS)
		logf("mixed run: decide p99 %.2f ms / healthz p99 %.2f ms = %.2fx (at most 2x wanted); load %.2f",
			res.Decide.P99MS, res.Healthz.P99MS, res.DecideToHealthzP99, res.Load1)
	}
	return res, nil
}

// mixedHTTP waits mixedLead, then offers mixedRPS to base's /healthz and
// then, when decide, to its /v1/decide with bodies, each for a warm-up and then the
// measured step recorded in res. It returns how many decide requests were
// answered 2xx, warm-ups included.
func mixedHTTP(ctx context.Context, res *mixedResult, step time.Duration, base, token string, bodies [][]byte,
	decide bool) (int, error) {
	if err := sleepCtx(ctx, mixedLead); err != nil {
		return 0, fmt.Errorf("mixed run: %w", err)
	}
	client, closeIdle := newLoadClient()
	defer closeIdle()
	seq := 0
	measure := func(route string, newReq request) (warm, st loadStep, err error) {
		if warm, err = offer(ctx, client, mixedRPS, mixedWarmup, newReq, &seq); err != nil {
			return warm, st, fmt.Errorf("mixed run %s: %w", route, err)
		}
		if st, err = offer(ctx, client, mixedRPS, step, newReq, &seq); err != nil {
			return warm, st, fmt.Errorf("mixed run %s: %w", route, err)
		}
		logf("  mixed run, %s (after a %v warm-up in which %d of %.0f offered were answered 2xx):", route, mixedWarmup,
			warm.OK, warm.TargetRPS*mixedWarmup.Seconds())
		logStep(st)
		return warm, st, nil
	}
	_, h, err := measure("GET /healthz", getReq(base+"/healthz"))
	if err != nil {
		return 0, err
	}
	res.Healthz = h
	if !decide {
		return 0, nil
	}
	seq = 0
	warm, d, err := measure("POST /v1/decide", postReq(base+"/v1/decide", token, bodies[1:]))
	if err != nil {
		return warm.OK, err
	}
	res.Decide = &d
	return warm.OK + d.OK, nil
}
