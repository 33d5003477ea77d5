package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"riskd/api"
)

// maxPage is the API's bound on one timeline page (chstore.MaxPageLimit).
const maxPage = 1000

// runAccountShow prints an account's timeline: the engine's live lock
// state and the rules suppressed for the account on top, then one row per
// entry, newest first.
func runAccountShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl account show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: riskctl account show [--from T] [--to T] [--limit N] [--before CURSOR] [--json] ACCOUNT_ID")
		fmt.Fprintln(stderr, "T is an RFC 3339 time (2026-11-24T12:00:00Z) or a date (2026-11-24); the default is the last 30 days.")
		fs.PrintDefaults()
	}
	from := fs.String("from", "", "start of the period (default: 30 days before --to)")
	to := fs.String("to", "", "end of the period, exclusive (default: now)")
	limit := fs.Int("limit", 100, "entries to show, 1 to 1000")
	before := fs.String("before", "", "continue after a previous page (the cursor it printed)")
	asJSON := fs.Bool("json", false, "print riskd's JSON answer")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return &exitError{Code: 2, Err: fmt.Errorf("account show: give one account id, got %d arguments", len(pos))}
	}
	if *limit < 1 || *limit > maxPage {
		return &exitError{Code: 2, Err: fmt.Errorf("account show: --limit %d: want 1 to %d", *limit, maxPage)}
	}
	id := pos[0]
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	for k, v := range map[string]string{"from": *from, "to": *to, "before": *before} {
		if v != "" {
			q.Set(k, v)
		}
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	path := "/v1/accounts/" + url.PathEscape(id) + "/timeline?" + q.Encode()
	if *asJSON {
		return c.printJSON(ctx, path, fmt.Sprintf("account show %s", id), stdout)
	}
	var tl api.TimelineResponse
	if err := c.do(ctx, "GET", path, nil, &tl); err != nil {
		return fmt.Errorf("account show %s: %w", id, err)
	}
	return writeTimeline(stdout, id, &tl)
}

// timeFormat shows entry times to the millisecond: entries of one event
// share it.
const timeFormat = "2006-01-02 15:04:05.000"

func writeTimeline(w io.Writer, id string, tl *api.TimelineResponse) error {
	if tl.Live.Locked {
		until := "without end"
		if !tl.Live.Until.IsZero() {
			until = "until " + tl.Live.Until.UTC().Format(time.DateTime) + " UTC"
		}
		fmt.Fprintf(w, "account %s: LOCKED now, %s, by %s\n", id, until, tl.Live.By)
	} else {
		fmt.Fprintf(w, "account %s: not locked now\n", id)
	}
	for _, sup := range tl.Suppressions {
		fmt.Fprintf(w, "rule %s SUPPRESSED for this account until %s UTC, by %s\n", sup.RuleID,
			sup.Until.UTC().Format(time.DateTime), sup.By)
	}
	fmt.Fprintf(w, "period %s to %s UTC, %d entries, newest first\n\n", tl.From.UTC().Format(time.DateTime),
		tl.To.UTC().Format(time.DateTime), len(tl.Entries))
	if len(tl.Entries) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME (UTC)\tKIND\tEVENT\tSUMMARY")
		for _, e := range tl.Entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Time.UTC().Format(timeFormat), e.Kind, e.EventID, summary(e))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if tl.Next != "" {
		fmt.Fprintf(w, "\nmore: riskctl account show --before %s %s\n", tl.Next, id)
	}
	return nil
}

// summary is one entry's SUMMARY cell.
func summary(e api.TimelineEntry) string {
	switch e.Kind {
	case "decision":
		if e.DecisionDetail == nil {
			return e.Action
		}
		d := e.DecisionDetail
		parts := []string{fmt.Sprintf("%s %s score %d", d.EventType, e.Action, d.Score)}
		if e.Reason != "" {
			parts = append(parts, "reason "+e.Reason)
		}
		if len(d.MatchedRules) > 0 {
			parts = append(parts, "rules "+strings.Join(d.MatchedRules, ","))
		}
		if len(d.ShadowRules) > 0 {
			parts = append(parts, "shadow "+strings.Join(d.ShadowRules, ","))
		}
		if !d.LockUntil.IsZero() {
			parts = append(parts, "locked until "+d.LockUntil.UTC().Format(time.DateTime))
		}
		if len(d.Features) > 0 {
			fs := make([]string, len(d.Features))
			for i, f := range d.Features {
				fs[i] = f.Name + "=" + strconv.FormatFloat(f.Value, 'g', -1, 64)
			}
			parts = append(parts, strings.Join(fs, " "))
		}
		return strings.Join(parts, "; ")
	case "alert":
		return fmt.Sprintf("%s: %q", e.RuleID, e.Message)
	case "lock":
		until := "without end"
		if !e.Until.IsZero() {
			until = "until " + e.Until.UTC().Format(time.DateTime)
		}
		return fmt.Sprintf("%s by %s: %s", until, e.Actor, oneLine(e.Reason))
	case "unlock":
		return fmt.Sprintf("by %s: %s", e.Actor, oneLine(e.Reason))
	case "suppress":
		return fmt.Sprintf("rule %s suppressed until %s by %s: %s", e.RuleID, e.Until.UTC().Format(time.DateTime), e.Actor, oneLine(e.Reason))
	case "lift":
		s := fmt.Sprintf("rule %s suppression lifted by %s", e.RuleID, e.Actor)
		if e.Reason != "" {
			s += ": " + oneLine(e.Reason)
		}
		return s
	case "label":
		s := e.Label + " (" + e.Source
		if e.LabelledBy != "" {
			s += ", by " + e.LabelledBy
		}
		s += ")"
		if e.Note != "" {
			s += ": " + oneLine(e.Note)
		}
		return s
	}
	return e.Kind
}
