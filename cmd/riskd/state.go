package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"riskd/engine"
	"riskd/features"
	"riskd/streams"
	"riskd/streams/snapshots"
)

// restoreFromKafka builds the engine from the newest usable snapshot in
// the state topic and tells the pipeline where that state stands. A
// snapshot taken with other feature definitions is restored: unchanged
// window features keep their state, new ones start empty and are warming
// (logFeatureChange says which). Without a usable one (first start, a
// snapshot from another features config or shard count, or every
// snapshot damaged) the engine starts empty and the pipeline
// rebuilds it from the start of the input topics' retention, deciding the
// committed messages again without making their outputs; every such case
// is logged with the reason, never silent.
func (d *daemon) restoreFromKafka(ctx context.Context, cfg engine.Config, pipe *streams.Config) (*engine.Engine, error) {
	store, err := snapshots.New(snapshots.Config{Brokers: d.brokers, Topic: d.cfg.State.Topic,
		Name: d.cfg.Kafka.Group + "/" + d.instance, Logger: d.log})
	if err != nil {
		return nil, fmt.Errorf("config: state: %w", err)
	}
	if err := store.Ensure(ctx); err != nil {
		return nil, fmt.Errorf("state topic %s: %w", d.cfg.State.Topic, err)
	}
	pipe.Snapshots, pipe.SnapshotInterval = store, d.cfg.State.SnapshotInterval
	// A partition the restored state does not cover is restored from
	// another member's snapshot that holds it, or rebuilt from the start
	// of its log, up to the committed offset, without outputs.
	pipe.RebuildUnknown = true
	pipe.PartitionStates = groupSnapshots{d: d, own: store}
	pipe.PartitionLinger = d.cfg.State.PartitionLinger
	start := time.Now()
	snap, stats, err := store.Load(ctx)
	for _, refused := range stats.Refused {
		d.log.Warn("state snapshot refused; using an older one", "reason", refused)
	}
	// Locks and unlocks published since the state was cut are applied
	// again (reapplyActions); with no usable state, all that are retained.
	d.actionsSince, d.stateOf = time.Unix(0, 0), d.instance
	rebuild := func(why string, err error) (*engine.Engine, error) {
		d.log.Warn("no usable engine state in Kafka; rebuilding it from the input topics' retention ("+why+")",
			"topic", d.cfg.State.Topic, "err", err)
		return engine.New(cfg, d.set, d.holder), nil
	}
	switch {
	case errors.Is(err, snapshots.ErrNoSnapshot):
		if eng := d.startFromPeer(ctx, cfg, pipe, store); eng != nil {
			return eng, nil
		}
		d.log.Info("no engine state saved yet", "topic", d.cfg.State.Topic)
		return engine.New(cfg, d.set, d.holder), nil
	case errors.Is(err, snapshots.ErrNoUsableSnapshot):
		if eng := d.startFromPeer(ctx, cfg, pipe, store); eng != nil {
			return eng, nil
		}
		return rebuild("every snapshot was refused", err)
	case err != nil:
		return nil, fmt.Errorf("loading engine state from %s: %w", d.cfg.State.Topic, err)
	}
	// The next snapshot saved follows this one even when its state is
	// refused below: the store refuses a Seq that would hide it.
	pipe.ResumeSeq = snap.Seq
	eng, err := engine.Restore(cfg, d.set, d.holder, bytes.NewReader(snap.Data))
	if err != nil {
		return rebuild(fmt.Sprintf("snapshot %d does not fit this configuration", snap.Seq), err)
	}
	if !eng.PartitionTagged() {
		return rebuild(fmt.Sprintf("snapshot %d was written before the state recorded its partitions, which moving partitions needs", snap.Seq), nil)
	}
	pipe.Resume, pipe.ResumeShared, d.restoredAt = snap.Offsets, snap.SharedOffsets, snap.Offsets
	d.actionsSince = snap.CreatedAt.Add(-actionsMargin)
	took := time.Since(start)
	d.metrics.RestoreSeconds.Set(took.Seconds())
	d.metrics.RestoreBytes.Set(float64(len(snap.Data)))
	d.log.Info("engine state restored from Kafka", "topic", d.cfg.State.Topic, "seq", snap.Seq,
		"cut_at", snap.CreatedAt, "bytes", len(snap.Data), "took", took)
	d.logFeatureChange(eng.FeatureRestore(), "since the snapshot")
	return eng, nil
}

