package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// subcommand is one "riskctl GROUP NAME" command.
type subcommand struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var rulesCommands = []subcommand{
	{"lint", "check a rule directory; every problem as file:line:col: rule-id: message", runRulesLint},
	{"test", "run a rule directory's examples and ordered events through the engine path", runRulesTest},
	{"backtest", "replay stored events of a period through a rule directory", runRulesBacktest},
	{"push", "publish a rule directory to a running riskd as a new version", runRulesPush},
	{"history", "list the published versions of a running riskd", runRulesHistory},
	{"diff", "show the rules, lists, settings and features added, removed and changed between two versions", runRulesDiff},
	{"rollback", "publish an earlier version again as a new version", runRulesRollback},
	{"features", "show the running window features, or publish a features file with the running rules", runRulesFeatures},
	{"candidate", "the candidate's decisions beside the live set's: agreement matrix and rule counts", runRulesCandidate},
	{"promote", "make the candidate the new live version", runRulesPromote},
	{"drop", "drop the candidate", runRulesDrop},
	{"stats", "hits by rule and version, precision against labels, rules that never fired", runRulesStats},
}

var labelsCommands = []subcommand{
	{"import", "import labels from CSV or JSON lines into riskd", runLabelsImport},
}

var accountCommands = []subcommand{
	{"show", "an account's timeline: events, decisions with rules and features, alerts, locks, labels", runAccountShow},
	{"lock", "lock an account for a while, with the reason (support)", runAccountLock},
	{"unlock", "unlock an account once its owner is verified, with the reason (support)", runAccountUnlock},
	{"suppress", "stop one rule from counting for an account for a while, with the reason (support, analyst)", runAccountSuppress},
	{"unsuppress", "let a suppressed rule count again for an account before the end (support, analyst)", runAccountUnsuppress},
}

func runAccount(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, "account", accountCommands, args, stdout, stderr)
}

func runRules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, "rules", rulesCommands, args, stdout, stderr)
}

func runLabels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, "labels", labelsCommands, args, stdout, stderr)
}

// dispatch runs the subcommand args[0] names, or prints the group's usage.
func dispatch(ctx context.Context, group string, cmds []subcommand, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: riskctl %s COMMAND [flags]\n\ncommands:\n", group)
		for _, c := range cmds {
			fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
		}
	}
	if len(args) == 0 {
		usage(stderr)
		return errors.New("no " + group + " command")
	}
	for _, c := range cmds {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return nil
	}
	usage(stderr)
	return fmt.Errorf("unknown %s command %q", group, args[0])
}

// errHelped ends a command that printed its usage for -h: not a failure.
var errHelped = errors.New("usage shown")

// parseArgs is parseInterleaved with the answers every command gives: -h
// prints the usage and ends the command (errHelped, exit 0), a bad flag
// exits 2.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parseInterleaved(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil, errHelped
	case err != nil:
		return nil, &exitError{Code: 2, Err: err}
	}
	return pos, nil
}

// parseInterleaved parses fs's flags wherever they stand among args (flags
// before the positionals, as the examples write them, or after) and
// returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
