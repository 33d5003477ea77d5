package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"riskd/engine"
	"riskd/rules"
)

// maxEventsFileBytes bounds an events file riskctl rules test reads.
const maxEventsFileBytes = 64 << 20

// runRulesTest is riskctl rules test: the rule directory's examples and
// the events of EVENTS_FILE decided locally through the engine path
// (engine.RunTrial), with features computed from the earlier events. Exit
// 1 when an example fails or the set does not compile, 2 for a usage or
// I/O error.
func runRulesTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl rules test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: riskctl rules test [--features FILE] [--json] DIR [EVENTS_FILE]\n\n"+
			"EVENTS_FILE is a JSON array or JSON lines of test events: {\"event\": {...}, \"f\": {...}, \"account\": {...}}.")
		fs.PrintDefaults()
	}
	featuresPath := fs.String("features", defaultFeatures, "feature definitions the rules read (riskd's rules.features)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	allFeatures := fs.Bool("all-features", false, "list every feature the rules that ran read, not only those of the rules that matched and the values given")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		fs.Usage()
		return usageError("rules test: want DIR [EVENTS_FILE], got %d arguments", len(pos))
	}
	set, files, err := loadRuleDir(pos[0], *featuresPath)
	if err != nil {
		return err
	}
	var events []rules.TestEvent
	if len(pos) == 2 {
		if events, err = readTestEvents(pos[1]); err != nil {
			return usageError("%w", err)
		}
	}
	rs, err := rules.Compile(files, set)
	if err != nil {
		return &exitError{Code: 1, Err: fmt.Errorf("rules test: %s does not compile: %w (riskctl rules lint %s lists every problem)", pos[0], err, pos[0])}
	}
	rep, err := engine.RunTrial(engine.Config{}, set, rs, events, time.Now())
	if err != nil {
		return usageError("rules test %s: %w", pos[len(pos)-1], err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return usageError("writing: %w", err)
		}
	} else {
		printTrial(stdout, rep, focus(rs, *allFeatures))
	}
	if !rep.ExamplesPassed {
		failed := 0
		for _, ex := range rep.Examples {
			if !ex.Pass {
				failed++
			}
		}
		return &exitError{Code: 1, Err: fmt.Errorf("rules test: %d of %d examples failed", failed, len(rep.Examples))}
	}
	return nil
}

// readTestEvents reads a JSON array or JSON lines of test events, at most
// rules.MaxTestEvents of them.
func readTestEvents(path string) ([]rules.TestEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxEventsFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("events %s: %w", path, err)
	}
	if len(data) > maxEventsFileBytes {
		return nil, fmt.Errorf("events %s: larger than %d MiB", path, maxEventsFileBytes>>20)
	}
	trimmed := bytes.TrimSpace(data)
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber() // amounts and times as written
	dec.DisallowUnknownFields()
	var events []rules.TestEvent
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := dec.Decode(&events); err != nil {
			return nil, fmt.Errorf("events %s: %w", path, err)
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(trimmed))
		sc.Buffer(nil, maxEventsFileBytes)
		line := 0
		for sc.Scan() {
			line++
			text := strings.TrimSpace(sc.Text())
			if text == "" {
				continue
			}
			d := json.NewDecoder(strings.NewReader(text))
			d.UseNumber()
			d.DisallowUnknownFields()
			var te rules.TestEvent
			if err := d.Decode(&te); err != nil {
				return nil, fmt.Errorf("events %s:%d: %w", path, line, err)
			}
			if len(events) == rules.MaxTestEvents {
				return nil, fmt.Errorf("events %s:%d: %w", path, line, rules.ErrTooManyTestEvents)
			}
			events = append(events, te)
		}
	}
	if len(events) > rules.MaxTestEvents {
		return nil, fmt.Errorf("events %s: %d events: %w", path, len(events), rules.ErrTooManyTestEvents)
	}
	return events, nil
}

// printTrial writes the report as a table: one block per event, then the
// examples.
func printTrial(w io.Writer, rep *engine.TrialReport, show func(engine.TrialEvent, engine.TrialFeature) bool) {
	hits := func(hs []engine.TrialHit) string {
		if len(hs) == 0 {
			return "-"
		}
		var parts []string
		for _, h := range hs {
			s := h.RuleID
			if h.Error != "" {
				s += " (" + h.Error + ")"
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ", ")
	}
	// An example's features are all shown: it concerns one rule.
	feats := func(e engine.TrialEvent) string {
		var parts []string
		for _, f := range e.Features {
			if e.Index < 0 || show(e, f) {
				parts = append(parts, fmt.Sprintf("%s=%v (%s)", f.Name, f.Value, f.Source))
			}
		}
		return strings.Join(parts, ", ")
	}
	for _, e := range rep.Events {
		reason := ""
		if e.Reason != "" {
			reason = " (" + e.Reason + ")"
		}
		fmt.Fprintf(w, "event %d  %s  %s  account %s  %s\n  -> %s score %d%s\n", e.Index, e.EventID, e.Type, e.AccountID,
			time.UnixMilli(e.TS).UTC().Format(time.RFC3339Nano), e.Action, e.Score, reason)
		fmt.Fprintf(w, "  matched: %s   shadow: %s   errored: %s\n", hits(e.Matched), hits(e.Shadow), hits(e.Errored))
		if f := feats(e); f != "" {
			fmt.Fprintf(w, "  features: %s\n", f)
		}
	}
	passed := 0
	for _, ex := range rep.Examples {
		if ex.Pass {
			passed++
			continue
		}
		msg := fmt.Sprintf("expected %s, got %s", ex.Expect, ex.Result)
		if ex.Error != "" {
			msg += ": " + ex.Error
		}
		fmt.Fprintf(w, "FAIL %s example %d (%s): %s", ex.RuleID, ex.Index, ex.File, msg)
		if len(ex.Features) > 0 {
			fmt.Fprintf(w, "; read %s", feats(engine.TrialEvent{Index: -1, Features: ex.Features}))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "examples: %d of %d passed\n", passed, len(rep.Examples))
}

// focus says which feature values of an event the text report shows: all
// of them, or those the event's matched, shadow and errored rules read and
// those given with it, which is what explains the decision.
func focus(rs *rules.RuleSet, all bool) func(engine.TrialEvent, engine.TrialFeature) bool {
	if all {
		return func(engine.TrialEvent, engine.TrialFeature) bool { return true }
	}
	return func(e engine.TrialEvent, f engine.TrialFeature) bool {
		if f.Source == engine.SourceGiven {
			return true
		}
		for _, hits := range [][]engine.TrialHit{e.Matched, e.Shadow, e.Errored} {
			for _, h := range hits {
				if r := rs.Rule(h.RuleID); r != nil && slices.Contains(r.Features, f.Name) {
					return true
				}
			}
		}
		return false
	}
}
