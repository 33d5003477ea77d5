package chstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Store writes riskd's records to one ClickHouse database. It is safe for
// concurrent use: each write takes its own pooled connection.
type Store struct {
	conn    driver.Conn
	cfg     Config // with defaults applied
	log     *slog.Logger
	retries atomic.Uint64
	rec     recovery
}

// Open connects, creates the database if missing and runs pending
// migrations. It tries once: a server that is down at start-up is a
// configuration or deployment problem the operator should see at once, so
// the error names the address (never the password).
//
// Compatibility notes for ClickHouse 18.16 (protocol revision 54412), found
// by experiment with clickhouse-go/v2 v2.50.0; no client option is needed:
//   - The client negotiates the old revision in the handshake; batches go
//     out uncompressed (Compression left nil) and PrepareBatch/Append/Send
//     work when the INSERT names its columns.
//   - Without a column list, 18.16 answers the INSERT with an empty header
//     and every Append fails with "expected 0 arguments".
//   - Exec("INSERT ... VALUES (...)") never returns against 18.16 (it hangs
//     until the context ends), so even single rows go through PrepareBatch.
//   - count() - uniqExact(x) is typed Int64, not UInt64; scans must match.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("chstore: config: %w", err)
	}
	cfg = cfg.withDefaults()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{cfg.Addr},
		// No default database in the handshake: ours may not exist yet, and
		// every statement names it anyway.
		Auth:        clickhouse.Auth{Username: cfg.User, Password: cfg.Password},
		DialTimeout: cfg.DialTimeout,
		ReadTimeout: cfg.AttemptTimeout,
		// A WriteDecisions call holds up to five connections (one per
		// table) at once; 16 lets three writers and some reads run together.
		// A caller beyond that waits for a free connection up to
		// DialTimeout, then retries like any failed attempt. Every one may
		// stay idle: the pool closes a connection it cannot keep, and the
		// next batch then dials again and grows a new encoding buffer to a
		// batch's size (a twelfth of riskd's allocation in a run where two
		// batches overlapped and ten connections turned over).
		MaxOpenConns: 16,
		MaxIdleConns: 16,
	})
	if err != nil {
		return nil, fmt.Errorf("chstore: open %s: %w", cfg.Addr, redact(err, cfg.Password))
	}
	s := &Store{conn: reconnecting{conn}, cfg: cfg, log: cfg.Logger}
	s.rec.window, s.rec.active = cfg.RecoveryWindow, cfg.RecoveryWindow > 0
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("chstore: connect to ClickHouse at %s as user %q: %w%s", cfg.Addr, cfg.User, redact(err, cfg.Password), dialHint(err))
	}
	if err := migrate(ctx, conn, cfg.Database); err != nil {
		conn.Close()
		return nil, fmt.Errorf("chstore: migrate %s at %s: %w", cfg.Database, cfg.Addr, redact(err, cfg.Password))
	}
	return s, nil
}

// Close releases the connections. Writes in flight fail.
func (s *Store) Close() error {
	if err := s.conn.Close(); err != nil {
		return fmt.Errorf("chstore: close: %w", err)
	}
	return nil
}

// Retries counts failed write attempts that were retried since Open.
func (s *Store) Retries() uint64 { return s.retries.Load() }

// Database is the database the store writes to.
func (s *Store) Database() string { return s.cfg.Database }

// table is a database-qualified table name for SQL.
func (s *Store) table(name string) string {
	return "`" + s.cfg.Database + "`." + name
}

// dialHint tells the operator what to check when nothing answered.
func dialHint(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return " (is ClickHouse running, and is this its native-protocol port, usually 9000?)"
	}
	return ""
}

// redact returns err, or when its text contains the password, an error
// with the password replaced. The replacement drops the error chain on
// purpose: an unwrapped cause would still carry the secret.
func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "REDACTED"))
}
