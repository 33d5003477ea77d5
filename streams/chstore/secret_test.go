package chstore_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"riskd/internal/chtest"
	"riskd/streams/chstore"
)

const secret = "hunter2-Sup3rSecret"

// refusedAddr is an address where nothing listens.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestOpenErrorsNeverContainThePassword(t *testing.T) {
	bad := refusedAddr(t)
	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"a refused address", func(*testing.T) string { return bad }},
		{"the real server rejecting the password", func(t *testing.T) string { return chtest.Addr(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			addr := tt.addr(t)
			cfg := chstore.Config{Addr: addr, User: "default", Password: secret, DialTimeout: time.Second,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			st, err := chstore.Open(t.Context(), cfg)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded; want an error")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) || strings.Contains(logs.String(), secret) {
				t.Errorf("password leaked: err=%v logs=%s", err, logs.String())
			}
			if !strings.Contains(err.Error(), addr) {
				t.Errorf("Open error %q does not name the address %s", err, addr)
			}
		})
	}
}

func TestConfigPrintsWithoutThePassword(t *testing.T) {
	cfg := chstore.Config{Addr: "ch:9000", Database: "riskd", User: "riskd", Password: secret}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "clickhouse", cfg)
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%v %+v %s", cfg, cfg, cfg), logs.String()} {
		if strings.Contains(s, secret) {
			t.Errorf("password in %q", s)
		}
	}
	if got, want := cfg.String(), "clickhouse://riskd@ch:9000/riskd password=REDACTED"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
