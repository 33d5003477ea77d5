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
	}
	var html bytes.Buffer
	if err := backtest.WriteHTML(&html, rep); err != nil {
		t.Fatal(err)
	}
	page := html.String()
	for _, bad := range []string{"<script>", "<img", "<b>changed", "ZgotmplZ"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "<svg", "<polyline", "50.0%"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	var text bytes.Buffer
	if err := backtest.WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "<script>alert(1)</script>  active     4      2          0           2      50.0%") {
		t.Errorf("text table:\n%s", text.String())
	}
}

func TestProgressLine(t *testing.T) {
	got := backtest.ProgressLine(backtest.Progress{Done: 250_000, Total: 1_000_000, Elapsed: 2 * time.Second})
	if want := "250000/1000000 events (25%), 125000 events/s, 6s left"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
