package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"riskd/engine"
	"riskd/rules"
	"riskd/streams/chstore"
)

// The account view: what support reads before unlocking (why was this
// account locked, by which rule, on which feature values), and the
// decision search behind it.

// LiveLocks tells whether an account is locked now, and which rules are
// suppressed for it, as the engine enforces them (stored history can lag,
// or miss a lock the engine still holds).
type LiveLocks interface {
	LockState(ctx context.Context, accountID string) (engine.LockState, bool, error)
	Suppressions(ctx context.Context, accountID string) ([]engine.Suppression, error)
}

// LockState asks the account's shard for its lock in force, the same
// state Lock and Unlock change.
func (a *LockService) LockState(ctx context.Context, accountID string) (engine.LockState, bool, error) {
	var st engine.LockState
	var locked bool
	err := a.eng.Do(ctx, accountID, func(s *engine.Scorer) { st, locked = s.LockState(accountID) })
	if err != nil {
		return engine.LockState{}, false, fmt.Errorf("lock state of %s: %w", accountID, err)
	}
	return st, locked, nil
}

// Suppressions asks the account's shard for the rules suppressed for it
// now, the state SuppressionService changes.
func (a *LockService) Suppressions(ctx context.Context, accountID string) ([]engine.Suppression, error) {
	var es []engine.Suppression
	if err := a.eng.Do(ctx, accountID, func(s *engine.Scorer) { es = s.Suppressions(accountID) }); err != nil {
		return nil, fmt.Errorf("suppressions of %s: %w", accountID, err)
	}
	return es, nil
}

// DefaultViewPeriod is the period of a timeline or search that names no
// from: the 30 days before to (or now).
const DefaultViewPeriod = 30 * 24 * time.Hour

// maxRuleIDBytes bounds the rule filter of a search.
const maxRuleIDBytes = 256

// TimelineEntry is one item of an account's timeline or one found
// decision, as the API shows it. Kind says which fields are set.
type TimelineEntry struct {
	// Kind is "decision", "alert", "lock", "unlock", "label", or
	// "suppress" or "lift" (a rule suppressed for the account, and its
	// early lift).
	Kind string `json:"kind"`
	// Time is the event's time (decisions, alerts, labels, the engine's
	// locks) or when support acted (support's locks and unlocks,
	// suppressions and lifts).
	Time      time.Time `json:"time"`
	AccountID string    `json:"account_id"`
	// EventID is the event the entry is about; for support's locks and
	// unlocks and for suppressions and lifts, the request id.
	EventID string `json:"event_id,omitempty"`
	// Action is the decision's action (decisions, alerts).
	Action string `json:"action,omitempty"`
	// Reason is why: the decision's reason ("rule", "score_threshold",
	// "account_locked"...), or the lock's ("rule:ID" or what support typed).
	Reason string `json:"reason,omitempty"`
	// RuleID and Message are an alert's rule and the text the user got;
	// RuleID is also the rule suppressed or lifted.
	RuleID  string `json:"rule_id,omitempty"`
	Message string `json:"message,omitempty"`
	// Until and Actor describe a lock or unlock, a suppression or lift:
	// Until is absent for an unlock or a lift; Actor is "engine" or
	// "api:<token name>".
	Until time.Time `json:"until,omitzero"`
	Actor string    `json:"actor,omitempty"`
	// Label, Source, LabelledBy, Note and LabelledAt describe a label.
	Label      string    `json:"label,omitempty"`
	Source     string    `json:"source,omitempty"`
	LabelledBy string    `json:"labelled_by,omitempty"`
	Note       string    `json:"note,omitempty"`
	LabelledAt time.Time `json:"labelled_at,omitzero"`
	// DecisionDetail is set for decisions: the event and what decided it.
	*DecisionDetail
}

// DecisionDetail is what a stored decision recorded beyond its action.
type DecisionDetail struct {
	EventType    string    `json:"event_type"`
	DecidedAt    time.Time `json:"decided_at"`
	Score        int       `json:"score"`
	MatchedRules []string  `json:"matched_rules"`
	ShadowRules  []string  `json:"shadow_rules"`
	ErroredRules []string  `json:"errored_rules,omitempty"`
	RuleErrors   []string  `json:"rule_errors,omitempty"`
	// Features are the feature values the matched rules read, in the
	// decision's order.
	Features       []FeatureValue `json:"features"`
	RuleSetVersion string         `json:"ruleset_version"`
	// LockUntil is when the lock the decision set or met ends.
	LockUntil time.Time `json:"lock_until,omitzero"`
	Late      bool      `json:"late,omitempty"`
	LateFor   []string  `json:"late_for,omitempty"`
	// Duplicate is true when only the engine's repeat of the event was stored.
	Duplicate bool `json:"duplicate,omitempty"`
}

