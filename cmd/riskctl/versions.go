package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"riskd/rules"
)

// maxPushBytes bounds the rule files riskctl reads from one directory: the
// most one version may carry on the rule topic (rulesync's default).
const maxPushBytes = 8 << 20

// readRuleDir reads a rule directory the way riskd does (rules.ReadFiles),
// refusing more than maxPushBytes.
func readRuleDir(dir string) (map[string][]byte, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("rule directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("rule directory %s: not a directory", dir)
	}
	total := int64(0)
	for _, pattern := range []string{"*.yaml", "*.yml", "lists/*.txt"} {
		names, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(pattern)))
		if err != nil {
			return nil, fmt.Errorf("rule directory %s: %w", dir, err)
		}
		for _, n := range names {
			fi, err := os.Stat(n)
			if err != nil {
				return nil, fmt.Errorf("rule directory %s: %w", dir, err)
			}
			total += fi.Size()
		}
	}
	if total > maxPushBytes {
		return nil, fmt.Errorf("rule directory %s: the rule files hold %d bytes, more than the %d one version may carry", dir, total, maxPushBytes)
	}
	files, err := rules.ReadFiles(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("rule directory %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("rule directory %s: no rule files (*.yaml, *.yml, lists/*.txt)", dir)
	}
	return files, nil
}

// publishAnswer is riskd's answer to a publish or rollback.
type publishAnswer struct {
	Version  string   `json:"version"`
	Seq      uint64   `json:"seq"`
	Hash     string   `json:"hash"`
	Rules    int      `json:"rules"`
	Previous string   `json:"previous_version"`
	Warnings []string `json:"warnings"`
}

// reportPublish prints the outcome of a publish or rollback: the new
// version, "unchanged" (409: the files are the running set's; exit 0), or
// riskd's refusal with the rule and position of a compile error.
func reportPublish(stdout, stderr io.Writer, what string, out publishAnswer, err error) error {
	var ae *apiError
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "%s: version %s is live (%d rules; was %s)\n", what, out.Version, out.Rules, out.Previous)
		for _, w := range out.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		return nil
	case errors.As(err, &ae) && ae.Status == http.StatusConflict && strings.HasPrefix(ae.Msg, "nothing changed"):
		fmt.Fprintf(stdout, "unchanged: %s\n", ae.Msg)
		return nil
	case errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity:
		var body struct {
			Details struct {
				RuleID  string `json:"rule_id"`
				File    string `json:"file"`
				Line    int    `json:"line"`
				Column  int    `json:"column"`
				Message string `json:"message"`
			} `json:"details"`
		}
		if json.Unmarshal(ae.Body, &body) == nil && body.Details.File != "" {
			d := body.Details
			return fmt.Errorf("%s refused, the running rules stay: %s:%d:%d: %s: %s", what, d.File, d.Line, d.Column, d.RuleID, d.Message)
		}
		return fmt.Errorf("%s refused, the running rules stay: %s", what, ae.Msg)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// runRulesPush publishes a rule directory as a new version.
func runRulesPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl rules push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	msg := fs.String("m", "", "what the change does, for the history (default: pushed from DIR)")
	shadow := fs.Bool("shadow", false, "publish as the candidate, run beside the live set and never acted on (see riskctl rules candidate)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: riskctl rules push [--shadow] [-m MSG] DIR\n\nPublishes the rule files of DIR to the riskd at $RISKCTL_URL as a new version, or with --shadow as the candidate.")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return &exitError{Code: 2, Err: errors.New("push: give one rule directory")}
	}
	files, err := readRuleDir(pos[0])
	if err != nil {
		return err
	}
	if *msg == "" {
		*msg = "pushed from " + pos[0]
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	body := map[string]any{"files": filesAsStrings(files), "message": *msg}
	if *shadow {
		return pushCandidate(ctx, c, body, stdout, stderr)
	}
	var out publishAnswer
	err = c.do(ctx, "POST", "/v1/rules/publish", body, &out)
	return reportPublish(stdout, stderr, "push", out, err)
}

// runRulesRollback publishes an earlier version again as a new version.
func runRulesRollback(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl rules rollback", flag.ContinueOnError)
	fs.SetOutput(stderr)
	msg := fs.String("m", "", "why, for the history (default: rollback to version N)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: riskctl rules rollback [-m MSG] VERSION\n\nMakes version VERSION (a number from riskctl rules history) run again, as a new version.")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return &exitError{Code: 2, Err: errors.New("rollback: give one version number")}
	}
	seq, err := parseVersion(pos[0])
	if err != nil {
		return &exitError{Code: 2, Err: fmt.Errorf("rollback: %w", err)}
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	var out publishAnswer
	err = c.do(ctx, "POST", "/v1/rules/rollback", map[string]any{"seq": seq, "message": *msg}, &out)
	return reportPublish(stdout, stderr, "rollback", out, err)
}

// parseVersion reads a version number: "3", or "3-abcdef12" as riskd
// writes versions.
func parseVersion(s string) (uint64, error) {
	num, _, _ := strings.Cut(s, "-")
	seq, err := strconv.ParseUint(num, 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("version %q: want a version number from 1 up (riskctl rules history lists them)", s)
	}
	return seq, nil
}

// historyEntry is one version as GET /v1/rules/versions lists it.
type historyEntry struct {
	Seq         uint64    `json:"seq"`
	Version     string    `json:"version"`
	Hash        string    `json:"hash"`
	Author      string    `json:"author"`
	Message     string    `json:"message"`
	PublishedAt time.Time `json:"published_at"`
	Rules       int       `json:"rule_count"`
	Running     bool      `json:"running"`
}

// runRulesHistory lists the published versions, newest first.
func runRulesHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl rules history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print riskd's JSON answer")
	limit := fs.Int("limit", 20, "newest versions to list, 1 to 10000")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return &exitError{Code: 2, Err: fmt.Errorf("history: unexpected argument %q", pos[0])}
	}
	if *limit < 1 || *limit > 10000 {
		return &exitError{Code: 2, Err: fmt.Errorf("history: --limit %d: want 1 to 10000", *limit)}
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	path := "/v1/rules/versions?limit=" + strconv.Itoa(*limit)
	if *asJSON {
		return c.printJSON(ctx, path, "history", stdout)
	}
	var out struct {
		Versions []historyEntry `json:"versions"`
	}
	if err := c.do(ctx, "GET", path, nil, &out); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tPUBLISHED (UTC)\tAUTHOR\tRULES\tMESSAGE")
	for _, v := range out.Versions {
		mark := ""
		if v.Running {
			mark = " *"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%d\t%s\n", v.Version, mark, v.PublishedAt.UTC().Format("2006-01-02 15:04:05"),
			v.Author, v.Rules, oneLine(v.Message))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.Versions) > 0 {
		fmt.Fprintln(stdout, "(* running)")
	}
	return nil
}

// oneLine keeps a history message on its row.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// runRulesDiff shows what changed between two versions at riskd, two rule
// directories, or a version and a directory.
func runRulesDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl rules diff", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the diff as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: riskctl rules diff [--json] A B\n\nA and B are version numbers at riskd ($RISKCTL_URL) or rule directories.")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return &exitError{Code: 2, Err: errors.New("diff: give two versions or directories")}
	}
	var d *rules.SetDiff
	seqA, errA := diffVersionArg(pos[0])
	seqB, errB := diffVersionArg(pos[1])
	if errA == nil && errB == nil {
		c, err := apiClientFromEnv()
		if err != nil {
			return err
		}
		var out struct {
			Diff *rules.SetDiff `json:"diff"`
		}
		if err := c.do(ctx, "GET", fmt.Sprintf("/v1/rules/versions/%d/diff/%d", seqA, seqB), nil, &out); err != nil {
			return fmt.Errorf("diff: %w", err)
		}
		d = out.Diff
	} else {
		var sides [2]map[string][]byte
		var dirSide [2]bool
		var c *apiClient
		for i, arg := range pos {
			seq, err := diffVersionArg(arg)
			if err != nil {
				if sides[i], err = readRuleDir(arg); err != nil {
					return fmt.Errorf("diff: %s is neither a version number nor a rule directory: %w", arg, err)
				}
				dirSide[i] = true
				continue
			}
			if c == nil {
				if c, err = apiClientFromEnv(); err != nil {
					return err
				}
			}
			var v struct {
				Files map[string]string `json:"files"`
			}
			if err := c.do(ctx, "GET", fmt.Sprintf("/v1/rules/versions/%d", seq), nil, &v); err != nil {
				return fmt.Errorf("diff: version %d: %w", seq, err)
			}
			sides[i] = make(map[string][]byte, len(v.Files))
			for k, s := range v.Files {
				sides[i][k] = []byte(s)
			}
		}
		// A rule directory without a features file says nothing about
		// the window features a version carries: compare the rest.
		for i := range sides {
			if _, ok := sides[i][rules.FeaturesFile]; !ok && dirSide[i] {
				delete(sides[1-i], rules.FeaturesFile)
			}
		}
		if d, err = rules.Diff(sides[0], sides[1]); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	writeDiff(stdout, pos[0], pos[1], d)
	return nil
}

// errIsDir says a diff argument names a directory.
var errIsDir = errors.New("a directory")

// diffVersionArg reads a diff argument as a version number, unless a
// directory of that name exists.
func diffVersionArg(arg string) (uint64, error) {
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		return 0, errIsDir
	}
	return parseVersion(arg)
}

// writeDiff prints d grouped by rules, lists and settings.
func writeDiff(w io.Writer, a, b string, d *rules.SetDiff) {
	fmt.Fprintf(w, "diff %s -> %s\n", a, b)
	if d.Empty() {
		fmt.Fprintln(w, "no rule, list, setting or window feature changed")
		return
	}
	if n := len(d.Rules.Added) + len(d.Rules.Removed) + len(d.Rules.Changed); n > 0 {
		fmt.Fprintf(w, "\nrules (%d added, %d removed, %d changed):\n", len(d.Rules.Added), len(d.Rules.Removed), len(d.Rules.Changed))
		for _, r := range d.Rules.Added {
			fmt.Fprintf(w, "  + %s (%s, %s) %s:%d\n", r.ID, orDash(r.Action), r.Mode, r.File, r.Line)
		}
		for _, r := range d.Rules.Removed {
			fmt.Fprintf(w, "  - %s (%s, %s) %s:%d\n", r.ID, orDash(r.Action), r.Mode, r.File, r.Line)
		}
		for _, r := range d.Rules.Changed {
			fmt.Fprintf(w, "  ~ %s %s:%d\n", r.ID, r.File, r.Line)
			for _, f := range r.Fields {
				fmt.Fprintf(w, "      %s: %s -> %s\n", f.Field, shown(f.Old, f.OldAbsent), shown(f.New, f.NewAbsent))
			}
		}
	}
	if n := len(d.Lists.Added) + len(d.Lists.Removed) + len(d.Lists.Changed); n > 0 {
		fmt.Fprintf(w, "\nlists (%d added, %d removed, %d changed):\n", len(d.Lists.Added), len(d.Lists.Removed), len(d.Lists.Changed))
		for _, l := range d.Lists.Added {
			fmt.Fprintf(w, "  + %s (%d entries)%s\n", l.Name, l.Entries, sampleText(l.Sample, l.Entries))
		}
		for _, l := range d.Lists.Removed {
			fmt.Fprintf(w, "  - %s (%d entries)%s\n", l.Name, l.Entries, sampleText(l.Sample, l.Entries))
		}
		for _, l := range d.Lists.Changed {
			fmt.Fprintf(w, "  ~ %s: %d -> %d entries\n", l.Name, l.OldEntries, l.NewEntries)
			if l.Added > 0 {
				fmt.Fprintf(w, "      + %d%s\n", l.Added, sampleText(l.AddedSample, l.Added))
			}
			if l.Removed > 0 {
				fmt.Fprintf(w, "      - %d%s\n", l.Removed, sampleText(l.RemovedSample, l.Removed))
			}
		}
	}
	if len(d.Settings) > 0 {
		fmt.Fprintf(w, "\nsettings (%d changed):\n", len(d.Settings))
		for _, f := range d.Settings {
			fmt.Fprintf(w, "  ~ %s: %s -> %s\n", f.Field, shown(f.Old, f.OldAbsent), shown(f.New, f.NewAbsent))
		}
	}
	if len(d.Features) > 0 {
		fmt.Fprintf(w, "\nwindow features (%d changed):\n", len(d.Features))
		for _, f := range d.Features {
			fmt.Fprintf(w, "  ~ %s: %s -> %s\n", f.Field, shown(f.Old, f.OldAbsent), shown(f.New, f.NewAbsent))
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shown quotes a field value so that spaces and empty values stay visible.
func shown(v string, absent bool) string {
	if absent {
		return "(none)"
	}
	return strconv.Quote(v)
}

func sampleText(sample []string, total int) string {
	if len(sample) == 0 {
		return ""
	}
	more := ""
	if total > len(sample) {
		more = fmt.Sprintf(", ... %d more", total-len(sample))
	}
	return ": " + strings.Join(sample, ", ") + more
}

func filesAsStrings(files map[string][]byte) map[string]string {
	out := make(map[string]string, len(files))
	for k, v := range files {
		out[k] = string(v)
	}
	return out
}
