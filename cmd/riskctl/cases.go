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

	"riskd/streams/chstore"
)

var casesCommands = []subcommand{
	{"list", "the review queue: cases opened by review decisions, newest first (the default command)", runCasesList},
	{"show", "one case with its decision's rules, who has it and how it was closed", runCasesShow},
	{"take", "assign a case to yourself (the token's name); --force takes it from someone else", runCasesTake},
	{"close", "close a case with --outcome fraud|not_fraud|inconclusive; the outcome becomes the event's label", runCasesClose},
}

// runCases is "riskctl cases": list when no command (or only flags) follow.
func runCases(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		return runCasesList(ctx, args, stdout, stderr)
	}
	return dispatch(ctx, "cases", casesCommands, args, stdout, stderr)
}

func runCasesList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl cases list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	status := fs.String("status", "open", "open, taken, closed or all")
	account := fs.String("account", "", "only this account's cases")
	limit := fs.Int("limit", chstore.DefaultCaseList, fmt.Sprintf("cases per page, 1 to %d", chstore.MaxCaseList))
	before := fs.String("before", "", "the next page: the cursor the previous page printed")
	asJSON := fs.Bool("json", false, "print riskd's JSON answer")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return &exitError{Code: 2, Err: fmt.Errorf("cases list: unexpected argument %q", pos[0])}
	}
	q := url.Values{}
	switch *status {
	case "all":
	case chstore.CaseOpen, chstore.CaseTaken, chstore.CaseClosed:
		q.Set("status", *status)
	default:
		return &exitError{Code: 2, Err: fmt.Errorf("cases list: --status %q: want open, taken, closed or all", *status)}
	}
	if *limit < 1 || *limit > chstore.MaxCaseList {
		return &exitError{Code: 2, Err: fmt.Errorf("cases list: --limit %d: want 1 to %d", *limit, chstore.MaxCaseList)}
	}
	q.Set("limit", strconv.Itoa(*limit))
	if *account != "" {
		q.Set("account", *account)
	}
	if *before != "" {
		q.Set("before", *before)
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	path := "/v1/cases?" + q.Encode()
	if *asJSON {
		return c.printJSON(ctx, path, "cases list", stdout)
	}
	var out struct {
		Cases []chstore.Case `json:"cases"`
		Next  string         `json:"next"`
	}
	if err := c.do(ctx, "GET", path, nil, &out); err != nil {
		return fmt.Errorf("cases list: %w", err)
	}
	if len(out.Cases) == 0 {
		fmt.Fprintf(stdout, "no %s cases\n", strings.TrimPrefix(*status, "all"))
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CASE\tEVENT TIME (UTC)\tACCOUNT\tEVENT\tSCORE\tRULES\tSTATUS\tWHO")
	for _, cs := range out.Cases {
		who := cs.Assignee
		if cs.Status == chstore.CaseClosed {
			who = cs.Outcome + " by " + cs.ClosedBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", cs.ID, caseEventTime(cs.EventTS), cs.AccountID, cs.EventID,
			cs.Score, caseRuleList(cs), cs.Status, who)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if out.Next != "" {
		fmt.Fprintf(stdout, "more: riskctl cases list --before %s\n", out.Next)
	}
	return nil
}

func runCasesShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl cases show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print riskd's JSON answer")
	id, err := caseIDArg(fs, "show", args)
	if err != nil {
		return err
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(ctx, "/v1/cases/"+id, "cases show", stdout)
	}
	var cs chstore.Case
	if err := c.do(ctx, "GET", "/v1/cases/"+id, nil, &cs); err != nil {
		return fmt.Errorf("cases show: %w", err)
	}
	printCaseLines(stdout, cs)
	return nil
}

func runCasesTake(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl cases take", flag.ContinueOnError)
	fs.SetOutput(stderr)
	force := fs.Bool("force", false, "take the case even if someone else has it")
	id, err := caseIDArg(fs, "take", args)
	if err != nil {
		return err
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	var cs chstore.Case
	if err := c.do(ctx, "POST", "/v1/cases/"+id+"/take", map[string]bool{"force": *force}, &cs); err != nil {
		return fmt.Errorf("cases take: %w", err)
	}
	fmt.Fprintf(stdout, "case %s (event %s of %s) is taken by %s\n", cs.ID, cs.EventID, cs.AccountID, cs.Assignee)
	return nil
}

func runCasesClose(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl cases close", flag.ContinueOnError)
	fs.SetOutput(stderr)
	outcome := fs.String("outcome", "", "fraud, not_fraud or inconclusive (required)")
	note := fs.String("note", "", fmt.Sprintf("why, for the label and the audit log (at most %d bytes)", chstore.MaxLabelNoteBytes))
	force := fs.Bool("force", false, "close the case even if someone else has it")
	id, err := caseIDArg(fs, "close", args)
	if err != nil {
		return err
	}
	switch *outcome {
	case chstore.CaseFraud, chstore.CaseNotFraud, chstore.CaseInconclusive:
	case "":
		return &exitError{Code: 2, Err: fmt.Errorf("cases close: --outcome is required: fraud, not_fraud or inconclusive")}
	default:
		return &exitError{Code: 2, Err: fmt.Errorf("cases close: --outcome %q: want fraud, not_fraud or inconclusive", *outcome)}
	}
	if len(*note) > chstore.MaxLabelNoteBytes {
		return &exitError{Code: 2, Err: fmt.Errorf("cases close: --note: %d bytes, over the %d-byte limit", len(*note), chstore.MaxLabelNoteBytes)}
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	body := map[string]any{"outcome": *outcome, "note": *note, "force": *force}
	var cs chstore.Case
	if err := c.do(ctx, "POST", "/v1/cases/"+id+"/close", body, &cs); err != nil {
		return fmt.Errorf("cases close: %w", err)
	}
	label := "no label (inconclusive)"
	if cs.Outcome != chstore.CaseInconclusive {
		label = fmt.Sprintf("event %s labelled %s (source %s)", cs.EventID, cs.Outcome, chstore.CaseLabelSource)
	}
	fmt.Fprintf(stdout, "case %s is closed by %s: %s\n", cs.ID, cs.ClosedBy, label)
	return nil
}

// caseIDArg parses fs from args and returns the one case id they name.
func caseIDArg(fs *flag.FlagSet, cmd string, args []string) (string, error) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return "", &exitError{Code: 2, Err: err}
	}
	switch {
	case len(pos) == 0:
		return "", &exitError{Code: 2, Err: fmt.Errorf("cases %s: give a case id (riskctl cases list shows them)", cmd)}
	case len(pos) > 1:
		return "", &exitError{Code: 2, Err: fmt.Errorf("cases %s: unexpected argument %q after the case id", cmd, pos[1])}
	case !chstore.ValidCaseID(pos[0]):
		return "", &exitError{Code: 2, Err: fmt.Errorf("cases %s: %q is not a case id: want c and 16 hex digits, as riskctl cases list shows them", cmd, pos[0])}
	}
	return pos[0], nil
}

// printCaseLines writes one case as "key: value" lines.
func printCaseLines(w io.Writer, cs chstore.Case) {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	at := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05.000")
	}
	line("case", cs.ID)
	line("status", cs.Status)
	line("account", cs.AccountID)
	line("event", cs.EventID+" ("+cs.EventType+", "+caseEventTime(cs.EventTS)+" UTC)")
	line("decided", at(cs.OpenedAt)+" by rule set "+cs.RuleSetVersion)
	line("score", strconv.Itoa(cs.Score))
	line("reason", cs.Reason)
	line("rules", caseRuleList(cs))
	line("taken by", cs.Assignee)
	line("taken at", at(cs.TakenAt))
	line("outcome", cs.Outcome)
	line("note", cs.Note)
	line("closed by", cs.ClosedBy)
	line("closed at", at(cs.ClosedAt))
	tw.Flush()
}

func caseEventTime(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05") }

func caseRuleList(cs chstore.Case) string {
	if len(cs.Rules) == 0 {
		return "-"
	}
	return strings.Join(cs.Rules, ",")
}
