package backtest

import (
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"
)

// chartRules bounds the rules drawn in the chart (those with most hits):
// more lines than colours cannot be told apart.
const chartRules = 12

// WriteHTML writes the report as one self-contained HTML page (no
// external assets): the tables of WriteText and an inline SVG chart of
// hits over time per rule. Everything from the data is escaped by
// html/template.
func WriteHTML(w io.Writer, r *Report) error {
	return htmlPage.Execute(w, htmlView{R: r, Chart: chart(r)})
}

type htmlView struct {
	R     *Report
	Chart svgChart
}

type svgChart struct {
	Width, Height int
	Lines         []svgLine
	YMax          int64
	XLabels       []svgLabel
}

type svgLine struct {
	Rule   string
	Color  string
	Points string // "x,y x,y ...": numbers only
	Hits   int64
}

type svgLabel struct {
	X    int
	Text string
}

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
	"#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"}

func chart(r *Report) svgChart {
	c := svgChart{Width: 900, Height: 300}
	const left, right, top, bottom = 50, 10, 10, 30
	rs := make([]RuleStats, 0, len(r.Rules))
	for _, x := range r.Rules {
		if x.Hits+x.ShadowHits > 0 {
			rs = append(rs, x)
		}
	}
	slices.SortStableFunc(rs, func(a, b RuleStats) int {
		return int((b.Hits + b.ShadowHits) - (a.Hits + a.ShadowHits))
	})
	if len(rs) > chartRules {
		rs = rs[:chartRules]
	}
	for _, x := range rs {
		c.YMax = max(c.YMax, slices.Max(append([]int64{0}, x.Series...)))
	}
	if c.YMax == 0 {
		c.YMax = 1
	}
	n := 0
	if len(rs) > 0 {
		n = len(rs[0].Series)
	}
	w, h := float64(c.Width-left-right), float64(c.Height-top-bottom)
	xAt := func(i int) float64 {
		if n <= 1 {
			return left
		}
		return left + w*float64(i)/float64(n-1)
	}
	for i, x := range rs {
		var pts []string
		for j, v := range x.Series {
			y := top + h - h*float64(v)/float64(c.YMax)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xAt(j), y))
		}
		c.Lines = append(c.Lines, svgLine{Rule: x.ID, Color: palette[i%len(palette)], Points: strings.Join(pts, " "),
			Hits: x.Hits + x.ShadowHits})
	}
	for _, j := range []int{0, n / 2, n - 1} {
		if j < 0 || n == 0 {
			continue
		}
		t := r.BucketStart.Add(time.Duration(r.BucketWidth) * time.Duration(j))
		c.XLabels = append(c.XLabels, svgLabel{X: int(xAt(j)), Text: t.Format("01-02 15:04")})
	}
	return c
}

var htmlPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":   percent,
	"money": money,
	"stamp": stamp,
	"add":   func(a, b int64) int64 { return a + b },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>riskd backtest {{.R.Candidate}} {{stamp .R.From}} to {{stamp .R.To}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}.warn{color:#a40}.legend span{display:inline-block;margin-right:1em}
</style></head><body>
<h1>Backtest of {{.R.Candidate}}</h1>
<p>Period {{stamp .R.From}} to {{stamp .R.To}}; warm-up from {{stamp .R.WarmupFrom}} ({{.R.Warmup}}).
Replayed {{add .R.EventsWarmup .R.EventsPeriod}} events ({{.R.EventsWarmup}} warm-up, {{.R.EventsPeriod}} in the period)
in {{printf "%.1f" .R.Seconds}} s ({{printf "%.0f" .R.EventsPerSecond}} events/s).
Recorded versions: {{range .R.Recorded}}{{.Version}} ({{.Decisions}}) {{end}}</p>
{{if .R.Warnings}}<h2>Warnings</h2><ul>{{range .R.Warnings}}<li class="warn">{{.}}</li>{{end}}</ul>{{end}}
<h2>Hits over time</h2>
<svg xmlns="http://www.w3.org/2000/svg" width="{{.Chart.Width}}" height="{{.Chart.Height}}" role="img" aria-label="rule hits per bucket">
<line x1="50" y1="10" x2="50" y2="{{.Chart.Height}}" stroke="#999"/>
<text x="45" y="20" text-anchor="end" font-size="11">{{.Chart.YMax}}</text>
<text x="45" y="270" text-anchor="end" font-size="11">0</text>
{{range .Chart.XLabels}}<text x="{{.X}}" y="295" text-anchor="middle" font-size="11">{{.Text}}</text>{{end}}
{{range .Chart.Lines}}<polyline fill="none" stroke="{{.Color}}" stroke-width="1.5" points="{{.Points}}"><title>{{.Rule}}: {{.Hits}} hits</title></polyline>
{{end}}</svg>
<p class="legend">{{range .Chart.Lines}}<span style="color:{{.Color}}">&#9632; {{.Rule}} ({{.Hits}})</span>{{end}}</p>
<h2>Rules</h2>
<table><tr><th>rule</th><th>mode</th><th>hits</th><th>fraud</th><th>not fraud</th><th>unlabelled</th><th>precision</th><th>recorded</th><th>baseline</th><th>new</th><th>lost</th></tr>
{{range .R.Rules}}<tr><td>{{.ID}}</td><td>{{.Mode}}</td><td>{{add .Hits .ShadowHits}}</td><td>{{.Fraud}}</td><td>{{.NotFraud}}</td><td>{{.Unlabelled}}</td><td>{{pct .Precision}}</td><td>{{.RecordedHits}}</td><td>{{.BaselineHits}}</td><td>{{.NewHits}}</td><td>{{.LostHits}}</td></tr>
{{end}}</table>
<h2>Decisions</h2>
<table><tr><th>action</th><th>candidate</th><th>baseline</th><th>recorded</th></tr>
{{range .R.Totals.Actions}}<tr><td>{{.Action}}</td><td>{{.Candidate}}</td><td>{{.Baseline}}</td><td>{{.Recorded}}</td></tr>{{end}}</table>
<p>Changed (candidate against the replay of the live rule sets): {{.R.Totals.Changed}} of {{.R.Totals.Compared}} compared{{if .R.Totals.ComparedWithRecorded}}
({{.R.Totals.ComparedWithRecorded}} against the recorded decisions: their rule set could not be replayed){{end}};
matched rules differ on {{.R.Totals.RulesDiffer}}.</p>
<table><tr><th>from</th><th>to</th><th>events</th><th>examples</th></tr>
{{range .R.Totals.Changes}}<tr><td>{{.From}}</td><td>{{.To}}</td><td>{{.Count}}</td><td>{{range .Examples}}{{.}} {{end}}</td></tr>{{end}}</table>
<h2>Reproduction of the recorded decisions</h2>
{{with .R.Reproduction}}<p>The replay of the live rule sets {{if .Exact}}reproduces every recorded decision{{else}}is not exact{{end}}:
{{.Identical}} identical of {{.Compared}} compared, {{.Differing}} differ ({{.RulesDiffer}} only in matched rules){{if .NotReplayed}}, {{.NotReplayed}} not replayed{{end}}.</p>
<table><tr><th>recorded</th><th>replayed</th><th>events</th><th>examples</th></tr>
{{range .Changes}}<tr><td>{{.From}}</td><td>{{.To}}</td><td>{{.Count}}</td><td>{{range .Examples}}{{.}} {{end}}</td></tr>{{end}}
{{range .MissingVersions}}<tr><td>{{.Version}}</td><td>not replayed: {{.Reason}}</td><td>{{.Decisions}}</td><td></td></tr>{{end}}</table>{{end}}
<h2>Detection</h2>
{{with .R.Totals.Events}}<p>Fraud events caught (challenge, block, lock): {{.Caught}} of {{.Fraud}} (recorded {{.CaughtRecorded}}).
Good events hit (review or stronger): {{.GoodHit}} of {{.Good}} (recorded {{.GoodHitRec}}).</p>{{end}}
<table><tr><th>attack label</th><th>attacks</th><th>caught</th><th>recorded</th></tr>
{{range .R.Totals.Attacks.ByLabel}}<tr><td>{{.Label}}</td><td>{{.Attacks}}</td><td>{{.Caught}}</td><td>{{.CaughtRecorded}}</td></tr>{{end}}
{{with .R.Totals.Attacks}}<tr><th>all</th><th>{{.Attacks}}</th><th>{{.Caught}}</th><th>{{.CaughtRecorded}}</th></tr>{{end}}</table>
<table><tr><th>currency</th><th>fraudulent</th><th>stopped</th><th>recorded</th></tr>
{{range .R.Totals.Amount}}<tr><td>{{.Currency}}</td><td>{{money .Total}}</td><td>{{money .Stopped}}</td><td>{{money .StoppedRecorded}}</td></tr>{{end}}</table>
</body></html>
`))
