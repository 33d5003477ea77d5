package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"riskd/api"
	"riskd/engine"
	"riskd/streams"
	"riskd/streams/chstore"
)

// accounts carries out support's locks and unlocks: on the owning shard
// (so the next event sees it), in the audit table, and on risk.actions for
// the wallet's account service.
type accounts struct {
	eng   *engine.Engine
	store *chstore.Store
	pipe  *streams.Pipeline
	now   func() time.Time
}

func (a *accounts) Lock(ctx context.Context, req api.LockRequest) (api.LockEvent, error) {
	at := a.now().UTC()
	until := at.Add(req.For)
	err := a.eng.Do(ctx, req.AccountID, func(s *engine.Scorer) {
		s.Lock(req.AccountID, until.UnixMilli(), "support:"+req.Actor.Name)
	})
	if err != nil {
		return api.LockEvent{}, fmt.Errorf("lock %s: %w", req.AccountID, err)
	}
	return a.record(ctx, req, "lock", at, until)
}

func (a *accounts) Unlock(ctx context.Context, req api.LockRequest) (api.LockEvent, error) {
	at := a.now().UTC()
	err := a.eng.Do(ctx, req.AccountID, func(s *engine.Scorer) { s.Unlock(req.AccountID) })
	if err != nil {
		return api.LockEvent{}, fmt.Errorf("unlock %s: %w", req.AccountID, err)
	}
	return a.record(ctx, req, "unlock", at, time.Time{})
}

// record audits the change and tells the account service; both are
// retried by their writers until ctx ends.
func (a *accounts) record(ctx context.Context, req api.LockRequest, action string, at, until time.Time) (api.LockEvent, error) {
	id := requestID(action)
	actor := "api:" + req.Actor.Name
	row := chstore.LockRow{AccountID: req.AccountID, Action: action, Reason: req.Reason, Until: until,
		Actor: actor, At: at, RequestID: id}
	if err := a.store.WriteLock(ctx, row); err != nil {
		return api.LockEvent{}, fmt.Errorf("%s %s: audit: %w", action, req.AccountID, err)
	}
	rec := streams.ActionRecord{Type: action, AccountID: req.AccountID, Until: until, Reason: req.Reason, At: at}
	if err := a.pipe.PublishAction(ctx, rec, id); err != nil {
		return api.LockEvent{}, fmt.Errorf("%s %s: publish: %w", action, req.AccountID, err)
	}
	return api.LockEvent{AccountID: req.AccountID, Action: action, Reason: req.Reason, Until: until,
		Actor: actor, At: at, EventID: id}, nil
}

func (a *accounts) LockHistory(ctx context.Context, accountID string, limit int) ([]api.LockEvent, error) {
	rows, err := a.store.LockHistory(ctx, accountID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]api.LockEvent, 0, len(rows))
	for _, r := range rows {
		out = append(out, api.LockEvent{AccountID: r.AccountID, Action: r.Action, Reason: r.Reason,
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
