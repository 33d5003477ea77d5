package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"riskd/engine"
	"riskd/streams"
	"riskd/streams/chstore"
)

// LockService is the Accounts of a riskd instance: it carries out
// support's locks and unlocks on the owning shard at a place in the stream
// (streams.Pipeline.Command: the account's next event sees them, and a
// restart applies them again there), in the audit table, and on the
// actions topic for the wallet's account service.
type LockService struct {
	eng   *engine.Engine
	store *chstore.Store
	pipe  *streams.Pipeline
	now   func() time.Time
}

var _ Accounts = (*LockService)(nil)

// NewLockService makes the lock service over the running engine, store and
// pipeline. now is the wall clock (time.Now in production): a support lock
// starts when the agent asks and lasts on wall-clock time, not event time.
func NewLockService(eng *engine.Engine, store *chstore.Store, pipe *streams.Pipeline, now func() time.Time) *LockService {
	return &LockService{eng: eng, store: store, pipe: pipe, now: now}
}

// Lock locks req.AccountID for req.For (or indefinitely), then records
// it (see record).
func (a *LockService) Lock(ctx context.Context, req LockRequest) (LockEvent, error) {
	at := a.now().UTC()
	untilMs, until := engine.IndefiniteMs, time.Time{} // indefinite: no until stored or sent
	if !req.Indefinite {
		until = at.Add(req.For)
		untilMs = until.UnixMilli()
	}
	a.pipe.NoteOwnCommand(streams.ActionRecord{Type: "lock", AccountID: req.AccountID, At: at})
	pos, err := a.pipe.Command(ctx, req.AccountID, func(s *engine.Scorer) {
		s.Lock(req.AccountID, untilMs, "support:"+req.Actor.Name)
	})
	if err != nil {
		return LockEvent{}, fmt.Errorf("lock %s: %w", req.AccountID, err)
	}
	return a.record(ctx, req, LockEvent{Action: "lock", At: at, Until: until, Indefinite: req.Indefinite}, pos)
}

// Unlock lifts the lock in force on req.AccountID and resets what its
// rule declares (engine.Scorer.UnlockAccount), then records it (see
// record). Without a lock in force it changes nothing and returns
// ErrAccountUnknown or ErrNotLocked.
func (a *LockService) Unlock(ctx context.Context, req LockRequest) (LockEvent, error) {
	at := a.now().UTC()
	var u engine.Unlocked
	var locked bool
	pos, err := a.pipe.Command(ctx, req.AccountID, func(s *engine.Scorer) { u, locked = s.UnlockAccount(req.AccountID) })
	if err != nil {
		return LockEvent{}, fmt.Errorf("unlock %s: %w", req.AccountID, err)
	}
	if locked {
		a.pipe.NoteOwnCommand(streams.ActionRecord{Type: "unlock", AccountID: req.AccountID, At: at})
	}
	if !locked {
		known, err := a.store.AccountKnown(ctx, req.AccountID)
		if err != nil {
			return LockEvent{}, fmt.Errorf("unlock %s: %w", req.AccountID, err)
		}
		refusal := ErrNotLocked
		if !known {
			refusal = ErrAccountUnknown
		}
		// Audited too, as refused rule changes are: an unlock tried on
		// the wrong account is worth seeing.
		detail, _ := json.Marshal(auditDetail{Reason: req.Reason, Verification: req.Verification, Refused: refusal.Error()})
		if err := a.store.WriteAudit(ctx, chstore.AuditRow{At: at, Actor: req.Actor.Name, Role: string(req.Actor.Role),
			Action: "account.unlock_refused", Object: req.AccountID, Detail: string(detail)}); err != nil {
			return LockEvent{}, fmt.Errorf("unlock %s: audit: %w", req.AccountID, err)
		}
		return LockEvent{}, refusal
	}
	cleared := u.Cleared
	if cleared == nil {
		cleared = []string{} // the answer says "none" rather than leaving it out
	}
	return a.record(ctx, req, LockEvent{Action: "unlock", At: at, Verification: req.Verification,
		LockedBy: u.Was.By, Cleared: cleared}, pos)
}

