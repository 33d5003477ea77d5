package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// lockAnswer is what POST /v1/accounts/{id}/lock and /unlock answer.
type lockAnswer struct {
	AccountID    string    `json:"account_id"`
	Action       string    `json:"action"`
	Reason       string    `json:"reason"`
	Until        time.Time `json:"until"`
	Indefinite   bool      `json:"indefinite"`
	Verification string    `json:"verification"`
	LockedBy     string    `json:"locked_by"`
	Cleared      []string  `json:"cleared"`
	Actor        string    `json:"actor"`
	At           time.Time `json:"at"`
}

// verificationMethods mirrors api.VerificationMethods for the usage text;
// riskd checks the value.
const verificationMethods = "id_document, video_call, security_questions, in_branch, sms_otp"

// runAccountLock is riskctl account lock: support's lock of an account
// for a while or until an unlock, with the reason the audit trail keeps.
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
	var indefinite *bool
	var verifiedBy *string
	usage := "usage: riskctl account unlock --reason R --verified-by METHOD ID"
	if action == "lock" {
		duration = fs.Duration("for", 0, "how long the lock lasts, up to 720h (this or --indefinite)")
		indefinite = fs.Bool("indefinite", false, "lock until support unlocks (this or --for)")
		usage = "usage: riskctl account lock (--for D | --indefinite) --reason R ID"
	} else {
		verifiedBy = fs.String("verified-by", "", "how the owner's identity was verified (required): "+verificationMethods)
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage+"\n\nCalls riskd at $RISKCTL_URL with a support token ($RISKCTL_TOKEN).")
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
	case *reason == "":
		return &exitError{Code: 2, Err: fmt.Errorf("account %s: --reason is required (it goes to the audit trail)", action)}
	case action == "lock" && *indefinite && *duration != 0:
		return &exitError{Code: 2, Err: errors.New("account lock: give --for or --indefinite, not both")}
	case action == "lock" && !*indefinite && *duration <= 0:
		return &exitError{Code: 2, Err: errors.New("account lock: --for is required, e.g. --for 2h, or --indefinite")}
	case verifiedBy != nil && *verifiedBy == "":
		return &exitError{Code: 2, Err: fmt.Errorf("account unlock: --verified-by is required: how the owner's identity was verified (%s)", verificationMethods)}
	}
	c, err := apiClientFromEnv()
	if err != nil {
		return err
	}
	body := map[string]any{"reason": *reason}
	switch {
	case indefinite != nil && *indefinite:
		body["indefinite"] = true
	case duration != nil:
		body["duration"] = duration.String()
	}
	if verifiedBy != nil {
		body["verification"] = *verifiedBy
	}
	var out lockAnswer
	if err := c.do(ctx, "POST", "/v1/accounts/"+url.PathEscape(pos[0])+"/"+action, body, &out); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			switch ae.Status {
			case http.StatusNotFound:
				return &exitError{Code: 3, Err: fmt.Errorf("account %s %s: no such account (riskd has stored nothing of it): %w", action, pos[0], err)}
			case http.StatusConflict:
				return &exitError{Code: 4, Err: fmt.Errorf("account %s %s: not locked now, nothing to unlock: %w", action, pos[0], err)}
			}
		}
		return fmt.Errorf("account %s %s: %w", action, pos[0], err)
	}
	switch {
	case action == "lock" && out.Indefinite:
		fmt.Fprintf(stdout, "%s locked until unlocked (no end) by %s: %s\n", out.AccountID, out.Actor, out.Reason)
	case action == "lock":
		fmt.Fprintf(stdout, "%s locked until %s UTC by %s: %s\n", out.AccountID, out.Until.UTC().Format(time.DateTime), out.Actor, out.Reason)
	default:
		cleared := "nothing reset"
		if len(out.Cleared) > 0 {
			cleared = "reset " + strings.Join(out.Cleared, ", ")
		}
		fmt.Fprintf(stdout, "%s unlocked by %s (verified: %s; lock by %s; %s): %s\n", out.AccountID, out.Actor,
			out.Verification, out.LockedBy, cleared, out.Reason)
	}
	return nil
}
