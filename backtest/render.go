package backtest

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the report as terminal tables: the run, per rule
// (hits, fraud, good, precision, recorded and baseline hits, changed), the
// totals, the reproduction of the record, then the warnings.
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "backtest of %s from %s to %s\n", r.Candidate, stamp(r.From), stamp(r.To))
	fmt.Fprintf(&b, "replayed %d events (%d warm-up from %s, %s; %d in the period) in %.1fs, %.0f events/s\n",
		r.EventsWarmup+r.EventsPeriod, r.EventsWarmup, stamp(r.WarmupFrom), r.Warmup, r.EventsPeriod, r.Seconds, r.EventsPerSecond)
	if all := r.EventsWarmup + r.EventsPeriod + r.Refused; r.SharedState < all {
		fmt.Fprintf(&b, "candidate and baseline shared one feature state for %d events, until their locks parted; "+
			"then each replayed on its own\n", r.SharedState)
	}
	if len(r.Recorded) > 0 {
		var vs []string
		for _, v := range r.Recorded {
			vs = append(vs, fmt.Sprintf("%s (%d)", v.Version, v.Decisions))
		}
		fmt.Fprintf(&b, "recorded decisions by version: %s\n", strings.Join(vs, ", "))
	}
	b.WriteString("\n")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Text columns are padded here, so that right alignment (for the
	// numbers) leaves them flush left.
	idW := len("rule")
	for _, x := range r.Rules {
		idW = max(idW, len(x.ID))
	}
	fmt.Fprintf(tw, "%-*s\t%-6s\thits\tfraud\tnot fraud\tunlabelled\tprecision\trecorded\tbaseline\tchanged\t\n", idW, "rule", "mode")
	for _, x := range r.Rules {
		fmt.Fprintf(tw, "%-*s\t%-6s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t\n", idW, x.ID, x.Mode, x.Hits+x.ShadowHits, x.Fraud, x.NotFraud,
			x.Unlabelled, percent(x.Precision), x.RecordedHits, x.BaselineHits, x.Changed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	t := r.Totals
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-9s\tcandidate\tbaseline\trecorded\t\n", "action")
	for _, a := range t.Actions {
		fmt.Fprintf(tw, "%-9s\t%d\t%d\t%d\t\n", a.Action, a.Candidate, a.Baseline, a.Recorded)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\nchanged decisions: %d of %d compared with the replay of the rule sets that were live; matched rules differ on %d\n",
		t.Changed, t.Compared, t.RulesDiffer)
	if t.ComparedWithRecorded > 0 {
		fmt.Fprintf(&b, "  (%d of them compared with the recorded decisions: their rule set could not be replayed)\n", t.ComparedWithRecorded)
	}
	for _, c := range t.Changes {
		fmt.Fprintf(&b, "  %s -> %s: %d (e.g. %s)\n", c.From, c.To, c.Count, strings.Join(c.Examples, ", "))
	}
	e := t.Events
	fmt.Fprintf(&b, "fraud events caught (challenge, block, lock): %d of %d (recorded: %d)\n", e.Caught, e.Fraud, e.CaughtRecorded)
	fmt.Fprintf(&b, "good events hit (review or stronger): %d of %d (recorded: %d); confirmed not fraud: %d of %d\n",
		e.GoodHit, e.Good, e.GoodHitRec, e.NotFraudHit, e.NotFraud)
	fmt.Fprintf(&b, "attacks caught: %d of %d (recorded: %d)\n", t.Attacks.Caught, t.Attacks.Attacks, t.Attacks.CaughtRecorded)
	for _, l := range t.Attacks.ByLabel {
		fmt.Fprintf(&b, "  %s: %d of %d (recorded: %d)\n", l.Label, l.Caught, l.Attacks, l.CaughtRecorded)
	}
	for _, a := range t.Amount {
		fmt.Fprintf(&b, "fraudulent amount stopped: %s of %s %s (recorded: %s)\n",
			money(a.Stopped), money(a.Total), a.Currency, money(a.StoppedRecorded))
	}
	p := r.Reproduction
	exact := "exact"
	if !p.Exact {
		exact = "not exact"
	}
	fmt.Fprintf(&b, "\nreproduction of the recorded decisions by the replay of the live rule sets: %s; %d identical of %d compared, %d differ",
		exact, p.Identical, p.Compared, p.Differing)
	if p.RulesDiffer > 0 {
		fmt.Fprintf(&b, " (%d only in matched rules)", p.RulesDiffer)
	}
	if p.NotReplayed > 0 {
		fmt.Fprintf(&b, "; %d not replayed", p.NotReplayed)
	}
	b.WriteString("\n")
	for _, c := range p.Changes {
		fmt.Fprintf(&b, "  recorded %s -> replayed %s: %d (e.g. %s)\n", c.From, c.To, c.Count, strings.Join(c.Examples, ", "))
	}
	for _, m := range p.MissingVersions {
		warm := ""
		if m.WarmupDecisions > 0 {
			warm = fmt.Sprintf(", %d in the warm-up", m.WarmupDecisions)
		}
		fmt.Fprintf(&b, "  version %s not replayed: %s (%d decisions%s)\n", m.Version, m.Reason, m.Decisions, warm)
	}
	if len(r.Warnings) > 0 {
		b.WriteString("\nwarnings:\n")
		for _, w := range r.Warnings {
			fmt.Fprintf(&b, "  - %s\n", w)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func percent(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *p*100)
}

// money writes minor units as units with two decimals.
func money(minor int64) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d", sign, minor/100, minor%100)
}

// ProgressLine formats a progress report for a terminal: a bar, events
// done, events per second and the time left (from the stored total).
func ProgressLine(p Progress) string {
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(p.Done) / s
	}
	left := "?"
	if rate > 0 && p.Total >= p.Done {
		left = (time.Duration(float64(p.Total-p.Done)/rate*float64(time.Second)) / time.Second * time.Second).String()
	}
	pct := 100.0
	if p.Total > 0 {
		pct = min(100, float64(p.Done)*100/float64(p.Total))
	}
	const width = 24
	filled := int(pct * width / 100)
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	return fmt.Sprintf("[%s] %d/%d events (%.0f%%), %.0f events/s, %s left", bar, p.Done, p.Total, pct, rate, left)
}

// ParseTime reads a period bound as riskctl and the API take it: RFC 3339
// (2026-11-24T12:00:00Z) or a date (2026-11-24, midnight UTC).
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-11-24T12:00:00Z) nor a date (2026-11-24)", s)
}