// auditDetail is the detail of an account.lock or account.unlock row in
// audit_log, as JSON.
type auditDetail struct {
	Reason       string    `json:"reason"`
	Verification string    `json:"verification,omitempty"`
	Until        time.Time `json:"until,omitzero"`
	Indefinite   bool      `json:"indefinite,omitempty"`
	LockedBy     string    `json:"locked_by,omitempty"`
	Cleared      []string  `json:"cleared,omitempty"`
	RequestID    string    `json:"request_id,omitempty"`
	// Refused says why an unlock changed nothing (account.unlock_refused).
	Refused string `json:"refused,omitempty"`
}

// record stores the change in account_locks and audit_log and tells the
// account service and webhook subscribers (actions topic); each is
// retried by its writer until ctx ends. ev holds the action's own fields,
// pos its place in the stream.
func (a *LockService) record(ctx context.Context, req LockRequest, ev LockEvent, pos streams.Position) (LockEvent, error) {
	id := requestID(ev.Action)
	actor := "api:" + req.Actor.Name
	ev.AccountID, ev.Reason, ev.Actor, ev.EventID = req.AccountID, req.Reason, actor, id
	row := chstore.LockRow{AccountID: req.AccountID, Action: ev.Action, Reason: req.Reason, Until: ev.Until,
		Actor: actor, At: ev.At, RequestID: id}
	if err := a.store.WriteLock(ctx, row); err != nil {
		return LockEvent{}, fmt.Errorf("%s %s: audit: %w", ev.Action, req.AccountID, err)
	}
	detail, err := json.Marshal(auditDetail{Reason: req.Reason, Verification: ev.Verification, Until: ev.Until,
		Indefinite: ev.Indefinite, LockedBy: ev.LockedBy, Cleared: ev.Cleared, RequestID: id})
	if err != nil {
		return LockEvent{}, fmt.Errorf("%s %s: audit detail: %w", ev.Action, req.AccountID, err)
	}
	audit := chstore.AuditRow{At: ev.At, Actor: req.Actor.Name, Role: string(req.Actor.Role), Action: "account." + ev.Action,
		Object: req.AccountID, Detail: string(detail)}
	if err := a.store.WriteAudit(ctx, audit); err != nil {
		return LockEvent{}, fmt.Errorf("%s %s: audit: %w", ev.Action, req.AccountID, err)
	}
	rec := streams.ActionRecord{Type: ev.Action, AccountID: req.AccountID, Until: ev.Until, Reason: req.Reason, At: ev.At,
		Indefinite: ev.Indefinite, Actor: actor, Verification: ev.Verification, Cleared: ev.Cleared, Position: pos}
	if err := a.pipe.PublishAction(ctx, rec, id); err != nil {
		return LockEvent{}, fmt.Errorf("%s %s: publish: %w", ev.Action, req.AccountID, err)
	}
	return ev, nil
}

// LockHistory returns up to limit of the account's locks and unlocks from
// the audit table, newest first.
func (a *LockService) LockHistory(ctx context.Context, accountID string, limit int) ([]LockEvent, error) {
	rows, err := a.store.LockHistory(ctx, accountID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]LockEvent, 0, len(rows))
	for _, r := range rows {
		out = append(out, LockEvent{AccountID: r.AccountID, Action: r.Action, Reason: r.Reason,
			Until: r.Until, Indefinite: r.Action == "lock" && r.Until.IsZero(), Actor: r.Actor, At: r.At, EventID: r.RequestID})
	}
	return out, nil
}

// requestID names one API action, for de-duplication downstream.
func requestID(action string) string {
	var b [8]byte
	rand.Read(b[:])
	return action + "-" + hex.EncodeToString(b[:])
}
