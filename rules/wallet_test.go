package rules

import (
	"strings"
	"testing"
)

// TestWalletFieldsAreDeclaredOrDefaulted: a rule's code, category,
// step_up and user_message are what it declares, and its action's
// defaults for what it leaves out.
func TestWalletFieldsAreDeclaredOrDefaulted(t *testing.T) {
	rs, err := Compile(map[string][]byte{"r.yaml": []byte(`
- id: scam
  when: event.type == "payment"
  action: block
  code: scam.payee_reported
  category: suspected_scam
  user_message: "This payee was reported for scams. The payment was not sent."
- id: pw
  when: event.type == "login"
  action: challenge
  step_up: reenter_password
- id: plain-block
  when: event.type == "payee_add"
  action: block
- id: lock
  when: event.type == "login_failed"
  action: lock
  lock_for: 30m
- id: score-only
  when: event.type == "topup"
  score: 5
`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id   string
		want Wallet
	}{
		{"scam", Wallet{Code: "scam.payee_reported", Category: CategorySuspectedScam,
			UserMessage: "This payee was reported for scams. The payment was not sent."}},
		{"pw", Wallet{Code: "verification_required", Category: CategoryVerifyIdentity, StepUp: StepUpReenterPassword,
			UserMessage: WalletDefault(Challenge).UserMessage}},
		{"plain-block", WalletDefault(Block)},
		{"lock", WalletDefault(Lock)},
		{"score-only", WalletDefault(Allow)},
	}
	for _, c := range cases {
		if got := rs.Rule(c.id).Wallet; got != c.want {
			t.Errorf("rule %s: wallet %+v, want %+v", c.id, got, c.want)
		}
	}
}

// TestWalletDefaultsCoverEveryAction: every action has a default code and
// a default category among those its rules may declare; only challenge
// has a step-up.
func TestWalletDefaultsCoverEveryAction(t *testing.T) {
	for a := Allow; a <= Lock; a++ {
		d := WalletDefault(a)
		if !validCode(d.Code) || len(CategoriesFor(a)) == 0 || CategoriesFor(a)[0] != d.Category {
			t.Errorf("action %s: default %+v, categories %v", a, d, CategoriesFor(a))
		}
		if (d.StepUp != "") != (a == Challenge) {
			t.Errorf("action %s: default step_up %q", a, d.StepUp)
		}
		if d.UserMessage != "" && checkUserMessage(d.UserMessage) != "" {
			t.Errorf("action %s: default message: %s", a, checkUserMessage(d.UserMessage))
		}
	}
}

// TestWalletFieldErrorsNameTheRuleAndPosition: each bad wallet key is a
// compile error at its value, with the rule id, and lint reports the same.
func TestWalletFieldErrorsNameTheRuleAndPosition(t *testing.T) {
	long := strings.Repeat("é", MaxUserMessage+1)
	cases := []struct {
		name, rule, want string
	}{
		{"a code with capitals", "  action: block\n  code: Scam", `r.yaml:4:9: rule x: code must be 1 to 64 characters of a-z, 0-9, _, . and -, not "Scam"`},
		{"a code over the bound", "  action: block\n  code: " + strings.Repeat("a", MaxCodeLen+1),
			`r.yaml:4:9: rule x: code must be 1 to 64 characters of a-z, 0-9, _, . and -, not "` + strings.Repeat("a", MaxCodeLen+1) + `"`},
		{"an unknown category", "  action: block\n  category: fraud",
			`r.yaml:4:13: rule x: unknown category "fraud": want one of allowed, security_notice, verify_identity, suspected_scam, limit_exceeded, declined, account_locked`},
		{"a category that does not go with the action", "  action: allow\n  category: account_locked",
			`r.yaml:4:13: rule x: category account_locked does not go with action allow: want one of allowed`},
		{"a step-up on a block", "  action: block\n  step_up: mfa", `r.yaml:4:12: rule x: step_up is only for action challenge, not block`},
		{"an unknown step-up", "  action: challenge\n  step_up: selfie",
			`r.yaml:4:12: rule x: unknown step_up "selfie": want one of mfa, reenter_password, call_support`},
		{"a message one character over the bound", "  action: block\n  user_message: " + long,
			`r.yaml:4:17: rule x: user_message has 201 characters, limit is 200`},
		{"an empty message", "  action: block\n  user_message: \"\"",
			`r.yaml:4:17: rule x: user_message must not be empty (leave it out for the action's default)`},
		{"a message on two lines", "  action: block\n  user_message: \"one\\ntwo\"",
			`r.yaml:4:17: rule x: user_message must be one line of text without control characters (found U+000A)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string][]byte{"r.yaml": []byte("- id: x\n  when: event.type == \"payment\"\n" + c.rule + "\n")}
			_, err := Compile(files, nil)
			if err == nil || err.Error() != c.want {
				t.Fatalf("compile: %v\nwant %s", err, c.want)
			}
			ps := Lint(files, nil)
			if wantLint := strings.Replace(c.want, ": rule x:", ": x:", 1); len(ps) != 1 || ps[0].String() != wantLint {
				t.Fatalf("lint: %q, want %s alone", lintStrings(ps), wantLint)
			}
		})
	}
	// Exactly at the bounds is fine.
	ok := "- id: x\n  when: event.type == \"payment\"\n  action: block\n  code: " + strings.Repeat("a", MaxCodeLen) +
		"\n  user_message: " + strings.Repeat("é", MaxUserMessage) + "\n"
	if _, err := Compile(map[string][]byte{"r.yaml": []byte(ok)}, nil); err != nil {
		t.Fatalf("code and message at their bounds: %v", err)
	}
}
