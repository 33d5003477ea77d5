package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// metrics is one scrape of riskd's /metrics: each series name with the
// sum of its values over all label sets (lag over partitions, decisions
// over actions), and each labelled series under its full text as exposed
// (`riskd_sink_seconds_sum{sink="clickhouse"}`). Histograms appear as
// their _sum and _count series.
type metrics map[string]float64

// scrape reads riskd's Prometheus text exposition. The harness needs a
// handful of sums, so it parses the text format itself rather than
// pulling in an exposition-format module.
func scrape(ctx context.Context, client *http.Client, url string) (metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, series, rest := line, "", ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
			rest = line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			series = name + rest[:j+1]
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		m[name] += v
		if series != "" {
			m[series] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return m, nil
}

// settled is how many input messages riskd has finished: decisions made
// durable, duplicates and dead letters.
func (m metrics) settled() float64 {
	return m["riskd_decisions_total"] + m["riskd_duplicate_events_total"] + m["riskd_dlq_total"]
}

// gcCPU is the CPU time riskd's runtime estimates its garbage collector
// has taken since the process started.
func (m metrics) gcCPU() time.Duration {
	return time.Duration(m["go_cpu_classes_gc_total_cpu_seconds_total"] * float64(time.Second))
}