// startFromPeer starts an instance that has no usable state of its own
// (a new member of the group) from the newest usable snapshot another
// member saved, or returns nil when there is none. Every partition in it
// is then read from where that state stands, not from the start of its
// log: the partitions the group assigns here are caught up from there,
// and the shared entity windows are whole at once. The accounts of the
// partitions the other member keeps are dropped at the first generation
// (streams.PartitionStates). The snapshot is only read: this instance saves under its
// own name.
func (d *daemon) startFromPeer(ctx context.Context, cfg engine.Config, pipe *streams.Config, own *snapshots.Store) *engine.Engine {
	start := time.Now()
	ownName := d.cfg.Kafka.Group + "/" + d.instance
	saved, err := own.Names(ctx, d.cfg.Kafka.Group+"/")
	if err != nil {
		d.log.Warn("could not list the group's snapshots; starting without another member's state", "err", err)
		return nil
	}
	for _, s := range saved {
		if s.Name == ownName {
			continue
		}
		peer, err := snapshots.New(snapshots.Config{Brokers: d.brokers, Topic: d.cfg.State.Topic, Name: s.Name, Logger: d.log})
		if err != nil {
			d.log.Warn("another member's snapshot cannot be read", "member", s.Name, "err", err)
			continue
		}
		snap, _, err := peer.Load(ctx)
		if err != nil {
			d.log.Warn("another member's snapshot is not usable", "member", s.Name, "err", err)
			continue
		}
		eng, err := engine.Restore(cfg, d.set, d.holder, bytes.NewReader(snap.Data))
		if err == nil && !eng.PartitionTagged() {
			err = errors.New("written before the state recorded its partitions")
		}
		if err != nil {
			d.log.Warn("another member's snapshot does not fit this configuration", "member", s.Name, "seq", snap.Seq, "err", err)
			continue
		}
		pipe.Resume, pipe.ResumeShared, d.restoredAt = snap.Offsets, snap.SharedOffsets, snap.Offsets
		d.actionsSince, d.stateOf = snap.CreatedAt.Add(-actionsMargin), strings.TrimPrefix(s.Name, d.cfg.Kafka.Group+"/")
		took := time.Since(start)
		d.metrics.RestoreSeconds.Set(took.Seconds())
		d.metrics.RestoreBytes.Set(float64(len(snap.Data)))
		d.log.Info("engine state started from another member's snapshot", "topic", d.cfg.State.Topic, "member", s.Name,
			"seq", snap.Seq, "cut_at", snap.CreatedAt, "bytes", len(snap.Data), "took", took)
		d.logFeatureChange(eng.FeatureRestore(), "since that snapshot")
		return eng
	}
	return nil
}

// groupSnapshots reads the snapshots the members of the group saved in
// the state topic (streams.PartitionStates).
type groupSnapshots struct {
	d   *daemon
	own *snapshots.Store
}

func (g groupSnapshots) Saved(ctx context.Context) ([]snapshots.Saved, error) {
	return g.own.Names(ctx, g.d.cfg.Kafka.Group+"/")
}

func (g groupSnapshots) Load(ctx context.Context, name string) (snapshots.Snapshot, error) {
	st, err := snapshots.New(snapshots.Config{Brokers: g.d.brokers, Topic: g.d.cfg.State.Topic, Name: name, Logger: g.d.log})
	if err != nil {
		return snapshots.Snapshot{}, err
	}
	snap, stats, err := st.Load(ctx)
	for _, refused := range stats.Refused {
		g.d.log.Warn("state snapshot refused; using an older one", "snapshot", name, "reason", refused)
	}
	return snap, err
}

// logFeatureChange says what a change of the window feature definitions
// (since the snapshot, or by a reload: since) did to the state: which features kept their
// state (a renamed one under which name), which start empty and are
// warming until when (event time: the latest event in the state plus
// their window), which stored ones were dropped. Silent when the
// definitions are the snapshot's and nothing is warming.
func (d *daemon) logFeatureChange(rep features.RestoreReport, since string) {
	at := func(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }
	var kept, fresh, warming []string
	for _, k := range rep.Kept {
		name := k.Name
		if k.Was != k.Name {
			name += " (was " + k.Was + ")"
		}
		kept = append(kept, name)
		if k.WarmingUntil != 0 {
			warming = append(warming, k.Name+" until "+at(k.WarmingUntil))
		}
	}
	for _, f := range rep.Fresh {
		name := f.Name
		if f.Until != 0 {
			name += " (warming until " + at(f.Until) + ")"
		}
		fresh = append(fresh, name)
	}
	switch {
	case rep.Changed():
		d.log.Info("feature definitions changed "+since+": unchanged window features keep their state, new ones start empty and are marked warming in decisions until their window has filled",
			"kept", strings.Join(kept, ", "), "new", strings.Join(fresh, ", "), "dropped", strings.Join(rep.Dropped, ", "),
			"dropped_groups", strings.Join(rep.DroppedGroups, ", "), "still_warming", strings.Join(warming, ", "),
			"latest_event", at(rep.Watermark))
	case len(warming) > 0:
		d.log.Info("window features that started empty at an earlier restore are still warming", "features", strings.Join(warming, ", "))
	}
}

