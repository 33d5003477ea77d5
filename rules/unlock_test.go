package rules

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"riskd/features"
)

func unlockFeatures(t *testing.T) *features.Set {
	t.Helper()
	defs, err := features.ParseDefinitions([]byte(`failed_logins_15m: {count: login_failed, by: account, window: 15m}
payments_1h: {count: payment, by: account, window: 1h}
failed_logins_ip_15m: {count: login_failed, by: ip, window: 15m}
`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := features.Compile(defs, features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestUnlockClears: the default is the account features the rule reads;
// a declared list replaces it; lock_for: indefinite parses.
func TestUnlockClears(t *testing.T) {
	set := unlockFeatures(t)
	rs, err := Compile(map[string][]byte{"auth.yaml": []byte(`
- id: by-default
  when: f.failed_logins_15m >= 5 && f.failed_logins_ip_15m >= 1 && f.new_device
  action: lock
  lock_for: 30m
- id: declared
  when: f.payments_1h > 10
  action: lock
  lock_for: indefinite
  unlock_clears: [failed_logins_15m, payments_1h]
- id: none
  when: f.payments_1h > 20
  action: lock
  lock_for: 1h
  unlock_clears: []
- id: not-a-lock
  when: f.payments_1h > 5
  action: block
`)}, set)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string][]string{"by-default": {"failed_logins_15m"},
		"declared": {"failed_logins_15m", "payments_1h"}, "none": {}, "not-a-lock": nil} {
		if got := rs.Rule(id).UnlockClears; !slices.Equal(got, want) {
			t.Errorf("%s: unlock clears %q, want %q", id, got, want)
		}
	}
	if rs.Rule("declared").LockFor != LockIndefinite {
		t.Errorf("lock_for: indefinite gave %v", rs.Rule("declared").LockFor)
	}
}

// TestUnlockClearsErrors: each wrong unlock_clears is a compile error at
// its position, and Lint reports it too.
func TestUnlockClearsErrors(t *testing.T) {
	set := unlockFeatures(t)
	for _, tc := range []struct{ yaml, want string }{
		{"  action: lock\n  lock_for: 30m\n  unlock_clears: [failed_logins_16m]\n", "auth.yaml:5:19: rule r: unlock_clears: unknown feature f.failed_logins_16m"},
		{"  action: lock\n  lock_for: 30m\n  unlock_clears: [failed_logins_ip_15m]\n", "auth.yaml:5:19: rule r: unlock_clears: feature failed_logins_ip_15m is not grouped by account"},
		{"  action: lock\n  lock_for: 30m\n  unlock_clears: [new_device]\n", "auth.yaml:5:19: rule r: unlock_clears: unknown feature f.new_device"},
		{"  action: block\n  unlock_clears: [failed_logins_15m]\n", "auth.yaml:4:18: rule r: unlock_clears is only for action lock, not block"},
		{"  action: lock\n  lock_for: 30m\n  unlock_clears: failed_logins_15m\n", "auth.yaml:5:18: rule r: unlock_clears must be a list"},
		{"  action: lock\n  lock_for: forever\n", "auth.yaml:4:13: rule r: lock_for must be a positive duration"},
	} {
		src := "- id: r\n  when: f.failed_logins_15m >= 5\n" + tc.yaml
		_, err := Compile(map[string][]byte{"auth.yaml": []byte(src)}, set)
		var ce *CompileError
		if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %s...", tc.yaml, err, tc.want)
			continue
		}
		probs := Lint(map[string][]byte{"auth.yaml": []byte(src)}, set)
		if len(probs) != 1 || probs[0].Line != ce.Line || probs[0].Col != ce.Col {
			t.Errorf("%q: lint %v, want one problem at %d:%d", tc.yaml, probs, ce.Line, ce.Col)
		}
	}
}
