package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
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
	instance := d.cfg.State.Instance
	if instance == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("state.instance is empty and the host name is unknown: %w", err)
		}
		instance = host
	}
	store, err := snapshots.New(snapshots.Config{Brokers: d.brokers, Topic: d.cfg.State.Topic,
		Name: d.cfg.Kafka.Group + "/" + instance, Logger: d.log})
	if err != nil {
		return nil, fmt.Errorf("config: state: %w", err)
	}
	if err := store.Ensure(ctx); err != nil {
		return nil, fmt.Errorf("state topic %s: %w", d.cfg.State.Topic, err)
	}
	pipe.Snapshots, pipe.SnapshotInterval = store, d.cfg.State.SnapshotInterval
	// A partition the restored state does not cover is rebuilt from the
	// start of its log, up to the committed offset, without outputs.
	pipe.RebuildUnknown = true
	start := time.Now()
	snap, stats, err := store.Load(ctx)
	for _, refused := range stats.Refused {
		d.log.Warn("state snapshot refused; using an older one", "reason", refused)
	}
	// Locks and unlocks published since the state was cut are applied
	// again (reapplyActions); with no usable state, all that are retained.
	d.actionsSince = time.Unix(0, 0)
	rebuild := func(why string, err error) (*engine.Engine, error) {
		d.log.Warn("no usable engine state in Kafka; rebuilding it from the input topics' retention ("+why+")",
			"topic", d.cfg.State.Topic, "err", err)
		return engine.New(cfg, d.set, d.holder), nil
	}
	switch {
	case errors.Is(err, snapshots.ErrNoSnapshot):
		d.log.Info("no engine state saved yet", "topic", d.cfg.State.Topic)
		return engine.New(cfg, d.set, d.holder), nil
	case errors.Is(err, snapshots.ErrNoUsableSnapshot):
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
	pipe.Resume = snap.Offsets
	d.actionsSince = snap.CreatedAt.Add(-actionsMargin)
	took := time.Since(start)
	d.metrics.RestoreSeconds.Set(took.Seconds())
	d.metrics.RestoreBytes.Set(float64(len(snap.Data)))
	d.log.Info("engine state restored from Kafka", "topic", d.cfg.State.Topic, "seq", snap.Seq,
		"cut_at", snap.CreatedAt, "bytes", len(snap.Data), "took", took)
	d.logFeatureChange(eng.FeatureRestore())
	return eng, nil
}

// logFeatureChange says what a change of the window feature definitions
// since the snapshot did to the restored state: which features kept their
// state (a renamed one under which name), which start empty and are
// warming until when (event time: the latest event in the state plus
// their window), which stored ones were dropped. Silent when the
// definitions are the snapshot's and nothing is warming.
func (d *daemon) logFeatureChange(rep features.RestoreReport) {
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
		d.log.Info("feature definitions changed since the snapshot: unchanged window features keep their state, new ones start empty and are marked warming in decisions until their window has filled",
			"kept", strings.Join(kept, ", "), "new", strings.Join(fresh, ", "), "dropped", strings.Join(rep.Dropped, ", "),
			"dropped_groups", strings.Join(rep.DroppedGroups, ", "), "still_warming", strings.Join(warming, ", "),
			"latest_event", at(rep.Watermark))
	case len(warming) > 0:
		d.log.Info("window features that started empty at an earlier restore are still warming", "features", strings.Join(warming, ", "))
	}
}

// actionsMargin reaches back before a snapshot's cut time when applying
// lock commands again: the Kafka timestamps of the commands and the cut
// come from different clocks. Applying one twice changes nothing.
const actionsMargin = time.Minute

// reapplyActions applies again, on the running engine and before intake
// starts, support's lock and unlock commands published on the actions
// topic since the restored state was cut: they are in the state only from
// the next snapshot on, and are not in the input topics to be replayed.
// The stream's own locks come back by the replay, at their events' places.
// Applied before the replay, a support command meets the replayed events
// in another order than the first time: a support lock refuses the
// account's replayed events from before it (they then stay out of the
// windows), and a rule lock that support lifted is made again by the
// replay (docs/ARCHITECTURE.md, known gaps).
func (d *daemon) reapplyActions(ctx context.Context) error {
	if !d.cfg.State.Kafka || d.actionsSince.IsZero() {
		return nil
	}
	recs, err := streams.ReadActions(ctx, d.brokers, d.cfg.Kafka.ActionsTopic, d.actionsSince)
	if err != nil {
		return fmt.Errorf("applying the lock commands published since the state was saved: %w", err)
	}
	now := time.Now()
	applied := 0
	for _, a := range recs {
		if a.Type == streams.ActionSuppress || a.Type == streams.ActionUnsuppress {
			ok, err := d.reapplySuppression(ctx, a, now)
			if err != nil {
				return err
			}
			if ok {
				applied++
			}
			continue
		}
		if a.EventID != "" {
			// A rule's lock, made by an event of the stream: the replay
			// makes it again at the event's place. Applied here, before
			// the replay, it would refuse the account's earlier events
			// and keep them out of the windows.
			continue
		}
		if a.Type == "lock" && !a.Indefinite && !a.Until.After(now) {
			continue // over already
		}
		err := d.eng.Do(ctx, a.AccountID, func(s *engine.Scorer) {
			switch {
			case a.Type == "lock" && a.Indefinite:
				s.Lock(a.AccountID, engine.IndefiniteMs, "actions:"+a.Reason)
			case a.Type == "lock":
				s.Lock(a.AccountID, a.Until.UnixMilli(), "actions:"+a.Reason)
			default:
				// Resets what the lock's rule declares, if the lock is
				// in the restored state (see the known gap above).
				s.Unlock(a.AccountID)
			}
		})
		if err != nil {
			return fmt.Errorf("applying a %s of %s again: %w", a.Type, a.AccountID, err)
		}
		applied++
	}
	if applied > 0 {
		d.log.Info("lock commands published since the state was saved applied again", "commands", applied,
			"since", d.actionsSince)
	}
	return nil
}

// reapplySuppression applies again one of support's suppress or
// unsuppress commands read from the actions topic (see reapplyActions),
// and reports whether it did: a suppression already over is skipped, and
// one the engine refuses (its bound) is logged and skipped.
// Before the replay, like support's locks: a suppression made after some
// of the replayed events also holds for them (docs/ARCHITECTURE.md, known
// gaps).
func (d *daemon) reapplySuppression(ctx context.Context, a streams.ActionRecord, now time.Time) (bool, error) {
	if a.Type == streams.ActionSuppress && !a.Until.After(now) {
		return false, nil
	}
	var serr error
	err := d.eng.Do(ctx, a.AccountID, func(s *engine.Scorer) {
		if a.Type == streams.ActionSuppress {
			serr = s.Suppress(a.AccountID, a.RuleID, a.Until.UnixMilli(), "actions:"+a.Actor)
		} else {
			s.Unsuppress(a.AccountID, a.RuleID)
		}
	})
	if err != nil {
		return false, fmt.Errorf("applying a %s of %s for %s again: %w", a.Type, a.RuleID, a.AccountID, err)
	}
	if serr != nil { // the bound, met in another order than live: the restart goes on
		d.log.Warn("a suppression published since the state was saved was not applied again", "account", a.AccountID,
			"rule", a.RuleID, "err", serr)
		return false, nil
	}
	return true, nil
}
