package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// pushCandidate publishes body (files and message) as the candidate.
func pushCandidate(ctx context.Context, c *apiClient, body map[string]any, stdout, stderr io.Writer) error {
	body["shadow"] = true
	var out struct {
		Candidate string `json:"candidate_version"`
		Rules     int    `json:"rules"`
		Live      string `json:"live_version"`
		Replaced  string `json:"replaced_candidate"`
	}
	err := c.do(ctx, "POST", "/v1/rules/publish", body, &out)
	if err != nil {
		return reportPublish(stdout, stderr, "push --shadow", publishAnswer{}, err)
	}
	fmt.Fprintf(stdout, "push --shadow: candidate %s runs beside live %s (%d rules)", out.Candidate, out.Live, out.Rules)
	if out.Replaced != "" {
		fmt.Fprintf(stdout, "; replaced candidate %s", out.Replaced)
	}
	fmt.Fprintln(stdout)
	return nil
}

// candidateReport is riskd's GET /v1/rules/candidate answer.
type candidateReport struct {
	Version        string    `json:"version"`
	Author         string    `json:"author"`
	Message        string    `json:"message"`
	InstalledSince time.Time `json:"installed_since"`
	Live           string    `json:"live_version"`
	Compared       uint64    `json:"compared"`
	Agreed         uint64    `json:"agreed"`
	Matrix         []struct {
		Live      string   `json:"live"`
		Candidate string   `json:"candidate"`
		Count     uint64   `json:"count"`
		Examples  []string `json:"examples"`
	} `json:"matrix"`
	RuleCounts []struct {
		RuleID string `json:"rule_id"`
		Count  uint64 `json:"count"`
	} `json:"rule_counts"`
}

func runRulesCandidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl rules candidate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print riskd's JSON answer")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return &exitError{Code: 2, Err: fmt.Errorf("candidate: unexpected argument %q", pos[0])}
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(ctx, "/v1/rules/candidate", "candidate", stdout)
	}
	var rep candidateReport
	if err := c.do(ctx, "GET", "/v1/rules/candidate", nil, &rep); err != nil {
		return fmt.Errorf("candidate: %w", err)
	}
	writeCandidateReport(stdout, rep)
	return nil
}

// writeCandidateReport prints the report with the agreement matrix as a
// table: a row per live action, a column per candidate action.
func writeCandidateReport(w io.Writer, rep candidateReport) {
	fmt.Fprintf(w, "candidate %s by %s since %s: %s\n", rep.Version, rep.Author,
		rep.InstalledSince.UTC().Format("2006-01-02 15:04:05"), oneLine(rep.Message))
	pct := 0.0
	if rep.Compared > 0 {
		// Rounded down: 19,984 of 19,990 is not 100.0%.
		pct = math.Floor(1000*float64(rep.Agreed)/float64(rep.Compared)) / 10
	}
	fmt.Fprintf(w, "live %s; %d decisions compared, %d agree (%.1f%%)\n", rep.Live, rep.Compared, rep.Agreed, pct)
	if rep.Compared == 0 {
		return
	}
	var lives, cands []string
	counts := map[[2]string]uint64{}
	for _, c := range rep.Matrix {
		lives = appendNew(lives, c.Live)
		cands = appendNew(cands, c.Candidate)
		counts[[2]string{c.Live, c.Candidate}] = c.Count
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "LIVE \\ CANDIDATE\t%s\t\n", strings.Join(cands, "\t"))
	for _, l := range lives {
		row := []string{l}
		for _, c := range cands {
			row = append(row, fmt.Sprint(counts[[2]string{l, c}]))
		}
		fmt.Fprintf(tw, "%s\t\n", strings.Join(row, "\t"))
	}
	tw.Flush()
	var disagree []string
	for _, c := range rep.Matrix {
		if c.Live != c.Candidate && len(c.Examples) > 0 {
			disagree = append(disagree, fmt.Sprintf("  %s -> %s: %s", c.Live, c.Candidate, strings.Join(c.Examples, " ")))
		}
	}
	if len(disagree) > 0 {
		fmt.Fprintf(w, "\nexamples (live -> candidate):\n%s\n", strings.Join(disagree, "\n"))
	}
	if len(rep.RuleCounts) > 0 {
		fmt.Fprintln(w, "\ncandidate rule hits:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, r := range rep.RuleCounts {
			fmt.Fprintf(tw, "  %s\t%d\n", r.RuleID, r.Count)
		}
		tw.Flush()
	}
}

func appendNew(list []string, s string) []string {
	for _, have := range list {
		if have == s {
			return list
		}
	}
	return append(list, s)
}

func runRulesPromote(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl rules promote", flag.ContinueOnError)
	fs.SetOutput(stderr)
	msg := fs.String("m", "", "why the candidate goes live, for the history (required)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return &exitError{Code: 2, Err: fmt.Errorf("promote: unexpected argument %q", pos[0])}
	}
	if *msg == "" {
		return &exitError{Code: 2, Err: errors.New("promote: give -m MSG: why the candidate goes live")}
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	var out publishAnswer
	err = c.do(ctx, "POST", "/v1/rules/candidate/promote", map[string]any{"message": *msg}, &out)
	return reportPublish(stdout, stderr, "promote", out, err)
}

func runRulesDrop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl rules drop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return &exitError{Code: 2, Err: fmt.Errorf("drop: unexpected argument %q", pos[0])}
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	var out struct {
		Dropped string `json:"dropped"`
	}
	if err := c.do(ctx, "DELETE", "/v1/rules/candidate", nil, &out); err != nil {
		return fmt.Errorf("drop: %w", err)
	}
	fmt.Fprintf(stdout, "drop: candidate %s dropped\n", out.Dropped)
	return nil
}
