package api_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"riskd/api"
	"riskd/api/rulesapi"
	"riskd/engine"
	"riskd/features"
	"riskd/internal/apitest"
	"riskd/internal/chtest"
	"riskd/internal/kafkatest"
	"riskd/rules"
	"riskd/streams"
	"riskd/streams/chstore"
	"riskd/streams/notify"
	"riskd/streams/rulesync"
)

// These tests serve the API from real parts, built here as the daemon
// builds them but without its config: the embedded Kafka-protocol broker
// (kafkatest), a fresh ClickHouse database (chtest: skipped locally without
// a server, failed on CI), the reference features and rules, an engine, the
// stream pipeline, the notifier and the rules API.

const waitLong = 60 * time.Second

// epoch is "since the beginning" for the store's time filters.
var epoch = time.Unix(0, 0)

// baseTS is a fixed event time for scripted events (2026-11-24T00:00:00Z).
const baseTS = 1795478400000

// rig is one riskd instance's API over running parts, with the design's
// default topic names.
type rig struct {
	broker string         // the embedded broker's address
	store  *chstore.Store // the database the pipeline writes
	eng    *engine.Engine
	holder *rules.Holder
	reg    *prometheus.Registry
	srv    *api.Server
	c      apitest.Client
}

// newRig starts the parts and serves the API until the test ends; decide
// sets up POST /v1/decide. Shutdown follows the daemon's order: HTTP, then
// the pipeline's drain, then the notifier and the engine.
func newRig(t *testing.T, decide api.DecideConfig) *rig {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := &rig{broker: kafkatest.Embedded(t).Addr(), store: chtest.Open(t), reg: prometheus.NewRegistry()}
	brokers := []string{r.broker}
	topics := streams.DefaultTopics()
	if err := streams.EnsureTopics(t.Context(), brokers, 4, topics.All()...); err != nil {
		t.Fatal(err)
	}

	// The rules API writes every installed version to the rule directory.
	dir := filepath.Join(t.TempDir(), "rules")
	if err := os.CopyFS(dir, os.DirFS("../bench/reference/rules")); err != nil {
		t.Fatal(err)
	}
	set, err := features.LoadFile("../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(dir, set)
	if err != nil {
		t.Fatal(err)
	}
	r.holder = &rules.Holder{}
	r.holder.Swap(rs)
	r.eng = engine.New(engine.Config{Shards: 2}, set, r.holder)

	notifier := notify.New(notify.Config{DeadLetters: r.store, Registerer: r.reg, Logger: log})
	pipe := streams.New(streams.Config{Brokers: brokers, Group: "riskd", Topics: topics,
		FlushInterval: 20 * time.Millisecond, CommitInterval: 50 * time.Millisecond, Logger: log, Notify: notifier},
		r.eng, r.store, streams.NewMetrics(r.reg))
	rulesTopic, err := rulesync.New(rulesync.Config{Brokers: brokers, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rulesAPI, err := rulesapi.New(rulesapi.Config{Holder: r.holder, Features: set, Dir: dir, Sync: rulesTopic,
		Store: r.store, Logger: log})
	if err != nil {
		t.Fatal(err)
	}

	r.srv = api.NewServer(apitest.Tokens(t), log, r.reg)
	if decide.Rules == nil {
		decide.Rules = r.holder // the wallet fields of the rules that decided
	}
	r.srv.Handle(api.DecideRoute(pipe, decide, r.reg))
	r.srv.Handle(api.AccountRoutes(api.NewLockService(r.eng, r.store, pipe, time.Now))...)
	r.srv.Handle(api.SuppressionRoutes(api.NewSuppressionService(r.eng, r.store, pipe, r.holder, time.Now))...)
	r.srv.Handle(rulesAPI.Routes()...)
	r.srv.Handle(api.AlertStreamRoute(notifier.StreamHandler()))
	r.srv.Handle(api.OverviewRoute(r.store, r.reg, time.Now))
	r.srv.Handle(api.FigureRoutes(r.store, pipe, pipe, r.reg, time.Now)...)

	var wg sync.WaitGroup
	goRun := func(run func()) {
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}
	engCtx, stopEngine := context.WithCancel(context.Background())
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	ctx, stop := context.WithCancel(context.Background())
	goRun(func() { r.eng.Run(engCtx) })
	goRun(func() { notifier.Run(notifyCtx) })
	goRun(func() {
		if err := rulesAPI.Run(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("following the rules topic: %v", err)
		}
	})
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- pipe.Run(ctx) }()

	// Requests' contexts end when shutdown begins, so live alert streams
	// close and the server can stop.
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	hs := httptest.NewUnstartedServer(r.srv)
	hs.Config.BaseContext = func(net.Listener) context.Context { return httpCtx }
	hs.Start()
	r.c = apitest.Client{T: t, Base: hs.URL}

	t.Cleanup(func() {
		stopHTTP()
		hs.Close()
		stop()
		if err := <-pipeDone; err != nil {
			t.Errorf("pipeline: %v", err)
		}
		stopNotify()
		stopEngine()
		wg.Wait()
	})
	return r
}

// waitStored polls until at least n distinct events have stored decisions.
func (r *rig) waitStored(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	var got uint64
	for time.Now().Before(deadline) {
		var err error
		if got, err = r.store.CountDecisions(t.Context(), epoch); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%d decisions stored after %s, want %d", got, waitLong, n)
}

// decision is the stored decision of eventID.
func (r *rig) decision(t *testing.T, eventID string) chstore.StoredDecision {
	t.Helper()
	d, ok, err := r.store.DecisionByEvent(t.Context(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("no stored decision for %s", eventID)
	}
	return d
}

// assertStoredOnce checks the store holds exactly n decisions, one per event.
func (r *rig) assertStoredOnce(t *testing.T, n uint64) {
	t.Helper()
	got, err := r.store.CountDecisions(t.Context(), epoch)
	if err != nil {
		t.Fatal(err)
	}
	dup, err := r.store.DuplicateDecisionRows(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got != n || dup != 0 {
		t.Fatalf("stored %d decisions with %d duplicate rows, want %d and 0", got, dup, n)
	}
}

// waitMetric polls until the sum of a counter's series reaches want.
func (r *rig) waitMetric(t *testing.T, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		mfs, err := r.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var v float64
		for _, mf := range mfs {
			if mf.GetName() == name {
				for _, m := range mf.GetMetric() {
					v += m.GetCounter().GetValue()
				}
			}
		}
		if v >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, never reached %v", name, v, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ev(id, typ, account string, ts int64, extra string) kafka.Message {
	return kafka.Message{Key: []byte(account), Value: fmt.Appendf(nil,
		`{"event_id":%q,"type":%q,"ts":%d,"account_id":%q%s}`, id, typ, ts, account, extra)}
}

func kafkaMsg(key, value string) kafka.Message {
	return kafka.Message{Key: []byte(key), Value: []byte(value)}
}
