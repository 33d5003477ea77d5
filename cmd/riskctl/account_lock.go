package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"time"
)

// lockAnswer is what POST /v1/accounts/{id}/lock and /unlock answer.
type lockAnswer struct {
	AccountID string    `json:"account_id"`
	Action    string    `json:"action"`
	Reason    string    `json:"reason"`
	Until     time.Time `json:"until"`
	Actor     string    `json:"actor"`
	At        time.Time `json:"at"`
}

// runAccountLock is riskctl account lock: support's lock of an account
// for a while, with the reason the audit trail keeps.
func runAccountLock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return accountLockCommand(ctx, "lock", args, stdout, stderr)
}

// runAccountUnlock is riskctl account unlock, after the owner was verified.
func runAccountUnlock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return accountLockCommand(ctx, "unlock", args, stdout, stderr)
}

func accountLockCommand(ctx context.Context, action string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl account "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	reason := fs.String("reason", "", "why, for the audit trail (required)")
	var duration *time.Duration
	usage := "usage: riskctl account unlock --reason R ID"
	if action == "lock" {
		duration = fs.Duration("for", 0, "how long the lock lasts, up to 720h (required)")
		usage = "usage: riskctl account lock --for D --reason R ID"
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage+"\n\nCalls riskd at $RISKCTL_URL with a support token ($RISKCTL_TOKEN).")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return &exitError{Code: 2, Err: err}
	}
	switch {
	case len(pos) != 1:
		fs.Usage()
		return &exitError{Code: 2, Err: fmt.Errorf("account %s: give one account id", action)}
	case *reason == "":
		return &exitError{Code: 2, Err: fmt.Errorf("account %s: --reason is required (it goes to the audit trail)", action)}
	case duration != nil && *duration <= 0:
		return &exitError{Code: 2, Err: errors.New("account lock: --for is required, e.g. --for 2h")}
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	body := map[string]any{"reason": *reason}
	if duration != nil {
		body["duration"] = duration.String()
	}
	var out lockAnswer
	if err := c.do(ctx, "POST", "/v1/accounts/"+url.PathEscape(pos[0])+"/"+action, body, &out); err != nil {
		return fmt.Errorf("account %s %s: %w", action, pos[0], err)
	}
	if action == "lock" {
		fmt.Fprintf(stdout, "%s locked until %s UTC by %s: %s\n", out.AccountID, out.Until.UTC().Format(time.DateTime), out.Actor, out.Reason)
	} else {
		fmt.Fprintf(stdout, "%s unlocked by %s: %s\n", out.AccountID, out.Actor, out.Reason)
	}
	return nil
}
