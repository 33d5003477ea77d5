package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestCheckpointFileIsRestoredOnceAndLeavesNoTemporaryFiles(t *testing.T) {
	set, holder := loadTestdata(t)
	cfg := Config{Shards: 2, Now: fixedClock()}
	e := New(cfg, set, holder)
	ctx := startEngine(t, e)
	for i := 1; i <= 5; i++ {
		mustDecide(t, ctx, e, login("f"+strconv.Itoa(i), "a1", t0+int64(i), true))
	}
	dir := filepath.Join(t.TempDir(), "state") // SaveCheckpoint creates it
	path := filepath.Join(dir, "engine.ckpt")
	if err := e.SaveCheckpoint(ctx, path); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "engine.ckpt" {
		t.Fatalf("state dir holds %v, want only engine.ckpt", entries)
	}

	r, err := RestoreFile(cfg, set, holder, path)
	if err != nil || r == nil {
		t.Fatalf("RestoreFile = %v, %v; want the checkpointed engine", r, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the checkpoint is still there after RestoreFile (stat: %v); a later crash would restore it again", err)
	}
	rctx := startEngine(t, r)
	if d := mustDecide(t, rctx, r, payment("p9", "a1", t0+10, 100, "x")); d.Reason != ReasonAccountLocked {
		t.Errorf("after restore a1's payment: reason %q, want account_locked", d.Reason)
	}

	if r, err := RestoreFile(cfg, set, holder, path); r != nil || err != nil {
		t.Errorf("RestoreFile with no file = %v, %v; want nil, nil", r, err)
	}
}

func TestUnusableCheckpointFileIsReportedAndRemoved(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 2}, set, holder)
	ctx := startEngine(t, e)
	path := filepath.Join(t.TempDir(), "engine.ckpt")
	if err := e.SaveCheckpoint(ctx, path); err != nil {
		t.Fatal(err)
	}
	r, err := RestoreFile(Config{Shards: 3}, set, holder, path)
	if r != nil || !errors.Is(err, ErrCheckpointUnusable) {
		t.Fatalf("RestoreFile into another shard count = %v, %v; want ErrCheckpointUnusable", r, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an unusable checkpoint was left behind (stat: %v)", err)
	}
}

func TestSaveCheckpointKeepsThePreviousFileWhenItFails(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 1}, set, holder) // not running: no shard answers
	path := filepath.Join(t.TempDir(), "engine.ckpt")
	if err := os.WriteFile(path, []byte("previous"), 0o600); err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel() // the checkpoint gives up on the shard, after the header is written
	if err := e.SaveCheckpoint(ended, path); err == nil {
		t.Fatal("SaveCheckpoint with an ended context succeeded")
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "previous" {
		t.Errorf("after a failed save the file holds %q (%v), want the previous checkpoint", b, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("a failed save left %d files, want only the previous checkpoint", len(entries))
	}
}
