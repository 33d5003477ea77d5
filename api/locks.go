package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"riskd/engine"
	"riskd/streams"
	"riskd/streams/chstore"
)

// LockService is the Accounts of a riskd instance: it carries out
// support's locks and unlocks on the owning shard (so the account's next
// event sees them), in the audit table, and on the actions topic for the
// wallet's account service.
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

// Lock locks req.AccountID for req.For, then records it (see record).
func (a *LockService) Lock(ctx context.Context, req LockRequest) (LockEvent, error) {
	at := a.now().UTC()
	until := at.Add(req.For)
	err := a.eng.Do(ctx, req.AccountID, func(s *engine.Scorer) {
		s.Lock(req.AccountID, until.UnixMilli(), "support:"+req.Actor.Name)
	})
	if err != nil {
		return LockEvent{}, fmt.Errorf("lock %s: %w", req.AccountID, err)
	}
	return a.record(ctx, req, "lock", at, until)
}

// Unlock lifts any lock on req.AccountID, then records it (see record).
func (a *LockService) Unlock(ctx context.Context, req LockRequest) (LockEvent, error) {
	at := a.now().UTC()
	err := a.eng.Do(ctx, req.AccountID, func(s *engine.Scorer) { s.Unlock(req.AccountID) })
	if err != nil {
		return LockEvent{}, fmt.Errorf("unlock %s: %w", req.AccountID, err)
	}
	return a.record(ctx, req, "unlock", at, time.Time{})
}

// record audits the change and tells the account service; both are
// retried by their writers until ctx ends.
func (a *LockService) record(ctx context.Context, req LockRequest, action string, at, until time.Time) (LockEvent, error) {
	id := requestID(action)
	actor := "api:" + req.Actor.Name
	row := chstore.LockRow{AccountID: req.AccountID, Action: action, Reason: req.Reason, Until: until,
		Actor: actor, At: at, RequestID: id}
	if err := a.store.WriteLock(ctx, row); err != nil {
		return LockEvent{}, fmt.Errorf("%s %s: audit: %w", action, req.AccountID, err)
	}
	rec := streams.ActionRecord{Type: action, AccountID: req.AccountID, Until: until, Reason: req.Reason, At: at}
	if err := a.pipe.PublishAction(ctx, rec, id); err != nil {
		return LockEvent{}, fmt.Errorf("%s %s: publish: %w", action, req.AccountID, err)
	}
	return LockEvent{AccountID: req.AccountID, Action: action, Reason: req.Reason, Until: until,
		Actor: actor, At: at, EventID: id}, nil
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
			Until: r.Until, Actor: r.Actor, At: r.At, EventID: r.RequestID})
	}
	return out, nil
}

// requestID names one API action, for de-duplication downstream.
func requestID(action string) string {
	var b [8]byte
	rand.Read(b[:])
	return action + "-" + hex.EncodeToString(b[:])
}
