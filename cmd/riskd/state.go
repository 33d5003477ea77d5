package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"riskd/engine"
	"riskd/streams"
	"riskd/streams/snapshots"
)

// restoreFromKafka builds the engine from the newest usable snapshot in
// the state topic and tells the pipeline where that state stands. Without
// one (first start, a snapshot from another feature set or shard count,
// or every snapshot damaged) the engine starts empty and the pipeline
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
	took := time.Since(start)
	d.metrics.RestoreSeconds.Set(took.Seconds())
	d.metrics.RestoreBytes.Set(float64(len(snap.Data)))
	d.log.Info("engine state restored from Kafka", "topic", d.cfg.State.Topic, "seq", snap.Seq,
		"cut_at", snap.CreatedAt, "bytes", len(snap.Data), "took", took)
	return eng, nil
}
