package chstore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"riskd/engine"
)

// TestOnRetryHearsEveryRetriedFailure points a store at an address where
// nothing listens: every write attempt fails, and the hook must hear each
// one that Retries counts, with the operation and the redacted error;
// Ping fails once, without retrying, and names the address.
func TestOnRetryHearsEveryRetriedFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var mu sync.Mutex
	var ops []string
	var errs []error
	cfg := Config{Addr: addr, Database: "riskd", Password: secret, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnRetry: func(op string, err error) {
			mu.Lock()
			defer mu.Unlock()
			ops, errs = append(ops, op), append(errs, err)
		}}.withDefaults()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Username: "default", Password: secret}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{conn: conn, cfg: cfg, log: cfg.Logger}
	defer s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.WriteDecisions(ctx, []*engine.Decision{{EventID: "e1", AccountID: "a1"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WriteDecisions = %v; want context.DeadlineExceeded", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ops) == 0 || uint64(len(ops)) != s.Retries() {
		t.Fatalf("OnRetry called %d times, Retries = %d; want the same, above 0", len(ops), s.Retries())
	}
	for i, op := range ops {
		if op != "write decisions" || errs[i] == nil || strings.Contains(errs[i].Error(), secret) {
			t.Fatalf("OnRetry call %d: op %q, err %v; want \"write decisions\" and an error without the password", i, op, errs[i])
		}
	}

	if err := s.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "chstore: ping "+addr) {
		t.Fatalf("Ping with nothing listening = %v, want an error naming %s", err, addr)
	}
}
