package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"riskd/api/rulesapi"
	"riskd/streams/chstore"
)

// Batches riskctl labels import sends: within the API's bounds
// (chstore.MaxLabelItems, chstore.MaxLabelRanges, rulesapi.LabelsMaxBody)
// with room to spare, so a batch is refused only for what it says.
const (
	labelsDefaultBatch = 5000
	labelsMaxBatchJSON = 4 << 20
	// labelsMaxLine bounds one line of a JSON-lines file.
	labelsMaxLine = 64 << 10
	// labelsShowProblems is how many unknown ids and empty ranges are
	// listed before the rest are counted.
	labelsShowProblems = 20
)

// labelsCSVColumns are the columns a CSV file may have, in any order.
var labelsCSVColumns = []string{"event_id", "account_id", "from", "to", "label", "source", "note"}

const labelsImportUsage = `usage: riskctl labels import [--source S] [--batch N] FILE

Records labels in riskd (POST /v1/labels): confirmed fraud, false positives.
FILE is CSV with a header row (columns event_id, or account_id with from and
to; label; source; note) or JSON lines of the API's items
({"event_id": "...", "label": "fraud", "source": "chargeback"}), told apart by
the extension (.csv, .jsonl, .json) or else by the content; - reads stdin.
Times are RFC 3339, a date (UTC) or Unix milliseconds; a range is from <= t < to.
label is fraud, not_fraud or a fraud scenario name. Uses RISKCTL_URL and
RISKCTL_TOKEN (a token with the analyst or support role).

flags:
`

func runLabelsImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl labels import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	source := fs.String("source", "", "source for rows that give none (chargeback, support, analyst, ...)")
	batch := fs.Int("batch", labelsDefaultBatch, fmt.Sprintf("items per request, at most %d", chstore.MaxLabelItems))
	fs.Usage = func() { fmt.Fprint(fs.Output(), labelsImportUsage); fs.PrintDefaults() }
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return &exitError{Code: 2, Err: errors.New("labels import: give one FILE (or - for stdin)")}
	}
	if *batch < 1 || *batch > chstore.MaxLabelItems {
		return &exitError{Code: 2, Err: fmt.Errorf("labels import: --batch %d: want 1 to %d", *batch, chstore.MaxLabelItems)}
	}
	client, err := apiClientFromEnv()
	if err != nil {
		return &exitError{Code: 2, Err: err}
	}
	name := pos[0]
	in := io.Reader(os.Stdin)
	if name == "-" {
		name = "stdin"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("labels import: %w", err)
		}
		defer f.Close()
		in = f
	}
	imp := &labelsImporter{client: client, name: name, source: *source, batch: *batch, stderr: stderr}
	if err := imp.run(ctx, in, pos[0]); err != nil {
		return fmt.Errorf("labels import: %w", err)
	}
	imp.report(stdout)
	return nil
}

// labelsImporter reads one file's items and sends them in batches.
type labelsImporter struct {
	client *apiClient
	name   string
	source string
	batch  int
	stderr io.Writer

	// The batch being built: its items and the file line of each.
	items  []rulesapi.LabelItem
	lines  []int
	ranges int
	size   int

	// Totals over the batches sent.
	batches, sent       int
	firstLine           int // first line of the batches sent so far
	total               rulesapi.LabelsResponse
	unknownAt, emptyAt  []string // "FILE:LINE: ..." problems
	unknownsN, emptiesN int
}

// run reads in as CSV or JSON lines and sends every item.
func (imp *labelsImporter) run(ctx context.Context, in io.Reader, path string) error {
	br := bufio.NewReader(in)
	jsonLines := false
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
	case ".jsonl", ".json", ".ndjson":
		jsonLines = true
	default:
		// By content: a JSON item starts with {, a CSV header with a name.
		for {
			b, err := br.Peek(1)
			if err != nil {
				break
			}
			if b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n' {
				br.ReadByte()
				continue
			}
			jsonLines = b[0] == '{' || b[0] == '['
			break
		}
	}
	var err error
	if jsonLines {
		err = imp.readJSONLines(ctx, br)
	} else {
		err = imp.readCSV(ctx, br)
	}
	if err != nil {
		return err
	}
	if err := imp.flush(ctx); err != nil {
		return err
	}
	if imp.sent == 0 {
		return fmt.Errorf("%s: no labels in the file", imp.name)
	}
	return nil
}

