package main

import (
	"os"
	"slices"
	"testing"
	"time"

	"riskd/api"
	"riskd/internal/apitest"
	"riskd/internal/browsertest"
)

// consoleTimingEnv names the ClickHouse database the first-page timing
// reads: one with a million stored decisions, such as make bench's
// riskd_bench. Without it the timing does not run; it is a measurement
// for bench/RESULTS.md, not a check, so it asserts no time.
const consoleTimingEnv = "RISKD_CONSOLE_TIMING_DB"

// How long the console's first page takes to be usable on a database of
// a million decisions: the overview loaded fresh (a new page, the session
// signed in before) until its chart of the last hour is drawn, which
// needs the shell, the session check and GET /v1/overview's ClickHouse
// reads. Run by hand (bench/RESULTS.md, "The console's first page").
func TestConsoleFirstPageTiming(t *testing.T) {
	db := os.Getenv(consoleTimingEnv)
	if db == "" {
		t.Skip("a measurement: set " + consoleTimingEnv + " to a database with a million decisions (make bench's riskd_bench)")
	}
	b := browsertest.Start(t)
	e := newTestEnv(t)
	e.cfg.Auth.Tokens = apitest.TokenEntries()
	e.cfg.ClickHouse.Database = db
	d, stop := e.start(t)
	t.Cleanup(func() { stop() })
	tab := b.Tab(t, "http://"+d.httpAddr)
	tab.SignIn(apitest.Secrets[api.RoleAnalyst])

	// Resolves with the page's clock (ms since its navigation started)
	// at the first frame that shows the chart and the top rules.
	const drawn = `new Promise(done => {
		const ready = () => document.querySelector('[data-test="chart"]') && document.querySelector('[data-test="top-rule"]');
		const look = () => ready() ? done(performance.now()) : requestAnimationFrame(look);
		look();
	})`
	const runs = 9
	var ms []float64
	for range runs {
		tab.Open("#/overview")
		ms = append(ms, browsertest.Eval[float64](tab, drawn))
	}
	slices.Sort(ms)
	t.Logf("overview drawn on %s, %d loads: median %.0f ms, min %.0f ms, max %.0f ms (ms since navigation start)",
		db, runs, ms[runs/2], ms[0], ms[runs-1])

	// The API call alone, as the page makes it.
	var api []float64
	for range runs {
		start := time.Now()
		browsertest.Eval[int](tab, `fetch("/console/api/v1/overview?minutes=60").then(r => r.status)`)
		api = append(api, float64(time.Since(start).Microseconds())/1000)
	}
	slices.Sort(api)
	t.Logf("GET /v1/overview?minutes=60 from the page: median %.1f ms, min %.1f ms, max %.1f ms",
		api[runs/2], api[0], api[runs-1])
}
