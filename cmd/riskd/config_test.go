package main

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfigFileThenEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "riskd.yaml")
	file := "kafka:\n  brokers: [k1:9092, k2:9092]\n  group: fraud\nclickhouse:\n  database: risk\noutput:\n  flush_interval: 50ms\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path, []string{
		"RISKD_KAFKA_GROUP=override", "RISKD_CLICKHOUSE_PASSWORD=s3cret", "RISKD_KAFKA_EMBEDDED=true",
		"RISKD_ENGINE_SHARDS=3", "RISKD_KAFKA_INPUTS=a, b", "HOME=/root",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Kafka.Brokers, []string{"k1:9092", "k2:9092"}) {
		t.Errorf("brokers = %v", cfg.Kafka.Brokers)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"group (env over file)", cfg.Kafka.Group, "override"},
		{"database (file)", cfg.ClickHouse.Database, "risk"},
		{"password (env)", cfg.ClickHouse.Password, "s3cret"},
		{"embedded (env bool)", cfg.Kafka.Embedded, true},
		{"shards (env int)", cfg.Engine.Shards, 3},
		{"inputs (env list)", strings.Join(cfg.Kafka.Inputs, "|"), "a|b"},
		{"flush interval (file duration)", cfg.Output.FlushInterval, 50 * time.Millisecond},
		{"clickhouse addr (default)", cfg.ClickHouse.Addr, "127.0.0.1:9000"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestConfigRejectsMistakes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("kafka:\n  brokerz: [x]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path string
		env        []string
		want       string
	}{
		{"misspelt key", bad, nil, "brokerz"},
		{"unknown variable", "", []string{"RISKD_KAFKA_BROKERZ=x"}, "RISKD_KAFKA_BROKERZ"},
		{"bad int", "", []string{"RISKD_ENGINE_SHARDS=many"}, "RISKD_ENGINE_SHARDS"},
		{"bad duration", "", []string{"RISKD_OUTPUT_FLUSH_INTERVAL=5"}, "RISKD_OUTPUT_FLUSH_INTERVAL"},
		{"missing file", filepath.Join(dir, "none.yaml"), nil, "none.yaml"},
	}
	for _, c := range cases {
		_, err := LoadConfig(c.path, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to name %q", c.name, err, c.want)
		}
	}
}

// TestExampleConfigIsTheDefaults keeps riskd.example.yaml honest: it must
// load, and say exactly what riskd runs with when no file is given.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	cfg, err := LoadConfig("riskd.example.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	// An empty list in the file and no list in the defaults mean the same.
	if len(cfg.Auth.Tokens) == 0 {
		cfg.Auth.Tokens = nil
	}
	if len(cfg.Notify.Webhooks) == 0 {
		cfg.Notify.Webhooks = nil
	}
	if want := DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("riskd.example.yaml differs from the defaults:\n file:     %+v\n defaults: %+v", cfg, want)
	}
}

// TestWebhookSecretVariablesAreNotUnknownKeys: the example config names
// RISKD_WEBHOOK_SECRET_NOTIFIER as a webhook's secret_env; setting it must
// not be refused as an unknown RISKD_* key, while a misspelt key still is.
func TestWebhookSecretVariablesAreNotUnknownKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "riskd.yaml")
	yaml := "notify:\n  webhooks:\n    - name: notifier\n      url: http://127.0.0.1:9/hook\n      secret_env: RISKD_WEBHOOK_SECRET_NOTIFIER\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path, []string{"RISKD_WEBHOOK_SECRET_NOTIFIER=s3cret-s3cret"}); err != nil {
		t.Fatalf("the webhook's secret variable was refused: %v", err)
	}
	_, err := LoadConfig(path, []string{"RISKD_WEBHOOK_SECRET_NOTIFIER=x", "RISKD_WEBHOOK_SECRET_OTHER=y"})
	if err == nil || !strings.Contains(err.Error(), "RISKD_WEBHOOK_SECRET_OTHER") {
		t.Fatalf("a variable no webhook names: err = %v, want it named as unknown", err)
	}
}

// TestMaxFutureSkewConfigKey: engine.max_future_skew defaults to 5m, is
// read from the file and from RISKD_ENGINE_MAX_FUTURE_SKEW (which wins),
// turns off when negative, and a value that is not a duration is refused
// naming the key (or its variable).
func TestMaxFutureSkewConfigKey(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	set := file("set.yaml", "engine:\n  shards: 2\n  max_future_skew: 30s\n")
	cases := []struct {
		name, path string
		env        []string
		want       time.Duration
		err        string
	}{
		{"the default", "", nil, 5 * time.Minute, ""},
		{"the file", set, nil, 30 * time.Second, ""},
		{"the environment over the file", set, []string{"RISKD_ENGINE_MAX_FUTURE_SKEW=2h"}, 2 * time.Hour, ""},
		{"off", "", []string{"RISKD_ENGINE_MAX_FUTURE_SKEW=-1s"}, -time.Second, ""},
		{"not a duration in the file", file("bad.yaml", "engine:\n  max_future_skew: soon\n"), nil, 0, "line 2 (engine.max_future_skew)"},
		{"a number without a unit in the environment", "", []string{"RISKD_ENGINE_MAX_FUTURE_SKEW=300"}, 0, "RISKD_ENGINE_MAX_FUTURE_SKEW"},
	}
	for _, c := range cases {
		cfg, err := LoadConfig(c.path, c.env)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want it to name %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case cfg.Engine.MaxFutureSkew != c.want:
			t.Errorf("%s: engine.max_future_skew = %v, want %v", c.name, cfg.Engine.MaxFutureSkew, c.want)
		}
	}
}

// The API address other instances forward decide calls to: http.advertise
// when set (and well formed), else the listen address, with the host name
// for an unspecified IP and https when TLS is on.
func TestAdvertisedAPI(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg       HTTPConfig
		addr      string
		want, err string
	}{
		{HTTPConfig{}, "127.0.0.1:8080", "http://127.0.0.1:8080", ""},
		{HTTPConfig{}, "[::]:8080", "http://" + net.JoinHostPort(host, "8080"), ""},
		{HTTPConfig{}, "0.0.0.0:9000", "http://" + net.JoinHostPort(host, "9000"), ""},
		{HTTPConfig{TLSCert: "c", TLSKey: "k"}, "10.0.0.5:8443", "https://10.0.0.5:8443", ""},
		{HTTPConfig{Advertise: "http://riskd-2.internal:8080/"}, "0.0.0.0:8080", "http://riskd-2.internal:8080", ""},
		{HTTPConfig{Advertise: "riskd-2:8080"}, "0.0.0.0:8080", "", `config: http.advertise: "riskd-2:8080": want http(s)://host:port`},
		{HTTPConfig{Advertise: "http://riskd-2:8080/v1"}, "0.0.0.0:8080", "", `config: http.advertise: "http://riskd-2:8080/v1": want http(s)://host:port`},
	} {
		got, err := advertisedAPI(c.cfg, c.addr)
		if got != c.want || fmt.Sprint(err) != cmp.Or(c.err, "<nil>") {
			t.Errorf("advertisedAPI(%+v, %s) = %q, %v; want %q, %s", c.cfg, c.addr, got, err, c.want, cmp.Or(c.err, "no error"))
		}
	}
}
