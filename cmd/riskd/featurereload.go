package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"time"

	"riskd/features"
	"riskd/rules"
)

// Features reloads: riskd polls its features file (rules.features) every
// rules.poll_interval, and applies a change without a restart. The new
// definitions are compiled, the running rule set (and a candidate) are
// compiled against them, and the engine carries its state over at one
// place in the stream (engine.Engine.SwapFeatures): unchanged features
// keep their state, new ones start empty and are warming until their
// window has filled, removed ones are dropped. A file that does not
// compile, or that drops a feature a running rule reads, is refused with
// the reason, and the previous features keep running. Each instance
// reloads its own file, as it reads its own config.

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

// pollFeatures applies the features file when its content has changed
// since it was last applied or refused.
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
	err = d.reloadFeatures(ctx, b)
	if err != nil {
		d.featureReloads.WithLabelValues("error").Inc()
		d.log.Error("features reload rejected; the previous features keep running", "file", path, "err", err)
		return
	}
	d.featureReloads.WithLabelValues("ok").Inc()
}

// reloadFeatures compiles the definitions in b and, when they differ from
// the running ones, swaps them in.
func (d *daemon) reloadFeatures(ctx context.Context, b []byte) error {
	defs, err := features.ParseDefinitions(b)
	if err != nil {
		return fmt.Errorf("features %s: %w", d.cfg.Rules.Features, err)
	}
	set, err := features.Compile(defs, d.cfg.Features)
	if err != nil {
		return fmt.Errorf("features %s: %w", d.cfg.Rules.Features, err)
	}
	old := d.liveFeatures.Load()
	if reflect.DeepEqual(old.Definitions(), set.Definitions()) {
		d.log.Info("features file changed; its definitions did not", "file", d.cfg.Rules.Features)
		return nil
	}
	start := time.Now()
	var rep features.RestoreReport
	var held time.Duration
	err = d.rulesAPI.SwapFeatures(set, func(install func()) error {
		pauseStart := time.Now()
		var err error
		rep, err = d.eng.SwapFeatures(ctx, set, install)
		held = time.Since(pauseStart)
		return err
	})
	if err != nil {
		return err
	}
	d.liveFeatures.Store(set)
	for g := range set.Groups() { // a new entity group's lateness series, from 0
		d.metrics.LateReasons(set.GroupName(g))
	}
	d.featurePause.Set(held.Seconds())
	d.log.Info("features reloaded without a restart", "file", d.cfg.Rules.Features, "features", len(set.Names()),
		"engine_held", held, "took", time.Since(start))
	d.logFeatureChange(rep, "by the reload")
	return nil
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
