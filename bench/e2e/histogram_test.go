package main

import (
	"math"
	"testing"
)

// scrapeOf is a scrape of a histogram h with the given cumulative counts
// for the bounds 0.001, 0.002, 0.004 and +Inf.
func scrapeOf(c1, c2, c4, inf float64) metrics {
	return metrics{
		`h_bucket{le="0.001"}`: c1, `h_bucket{le="0.002"}`: c2, `h_bucket{le="0.004"}`: c4,
		`h_bucket{le="+Inf"}`: inf, "h_bucket": c1 + c2 + c4 + inf, "h_sum": 0.5, "h_count": inf,
	}
}

func TestHistogramQuantile(t *testing.T) {
	before, err := histogramOf(scrapeOf(10, 10, 10, 10), "h")
	if err != nil {
		t.Fatal(err)
	}
	after, err := histogramOf(scrapeOf(60, 110, 210, 210), "h")
	if err != nil {
		t.Fatal(err)
	}
	d, err := after.sub(before)
	if err != nil {
		t.Fatal(err)
	}
	// 200 new observations: 50 up to 1 ms, 50 in (1, 2] ms, 100 in (2, 4] ms.
	if d.Count != 200 || d.Buckets[3].Count != 200 {
		t.Fatalf("difference: count %v, buckets %v", d.Count, d.Buckets)
	}
	for _, c := range []struct{ q, want, lo, hi float64 }{
		{0.1, 0.0004, 0, 0.001},       // rank 20 of 50 in the first bucket
		{0.5, 0.002, 0.001, 0.002},    // rank 100: the end of the second
		{0.75, 0.003, 0.002, 0.004},   // rank 150: half-way through the third
		{0.99, 0.00396, 0.002, 0.004}, // rank 198
	} {
		v, lo, hi, inf, ok := d.quantile(c.q)
		if !ok || inf || math.Abs(v-c.want) > 1e-12 || lo != c.lo || hi != c.hi {
			t.Errorf("quantile(%v) = %v in (%v, %v], inf %v, ok %v; want %v in (%v, %v]", c.q, v, lo, hi, inf, ok, c.want, c.lo, c.hi)
		}
	}
}

func TestHistogramQuantileAboveTheLastBound(t *testing.T) {
	h, err := histogramOf(scrapeOf(0, 0, 10, 100), "h")
	if err != nil {
		t.Fatal(err)
	}
	v, lo, _, inf, ok := h.quantile(0.99)
	if !ok || !inf || v != 0.004 || lo != 0.004 {
		t.Fatalf("quantile(0.99) = %v (lo %v, inf %v, ok %v); want the last finite bound 0.004 with inf", v, lo, inf, ok)
	}
	if _, _, _, _, ok := (histogram{Buckets: []bucket{{math.Inf(1), 0}}}).quantile(0.5); ok {
		t.Error("quantile of an empty histogram is ok")
	}
}

func TestHistogramSubRefusesARestart(t *testing.T) {
	before, _ := histogramOf(scrapeOf(10, 20, 30, 40), "h")
	after, _ := histogramOf(scrapeOf(1, 2, 3, 4), "h")
	if _, err := after.sub(before); err == nil {
		t.Fatal("sub of a histogram that went down succeeded")
	}
}

func TestHistogramOfMissing(t *testing.T) {
	if _, err := histogramOf(metrics{"other_bucket{le=\"1\"}": 1}, "h"); err == nil {
		t.Fatal("histogramOf found a histogram that is not there")
	}
}

// A stage of riskd_stage_seconds reads like an unlabelled histogram of
// its own; the other stages' series stay out.
func TestStageSeries(t *testing.T) {
	scrape := func(fetch, merge float64) metrics {
		return metrics{
			`riskd_stage_seconds_bucket{stage="fetch",le="0.001"}`: fetch, `riskd_stage_seconds_bucket{stage="fetch",le="+Inf"}`: fetch,
			`riskd_stage_seconds_sum{stage="fetch"}`: fetch / 2000, `riskd_stage_seconds_count{stage="fetch"}`: fetch,
			`riskd_stage_seconds_bucket{stage="merge",le="0.001"}`: 0, `riskd_stage_seconds_bucket{stage="merge",le="+Inf"}`: merge,
			`riskd_stage_seconds_sum{stage="merge"}`: merge, `riskd_stage_seconds_count{stage="merge"}`: merge,
		}
	}
	got := stagesFrom(scrape(10, 10), scrape(110, 30))
	if f, m := got["fetch"], got["merge"]; f.Decisions != 100 || m.Decisions != 20 || f.P50MS > 1 || m.P50MS < 1 {
		t.Fatalf("stages: %+v", got)
	}
	if _, ok := got["score"]; ok {
		t.Fatal("a stage missing from the scrape was read")
	}
}
