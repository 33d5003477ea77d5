package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"riskd/features"
	"riskd/rules"
)

// Features reloads: riskd polls its features file (rules.features) every
// rules.poll_interval, and publishes a changed file with the running rules
// as a new version on the rule topic (rulesapi.PublishFeaturesFile), as
// PUT /v1/features does for an analyst. Every instance installs it
// (rulesapi's Run): the engine carries its state over at one place in the
// stream (engine.Engine.SwapFeatures, through swapEngineFeatures):
// unchanged features keep their state, new ones start empty and are
// warming until their window has filled, removed ones are dropped; the
// rules compiled against the new features are installed at that place. A
// file that does not compile, or that drops a feature a running rule
// reads, is refused with the reason, and the previous features keep
// running.

// currentFeatures is the Set the engine runs now, for compiling rules.
func (d *daemon) currentFeatures() rules.FeatureIndex { return d.liveFeatures.Load() }

// watchFeatures polls the features file until ctx ends.
func (d *daemon) watchFeatures(ctx context.Context) {
	interval := d.cfg.Rules.PollInterval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.pollFeatures(ctx)
		}
	}
}

// pollFeatures publishes the features file when its content has changed
// since it was last seen.
func (d *daemon) pollFeatures(ctx context.Context) {
	path := d.cfg.Rules.Features
	b, err := readSettled(path)
	if err != nil {
		return // missing or half-written: look again at the next poll
	}
	h := contentHash(b)
	if h == d.featuresHash {
		return
	}
	d.featuresHash = h // a refused file is reported once, not every poll
	seq, published, err := d.rulesAPI.PublishFeaturesFile(ctx, b)
	switch {
	case err != nil:
		d.featureReloads.WithLabelValues("error").Inc()
		d.log.Error("features reload rejected; the previous features keep running", "file", path, "err", err)
	case !published:
		d.log.Info("features file changed; its definitions did not", "file", path)
	default:
		d.log.Info("features file changed; published with the running rules", "file", path, "seq", seq)
	}
}

// swapEngineFeatures is rulesapi's SwapEngine: it changes the engine's
// window features to set and calls install (the version's rules) at the
// same place in the stream. Before the engine is built (a version with
// its own features installed at start) it only installs, and the engine
// is built with set.
func (d *daemon) swapEngineFeatures(set *features.Set, install func()) error {
	if d.eng == nil {
		install()
		d.set = set
		d.useFeatures(set)
		return nil
	}
	start := time.Now()
	rep, err := d.eng.SwapFeatures(context.Background(), set, install)
	if err != nil {
		d.featureReloads.WithLabelValues("error").Inc()
		return err
	}
	held := time.Since(start)
	d.useFeatures(set)
	d.featureReloads.WithLabelValues("ok").Inc()
	d.featurePause.Set(held.Seconds())
	d.log.Info("window features changed without a restart", "features", len(set.Names()), "engine_held", held)
	d.logFeatureChange(rep, "by the new version")
	return nil
}

// useFeatures makes set the features rules compile against and exports
// its entity groups' lateness series.
func (d *daemon) useFeatures(set *features.Set) {
	d.liveFeatures.Store(set)
	for g := range set.Groups() { // a new entity group's lateness series, from 0
		d.metrics.LateReasons(set.GroupName(g))
	}
}

// readSettled reads path twice, a moment apart, and returns its content
// when both reads agree: an editor or copy may be half-way through
// writing it.
func readSettled(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	time.Sleep(50 * time.Millisecond)
	again, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if contentHash(again) != contentHash(b) {
		return nil, fmt.Errorf("%s is being written", path)
	}
	return b, nil
}

func contentHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// fileHash is contentHash of path's content.
func fileHash(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("features: %w", err)
	}
	return contentHash(b), nil
}
