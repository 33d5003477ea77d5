package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// Role is what a token may do.
type Role string

// Roles. Admin may do everything; the others one job each.
const (
	RoleHook    Role = "hook"    // the payment authorization hook: decide
	RoleAnalyst Role = "analyst" // rules and lists
	RoleSupport Role = "support" // lock and unlock accounts
	RoleViewer  Role = "viewer"  // read-only
	RoleAdmin   Role = "admin"   // all of the above
)

var knownRoles = map[Role]bool{RoleHook: true, RoleAnalyst: true, RoleSupport: true, RoleViewer: true, RoleAdmin: true}

// Token is one API credential. Only its name ever appears in logs and
// audit records.
type Token struct {
	Name string
	Role Role
	// sum is the SHA-256 of the secret: comparing fixed-length digests in
	// constant time leaks neither the secret nor its length.
	sum [32]byte
}

// ParseTokens reads "name:role:secret" entries (the config's auth.tokens).
// Names must be unique and secrets at least 16 characters.
func ParseTokens(entries []string) ([]Token, error) {
	var tokens []Token
	names := map[string]bool{}
	for i, e := range entries {
		name, rest, ok1 := strings.Cut(e, ":")
		role, secret, ok2 := strings.Cut(rest, ":")
		switch {
		case !ok1 || !ok2 || name == "":
			return nil, fmt.Errorf("auth.tokens[%d]: want name:role:secret", i)
		case !knownRoles[Role(role)]:
			return nil, fmt.Errorf("auth.tokens[%d] (%s): unknown role %q (hook, analyst, support, viewer, admin)", i, name, role)
		case len(secret) < 16:
			return nil, fmt.Errorf("auth.tokens[%d] (%s): secret shorter than 16 characters", i, name)
		case names[name]:
			return nil, fmt.Errorf("auth.tokens[%d]: duplicate name %q", i, name)
		}
		sum := sha256.Sum256([]byte(secret))
		for _, other := range tokens {
			if other.sum == sum {
				// One secret, two names: the caller would be whichever
				// token matched, and the audit log could not say who.
				return nil, fmt.Errorf("auth.tokens[%d] (%s): same secret as token %s; give each token its own secret", i, name, other.Name)
			}
		}
		names[name] = true
		tokens = append(tokens, Token{Name: name, Role: Role(role), sum: sum})
	}
	return tokens, nil
}

// Caller is the authenticated identity of a request.
type Caller struct {
	Name string
	Role Role
}

type callerKey struct{}

// CallerFrom returns the request's authenticated caller.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// WithCaller attaches c to ctx (the auth middleware does this).
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// authenticate finds the token presented as "Authorization: Bearer ...".
func authenticate(tokens []Token, r *http.Request) (Caller, bool) {
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return Caller{}, false
	}
	return matchSecret(tokens, secret)
}

// matchSecret finds the token whose secret is secret. Every token is
// compared, so the time taken does not say which one matched.
func matchSecret(tokens []Token, secret string) (Caller, bool) {
	if secret == "" {
		return Caller{}, false
	}
	sum := sha256.Sum256([]byte(secret))
	var found Caller
	matched := 0
	for _, t := range tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			found = Caller{Name: t.Name, Role: t.Role}
			matched = 1
		}
	}
	return found, matched == 1
}

// allowed reports whether role may call a route open to roles.
func allowed(role Role, roles []Role) bool {
	if role == RoleAdmin {
		return true
	}
	for _, r := range roles {
		if r == role {
			return true
		}
	}
	return false
}
