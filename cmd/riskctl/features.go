package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// maxFeaturesBytes bounds the features file riskctl sends: the rule
// topic's record limit covers it together with the rule files.
const maxFeaturesBytes = 2 << 20

// runRulesFeatures shows the window features the running version carries,
// or publishes FILE as new ones: every instance changes its features and
// installs the running rules against them at one place in its stream.
func runRulesFeatures(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl rules features", flag.ContinueOnError)
	fs.SetOutput(stderr)
	msg := fs.String("m", "", "what the change does, for the history (default: features from FILE)")
	asJSON := fs.Bool("json", false, "print riskd's JSON answer (show only)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: riskctl rules features [--json]\n       riskctl rules features [-m MSG] FILE\n\n"+
			"Without FILE, shows the window features the running version carries. With FILE (a features\n"+
			"file, as riskd's rules.features), publishes it with the running rules as a new version.")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		fs.Usage()
		return &exitError{Code: 2, Err: errors.New("features: give at most one features file")}
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return showFeatures(ctx, c, *asJSON, stdout)
	}
	fi, err := os.Stat(pos[0])
	if err != nil {
		return fmt.Errorf("features: %w", err)
	}
	if fi.Size() > maxFeaturesBytes {
		return fmt.Errorf("features: %s holds %d bytes, more than the %d riskctl sends", pos[0], fi.Size(), maxFeaturesBytes)
	}
	b, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("features: %w", err)
	}
	if *msg == "" {
		*msg = "features from " + pos[0]
	}
	var out publishAnswer
	err = c.do(ctx, "PUT", "/v1/features", map[string]any{"features": string(b), "message": *msg}, &out)
	return reportPublish(stdout, stderr, "features", out, err)
}

// featuresAnswer is riskd's GET /v1/features answer.
type featuresAnswer struct {
	Version  string `json:"version"`
	File     string `json:"file"`
	Features []struct {
		Name   string   `json:"name"`
		Kind   string   `json:"kind"`
		Of     string   `json:"of"`
		By     string   `json:"by"`
		Window string   `json:"window"`
		Where  string   `json:"where"`
		Steps  []string `json:"steps"`
		Link   string   `json:"link"`
	} `json:"features"`
}

func showFeatures(ctx context.Context, c *apiClient, asJSON bool, stdout io.Writer) error {
	if asJSON {
		return c.printJSON(ctx, "/v1/features", "features", stdout)
	}
	var out featuresAnswer
	if err := c.do(ctx, "GET", "/v1/features", nil, &out); err != nil {
		return fmt.Errorf("features: %w", err)
	}
	fmt.Fprintf(stdout, "version %s: %d window features\n\n", out.Version, len(out.Features))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tOF\tBY\tWINDOW\tWHERE")
	for _, f := range out.Features {
		of := f.Of
		if len(f.Steps) > 0 {
			of = strings.Join(f.Steps, " -> ")
			if f.Link != "" {
				of += " (same " + f.Link + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.Kind, orDash(of), f.By, f.Window, orDash(f.Where))
	}
	return tw.Flush()
}
