package chstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"riskd/engine"
)

const secret = "hunter2-Sup3rSecret"

// TestRetryLogsNeverContainThePassword builds a store with a password
// whose server is gone (Open would refuse to start), so every write attempt
// fails and is logged.
func TestRetryLogsNeverContainThePassword(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	cfg := Config{Addr: addr, Database: "riskd", Password: secret, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}.withDefaults()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Username: "default", Password: secret}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{conn: conn, cfg: cfg, log: cfg.Logger}
	defer s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = s.WriteDecisions(ctx, []*engine.Decision{{EventID: "e1", AccountID: "a1"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WriteDecisions = %v; want context.DeadlineExceeded", err)
	}
	if s.Retries() == 0 || !strings.Contains(logs.String(), "chstore: write failed, will retry") {
		t.Fatalf("no retry logged (retries=%d): %s", s.Retries(), logs.String())
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(err.Error(), secret) {
		t.Errorf("password leaked:\nerr=%v\nlogs=%s", err, logs.String())
	}
}

func TestRedactReplacesThePassword(t *testing.T) {
	err := redact(errors.New("auth failed for default:"+secret+"@host"), secret)
	if got, want := err.Error(), "auth failed for default:REDACTED@host"; got != want {
		t.Errorf("redact = %q, want %q", got, want)
	}
	orig := context.Canceled
	if redact(orig, secret) != orig {
		t.Error("redact changed an error that does not contain the password")
	}
}
