package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"time"

	"riskd/api"
)

// runAccountSuppress is riskctl account suppress: one rule stops counting
// for one account for a while, with the reason the audit trail keeps.
func runAccountSuppress(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return accountSuppressCommand(ctx, "suppress", args, stdout, stderr)
}

// runAccountUnsuppress is riskctl account unsuppress: the rule counts
// again for the account before the suppression's end.
func runAccountUnsuppress(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return accountSuppressCommand(ctx, "unsuppress", args, stdout, stderr)
}

func accountSuppressCommand(ctx context.Context, action string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl account "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	rule := fs.String("rule", "", "the id of the rule (required)")
	reason := fs.String("reason", "", "why, for the audit trail")
	var duration *time.Duration
	usage := "usage: riskctl account unsuppress --rule R [--reason R] ID"
	if action == "suppress" {
		duration = fs.Duration("for", 0, "how long the suppression lasts, up to 2160h (required)")
		usage = "usage: riskctl account suppress --rule R --for D --reason R ID"
		fs.Lookup("reason").Usage = "why, for the audit trail (required)"
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage+"\n\nCalls riskd at $RISKCTL_URL with a support or analyst token ($RISKCTL_TOKEN).")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		fs.Usage()
		return &exitError{Code: 2, Err: fmt.Errorf("account %s: give one account id", action)}
	case *rule == "":
		return &exitError{Code: 2, Err: fmt.Errorf("account %s: --rule is required", action)}
	case duration != nil && *duration <= 0:
		return &exitError{Code: 2, Err: errors.New("account suppress: --for is required, e.g. --for 72h")}
	case duration != nil && *reason == "":
		return &exitError{Code: 2, Err: errors.New("account suppress: --reason is required (it goes to the audit trail)")}
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	id := pos[0]
	var out api.SuppressionEvent
	if action == "suppress" {
		body := map[string]any{"rule": *rule, "duration": duration.String(), "reason": *reason}
		if err := c.do(ctx, "POST", "/v1/accounts/"+url.PathEscape(id)+"/suppressions", body, &out); err != nil {
			return fmt.Errorf("account suppress %s: %w", id, err)
		}
		fmt.Fprintf(stdout, "%s: rule %s suppressed until %s UTC by %s: %s\n", out.AccountID, out.RuleID,
			out.Until.UTC().Format(time.DateTime), out.Actor, out.Reason)
		return nil
	}
	var body any
	if *reason != "" {
		body = map[string]any{"reason": *reason}
	}
	if err := c.do(ctx, "DELETE", "/v1/accounts/"+url.PathEscape(id)+"/suppressions/"+url.PathEscape(*rule), body, &out); err != nil {
		return fmt.Errorf("account unsuppress %s: %w", id, err)
	}
	fmt.Fprintf(stdout, "%s: rule %s counts again (lifted by %s)\n", out.AccountID, out.RuleID, out.Actor)
	return nil
}
