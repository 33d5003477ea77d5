package main

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// sample is one point of the run's timeline, from riskd's /metrics and
// /proc.
type sample struct {
	T        float64 `json:"t_s"` // seconds since riskd was ready
	Phase    string  `json:"phase"`
	Consumed float64 `json:"consumed"`
	Settled  float64 `json:"settled"` // decided durably + duplicates + DLQ
	Lag      float64 `json:"lag"`     // riskd_consumer_lag summed over partitions
	HeapUse  float64 `json:"heap_inuse_bytes"`
	Accounts float64 `json:"active_accounts"`
	CPUSec   float64 `json:"cpu_s"`
	RSS      uint64  `json:"rss_bytes"`
	Load1    float64 `json:"load1"`
}

// sampler scrapes riskd every interval until its context ends. The phase
// label is set by the harness as it moves on.
type sampler struct {
	url      string
	pid      int
	interval time.Duration
	t0       time.Time
	client   *http.Client

	mu      sync.Mutex
	phase   string
	samples []sample
	last    metrics
}

func newSampler(url string, pid int, interval time.Duration) *sampler {
	return &sampler{url: url + "/metrics", pid: pid, interval: interval, t0: time.Now(),
		client: &http.Client{Timeout: 5 * time.Second}, phase: "saturation"}
}

// run samples until ctx ends; a failed scrape skips that point.
func (s *sampler) run(ctx context.Context) { everyTick(ctx, s.interval, s.once) }

// everyTick calls fn now and then every interval until ctx ends.
func everyTick(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *sampler) once(ctx context.Context) {
	m, err := scrape(ctx, s.client, s.url)
	if err != nil {
		return
	}
	p, _ := readProc(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = m
	s.samples = append(s.samples, sample{
		T: time.Since(s.t0).Seconds(), Phase: s.phase,
		Consumed: m["riskd_consumed_total"], Settled: m.settled(), Lag: m["riskd_consumer_lag"],
		HeapUse: m["go_memstats_heap_inuse_bytes"], Accounts: m["riskd_active_accounts"],
		CPUSec: p.CPU.Seconds(), RSS: p.RSSBytes, Load1: load1(),
	})
}

// scrapeNow scrapes riskd at once, outside the sampling ticks, for figures
// that need a scrape at a given moment (a histogram before and after a
// window).
func (s *sampler) scrapeNow(ctx context.Context) (metrics, error) {
	return scrape(ctx, s.client, s.url)
}

// setPhase labels the samples taken from now on.
func (s *sampler) setPhase(name string) {
	s.mu.Lock()
	s.phase = name
	s.mu.Unlock()
}

// latest returns the last scrape.
func (s *sampler) latest() metrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// timeline returns a copy of the samples so far.
func (s *sampler) timeline() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.samples...)
}

// waitSettled blocks until riskd has settled at least n messages,
// printing progress every few seconds.
func (s *sampler) waitSettled(ctx context.Context, n float64) error {
	tick := time.NewTicker(s.interval / 2)
	defer tick.Stop()
	next := time.Now().Add(5 * time.Second)
	for {
		m := s.latest()
		if m != nil && m.settled() >= n {
			return nil
		}
		if time.Now().After(next) {
			next = next.Add(5 * time.Second)
			logf("  riskd: consumed %.0f, settled %.0f of %.0f, lag %.0f", m["riskd_consumed_total"], m.settled(), n,
				m["riskd_consumer_lag"])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
