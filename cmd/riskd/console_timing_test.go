package main

import (
	"fmt"
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

	// The page draws the chart and the top rules in the task that
	// receives GET /v1/overview's answer, so the end of that response in
	// the page's resource timing (ms since its navigation started) is
	// when the first page is complete, to a few milliseconds. (Polling
	// the page for the chart would add the polling's interval.)
	const drawn = `performance.getEntriesByType("resource").find(e => e.name.endsWith("/console/api/v1/overview?minutes=60")).responseEnd`
	const shell = `performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd`
	const runs = 9
	var ms, shells []float64
	for i := range runs {
		// Leave the overview first: chromedp's Navigate does not see the
		// load end when the page it leaves holds the live stream open.
		// Then a URL with a query of its own: opening the URL the tab
		// shows already would only move to its fragment, not load the
		// console again.
		tab.Go("#/decisions")
		tab.WaitFor("page-decisions")
		tab.Open(fmt.Sprintf("?load=%d#/overview", i))
		tab.WaitFor("chart")
		tab.WaitFor("top-rule")
		ms = append(ms, browsertest.Eval[float64](tab, drawn))
		shells = append(shells, browsertest.Eval[float64](tab, shell))
	}
	slices.Sort(ms)
	slices.Sort(shells)
	t.Logf("%d fresh loads of the overview on %s, ms since the navigation started (median, min, max): "+
		"the shell's DOMContentLoaded %.0f, %.0f, %.0f; the chart and top rules drawn %.0f, %.0f, %.0f",
		runs, db, shells[runs/2], shells[0], shells[runs-1], ms[runs/2], ms[0], ms[runs-1])

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
