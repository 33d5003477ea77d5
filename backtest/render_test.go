package backtest_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"riskd/backtest"
)

// Everything from the data is escaped in the HTML page, and the text and
// HTML renderings carry the per-rule numbers.
func TestRenderingsEscapeAndShowTheNumbers(t *testing.T) {
	p := 0.5
	from := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	rep := &backtest.Report{From: from, To: from.Add(48 * time.Hour), BucketStart: from, BucketWidth: backtest.Duration(time.Hour),
		Candidate: "0-abc<def", Warnings: []string{`feature "x" <b>changed</b>`},
		Rules: []backtest.RuleStats{{ID: "<script>alert(1)</script>", Mode: "active", Hits: 4, Fraud: 2, Unlabelled: 2,
			Precision: &p, Series: []int64{1, 0, 3}}},
		Totals: backtest.Totals{Changes: []backtest.Change{{From: "allow", To: "block", Count: 1, Examples: []string{`e"><img src=x>`}}}},
		Reproduction: backtest.Reproduction{Compared: 3, Identical: 2, Differing: 1,
			Changes:         []backtest.Change{{From: "allow", To: "lock", Count: 1, Examples: []string{"<i>r1</i>"}}},
			MissingVersions: []backtest.MissingVersion{{Version: "2-<u>", Reason: "not in the version history", Decisions: 7}}},
	}
	var html bytes.Buffer
	if err := backtest.WriteHTML(&html, rep); err != nil {
		t.Fatal(err)
	}
	page := html.String()
	for _, bad := range []string{"<script>", "<img", "<b>changed", "ZgotmplZ", "<i>r1", "2-<u>"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "<svg", "<polyline", "50.0%",
		"is not exact:\n2 identical of 3 compared, 1 differ", "&lt;i&gt;r1&lt;/i&gt;", "2-&lt;u&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	var text bytes.Buffer
	if err := backtest.WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<script>alert(1)</script>  active     4      2          0           2      50.0%         0         0        0",
		"reproduction of the recorded decisions by the replay of the live rule sets: not exact; 2 identical of 3 compared, 1 differ\n" +
			"  recorded allow -> replayed lock: 1 (e.g. <i>r1</i>)\n" +
			"  version 2-<u> not replayed: not in the version history (7 decisions)\n"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

func TestProgressLine(t *testing.T) {
	got := backtest.ProgressLine(backtest.Progress{Done: 250_000, Total: 1_000_000, Elapsed: 2 * time.Second})
	if want := "[######..................] 250000/1000000 events (25%), 125000 events/s, 6s left"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