// add checks one item as riskd will and queues it, sending a batch when
// it is full.
func (imp *labelsImporter) add(ctx context.Context, it rulesapi.LabelItem, line int, what string) error {
	if it.Source == "" {
		it.Source = imp.source
	}
	err := chstore.LabelItem{EventID: it.EventID, AccountID: it.AccountID, From: it.From.Time, To: it.To.Time,
		Label: it.Label, Source: it.Source, Note: it.Note}.Validate()
	var fe *chstore.LabelFieldError
	if errors.As(err, &fe) {
		msg := fe.Msg
		if fe.Field == "source" && it.Source == "" {
			msg += "; or give --source"
		}
		return fmt.Errorf("%s:%d: %s %s: %s", imp.name, line, what, fe.Field, msg)
	}
	enc, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("%s:%d: %w", imp.name, line, err)
	}
	isRange := it.EventID == ""
	if len(imp.items) == imp.batch || imp.size+len(enc)+1 > labelsMaxBatchJSON ||
		isRange && imp.ranges == chstore.MaxLabelRanges {
		if err := imp.flush(ctx); err != nil {
			return err
		}
	}
	imp.items = append(imp.items, it)
	imp.lines = append(imp.lines, line)
	imp.size += len(enc) + 1
	if isRange {
		imp.ranges++
	}
	return nil
}

// flush sends the queued batch. An error says which lines were stored
// before it and which were not.
func (imp *labelsImporter) flush(ctx context.Context) error {
	if len(imp.items) == 0 {
		return nil
	}
	var res rulesapi.LabelsResponse
	err := imp.client.do(ctx, "POST", "/v1/labels", rulesapi.LabelsRequest{Labels: imp.items}, &res)
	if err != nil {
		where := fmt.Sprintf("lines %d-%d", imp.lines[0], imp.lines[len(imp.lines)-1])
		var ae *apiError
		if errors.As(err, &ae) {
			var body struct {
				Details *rulesapi.LabelError `json:"details"`
			}
			if json.Unmarshal(ae.Body, &body) == nil && body.Details != nil && body.Details.Index >= 0 && body.Details.Index < len(imp.lines) {
				where = fmt.Sprintf("line %d", imp.lines[body.Details.Index])
			}
		}
		stored := "nothing was stored before it"
		if imp.sent > 0 {
			stored = fmt.Sprintf("lines %d-%d (%d items) were stored before it", imp.firstLine, imp.lines[0]-1, imp.sent)
		}
		return fmt.Errorf("%s: %s: %w; %s; importing the file again is safe (a later label of an event replaces the earlier one)",
			imp.name, where, err, stored)
	}
	if imp.sent == 0 {
		imp.firstLine = imp.lines[0]
	}
	imp.batches++
	imp.sent += len(imp.items)
	imp.total.Items += res.Items
	imp.total.Labelled += res.Labelled
	imp.total.Fraud += res.Fraud
	imp.total.NotFraud += res.NotFraud
	lineOf := map[string]int{}
	for i, it := range imp.items {
		if it.EventID != "" {
			lineOf[it.EventID] = imp.lines[i]
		}
	}
	for _, id := range res.UnknownEventIDs {
		imp.unknownsN++
		if len(imp.unknownAt) < labelsShowProblems {
			imp.unknownAt = append(imp.unknownAt, fmt.Sprintf("%s:%d: no stored event %q", imp.name, lineOf[id], id))
		}
	}
	for _, e := range res.EmptyRanges {
		imp.emptiesN++
		if len(imp.emptyAt) < labelsShowProblems && e.Index >= 0 && e.Index < len(imp.lines) {
			imp.emptyAt = append(imp.emptyAt, fmt.Sprintf("%s:%d: no stored event of %s from %s to %s", imp.name, imp.lines[e.Index],
				e.AccountID, e.From.UTC().Format(time.RFC3339Nano), e.To.UTC().Format(time.RFC3339Nano)))
		}
	}
	imp.items, imp.lines, imp.ranges, imp.size = imp.items[:0], imp.lines[:0], 0, 0
	return nil
}

// report prints the totals, and the unknown ids and empty ranges on
// stderr.
func (imp *labelsImporter) report(stdout io.Writer) {
	plural := func(n int, one, many string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, one)
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	fmt.Fprintf(stdout, "%s: %s in %s: %s labelled (fraud %d, not_fraud %d); %s; %s\n", imp.name,
		plural(imp.sent, "item", "items"), plural(imp.batches, "batch", "batches"), plural(imp.total.Labelled, "event", "events"),
		imp.total.Fraud, imp.total.NotFraud, plural(imp.unknownsN, "unknown event id", "unknown event ids"),
		plural(imp.emptiesN, "empty range", "empty ranges"))
	for _, p := range imp.unknownAt {
		fmt.Fprintln(imp.stderr, p)
	}
	if more := imp.unknownsN - len(imp.unknownAt); more > 0 {
		fmt.Fprintf(imp.stderr, "%s: and %d more unknown event ids\n", imp.name, more)
	}
	for _, p := range imp.emptyAt {
		fmt.Fprintln(imp.stderr, p)
	}
	if more := imp.emptiesN - len(imp.emptyAt); more > 0 {
		fmt.Fprintf(imp.stderr, "%s: and %d more empty ranges\n", imp.name, more)
	}
}