// actionsMargin reaches back before a snapshot's cut time when reading
// support's commands again: the Kafka timestamps of the commands and the
// cut come from different clocks. A command the state already holds is
// told apart by its position (streams.Position.CoveredBy).
const actionsMargin = time.Minute

// reapplyActions hands support's commands (locks, unlocks, suppressions)
// published on the actions topic since the restored state was cut back to
// the engine: they are in the state only from the next snapshot on, and
// are not in the input topics to be replayed. A command with a position
// is placed (streams.Pipeline.Place): the merger applies it again where it
// fell among the replayed events, unless the restored state holds it
// already. One without (made while no partition was read, or published by
// an older riskd) is applied at once, before the replay: it then meets the
// account's replayed events from before it as well (docs/ARCHITECTURE.md,
// known gaps). Another instance's command that this one applied live is
// placed where this one applied it (its placed record, see
// fleetcommands.go). The stream's own locks come back by the replay, at
// their events' places. Runs before the pipeline does.
func (d *daemon) reapplyActions(ctx context.Context) error {
	if !d.cfg.State.Kafka || d.actionsSince.IsZero() {
		// Nothing to apply again; followActions starts where the topic
		// ends now, so no command made from here on is missed.
		ends, err := streams.ActionEnds(ctx, d.brokers, d.cfg.Kafka.ActionsTopic)
		if err != nil {
			// followActions then starts at the ends it finds itself.
			d.log.Warn("actions topic: where it ends is unknown; following it from when that is known", "err", err)
		}
		d.actionsRead = ends
		return nil
	}
	recs, read, err := streams.ReadActions(ctx, d.brokers, d.cfg.Kafka.ActionsTopic, d.actionsSince)
	if err != nil {
		return fmt.Errorf("applying the support commands published since the state was saved: %w", err)
	}
	d.actionsRead = read
	// Where the instance whose state this is applied other instances'
	// commands (or that it skipped one, superseded by its own).
	placedHere := map[string]streams.ActionRecord{}
	for _, a := range recs {
		if a.Type == streams.ActionPlaced && a.Instance == d.stateOf {
			placedHere[a.Ref] = a
		}
	}
	now := time.Now()
	var placed []streams.PlacedCommand
	applied, held := 0, 0
	for _, a := range recs {
		if a.Type == streams.ActionPlaced || a.EventID != "" {
			// Bookkeeping, or a rule's lock, made by an event of the
			// stream: the replay makes it again at the event's place.
			continue
		}
		if commandOver(a, now) {
			continue
		}
		at := a.Position
		if p, ok := placedHere[a.ID]; ok && a.Instance != d.stateOf {
			// Another instance's command that this one applied live: its
			// place here. One it never applied (it was down, or not yet
			// following) goes where the other instance applied it: the
			// offsets of a partition are the same on every instance.
			if p.Superseded {
				continue
			}
			at = p.Position
		}
		if at.CoveredBy(d.restoredAt) {
			held++
			continue
		}
		apply := d.commandOf(a)
		if len(at) > 0 {
			placed = append(placed, streams.PlacedCommand{AccountID: a.AccountID, At: at, Apply: apply,
				What: a.Type + " of " + a.AccountID})
			continue
		}
		if err := d.eng.Do(ctx, a.AccountID, apply); err != nil {
			return fmt.Errorf("applying a %s of %s again: %w", a.Type, a.AccountID, err)
		}
		applied++
	}
	d.pipe.Place(placed)
	if applied+len(placed)+held > 0 {
		d.log.Info("support commands published since the state was saved", "applied_before_replay", applied,
			"placed_in_replay", len(placed), "already_in_state", held, "since", d.actionsSince)
	}
	return nil
}

// commandOf is what applying support's command a again does to the
// account's state. A suppression the engine refuses (its bound, met in
// another order than live) is logged and skipped: the restart goes on.
func (d *daemon) commandOf(a streams.ActionRecord) func(*engine.Scorer) {
	return func(s *engine.Scorer) {
		switch a.Type {
		case "lock":
			until := a.Until.UnixMilli()
			if a.Indefinite {
				until = engine.IndefiniteMs
			}
			s.Lock(a.AccountID, until, "actions:"+a.Reason)
		case "unlock":
			s.Unlock(a.AccountID) // resets what the lock's rule declares, when that lock is in the state
		case streams.ActionSuppress:
			if err := s.Suppress(a.AccountID, a.RuleID, a.Until.UnixMilli(), "actions:"+a.Actor); err != nil {
				d.log.Warn("a suppression published since the state was saved was not applied again", "account", a.AccountID,
					"rule", a.RuleID, "err", err)
			}
		case streams.ActionUnsuppress:
			s.Unsuppress(a.AccountID, a.RuleID)
		}
	}
}
