package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"riskd/engine"
	"riskd/streams"
	"riskd/streams/chstore"
)

// Per-account rule suppressions: support (or an analyst) stops one rule
// from counting for one verified account for a while (a known payee the
// scam rule keeps flagging), without changing the rule for everyone.
// Like a lock, the command runs on the account's shard, is stored
// (account_suppressions, and audit_log), and is published on the actions
// topic so that a restart applies it again.

// Bounds of a suppression request.
const (
	// MaxSuppressFor bounds a suppression; longer is a rule change.
	MaxSuppressFor = 90 * 24 * time.Hour
	// maxReasonBytes bounds the audited reason, as for locks.
	maxReasonBytes = 500
	// suppressionHistoryLimit is how many stored changes GET lists.
	suppressionHistoryLimit = 100
)

// ErrNoSuppression is returned by SuppressionService.Unsuppress when the
// rule is not suppressed for the account now.
var ErrNoSuppression = errors.New("no suppression in force")

// SuppressionService carries out suppressions on the owning shard, in the
// store and on the actions topic, for the live rule set.
type SuppressionService struct {
	eng   *engine.Engine
	store *chstore.Store
	pipe  *streams.Pipeline
	rules RuleSets
	now   func() time.Time
}

// NewSuppressionService makes the service over the running engine, store,
// pipeline and rule set holder. now is the wall clock: a suppression lasts
// on wall-clock time, like a support lock.
func NewSuppressionService(eng *engine.Engine, store *chstore.Store, pipe *streams.Pipeline, rules RuleSets,
	now func() time.Time) *SuppressionService {
	return &SuppressionService{eng: eng, store: store, pipe: pipe, rules: rules, now: now}
}

// SuppressRequest is a suppression or its lift, checked.
type SuppressRequest struct {
	AccountID, RuleID, Reason string
	// For is how long a suppression lasts (suppress only).
	For   time.Duration
	Actor Caller
}

// SuppressionEvent is one suppression or lift, as stored and answered.
type SuppressionEvent struct {
	AccountID string `json:"account_id"`
	RuleID    string `json:"rule_id"`
	// Action is "suppress" or "lift".
	Action string    `json:"action"`
	Reason string    `json:"reason"`
	Until  time.Time `json:"until,omitzero"`
	// Actor is "api:<token name>".
	Actor     string    `json:"actor"`
	At        time.Time `json:"at"`
	RequestID string    `json:"request_id,omitempty"`
}

// ActiveSuppression is a suppression the engine enforces now.
type ActiveSuppression struct {
	RuleID string    `json:"rule_id"`
	Until  time.Time `json:"until"`
	// By is "support:<token name>" (or "actions:..." when a restart
	// applied it again).
	By string `json:"by"`
}

// SuppressionsResponse is GET /v1/accounts/{id}/suppressions' answer.
type SuppressionsResponse struct {
	AccountID string `json:"account_id"`
	// Active are the suppressions in force now, by rule id.
	Active []ActiveSuppression `json:"active"`
	// History are the stored suppressions and lifts, newest first.
	History []SuppressionEvent `json:"history"`
}

// Suppress suppresses req.RuleID for req.AccountID for req.For, then
// records it. The engine's bound is engine.ErrTooManySuppressions.
func (s *SuppressionService) Suppress(ctx context.Context, req SuppressRequest) (SuppressionEvent, error) {
	at := s.now().UTC().Truncate(time.Millisecond)
	until := at.Add(req.For)
	var serr error
	pos, err := s.pipe.Command(ctx, req.AccountID, func(sc *engine.Scorer) {
		serr = sc.Suppress(req.AccountID, req.RuleID, until.UnixMilli(), "support:"+req.Actor.Name)
	})
	if err != nil {
		return SuppressionEvent{}, fmt.Errorf("suppress %s for %s: %w", req.RuleID, req.AccountID, err)
	}
	if serr != nil {
		return SuppressionEvent{}, fmt.Errorf("suppress for %s: %w", req.AccountID, serr)
	}
	s.pipe.NoteOwnCommand(streams.ActionRecord{Type: streams.ActionSuppress, AccountID: req.AccountID, RuleID: req.RuleID, At: at})
	return s.record(ctx, req, chstore.SuppressionSuppress, at, until, pos)
}

