package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// healthRates and decideRates are the offered rates of the HTTP loads.
var (
	healthRates = []float64{1000, 2500, 5000, 10000, 20000, 32000}
	decideRates = []float64{1000, 2500, 5000, 10000, 20000}
)

// loadStep is one rate of an open-loop HTTP load.
type loadStep struct {
	TargetRPS   float64 `json:"target_rps"`
	AchievedRPS float64 `json:"achieved_rps"`
	Sent        int     `json:"sent"`
	OK          int     `json:"ok"`
	Errors      int     `json:"errors"`  // transport errors and non-2xx answers
	Dropped     int     `json:"dropped"` // not sent: every worker busy and the queue full
	P50MS       float64 `json:"p50_ms"`
	P99MS       float64 `json:"p99_ms"`
	P999MS      float64 `json:"p999_ms"`
	Held        bool    `json:"held"`
	Load1       float64 `json:"load1"` // at the end of the step
}

// loadResult is a whole ramp; the headline figures come from the highest
// step held.
type loadResult struct {
	Steps      []loadStep `json:"steps"`
	MaxHeldRPS float64    `json:"max_held_rps"`
	P99MS      float64    `json:"p99_ms_at_max_held"`
	Load1      float64    `json:"load1_at_max_held"`
}

// request builds the i-th request of a load.
type request func(ctx context.Context, i int) (*http.Request, error)

// loadWorkers bounds concurrent requests; like wrk's connections, it is
// what a client can have outstanding before it must wait.
const loadWorkers = 64

// ramp offers rising rates, each for step, and stops after the first rate
// that is not held: fewer than 95% of the offered requests answered 2xx
// within the step, or any error. Latency runs from each request's
// scheduled time, not from when a worker picked it up, so a server that
// falls behind shows it in the percentiles (no coordinated omission).
func ramp(ctx context.Context, rates []float64, step time.Duration, newReq request) (loadResult, error) {
	client, closeIdle := newLoadClient()
	defer closeIdle()
	var res loadResult
	seq := 0
	for _, rate := range rates {
		st, err := offer(ctx, client, rate, step, newReq, &seq)
		if err != nil {
			return res, err
		}
		res.Steps = append(res.Steps, st)
		logStep(st)
		if !st.Held {
			break
		}
		res.MaxHeldRPS, res.P99MS, res.Load1 = st.AchievedRPS, st.P99MS, st.Load1
	}
	return res, nil
}

// newLoadClient is the HTTP client of a load: one idle connection kept per
// worker, so steps after the first reuse them. The function closes them.
func newLoadClient() (*http.Client, func()) {
	tr := &http.Transport{MaxIdleConnsPerHost: loadWorkers, DisableCompression: true}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}, tr.CloseIdleConnections
}

// offer runs one step at rate for d.
func offer(ctx context.Context, client *http.Client, rate float64, d time.Duration, newReq request, seq *int) (loadStep, error) {
	st := loadStep{TargetRPS: rate}
	type job struct {
		at time.Time
		i  int
	}
	type outcome struct {
		lat time.Duration
		ok  bool
	}
	jobs := make(chan job, loadWorkers*4)
	outs := make(chan outcome, loadWorkers*4)
	var wg sync.WaitGroup
	for range loadWorkers {
		wg.Go(func() {
			for j := range jobs {
				ok := do(ctx, client, newReq, j.i)
				outs <- outcome{time.Since(j.at), ok}
			}
		})
	}
	var lats []time.Duration
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for o := range outs {
			if o.ok {
				st.OK++
				lats = append(lats, o.lat)
			} else {
				st.Errors++
			}
		}
	}()

	start := time.Now()
	total := int(rate * d.Seconds())
	tick := time.NewTicker(time.Millisecond)
	for st.Sent+st.Dropped < total && ctx.Err() == nil {
		now := <-tick.C
		due := min(total, int(now.Sub(start).Seconds()*rate))
		for st.Sent+st.Dropped < due {
			at := start.Add(time.Duration(float64(st.Sent+st.Dropped) / rate * float64(time.Second)))
			select {
			case jobs <- job{at, *seq}:
				st.Sent++
				*seq++
			default:
				st.Dropped++
			}
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	close(outs)
	<-collected
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("load at %.0f/s: %w", rate, err)
	}
	st.AchievedRPS = float64(st.OK) / elapsed.Seconds()
	sortDurations(lats)
	st.P50MS, st.P99MS, st.P999MS = ms(quantile(lats, 0.5)), ms(quantile(lats, 0.99)), ms(quantile(lats, 0.999))
	st.Held = st.Errors == 0 && st.Dropped == 0 && float64(st.OK) >= 0.95*float64(total) &&
		elapsed < d+d/2
	st.Load1 = load1()
	return st, nil
}

// logStep prints one step of an HTTP load.
func logStep(st loadStep) {
	logf("  %6.0f req/s offered: %6.0f answered, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, errors %d, dropped %d; load %.2f",
		st.TargetRPS, st.AchievedRPS, st.P50MS, st.P99MS, st.P999MS, st.Errors, st.Dropped, st.Load1)
}

// do sends one request and reads the whole answer, so connections are
// reused; it reports whether the answer was 2xx.
func do(ctx context.Context, client *http.Client, newReq request, i int) bool {
	req, err := newReq(ctx, i)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// getReq requests url with GET.
func getReq(url string) request {
	return func(ctx context.Context, _ int) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	}
}

// postReq posts bodies[i % len] with a bearer token.
func postReq(url, token string, bodies [][]byte) request {
	return func(ctx context.Context, i int) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[i%len(bodies)]))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		return req, nil
	}
}
