package api

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// Accounts is what support's routes need: locks that reach the engine,
// the account service (risk.actions) and the audit table.
type Accounts interface {
	Lock(ctx context.Context, req LockRequest) (LockEvent, error)
	Unlock(ctx context.Context, req LockRequest) (LockEvent, error)
	LockHistory(ctx context.Context, accountID string, limit int) ([]LockEvent, error)
}

// LockRequest is a support agent's lock or unlock.
type LockRequest struct {
	AccountID string
	Reason    string
	// For is how long a lock lasts (lock only).
	For   time.Duration
	Actor Caller
}

// LockEvent is one lock or unlock, as stored.
type LockEvent struct {
	AccountID string    `json:"account_id"`
	Action    string    `json:"action"` // lock or unlock
	Reason    string    `json:"reason"`
	Until     time.Time `json:"until,omitzero"`
	Actor     string    `json:"actor"`
	At        time.Time `json:"at"`
	EventID   string    `json:"event_id,omitempty"`
}

// MaxLockFor bounds a manual lock; longer needs a decision outside riskd.
const MaxLockFor = 30 * 24 * time.Hour

// AccountRoutes are the support routes: lock and unlock (support), and
// the lock history (support, viewer).
func AccountRoutes(a Accounts) []Route {
	lock := func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reason   string `json:"reason"`
			Duration string `json:"duration"`
		}
		if !DecodeJSON(w, r, &body) {
			return
		}
		d, err := time.ParseDuration(body.Duration)
		if err != nil || d <= 0 || d > MaxLockFor {
			WriteError(w, http.StatusBadRequest, "duration: want a positive Go duration up to 720h, e.g. \"2h\"")
			return
		}
		req, ok := lockRequest(w, r, body.Reason)
		if !ok {
			return
		}
		req.For = d
		ev, err := a.Lock(r.Context(), req)
		if err != nil {
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, ev)
	}
	unlock := func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reason string `json:"reason"`
		}
		if !DecodeJSON(w, r, &body) {
			return
		}
		req, ok := lockRequest(w, r, body.Reason)
		if !ok {
			return
		}
		ev, err := a.Unlock(r.Context(), req)
		if err != nil {
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
