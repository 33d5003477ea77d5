package api_test

import (
	"strings"
	"testing"

	"riskd/api"
)

func TestParseTokensRefusesMistakes(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		want    string
	}{
		{"no role", []string{"alice:0123456789abcdef"}, "auth.tokens[0]: want name:role:secret"},
		{"an unknown role", []string{"alice:root:0123456789abcdef"}, `auth.tokens[0] (alice): unknown role "root" (hook, analyst, support, viewer, admin)`},
		{"a short secret", []string{"alice:analyst:short"}, "auth.tokens[0] (alice): secret shorter than 16 characters"},
		{"a name twice", []string{"alice:analyst:0123456789abcdef", "alice:viewer:fedcba9876543210"}, `auth.tokens[1]: duplicate name "alice"`},
		{"one secret with two roles", []string{"alice:viewer:0123456789abcdef", "bob:admin:0123456789abcdef"},
			"auth.tokens[1] (bob): same secret as token alice; give each token its own secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := api.ParseTokens(tt.entries)
			if err == nil || err.Error() != tt.want {
				t.Errorf("ParseTokens = %v, want %q", err, tt.want)
			}
			for _, e := range tt.entries {
				_, secret, _ := strings.Cut(e[strings.IndexByte(e, ':')+1:], ":")
				if len(secret) >= 16 && err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("the error repeats a secret: %v", err)
				}
			}
		})
	}
	if tokens, err := api.ParseTokens([]string{"alice:analyst:0123456789abcdef", "bob:admin:fedcba9876543210"}); err != nil || len(tokens) != 2 {
		t.Errorf("two good tokens: %v, %v", tokens, err)
	}
}
