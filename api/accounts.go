package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Accounts is what support's routes need: locks that reach the engine,
// the account service (risk.actions) and the audit tables.
type Accounts interface {
	// Lock locks an account for req.For, or until an unlock when
	// req.Indefinite.
	Lock(ctx context.Context, req LockRequest) (LockEvent, error)
	// Unlock lifts the lock in force; ErrAccountUnknown or ErrNotLocked
	// when there is none.
	Unlock(ctx context.Context, req LockRequest) (LockEvent, error)
	LockHistory(ctx context.Context, accountID string, limit int) ([]LockEvent, error)
}

var (
	// ErrAccountUnknown is returned by Unlock for an account riskd has
	// stored nothing of and that is not locked: most likely a typo.
	ErrAccountUnknown = errors.New("unknown account: nothing stored and not locked")
	// ErrNotLocked is returned by Unlock for a known account without a
	// lock in force (never locked, unlocked already, or the lock ended).
	ErrNotLocked = errors.New("account is not locked")
)

// LockRequest is a support agent's lock or unlock.
type LockRequest struct {
	AccountID string
	Reason    string
	// For is how long a lock lasts (lock only, unless Indefinite).
	For time.Duration
	// Indefinite makes a lock last until an unlock (lock only).
	Indefinite bool
	// Verification is how the agent verified the owner's identity, one of
	// VerificationMethods (unlock only).
	Verification string
	Actor        Caller
}

// LockEvent is one lock or unlock, as stored.
type LockEvent struct {
	AccountID string    `json:"account_id"`
	Action    string    `json:"action"` // lock or unlock
	Reason    string    `json:"reason"`
	Until     time.Time `json:"until,omitzero"`
	// Indefinite marks a lock without an end (Until is then absent).
	Indefinite bool `json:"indefinite,omitempty"`
	// Verification is how the owner was verified (an unlock's answer).
	Verification string `json:"verification,omitempty"`
	// LockedBy is the lock an unlock lifted: its rule id or
	// "support:<token name>" (an unlock's answer).
	LockedBy string `json:"locked_by,omitempty"`
	// Cleared lists the account's window features the unlock reset: the
	// locking rule's unlock_clears (an unlock's answer; [] when none).
	Cleared []string  `json:"cleared,omitzero"`
	Actor   string    `json:"actor"`
	At      time.Time `json:"at"`
	EventID string    `json:"event_id,omitempty"`
}

// MaxLockFor bounds a manual lock with a duration; a lock meant to last
// longer is an indefinite one, lifted by an unlock.
const MaxLockFor = 30 * 24 * time.Hour

// VerificationMethods are how support may verify an owner's identity
// before unlocking, a closed list so that the audit trail can be counted
// by method (docs/SUPPORT.md).
var VerificationMethods = []string{"id_document", "video_call", "security_questions", "in_branch", "sms_otp"}

// AccountRoutes are the support routes: lock and unlock (support), and
// the lock history (support, viewer).
func AccountRoutes(a Accounts) []Route {
	lock := func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reason     string `json:"reason"`
			Duration   string `json:"duration"`
			Indefinite bool   `json:"indefinite"`
		}
		if !DecodeJSON(w, r, &body) {
			return
		}
		var d time.Duration
		switch {
		case body.Indefinite && body.Duration != "":
			WriteError(w, http.StatusBadRequest, "give either duration or \"indefinite\": true, not both")
			return
		case !body.Indefinite:
			var err error
			d, err = time.ParseDuration(body.Duration)
			if err != nil || d <= 0 || d > MaxLockFor {
				WriteError(w, http.StatusBadRequest, "duration: want a positive Go duration up to 720h, e.g. \"2h\", or \"indefinite\": true for a lock until an unlock")
				return
			}
		}
		req, ok := lockRequest(w, r, body.Reason)
		if !ok {
			return
		}
		req.For, req.Indefinite = d, body.Indefinite
		ev, err := a.Lock(r.Context(), req)
		if err != nil {
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, ev)
	}
	unlock := func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reason       string `json:"reason"`
			Verification string `json:"verification"`
		}
		if !DecodeJSON(w, r, &body) {
			return
		}
		if !slices.Contains(VerificationMethods, body.Verification) {
			WriteError(w, http.StatusBadRequest, "verification: required, how the owner's identity was verified: one of "+
				strings.Join(VerificationMethods, ", "))
			return
		}
		req, ok := lockRequest(w, r, body.Reason)
		if !ok {
			return
		}
		req.Verification = body.Verification
		ev, err := a.Unlock(r.Context(), req)
		switch {
		case errors.Is(err, ErrAccountUnknown):
			WriteError(w, http.StatusNotFound, "account "+req.AccountID+": "+err.Error())
			return
		case errors.Is(err, ErrNotLocked):
			WriteError(w, http.StatusConflict, "account "+req.AccountID+": "+err.Error())
			return
		case err != nil:
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, ev)
	}
	history := func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !validAccountID(id) {
			WriteError(w, http.StatusBadRequest, "invalid account id")
			return
		}
		evs, err := a.LockHistory(r.Context(), id, 100)
		if err != nil {
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if evs == nil {
			evs = []LockEvent{}
		}
		WriteJSON(w, http.StatusOK, map[string]any{"account_id": id, "locks": evs})
	}
	const small = 4 << 10
	return []Route{
		{Pattern: "POST /v1/accounts/{id}/lock", Roles: []Role{RoleSupport}, MaxBody: small, Handler: http.HandlerFunc(lock)},
		{Pattern: "POST /v1/accounts/{id}/unlock", Roles: []Role{RoleSupport}, MaxBody: small, Handler: http.HandlerFunc(unlock)},
		{Pattern: "GET /v1/accounts/{id}/locks", Roles: []Role{RoleSupport, RoleViewer}, Handler: http.HandlerFunc(history)},
	}
}

// lockRequest checks the path's account id and the audited reason.
func lockRequest(w http.ResponseWriter, r *http.Request, reason string) (LockRequest, bool) {
	id := r.PathValue("id")
	if !validAccountID(id) {
		WriteError(w, http.StatusBadRequest, "invalid account id")
		return LockRequest{}, false
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > 500 {
		WriteError(w, http.StatusBadRequest, "reason: required, at most 500 characters (it is audited)")
		return LockRequest{}, false
	}
	caller, _ := CallerFrom(r.Context())
	return LockRequest{AccountID: id, Reason: reason, Actor: caller}, true
}

func validAccountID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c < 0x21 || c == 0x7f {
			return false
		}
	}
	return true
}
