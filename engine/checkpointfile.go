package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"riskd/features"
	"riskd/rules"
)

// ErrCheckpointUnusable is returned by RestoreFile when the checkpoint file
// exists but Restore refuses it (another features Config, shard count or
// format; other feature definitions are restored, see Restore). The file has been removed all the same: the caller can start
// with an empty engine and let the replayed events rebuild recent state.
var ErrCheckpointUnusable = errors.New("engine checkpoint not usable")

// SaveCheckpoint writes e's Checkpoint to path so that a crash at any
// moment leaves either the previous file or the complete new one, never a
// torn one: it writes a temporary file beside path (creating the
// directory if needed), syncs it, and renames it over path.
//
// Call it with intake paused (after a full drain), when the state matches
// the committed offsets exactly.
func (e *Engine) SaveCheckpoint(ctx context.Context, path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename there is nothing left to remove
	if err := e.Checkpoint(ctx, f); err != nil {
		f.Close()
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// RestoreFile builds an Engine from the checkpoint file at path (written by
// SaveCheckpoint) and removes the file, so a checkpoint is used at most
// once: after a crash the state must be rebuilt from the replayed events,
// not from a checkpoint older than the committed offsets.
//
// With no file at path it returns a nil Engine and a nil error. A file
// Restore refuses is removed too, and the error wraps
// ErrCheckpointUnusable. Any other error (reading or removing the file)
// returns a nil Engine.
func RestoreFile(cfg Config, set *features.Set, holder *rules.Holder, path string) (*Engine, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	eng, restoreErr := Restore(cfg, set, holder, f)
	f.Close()
	if err := os.Remove(path); err != nil {
		return nil, fmt.Errorf("checkpoint: consume %s: %w", path, err)
	}
	if restoreErr != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCheckpointUnusable, path, restoreErr)
	}
	return eng, nil
}
