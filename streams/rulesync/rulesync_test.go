package rulesync_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"riskd/streams"
	"riskd/streams/rulesync"
)

func startBroker(t *testing.T) string {
	t.Helper()
	b, err := streams.StartEmbedded("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

// follower records what Follow applies.
type follower struct {
	mu   sync.Mutex
	got  []rulesync.Record
	seen chan struct{}
}

func follow(t *testing.T, s *rulesync.Sync, refuse string) *follower {
	t.Helper()
	f := &follower{seen: make(chan struct{}, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Follow(ctx, func(r rulesync.Record) error {
			defer func() { f.seen <- struct{}{} }()
			if r.Hash == refuse {
				return errors.New("does not compile")
			}
			f.mu.Lock()
			f.got = append(f.got, r)
			f.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v, want context.Canceled", err)
		}
	})
	return f
}

func (f *follower) wait(t *testing.T, n int) []rulesync.Record {
	t.Helper()
	for {
		f.mu.Lock()
		got := append([]rulesync.Record(nil), f.got...)
		f.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-f.seen:
		case <-time.After(30 * time.Second):
			t.Fatalf("applied %d records, want %d", len(got), n)
		}
	}
}

func TestFollowersApplyPublishedRecordsInOrderAndSkipRefusedOnes(t *testing.T) {
	addr := startBroker(t)
	s, err := rulesync.New(rulesync.Config{Brokers: []string{addr}, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTopic(t.Context()); err != nil {
		t.Fatal(err)
	}
	f := follow(t, s, "bad")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	seq1, err := s.Publish(t.Context(), rulesync.Record{Hash: "h1", Files: map[string]string{"a.yaml": "[]"}, Author: "alice", Message: "one", PublishedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	got := f.wait(t, 1)
	if got[0].Seq != seq1 || got[0].Hash != "h1" || got[0].Author != "alice" || got[0].Message != "one" ||
		!got[0].PublishedAt.Equal(at) || got[0].Files["a.yaml"] != "[]" {
		t.Errorf("applied %+v, want seq %d h1 by alice", got[0], seq1)
	}
	if _, err := s.Publish(t.Context(), rulesync.Record{Hash: "bad"}); err != nil {
		t.Fatal(err)
	}
	// Let the follower meet the bad record while it is the newest: published
	// back to back with the next one, it would be skipped as superseded
	// instead of refused.
	for deadline := time.Now().Add(30 * time.Second); s.Skipped() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the follower never refused the bad record")
		}
	}
	seq3, err := s.Publish(t.Context(), rulesync.Record{Hash: "h3"})
	if err != nil {
		t.Fatal(err)
	}
	got = f.wait(t, 2)
	if got[1].Hash != "h3" || got[1].Seq != seq3 || seq3 <= seq1 {
		t.Errorf("second applied %+v, want h3 with seq %d > %d", got[1], seq3, seq1)
	}
	if s.Skipped() != 1 {
		t.Errorf("Skipped = %d, want 1 (the refused record)", s.Skipped())
	}

	// A follower that starts later installs only the latest version.
	late, err := rulesync.New(rulesync.Config{Brokers: []string{addr}, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	lf := follow(t, late, "")
	got = lf.wait(t, 1)
	if got[0].Hash != "h3" || got[0].Seq != seq3 {
		t.Errorf("late follower applied %+v first, want the latest h3 seq %d", got[0], seq3)
	}
}

func TestPublishRefusesTooLargeRecords(t *testing.T) {
	s, err := rulesync.New(rulesync.Config{Brokers: []string{"127.0.0.1:1"}, MaxRecordBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Publish(t.Context(), rulesync.Record{Hash: "h", Files: map[string]string{"a.yaml": string(make([]byte, 200))}})
	if !errors.Is(err, rulesync.ErrTooLarge) {
		t.Errorf("Publish error = %v, want ErrTooLarge", err)
	}
}