// Unsuppress lifts req.RuleID's suppression for req.AccountID, then
// records it; ErrNoSuppression (and nothing recorded) when there is none.
func (s *SuppressionService) Unsuppress(ctx context.Context, req SuppressRequest) (SuppressionEvent, error) {
	at := s.now().UTC().Truncate(time.Millisecond)
	var lifted bool
	pos, err := s.pipe.Command(ctx, req.AccountID, func(sc *engine.Scorer) { lifted = sc.Unsuppress(req.AccountID, req.RuleID) })
	if err != nil {
		return SuppressionEvent{}, fmt.Errorf("lift %s for %s: %w", req.RuleID, req.AccountID, err)
	}
	if !lifted {
		return SuppressionEvent{}, fmt.Errorf("rule %s for account %s: %w", req.RuleID, req.AccountID, ErrNoSuppression)
	}
	s.pipe.NoteOwnCommand(streams.ActionRecord{Type: streams.ActionUnsuppress, AccountID: req.AccountID, RuleID: req.RuleID, At: at})
	return s.record(ctx, req, chstore.SuppressionLift, at, time.Time{}, pos)
}

// record audits the change (audit_log and account_suppressions) and
// publishes it, with pos, its place in the stream, on the actions topic;
// the writers retry until ctx ends.
func (s *SuppressionService) record(ctx context.Context, req SuppressRequest, action string, at, until time.Time, pos streams.Position) (SuppressionEvent, error) {
	auditAction, topicType := "account.suppress", streams.ActionSuppress
	if action == chstore.SuppressionLift {
		auditAction, topicType = "account.unsuppress", streams.ActionUnsuppress
	}
	id := requestID(topicType)
	actor := "api:" + req.Actor.Name
	detail := struct {
		Rule   string    `json:"rule"`
		Until  time.Time `json:"until,omitzero"`
		Reason string    `json:"reason"`
	}{req.RuleID, until, req.Reason}
	dj, _ := json.Marshal(detail) // plain strings and a time: cannot fail
	if err := s.store.WriteAudit(ctx, chstore.AuditRow{At: at, Actor: req.Actor.Name, Role: string(req.Actor.Role),
		Action: auditAction, Object: req.AccountID, Detail: string(dj)}); err != nil {
		return SuppressionEvent{}, fmt.Errorf("%s %s for %s: audit: %w", action, req.RuleID, req.AccountID, err)
	}
	row := chstore.SuppressionRow{AccountID: req.AccountID, RuleID: req.RuleID, Action: action, Until: until,
		Reason: req.Reason, Actor: actor, At: at, RequestID: id}
	if err := s.store.WriteSuppression(ctx, row); err != nil {
		return SuppressionEvent{}, fmt.Errorf("%s %s for %s: store: %w", action, req.RuleID, req.AccountID, err)
	}
	rec := streams.ActionRecord{Type: topicType, AccountID: req.AccountID, RuleID: req.RuleID, Until: until,
		Reason: req.Reason, At: at, Actor: actor, Position: pos}
	if err := s.pipe.PublishSuppression(ctx, rec, id); err != nil {
		return SuppressionEvent{}, fmt.Errorf("%s %s for %s: publish: %w", action, req.RuleID, req.AccountID, err)
	}
	return SuppressionEvent{AccountID: req.AccountID, RuleID: req.RuleID, Action: action, Reason: req.Reason,
		Until: until, Actor: actor, At: at, RequestID: id}, nil
}

// Active returns the account's suppressions the engine enforces now.
func (s *SuppressionService) Active(ctx context.Context, accountID string) ([]ActiveSuppression, error) {
	var es []engine.Suppression
	if err := s.eng.Do(ctx, accountID, func(sc *engine.Scorer) { es = sc.Suppressions(accountID) }); err != nil {
		return nil, fmt.Errorf("suppressions of %s: %w", accountID, err)
	}
	return activeSuppressions(es), nil
}

func activeSuppressions(es []engine.Suppression) []ActiveSuppression {
	out := make([]ActiveSuppression, 0, len(es))
	for _, e := range es {
		out = append(out, ActiveSuppression{RuleID: e.RuleID, Until: e.Until, By: e.By})
	}
	return out
}

// History returns up to limit of the account's stored suppressions and
// lifts, newest first.
func (s *SuppressionService) History(ctx context.Context, accountID string, limit int) ([]SuppressionEvent, error) {
	rows, err := s.store.SuppressionHistory(ctx, accountID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]SuppressionEvent, 0, len(rows))
	for _, r := range rows {
		out = append(out, SuppressionEvent{AccountID: r.AccountID, RuleID: r.RuleID, Action: r.Action, Reason: r.Reason,
			Until: r.Until, Actor: r.Actor, At: r.At, RequestID: r.RequestID})
	}
	return out, nil
}

// liveRule says whether id is a rule of the live rule set.
func (s *SuppressionService) liveRule(id string) bool {
	rs := s.rules.Load()
	return rs != nil && rs.Rule(id) != nil
}

