package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"riskd/features"
	"riskd/rules"
)

// defaultFeatures is the feature file rules are checked against unless
// --features names another: the reference workload's, which riskd's
// default configuration loads too.
const defaultFeatures = "bench/reference/features.yaml"

// usageError is a usage or I/O problem: exit code 2, as hooks expect.
func usageError(format string, args ...any) error {
	return &exitError{Code: 2, Err: fmt.Errorf(format, args...)}
}

// loadRuleDir reads the feature file and the rule directory's files.
func loadRuleDir(dir, featuresPath string) (*features.Set, map[string][]byte, error) {
	set, err := features.LoadFile(featuresPath, features.DefaultConfig())
	if err != nil {
		return nil, nil, usageError("features %s: %w (give another with --features)", featuresPath, err)
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, nil, usageError("rule directory: %w", err)
	} else if !st.IsDir() {
		return nil, nil, usageError("rule directory %s is not a directory", dir)
	}
	files, err := rules.ReadFiles(os.DirFS(dir))
	if err != nil {
		return nil, nil, usageError("reading rules %s: %w", dir, err)
	}
	return set, files, nil
}

// runRulesLint is riskctl rules lint: every problem of a rule directory,
// one a line as DIR/file:line:col: rule-id: message. Exit 0 when there is
// none, 1 when there are some, 2 for a usage or I/O error.
func runRulesLint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl rules lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: riskctl rules lint [--features FILE] [--json] DIR")
		fs.PrintDefaults()
	}
	featuresPath := fs.String("features", defaultFeatures, "feature definitions the rules read (riskd's rules.features)")
	asJSON := fs.Bool("json", false, "print the problems as a JSON array")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageError("rules lint: want one rule directory, got %d arguments", len(pos))
	}
	dir := pos[0]
	set, files, err := loadRuleDir(dir, *featuresPath)
	if err != nil {
		return err
	}
	problems := rules.Lint(files, set)
	for i := range problems {
		if problems[i].File != "" {
			problems[i].File = filepath.Join(dir, filepath.FromSlash(problems[i].File))
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if problems == nil {
			problems = []rules.Problem{}
		}
		if err := enc.Encode(problems); err != nil {
			return usageError("writing: %w", err)
		}
	} else {
		for _, p := range problems {
			fmt.Fprintln(stdout, p.String())
		}
	}
	if len(problems) > 0 {
		word := "problems"
		if len(problems) == 1 {
			word = "problem"
		}
		return &exitError{Code: 1, Err: fmt.Errorf("rules lint: %d %s in %s", len(problems), word, dir)}
	}
	return nil
}
