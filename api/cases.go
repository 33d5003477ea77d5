package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"riskd/streams/chstore"
)

// caseWriteTimeout bounds a take or close, label and audit row included.
// The writes run on past a client that hangs up, so a close is not left
// with its label written and its case not.
const caseWriteTimeout = 30 * time.Second

// CaseRoutes are the review queue's routes (support and analysts): list
// cases, read one, take one, close one with an outcome that becomes the
// event's label. now stamps the changes and their audit rows.
//
// Takes and closes are serialized here, so that of two agents taking the
// same case at once on one riskd the second gets 409; riskd instances
// sharing a database do not see each other's (the later row wins).
func CaseRoutes(store *chstore.Store, now func() time.Time) []Route {
	var mu sync.Mutex
	list := func(w http.ResponseWriter, r *http.Request) {
		f, err := caseFilter(r)
		if err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		cs, err := store.Cases(r.Context(), f)
		if err != nil {
			writeCaseError(w, err)
			return
		}
		if cs == nil {
			cs = []chstore.Case{}
		}
		body := struct {
			Cases []chstore.Case `json:"cases"`
			Next  string         `json:"next,omitempty"`
		}{Cases: cs}
		limit := f.Limit
		if limit == 0 {
			limit = chstore.DefaultCaseList
		}
		if len(cs) == limit { // maybe more: the client asks again with before=next
			body.Next = cs[len(cs)-1].Cursor().String()
		}
		WriteJSON(w, http.StatusOK, body)
	}
	get := func(w http.ResponseWriter, r *http.Request) {
		id, ok := caseIDFrom(w, r)
		if !ok {
			return
		}
		c, found, err := store.Case(r.Context(), id)
		switch {
		case err != nil:
			writeCaseError(w, err)
		case !found:
			WriteError(w, http.StatusNotFound, "case "+id+": no such case")
		default:
			WriteJSON(w, http.StatusOK, c)
		}
	}
	take := func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Force bool `json:"force"`
		}
		id, ok := caseIDFrom(w, r)
		if !ok || !decodeOptionalJSON(w, r, &body) {
			return
		}
		caller, _ := CallerFrom(r.Context())
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), caseWriteTimeout)
		defer cancel()
		mu.Lock()
		ch, err := store.TakeCase(ctx, id, caller.Name, body.Force, now())
		mu.Unlock()
		if err != nil {
			writeCaseError(w, err)
			return
		}
		if ch.Changed {
			detail := "taken by " + caller.Name
			if ch.Before.Assignee != "" {
				detail += ", forced over " + ch.Before.Assignee
			}
			if !auditCase(ctx, w, store, caller, "cases.take", ch, detail, now) {
				return
			}
		}
		WriteJSON(w, http.StatusOK, ch.After)
	}
	closeCase := func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Outcome string `json:"outcome"`
			Note    string `json:"note"`
			Force   bool   `json:"force"`
		}
		id, ok := caseIDFrom(w, r)
		if !ok || !DecodeJSON(w, r, &body) {
			return
		}
		caller, _ := CallerFrom(r.Context())
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), caseWriteTimeout)
		defer cancel()
		mu.Lock()
		ch, err := store.CloseCase(ctx, id, caller.Name, body.Outcome, body.Note, body.Force, now())
		mu.Unlock()
		if err != nil {
			writeCaseError(w, err)
			return
		}
		detail := "closed " + body.Outcome
		if body.Note != "" {
			detail += ": " + body.Note
		}
		if !auditCase(ctx, w, store, caller, "cases.close", ch, detail, now) {
			return
		}
		WriteJSON(w, http.StatusOK, ch.After)
	}
	roles := []Role{RoleSupport, RoleAnalyst}
	return []Route{
		{Pattern: "GET /v1/cases", Roles: roles, Handler: http.HandlerFunc(list)},
		{Pattern: "GET /v1/cases/{id}", Roles: roles, Handler: http.HandlerFunc(get)},
		{Pattern: "POST /v1/cases/{id}/take", Roles: roles, MaxBody: 1 << 10, Handler: http.HandlerFunc(take)},
		// A note is at most 1000 bytes, up to 6 each once JSON-escaped.
		{Pattern: "POST /v1/cases/{id}/close", Roles: roles, MaxBody: 8 << 10, Handler: http.HandlerFunc(closeCase)},
	}
}

// caseFilter reads GET /v1/cases' query: status, account, limit, before.
func caseFilter(r *http.Request) (chstore.CaseFilter, error) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "status", "account", "limit", "before":
		default:
			return chstore.CaseFilter{}, fmt.Errorf("unknown query parameter %q: want status, account, limit, before", k)
		}
	}
	f := chstore.CaseFilter{Status: q.Get("status"), AccountID: q.Get("account")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > chstore.MaxCaseList {
			return f, fmt.Errorf("limit %q: want 1 to %d", s, chstore.MaxCaseList)
		}
		f.Limit = n
	}
	if s := q.Get("before"); s != "" {
		c, err := chstore.ParseCaseCursor(s)
		if err != nil {
			return f, errors.New(strings.TrimPrefix(err.Error(), "invalid "))
		}
		f.Before = c
	}
	if err := f.Validate(); err != nil {
		return f, errors.New(strings.TrimPrefix(err.Error(), "invalid "))
	}
	return f, nil
}

// caseIDFrom checks the path's case id.
func caseIDFrom(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !chstore.ValidCaseID(id) {
		WriteError(w, http.StatusBadRequest, fmt.Sprintf("case id %q: want c and 16 hex digits, as GET /v1/cases lists them", truncate(id, 40)))
		return "", false
	}
	return id, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// decodeOptionalJSON is DecodeJSON for a body that may be left out.
func decodeOptionalJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, ok := ReadBody(w, r)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		WriteError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

// writeCaseError maps the store's case errors to HTTP: 404 unknown, 409
// taken by someone else or closed, 400 a bad argument, else 503.
func writeCaseError(w http.ResponseWriter, err error) {
	msg := strings.TrimPrefix(err.Error(), "chstore: ")
	switch {
	case errors.Is(err, chstore.ErrCaseNotFound):
		WriteError(w, http.StatusNotFound, msg)
	case errors.Is(err, chstore.ErrCaseTaken):
		WriteError(w, http.StatusConflict, strings.Replace(msg, "; force to", `; send {"force": true} to`, 1))
	case errors.Is(err, chstore.ErrCaseClosed):
		WriteError(w, http.StatusConflict, msg)
	case errors.Is(err, chstore.ErrCaseInput):
		WriteError(w, http.StatusBadRequest, strings.TrimPrefix(msg, "cases: "))
	default:
		WriteError(w, http.StatusServiceUnavailable, msg)
	}
}

// auditCase stores the change's audit row; when it cannot, it answers 503
// saying that the change itself was stored, and returns false.
func auditCase(ctx context.Context, w http.ResponseWriter, store *chstore.Store, caller Caller, action string,
	ch chstore.CaseChange, detail string, now func() time.Time) bool {
	err := store.WriteAudit(ctx, chstore.AuditRow{At: now(), Actor: caller.Name, Role: string(caller.Role), Action: action,
		Object: "case:" + ch.After.ID, OldVersion: strconv.FormatUint(ch.Before.Version, 10),
		NewVersion: strconv.FormatUint(ch.After.Version, 10), Detail: detail})
	if err != nil {
		WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("case %s: %s is stored, but its audit row is not: %v",
			ch.After.ID, ch.After.Status, err))
		return false
	}
	return true
}
