// Package chtest connects tests to a real ClickHouse server, the same way in
// every package: the address comes from $RISKD_TEST_CLICKHOUSE (default
// 127.0.0.1:9000), each test gets a fresh database that is dropped when the
// test ends, and a missing server skips the test locally but fails it when
// CI=true, so CI can never pass by skipping.
package chtest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"riskd/streams/chstore"
)

// DefaultAddr is used when $RISKD_TEST_CLICKHOUSE is unset.
const DefaultAddr = "127.0.0.1:9000"

// Addr returns the test server's native-protocol address after checking
// that it accepts connections; otherwise it skips the test (or fails it
// when CI=true) with instructions.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("RISKD_TEST_CLICKHOUSE")
	if addr == "" {
		addr = DefaultAddr
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		msg := fmt.Sprintf("ClickHouse is not reachable at %s (%v). Start a local server with scripts/clickhouse-up, "+
			"or point RISKD_TEST_CLICKHOUSE at one (host:port of the native protocol).", addr, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c.Close()
	return addr
}

// Config returns a store config for a fresh database on the test server,
// named riskd_test_<random>, and drops that database when the test ends.
// Logs go to the test's output.
func Config(t testing.TB) chstore.Config {
	t.Helper()
	addr := Addr(t)
	db := fmt.Sprintf("riskd_test_%016x", rand.Uint64())
	t.Cleanup(func() { drop(t, addr, db) })
	cfg := chstore.DefaultConfig()
	cfg.Addr = addr
	cfg.Database = db
	cfg.RetryMin = 10 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	return cfg
}

// Open returns a store on a fresh database (see Config), closed when the
// test ends.
func Open(t testing.TB) *chstore.Store {
	t.Helper()
	st, err := chstore.Open(t.Context(), Config(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return st
}

// drop removes a test database with a connection of its own, since the
// store under test may be closed or broken by then.
func drop(t testing.TB, addr, db string) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Errorf("chtest: drop %s: %v", db, err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
		t.Errorf("chtest: drop %s: %v", db, err)
	}
}
