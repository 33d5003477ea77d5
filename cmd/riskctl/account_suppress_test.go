package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"riskd/api"
	"riskd/engine"
	"riskd/features"
	"riskd/internal/chtest"
	"riskd/internal/kafkatest"
	"riskd/rules"
	"riskd/streams"
)

// suppressTestRiskd serves the suppression routes and the account view
// over a fresh database, a running engine with the reference rules and an
// embedded broker, and points RISKCTL_URL and RISKCTL_TOKEN at it.
func suppressTestRiskd(t *testing.T) {
	t.Helper()
	store := chtest.Open(t)
	set, err := features.LoadFile("../../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load("../../bench/reference/rules", set)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Swap(rs)
	eng := engine.New(engine.Config{Shards: 1}, set, holder)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); eng.Run(ctx) }()
	t.Cleanup(func() { stop(); wg.Wait() })
	brokers := []string{kafkatest.Embedded(t).Addr()}
	topics := streams.DefaultTopics()
	if err := streams.EnsureTopics(t.Context(), brokers, 1, topics.All()...); err != nil {
		t.Fatal(err)
	}
	pipe := streams.New(streams.Config{Brokers: brokers, Group: "riskd", Topics: topics}, eng, store, streams.NewMetrics(prometheus.NewRegistry()))
	tokens, err := api.ParseTokens([]string{"carla:support:support-secret-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(tokens, slog.New(slog.NewTextHandler(t.Output(), nil)), nil)
	srv.Handle(api.TimelineRoutes(store, api.NewLockService(eng, store, pipe, time.Now), time.Now)...)
	srv.Handle(api.SuppressionRoutes(api.NewSuppressionService(eng, store, pipe, holder, time.Now))...)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	t.Setenv(envURL, hs.URL)
	t.Setenv(envToken, "support-secret-0123456789")
}

// TestAccountSuppressShowAndUnsuppress: riskctl account suppress, then
// show (the active suppression on top, the change in the timeline), then
// unsuppress; a second unsuppress fails with riskd's 404 message, and
// missing flags are usage errors (exit 2).
func TestAccountSuppressShowAndUnsuppress(t *testing.T) {
	suppressTestRiskd(t)
	var out, errOut bytes.Buffer
	err := runAccount(t.Context(), []string{"suppress", "acct-s", "--rule", "scam-payee", "--for", "72h", "--reason", "known landlord"}, &out, &errOut)
	if err != nil {
		t.Fatalf("account suppress: %v\n%s", err, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "acct-s: rule scam-payee suppressed until ") ||
		!strings.HasSuffix(out.String(), " UTC by api:carla: known landlord\n") {
		t.Errorf("account suppress printed %q", out.String())
	}

	out.Reset()
	if err := runAccount(t.Context(), []string{"show", "acct-s"}, &out, &errOut); err != nil {
		t.Fatalf("account show: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 6 || !strings.HasPrefix(lines[1], "rule scam-payee SUPPRESSED for this account until ") ||
		!strings.HasSuffix(lines[1], " UTC, by support:carla") ||
		!strings.Contains(out.String(), "  suppress  suppress-") ||
		!strings.Contains(out.String(), "rule scam-payee suppressed until ") {
		t.Errorf("account show:\n%s", out.String())
	}

	out.Reset()
	if err := runAccount(t.Context(), []string{"unsuppress", "--rule", "scam-payee", "acct-s"}, &out, &errOut); err != nil {
		t.Fatalf("account unsuppress: %v\n%s", err, errOut.String())
	}
	if out.String() != "acct-s: rule scam-payee counts again (lifted by api:carla)\n" {
		t.Errorf("account unsuppress printed %q", out.String())
	}
	err = runAccount(t.Context(), []string{"unsuppress", "--rule", "scam-payee", "acct-s"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "rule scam-payee is not suppressed for account acct-s") {
		t.Errorf("second unsuppress: %v", err)
	}

	for _, args := range [][]string{
		{"suppress", "acct-s", "--for", "1h", "--reason", "x"},
		{"suppress", "acct-s", "--rule", "scam-payee", "--reason", "x"},
		{"suppress", "acct-s", "--rule", "scam-payee", "--for", "1h"},
		{"unsuppress", "acct-s"},
	} {
		var ee *exitError
		if err := runAccount(t.Context(), args, &out, &errOut); !errors.As(err, &ee) || ee.Code != 2 {
			t.Errorf("riskctl account %s: %v, want a usage error (exit 2)", strings.Join(args, " "), err)
		}
	}
}
