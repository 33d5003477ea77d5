package chstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"riskd/internal/chtest"
	"riskd/streams/chstore"
)

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openBehindProxy opens a store whose only way to the server is p.
func openBehindProxy(t *testing.T) (*chstore.Store, *chtest.Proxy, chstore.Config) {
	t.Helper()
	cfg := chtest.Config(t)
	p := chtest.NewProxy(t, cfg.Addr)
	viaProxy := cfg
	viaProxy.Addr = p.Addr()
	viaProxy.DialTimeout = time.Second
	st, err := chstore.Open(t.Context(), viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, p, cfg
}

func TestWriteWaitsOutAnOutageAndLosesNothing(t *testing.T) {
	st, p, cfg := openBehindProxy(t)
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	// A first batch fills the connection pool, so the outage also has to
	// deal with pooled connections that die.
	warm := sampleDecisions("warm", 20, base)
	if err := st.WriteDecisions(t.Context(), warm); err != nil {
		t.Fatal(err)
	}

	p.Down()
	ds := sampleDecisions("outage", 200, base.Add(time.Hour))
	before := st.Retries()
	done := make(chan error, 1)
	go func() { done <- st.WriteDecisions(context.Background(), ds) }()
	waitFor(t, "retries while ClickHouse is unreachable", func() bool { return st.Retries() >= before+3 })
	select {
	case err := <-done:
		t.Fatalf("WriteDecisions returned %v while ClickHouse was unreachable; want it to keep retrying", err)
	default:
	}

	p.Up()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WriteDecisions after recovery: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("WriteDecisions did not return within 60s of ClickHouse coming back")
	}
	checkRows(t, rawConn(t, cfg.Addr), cfg.Database, wantRows(append(warm, ds...)))
	if n, err := st.DuplicateDecisionRows(t.Context()); err != nil || n != 0 {
		t.Errorf("DuplicateDecisionRows = %d, %v; want 0", n, err)
	}
}

func TestCancelDuringOutageReturnsContextError(t *testing.T) {
	st, p, _ := openBehindProxy(t)
	p.Down()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := st.Retries()
	done := make(chan error, 1)
	go func() {
		done <- st.WriteDecisions(ctx, sampleDecisions("cancel", 10, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)))
	}()
	waitFor(t, "a retry", func() bool { return st.Retries() > before })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("WriteDecisions error = %v; want one wrapping context.Canceled", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("WriteDecisions did not return after its context was cancelled")
	}
}