// readJSONLines reads one API item per non-blank line.
func (imp *labelsImporter) readJSONLines(ctx context.Context, r *bufio.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), labelsMaxLine)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		if text[0] == '[' {
			return fmt.Errorf("%s:%d: a JSON array: want JSON lines, one item object per line", imp.name, line)
		}
		var it rulesapi.LabelItem
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&it); err != nil {
			return fmt.Errorf("%s:%d: %w", imp.name, line, err)
		}
		if dec.More() {
			return fmt.Errorf("%s:%d: more than one JSON value on the line", imp.name, line)
		}
		if err := imp.add(ctx, it, line, "field"); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s:%d: line over %d bytes", imp.name, line+1, labelsMaxLine)
		}
		return fmt.Errorf("%s: %w", imp.name, err)
	}
	return nil
}

// readCSV reads a header row naming labelsCSVColumns, then one item per
// record.
func (imp *labelsImporter) readCSV(ctx context.Context, r io.Reader) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 0 // every record as long as the header
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return fmt.Errorf("%s: empty file: want a header row (%s)", imp.name, strings.Join(labelsCSVColumns, ","))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", imp.name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if !slices.Contains(labelsCSVColumns, h) {
			return fmt.Errorf("%s:1: column %d: unknown column %q (want %s)", imp.name, i+1, h, strings.Join(labelsCSVColumns, ", "))
		}
		if _, dup := col[h]; dup {
			return fmt.Errorf("%s:1: column %q given twice", imp.name, h)
		}
		col[h] = i
	}
	if _, ok := col["label"]; !ok {
		return fmt.Errorf("%s:1: no label column (columns: %s)", imp.name, strings.Join(labelsCSVColumns, ", "))
	}
	_, byID := col["event_id"]
	_, byAccount := col["account_id"]
	if !byID && !byAccount {
		return fmt.Errorf("%s:1: no event_id or account_id column", imp.name)
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", imp.name, err)
		}
		line, _ := cr.FieldPos(0)
		get := func(name string) string {
			if i, ok := col[name]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		it := rulesapi.LabelItem{EventID: get("event_id"), AccountID: get("account_id"), Label: get("label"),
			Source: get("source"), Note: get("note")}
		for _, tc := range []struct {
			name string
			dst  *rulesapi.LabelTime
		}{{"from", &it.From}, {"to", &it.To}} {
			if v := get(tc.name); v != "" {
				t, err := rulesapi.ParseLabelTime(v)
				if err != nil {
					return fmt.Errorf("%s:%d: column %s: %w", imp.name, line, tc.name, err)
				}
				tc.dst.Time = t
			}
		}
		if err := imp.add(ctx, it, line, "column"); err != nil {
			return err
		}
	}
}

const rulesStatsUsage = `usage: riskctl rules stats [--from T] [--to T] [--bucket D] [--json]

Hits by rule and rule-set version over time, precision against labels, the
running rules that never fired and how shadow rules agree with the live
decisions, from riskd's ClickHouse (GET /v1/rules/stats). T is RFC 3339, a
date (UTC), Unix milliseconds or -DURATION before now (-6h, -7d); the default
period is the last 24 hours. D is a duration (30m, 1h, 1d); by default the
period gets at most 48 buckets. Uses RISKCTL_URL and RISKCTL_TOKEN (viewer is
enough).

flags:
`

func runRulesStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl rules stats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "start of the period (default: 24 hours before --to)")
	to := fs.String("to", "", "end of the period, exclusive (default: now)")
	bucket := fs.String("bucket", "", "width of a time bucket (default: at most 48 buckets)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	fs.Usage = func() { fmt.Fprint(fs.Output(), rulesStatsUsage); fs.PrintDefaults() }
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fs.Usage()
		return &exitError{Code: 2, Err: fmt.Errorf("rules stats: unexpected argument %q", pos[0])}
	}
	client, err := apiClientFromEnv()
	if err != nil {
		return &exitError{Code: 2, Err: err}
	}
	q := url.Values{}
	for k, v := range map[string]string{"from": *from, "to": *to, "bucket": *bucket} {
		if v != "" {
			q.Set(k, v)
		}
	}
	path := "/v1/rules/stats"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var raw json.RawMessage
	if err := client.do(ctx, "GET", path, nil, &raw); err != nil {
		return fmt.Errorf("rules stats: %w", err)
	}
	if *asJSON {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return fmt.Errorf("rules stats: %w", err)
		}
		buf.WriteByte('\n')
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	var rep rulesapi.StatsReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("rules stats: decoding the answer: %w", err)
	}
	writeRuleStats(stdout, &rep)
	return nil
}

// statsSparkWidth bounds the hits-over-time column: more buckets are
// summed in groups.
const statsSparkWidth = 60

// writeRuleStats prints a report as tables.
func writeRuleStats(w io.Writer, rep *rulesapi.StatsReport) {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	running := rep.RunningVersion
	if running == "" {
		running = "none"
	}
	fmt.Fprintf(w, "rule stats from %s to %s, %d buckets of %s; running version %s\n", ts(rep.From), ts(rep.To),
		rep.Buckets, rep.Bucket, running)
	d := rep.Decisions
	fmt.Fprintf(w, "decisions: %d (fraud %d, not_fraud %d, unlabelled %d); not allowed %d\n\n",
		d.Events, d.Fraud, d.NotFraud, d.Unlabelled, d.NonAllow)

	if len(rep.Rules) == 0 {
		fmt.Fprintln(w, "no rule hit in the period")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RULE\tVERSION\tMODE\tHITS\tFRAUD\tNOT_FRAUD\tUNLABELLED\tPREC_LABELLED\tPREC_ALL\tFIRST\tLAST")
		for _, r := range rep.Rules {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%.3f\t%s\t%s\n", r.RuleID, r.Version, r.Mode, r.Hits, r.Fraud,
				r.NotFraud, r.Unlabelled, statsRatio(r.PrecisionLabelled), r.PrecisionAll, ts(r.FirstHit), ts(r.LastHit))
		}
		tw.Flush()
		fmt.Fprintf(w, "\nhits over time (%s per column):\n", statsColumnWidth(rep))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range rep.Rules {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.RuleID, r.Version, statsSparkline(r.HitsOverTime))
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nnever fired in the period: %d\n", len(rep.NeverFired))
	if len(rep.NeverFired) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range rep.NeverFired {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s:%d\n", r.RuleID, r.Mode, r.Action, r.File, r.Line)
		}
		tw.Flush()
	}

	if len(rep.Shadow) > 0 {
		fmt.Fprintln(w, "\nshadow rules against the live decisions:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RULE\tACTION\tTYPES\tHITS\tLIVE>=ACTION\tAGREEMENT\tLIVE_NON_ALLOW_HIT\tMISSED\tCOVERAGE")
		for _, s := range rep.Shadow {
			types := strings.Join(s.EventTypes, ",")
			if types == "" {
				types = "all"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.3f\t%d\t%d\t%s\n", s.RuleID, s.Action, types, s.Hits, s.LiveAtLeastAsStrong,
				s.Agreement, s.LiveNonAllowCovered, s.LiveNonAllowMissed, statsRatio(s.LiveNonAllowCoverage))
		}
		tw.Flush()
	}
}

func statsRatio(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *v)
}

// statsGroup is how many buckets one sparkline column sums.
func statsGroup(n int) int { return max(1, (n+statsSparkWidth-1)/statsSparkWidth) }

func statsColumnWidth(rep *rulesapi.StatsReport) string {
	return (time.Duration(rep.BucketMS) * time.Millisecond * time.Duration(statsGroup(rep.Buckets))).String()
}

// statsSparkline draws counts as block heights scaled to the largest;
// a column with no hit is a dot, so one hit never looks like none.
func statsSparkline(counts []uint64) string {
	g := statsGroup(len(counts))
	var cols []uint64
	for i := 0; i < len(counts); i += g {
		var sum uint64
		for _, c := range counts[i:min(i+g, len(counts))] {
			sum += c
		}
		cols = append(cols, sum)
	}
	top := slices.Max(append(cols, 1))
	bars := []rune("▁▂▃▄▅▆▇█")
	var b strings.Builder
	for _, c := range cols {
		if c == 0 {
			b.WriteRune('·')
			continue
		}
		b.WriteRune(bars[(c*uint64(len(bars))-1)/top])
	}
	return b.String()
}