// FeatureValue is one feature value a decision recorded.
type FeatureValue struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// LiveLock is the account's lock state in the engine now.
type LiveLock struct {
	Locked bool      `json:"locked"`
	Until  time.Time `json:"until,omitzero"`
	// Indefinite marks a lock without an end (no until): only an
	// unlock lifts it.
	Indefinite bool `json:"indefinite,omitempty"`
	// By is the rule id that locked, or "support:<token name>".
	By string `json:"by,omitempty"`
}

// TimelineResponse is GET /v1/accounts/{id}/timeline's answer.
type TimelineResponse struct {
	AccountID string    `json:"account_id"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Live      LiveLock  `json:"live"`
	// Suppressions are the rules suppressed for the account now, as the
	// engine enforces them, by rule id; absent when there are none.
	Suppressions []ActiveSuppression `json:"suppressions,omitempty"`
	Entries      []TimelineEntry     `json:"entries"`
	// Next, when present, is the before of the next page.
	Next string `json:"next,omitempty"`
}

// DecisionsResponse is GET /v1/decisions' answer.
type DecisionsResponse struct {
	From      time.Time       `json:"from"`
	To        time.Time       `json:"to"`
	Decisions []TimelineEntry `json:"decisions"`
	Next      string          `json:"next,omitempty"`
}

// TimelineRoutes serve the account view to support, analysts and viewers:
// GET /v1/accounts/{id}/timeline (stored history plus the engine's live
// lock and suppressions) and GET /v1/decisions (search). now is the wall clock that
// defaults the period's end.
func TimelineRoutes(store *chstore.Store, live LiveLocks, now func() time.Time) []Route {
	timeline := func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !validAccountID(id) {
			WriteError(w, http.StatusBadRequest, "invalid account id: want 1 to 128 printable characters without spaces")
			return
		}
		p, err := viewParams(r.URL.Query(), now(), "from", "to", "limit", "before")
		if err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		page, err := store.Timeline(r.Context(), chstore.TimelineQuery{AccountID: id, From: p.from, To: p.to,
			Limit: p.limit, Before: p.before})
		if writeStoreError(w, err) {
			return
		}
		st, locked, err := live.LockState(r.Context(), id)
		if err != nil {
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		sup, err := live.Suppressions(r.Context(), id)
		if err != nil {
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if len(page.Entries) == 0 && p.before.IsZero() && !locked && len(sup) == 0 {
			known, err := store.AccountKnown(r.Context(), id)
			if writeStoreError(w, err) {
				return
			}
			if !known {
				WriteError(w, http.StatusNotFound, "account "+id+": nothing stored and not locked")
				return
			}
		}
		resp := TimelineResponse{AccountID: id, From: p.from, To: p.to, Entries: entries(page.Entries), Next: page.Next.String()}
		if locked {
			resp.Live = LiveLock{Locked: true, Until: st.Until, Indefinite: st.Indefinite, By: st.By}
		}
		if len(sup) > 0 {
			resp.Suppressions = activeSuppressions(sup)
		}
		WriteJSON(w, http.StatusOK, resp)
	}
	search := func(w http.ResponseWriter, r *http.Request) {
		qs := r.URL.Query()
		p, err := viewParams(qs, now(), "account", "rule", "action", "late", "from", "to", "limit", "before")
		if err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		q := chstore.DecisionQuery{AccountID: qs.Get("account"), Rule: qs.Get("rule"), Action: qs.Get("action"),
			From: p.from, To: p.to, Limit: p.limit, Before: p.before}
		switch qs.Get("late") {
		case "", "false":
		case "true":
			q.Late = true
		default:
			WriteError(w, http.StatusBadRequest, "late: want true or false")
			return
		}
		if q.AccountID != "" && !validAccountID(q.AccountID) {
			WriteError(w, http.StatusBadRequest, "account: want 1 to 128 printable characters without spaces")
			return
		}
		if len(q.Rule) > maxRuleIDBytes {
			WriteError(w, http.StatusBadRequest, fmt.Sprintf("rule: longer than %d bytes", maxRuleIDBytes))
			return
		}
		if q.Action != "" {
			a, err := rules.ParseAction(q.Action)
			if err != nil {
				WriteError(w, http.StatusBadRequest, "action: "+err.Error())
				return
			}
			q.Action = a.String()
		}
		page, err := store.SearchDecisions(r.Context(), q)
		if writeStoreError(w, err) {
			return
		}
		WriteJSON(w, http.StatusOK, DecisionsResponse{From: p.from, To: p.to, Decisions: entries(page.Entries), Next: page.Next.String()})
	}
	read := []Role{RoleSupport, RoleAnalyst, RoleViewer}
	return []Route{
		{Pattern: "GET /v1/accounts/{id}/timeline", Roles: read, Handler: http.HandlerFunc(timeline)},
		{Pattern: "GET /v1/decisions", Roles: read, Handler: http.HandlerFunc(search)},
	}
}

// writeStoreError answers a failed read: 400 for parameters the store
// refused (a bound, a bad cursor), 503 otherwise. It reports whether it
// wrote.
func writeStoreError(w http.ResponseWriter, err error) bool {
	if err == nil {
		return false
	}
	var qe *chstore.QueryError
	if errors.As(err, &qe) {
		WriteError(w, http.StatusBadRequest, qe.Msg)
	} else {
		WriteError(w, http.StatusServiceUnavailable, err.Error())
	}
	return true
}

// viewQuery is the period and paging of a timeline or search.
type viewQuery struct {
	from, to time.Time
	limit    int
	before   chstore.Cursor
}

// viewParams reads from, to, limit and before, refusing parameters not in
// known (a typo would otherwise silently widen the answer) and repeated
// ones. to defaults to now, from to DefaultViewPeriod before to; the
// bounds of the period and the limit are the store's to check.
func viewParams(qs url.Values, now time.Time, known ...string) (viewQuery, error) {
	for k, v := range qs {
		if !slices.Contains(known, k) {
			return viewQuery{}, fmt.Errorf("unknown parameter %q: want %s", k, strings.Join(known, ", "))
		}
		if len(v) > 1 {
			return viewQuery{}, fmt.Errorf("%s: given %d times", k, len(v))
		}
	}
	var p viewQuery
	var err error
	p.to = now.UTC()
	if s := qs.Get("to"); s != "" {
		if p.to, err = parseViewTime(s); err != nil {
			return viewQuery{}, fmt.Errorf("to: %w", err)
		}
	}
	p.from = p.to.Add(-DefaultViewPeriod)
	if s := qs.Get("from"); s != "" {
		if p.from, err = parseViewTime(s); err != nil {
			return viewQuery{}, fmt.Errorf("from: %w", err)
		}
	}
	if s := qs.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > chstore.MaxPageLimit {
			return viewQuery{}, fmt.Errorf("limit %q: want a number from 1 to %d", s, chstore.MaxPageLimit)
		}
		p.limit = n
	}
	if p.before, err = chstore.ParseCursor(qs.Get("before")); err != nil {
		return viewQuery{}, err
	}
	return p, nil
}

// parseViewTime reads an RFC 3339 time or a date (midnight UTC).
func parseViewTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time (2026-11-24T12:00:00Z) or a date (2026-11-24)", s)
}

// entries turns store entries into API entries.
func entries(es []chstore.Entry) []TimelineEntry {
	out := make([]TimelineEntry, 0, len(es))
	for _, e := range es {
		te := TimelineEntry{Kind: e.Kind, Time: time.UnixMilli(e.TS).UTC(), AccountID: e.AccountID, EventID: e.EventID,
			Action: e.Action, Reason: e.Reason, RuleID: e.RuleID, Message: e.Message, Until: e.Until, Actor: e.Actor,
			Label: e.Label, Source: e.Source, LabelledBy: e.LabelledBy, Note: e.Note, LabelledAt: e.LabelledAt}
		if d := e.Decision; d != nil {
			fs := make([]FeatureValue, len(d.Features))
			for i, f := range d.Features {
				fs[i] = FeatureValue{Name: f.Name, Value: f.Value}
			}
			te.DecisionDetail = &DecisionDetail{EventType: d.EventType, DecidedAt: d.DecidedAt, Score: d.Score,
				MatchedRules: nonNil(d.MatchedRules), ShadowRules: nonNil(d.ShadowRules), ErroredRules: d.ErroredRules,
				RuleErrors: d.RuleErrors, Features: fs, RuleSetVersion: d.RuleSetVersion, LockUntil: d.LockUntil,
				Late: d.Late, LateFor: d.LateFor, Duplicate: d.Duplicate}
		}
		out = append(out, te)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
