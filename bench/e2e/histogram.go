package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// bucket is one cumulative bucket of a Prometheus histogram: how many
// observations were at most UpperBound (+Inf for the last).
type bucket struct {
	UpperBound float64
	Count      float64
}

// histogram is one Prometheus histogram as scraped: its cumulative
// buckets in ascending order, +Inf last, and its sum and count.
type histogram struct {
	Buckets []bucket
	Sum     float64
	Count   float64
}

// histogramOf reads the histogram name (without labels other than le)
// from a scrape: the series name_bucket{le="..."}, name_sum and
// name_count.
func histogramOf(m metrics, name string) (histogram, error) {
	h := histogram{Sum: m[name+"_sum"], Count: m[name+"_count"]}
	prefix := name + "_bucket{"
	for series, v := range m {
		if !strings.HasPrefix(series, prefix) {
			continue
		}
		le, ok := labelValue(series[len(prefix)-1:], "le")
		if !ok {
			return h, fmt.Errorf("histogram %s: no le label in %s", name, series)
		}
		ub, err := strconv.ParseFloat(le, 64)
		if err != nil {
			return h, fmt.Errorf("histogram %s: le %q: %w", name, le, err)
		}
		h.Buckets = append(h.Buckets, bucket{UpperBound: ub, Count: v})
	}
	if len(h.Buckets) == 0 {
		return h, fmt.Errorf("histogram %s: not in the scrape", name)
	}
	sort.Slice(h.Buckets, func(i, j int) bool { return h.Buckets[i].UpperBound < h.Buckets[j].UpperBound })
	if !math.IsInf(h.Buckets[len(h.Buckets)-1].UpperBound, 1) {
		return h, fmt.Errorf("histogram %s: no +Inf bucket", name)
	}
	return h, nil
}

// labelValue returns the value of label key in a label set as exposed,
// `{a="x",le="0.5"}`. Label values in riskd's metrics hold no quotes or
// commas, so the set is split on them without unescaping.
func labelValue(set, key string) (string, bool) {
	set = strings.TrimSuffix(strings.TrimPrefix(set, "{"), "}")
	for _, kv := range strings.Split(set, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == key {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// sub returns the observations h holds that before did not: what was
// observed between two scrapes of the same process.
func (h histogram) sub(before histogram) (histogram, error) {
	if len(h.Buckets) != len(before.Buckets) {
		return h, fmt.Errorf("histogram: %d buckets after, %d before", len(h.Buckets), len(before.Buckets))
	}
	d := histogram{Sum: h.Sum - before.Sum, Count: h.Count - before.Count, Buckets: make([]bucket, len(h.Buckets))}
	for i, b := range h.Buckets {
		if b.UpperBound != before.Buckets[i].UpperBound {
			return h, fmt.Errorf("histogram: bucket %d bounds differ (%g, %g)", i, b.UpperBound, before.Buckets[i].UpperBound)
		}
		c := b.Count - before.Buckets[i].Count
		if c < 0 {
			return h, fmt.Errorf("histogram: bucket le=%g went down (%g to %g): the process restarted", b.UpperBound,
				before.Buckets[i].Count, b.Count)
		}
		d.Buckets[i] = bucket{UpperBound: b.UpperBound, Count: c}
	}
	return d, nil
}

// quantile estimates the q-quantile (0 < q < 1) as Prometheus's
// histogram_quantile does: find the bucket holding the q*count-th
// observation and interpolate linearly between its bounds (0 below the
// first). lo and hi are that bucket's bounds, so a reader can see how
// coarse the estimate is. A quantile in the +Inf bucket is reported as the
// highest finite bound with inf set: the true value is above it. ok is
// false for an empty histogram.
func (h histogram) quantile(q float64) (v, lo, hi float64, inf, ok bool) {
	if len(h.Buckets) == 0 || q <= 0 || q >= 1 {
		return 0, 0, 0, false, false
	}
	total := h.Buckets[len(h.Buckets)-1].Count
	if total <= 0 {
		return 0, 0, 0, false, false
	}
	rank := q * total
	i := sort.Search(len(h.Buckets), func(i int) bool { return h.Buckets[i].Count >= rank })
	if i == len(h.Buckets)-1 {
		top := 0.0
		if i > 0 {
			top = h.Buckets[i-1].UpperBound
		}
		return top, top, math.Inf(1), true, true
	}
	below := 0.0
	if i > 0 {
		lo, below = h.Buckets[i-1].UpperBound, h.Buckets[i-1].Count
	}
	hi = h.Buckets[i].UpperBound
	return lo + (hi-lo)*(rank-below)/(h.Buckets[i].Count-below), lo, hi, false, true
}
