package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"riskd/streams"
)

// Support's commands across the fleet.
//
// An instance's API applies a lock, unlock or suppression on its own
// engine at once and publishes it on the actions topic, stamped with the
// instance's name. Every other instance follows the topic and applies it
// too, at a place in its own stream (streams.Pipeline.Command), then
// publishes where (a placed record), so that its restart applies it again
// there (reapplyActions). So the owner of the account's partition enforces
// the lock on the account's next event, and any instance's decide API
// answers with it, whichever instance took the call.

// instanceName is this riskd's name in its group: state.instance, or the
// host name.
func instanceName(cfg StateConfig) (string, error) {
	if cfg.Instance != "" {
		return cfg.Instance, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("state.instance is empty and the host name is unknown: %w", err)
	}
	return host, nil
}

// followActions applies the support commands other instances' APIs take,
// from where reapplyActions stopped reading (or from now, when it did not
// read) until ctx ends.
func (d *daemon) followActions(ctx context.Context) {
	err := streams.FollowActions(ctx, d.brokers, d.cfg.Kafka.ActionsTopic, d.actionsRead,
		func(a streams.ActionRecord) { d.applyForeign(ctx, a) },
		func(err error) {
			d.fleetCommands.WithLabelValues("retry").Inc()
			d.log.Warn("following the actions topic; retrying", "topic", d.cfg.Kafka.ActionsTopic, "err", err)
		})
	if err != nil && ctx.Err() == nil {
		d.log.Error("following the actions topic stopped", "topic", d.cfg.Kafka.ActionsTopic, "err", err)
	}
}

// applyForeign applies support's command a, read from the actions topic,
// when another instance took it and it still matters, and publishes where
// it fell in this instance's stream.
func (d *daemon) applyForeign(ctx context.Context, a streams.ActionRecord) {
	if a.Type == streams.ActionPlaced || a.EventID != "" || a.Instance == "" || a.Instance == d.instance {
		// Bookkeeping; a rule's lock, which the owner of the account's
		// partition made from its stream; a record of an older riskd,
		// which names no instance; or this instance's own command.
		return
	}
	if commandOver(a, time.Now()) {
		d.fleetCommands.WithLabelValues("over").Inc()
		return
	}
	if d.pipe.OwnCommandAfter(a) {
		// This instance's API changed the same thing after a was made:
		// the later command stands, here as on the other instance.
		d.fleetCommands.WithLabelValues("superseded").Inc()
		d.log.Info("support command from another instance superseded by a later one of this instance", "type", a.Type,
			"account", a.AccountID, "from", a.Instance, "id", a.ID)
		if err := d.pipe.PublishPlacement(ctx, a, nil, true); err != nil && ctx.Err() == nil {
			d.log.Warn("recording a superseded support command failed", "id", a.ID, "err", err)
		}
		return
	}
	pos, err := d.pipe.Command(ctx, a.AccountID, d.commandOf(a))
	if err != nil {
		if ctx.Err() == nil {
			d.fleetCommands.WithLabelValues("failed").Inc()
			d.log.Error("support command from another instance not applied", "type", a.Type, "account", a.AccountID,
				"from", a.Instance, "id", a.ID, "err", err)
		}
		return
	}
	d.fleetCommands.WithLabelValues("applied").Inc()
	d.log.Info("support command from another instance applied", "type", a.Type, "account", a.AccountID,
		"from", a.Instance, "id", a.ID)
	if err := d.pipe.PublishPlacement(ctx, a, pos, false); err != nil && ctx.Err() == nil {
		// The command is in force here; only a restart before the next
		// snapshot would apply it before its place instead of at it.
		d.log.Warn("recording where a support command from another instance was applied failed", "id", a.ID, "err", err)
	}
}

// commandOver reports whether support's command a has ended by now: a lock
// with an end or a suppression whose until has passed.
func commandOver(a streams.ActionRecord, now time.Time) bool {
	return (a.Type == "lock" && !a.Indefinite || a.Type == streams.ActionSuppress) && !a.Until.After(now)
}