// SuppressionRoutes are POST and GET /v1/accounts/{id}/suppressions and
// DELETE /v1/accounts/{id}/suppressions/{rule}: support and analysts
// suppress and lift, viewers read too.
func SuppressionRoutes(s *SuppressionService) []Route {
	suppress := func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Rule     string `json:"rule"`
			Duration string `json:"duration"`
			Reason   string `json:"reason"`
		}
		if !DecodeJSON(w, r, &body) {
			return
		}
		id, ok := accountParam(w, r)
		if !ok {
			return
		}
		if body.Rule == "" || len(body.Rule) > engine.MaxSuppressionRuleBytes {
			WriteError(w, http.StatusBadRequest, fmt.Sprintf("rule: required, the id of a live rule (at most %d bytes)", engine.MaxSuppressionRuleBytes))
			return
		}
		d, err := time.ParseDuration(body.Duration)
		if err != nil || d <= 0 || d > MaxSuppressFor {
			WriteError(w, http.StatusBadRequest, "duration: want a positive Go duration up to 2160h (90 days), e.g. \"72h\"")
			return
		}
		reason, ok := auditedReason(w, body.Reason, true)
		if !ok {
			return
		}
		if !s.liveRule(body.Rule) {
			WriteError(w, http.StatusNotFound, fmt.Sprintf("rule %q is not in the live rule set", body.Rule))
			return
		}
		caller, _ := CallerFrom(r.Context())
		ev, err := s.Suppress(r.Context(), SuppressRequest{AccountID: id, RuleID: body.Rule, Reason: reason, For: d, Actor: caller})
		switch {
		case errors.Is(err, engine.ErrTooManySuppressions):
			WriteError(w, http.StatusConflict, fmt.Sprintf("account %s has %d rules suppressed already: lift one first", id,
				engine.MaxSuppressionsPerAccount))
		case err != nil:
			WriteError(w, http.StatusServiceUnavailable, err.Error())
		default:
			WriteJSON(w, http.StatusCreated, ev)
		}
	}
	lift := func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reason string `json:"reason"`
		}
		if r.ContentLength != 0 && !DecodeJSON(w, r, &body) {
			return
		}
		id, ok := accountParam(w, r)
		if !ok {
			return
		}
		rule := r.PathValue("rule")
		if rule == "" || len(rule) > engine.MaxSuppressionRuleBytes {
			WriteError(w, http.StatusBadRequest, "invalid rule id")
			return
		}
		reason, ok := auditedReason(w, body.Reason, false)
		if !ok {
			return
		}
		caller, _ := CallerFrom(r.Context())
		ev, err := s.Unsuppress(r.Context(), SuppressRequest{AccountID: id, RuleID: rule, Reason: reason, Actor: caller})
		switch {
		case errors.Is(err, ErrNoSuppression):
			WriteError(w, http.StatusNotFound, fmt.Sprintf("rule %s is not suppressed for account %s", rule, id))
		case err != nil:
			WriteError(w, http.StatusServiceUnavailable, err.Error())
		default:
			WriteJSON(w, http.StatusOK, ev)
		}
	}
	list := func(w http.ResponseWriter, r *http.Request) {
		id, ok := accountParam(w, r)
		if !ok {
			return
		}
		active, err := s.Active(r.Context(), id)
		if err != nil {
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		hist, err := s.History(r.Context(), id, suppressionHistoryLimit)
		if err != nil {
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, SuppressionsResponse{AccountID: id, Active: active, History: hist})
	}
	const small = 4 << 10
	change := []Role{RoleSupport, RoleAnalyst}
	return []Route{
		{Pattern: "POST /v1/accounts/{id}/suppressions", Roles: change, MaxBody: small, Handler: http.HandlerFunc(suppress)},
		{Pattern: "DELETE /v1/accounts/{id}/suppressions/{rule}", Roles: change, MaxBody: small, Handler: http.HandlerFunc(lift)},
		{Pattern: "GET /v1/accounts/{id}/suppressions", Roles: []Role{RoleSupport, RoleAnalyst, RoleViewer}, Handler: http.HandlerFunc(list)},
	}
}

// accountParam checks the path's account id.
func accountParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !validAccountID(id) {
		WriteError(w, http.StatusBadRequest, "invalid account id: want 1 to 128 printable characters without spaces")
		return "", false
	}
	return id, true
}

// auditedReason trims and bounds a reason; required says whether it may
// be empty.
func auditedReason(w http.ResponseWriter, reason string, required bool) (string, bool) {
	reason = strings.TrimSpace(reason)
	if (required && reason == "") || len(reason) > maxReasonBytes {
		msg := "reason: at most 500 characters (it is audited)"
		if required {
			msg = "reason: required, at most 500 characters (it is audited)"
		}
		WriteError(w, http.StatusBadRequest, msg)
		return "", false
	}
	return reason, true
}
