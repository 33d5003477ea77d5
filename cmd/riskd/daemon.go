package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"riskd/api"
	"riskd/api/rulesapi"
	"riskd/console"
	"riskd/engine"
	"riskd/features"
	"riskd/internal/backoff"
	"riskd/rules"
	"riskd/streams"
	"riskd/streams/chstore"
	"riskd/streams/notify"
	"riskd/streams/rulesync"
)

// daemon is one riskd process: the broker (when embedded), the store, the
// engine with its rules, the stream pipeline and the HTTP endpoints.
type daemon struct {
	cfg     Config
	log     *slog.Logger
	broker  *streams.Embedded
	brokers []string
	store   *chstore.Store
	set     *features.Set
	// engCfg is the engine's configuration, for the rules API's off-line
	// runs (test, backtest) too.
	engCfg  engine.Config
	holder  *rules.Holder
	eng     *engine.Engine
	reg     *prometheus.Registry
	metrics *streams.Metrics
	reloads *prometheus.CounterVec
	// Features reloads (featurereload.go): the Set the engine runs now
	// (d.set is the one it was built with), the file's hash as last
	// published or refused, and the reload metrics.
	liveFeatures   atomic.Pointer[features.Set]
	featuresHash   string
	featureReloads *prometheus.CounterVec
	featurePause   prometheus.Gauge
	// fleetCommands counts other instances' support commands by what
	// this one did with them (fleetcommands.go).
	fleetCommands *prometheus.CounterVec
	httpAddr      string
	tokens        []api.Token
	onTimeout     rules.Action
	pipe          *streams.Pipeline
	api           *api.Server
	rulesAPI      *rulesapi.Service
	// rulesDirHash is the rule directory's hash as rulesAPI.Start read
	// it: the watcher publishes only a directory that differs from it.
	rulesDirHash string
	notifier     *notify.Notifier
	// webhooks manages the alert subscribers added through the API.
	webhooks *api.WebhookService
	state    *engine.StateReporter
	// httpCtx is the base of every request's context; it ends when
	// shutdown begins, so long-lived alert streams close promptly.
	httpCtx    context.Context
	cancelHTTP context.CancelFunc
	srv        *http.Server
	listener   net.Listener
	// actionsSince is when the restored state was cut: the support
	// commands published since are applied again (zero: none to apply,
	// state not in Kafka); restoredAt is where that state stands (the
	// snapshot's offsets), which tells the commands it holds already.
	actionsSince time.Time
	restoredAt   map[string]map[int]int64
	// stateOf names the instance whose snapshot the state was restored
	// from: this one, or another member's for a new member (startFromPeer);
	// its places for other instances' commands are the state's.
	stateOf string
	// actionsRead is where, per partition of the actions topic,
	// reapplyActions stopped reading: followActions goes on from there.
	actionsRead map[int]int64
	// instance names this riskd in its group (state.instance, or the
	// host name): its snapshots, and the support commands its API takes.
	instance string
}

// checkpointFile is where in state.dir a clean shutdown leaves the
// engine's state.
const checkpointFile = "engine.ckpt"

// goCPUClasses adds the runtime's split of the process's CPU time (user
// code, garbage collection, scavenging, idle) to the Go collector's
// series, as go_cpu_classes_*_cpu_seconds_total: when riskd's CPU per
// event rises, the share the collector takes is the first question, and
// process CPU alone cannot answer it. The runtime estimates these (see
// runtime/metrics); they are not read from the kernel.
var goCPUClasses = collectors.WithGoCollectorRuntimeMetrics(
	collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/cpu/classes/`)})

// startDaemon brings up everything except the pipeline and HTTP loops,
// which run calls. On error it releases what it started.
func startDaemon(ctx context.Context, cfg Config, log *slog.Logger) (d *daemon, err error) {
	d = &daemon{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	d.reg.MustRegister(collectors.NewGoCollector(goCPUClasses), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.metrics = streams.NewMetrics(d.reg)
	d.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "riskd_rule_reloads_total", Help: "Rule directory reloads by result (ok, error).",
	}, []string{"result"})
	d.reg.MustRegister(d.reloads)
	d.featureReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "riskd_feature_reloads_total", Help: "Changes of the features file applied without a restart, by result (ok, error).",
	}, []string{"result"})
	d.featurePause = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "riskd_feature_reload_pause_seconds", Help: "How long the last features reload held the engine's shards (state carried over to the new definitions).",
	})
	d.reg.MustRegister(d.featureReloads, d.featurePause)
	for _, result := range []string{"ok", "error"} {
		d.featureReloads.WithLabelValues(result)
	}
	for _, result := range []string{"ok", "error"} {
		d.reloads.WithLabelValues(result) // export zeros, so alerts on rate() work from the start
	}
	d.fleetCommands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "riskd_fleet_commands_total",
		Help: "Support commands other instances took, read from the actions topic, by outcome (applied; over: ended before read; superseded: by a later one of this instance; failed), and retries to follow the topic (retry).",
	}, []string{"outcome"})
	d.reg.MustRegister(d.fleetCommands)
	for _, outcome := range []string{"applied", "over", "superseded", "failed", "retry"} {
		d.fleetCommands.WithLabelValues(outcome)
	}

	if d.tokens, err = api.ParseTokens(cfg.Auth.Tokens); err != nil {
		return d, fmt.Errorf("config: %w", err)
	}
	if len(d.tokens) == 0 && cfg.HTTP.Listen != "" {
		log.Warn("no API tokens configured (auth.tokens / RISKD_AUTH_TOKENS): every /v1 request is refused")
	}
	if d.onTimeout, err = rules.ParseAction(cfg.Decide.OnTimeout); err != nil {
		return d, fmt.Errorf("config: decide.on_timeout: %w", err)
	}

	if cfg.Kafka.Embedded {
		if d.broker, err = streams.StartEmbedded(cfg.Kafka.Listen, cfg.Kafka.DataDir); err != nil {
			return d, err
		}
		log.Info("embedded Kafka-protocol broker listening", "addr", d.broker.Addr())
		d.brokers = []string{d.broker.Addr()}
	} else {
		d.brokers = cfg.Kafka.Brokers
	}
	topics := d.topics()
	if err := streams.EnsureTopics(ctx, d.brokers, cfg.Kafka.Partitions, topics.All()...); err != nil {
		if cfg.Kafka.Embedded {
			return d, err
		}
		return d, fmt.Errorf("kafka.brokers %s: %w (is Kafka running there? point kafka.brokers (RISKD_KAFKA_BROKERS) at your brokers, "+
			"or set kafka.embedded: true (RISKD_KAFKA_EMBEDDED=true) for the in-process broker)", strings.Join(d.brokers, ","), err)
	}

	if d.set, err = features.LoadFile(cfg.Rules.Features, cfg.Features); err != nil {
		return d, err
	}
	if d.featuresHash, err = fileHash(cfg.Rules.Features); err != nil {
		return d, err
	}
	d.useFeatures(d.set) // riskd_late_events_total's reasons, exported from 0
	d.holder = &rules.Holder{}

	// After a crash the rows stored past the committed offsets are at most
	// store_parallelism batches (0 means streams' defaults, 3 of 5000); the
	// store checks what is stored until one batch more came out new.
	parallel, batch := cfg.Output.StoreParallelism, cfg.Output.BatchSize
	if parallel <= 0 {
		parallel = 3
	}
	if batch <= 0 {
		batch = 5000
	}
	skipped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "riskd_store_skipped_rows_total",
		Help: "Rows left out of a ClickHouse write because an earlier run (or a failed attempt) had stored them, by table.",
	}, []string{"table"})
	for _, table := range chstore.DecisionTables() {
		skipped.WithLabelValues(table) // exported from 0
	}
	d.reg.MustRegister(skipped)
	d.store, err = chstore.Open(ctx, chstore.Config{
		Addr: cfg.ClickHouse.Addr, Database: cfg.ClickHouse.Database,
		User: cfg.ClickHouse.User, Password: cfg.ClickHouse.Password, Logger: log,
		OnRetry:        d.metrics.StoreRetried, // riskd_errors_total{stage="clickhouse"}
		RecoveryWindow: (parallel + 1) * batch,
		OnSkip:         func(table string, rows int) { skipped.WithLabelValues(table).Add(float64(rows)) },
	})
	if err != nil {
		return d, err
	}

	d.engCfg = engine.Config{Shards: cfg.Engine.Shards, QueueSize: cfg.Engine.QueueSize,
		DedupeCapacity: cfg.Engine.DedupeCapacity, MaxEventBytes: cfg.Engine.MaxEventBytes,
		AlertThrottle: cfg.Engine.AlertThrottle, MaxFutureSkew: cfg.Engine.MaxFutureSkew}
	if err := d.startRules(ctx); err != nil {
		return d, err
	}
	engCfg := d.engCfg
	d.notifier, err = d.newNotifier()
	if err != nil {
		return d, err
	}
	// The subscribers added through the API, stored in ClickHouse, are
	// added before the notifier runs.
	var configHooks []string
	for _, w := range cfg.Notify.Webhooks {
		configHooks = append(configHooks, w.Name)
	}
	d.webhooks = api.NewWebhookService(d.store, d.notifier, configHooks, time.Now, d.log)
	// A connection ClickHouse dropped a moment ago fails the first read;
	// that is no reason to refuse to start.
	if err := backoff.Until(ctx, 100*time.Millisecond, 2*time.Second, 30*time.Second, func(ctx context.Context) error {
		err := d.webhooks.Load(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("reading the webhook subscribers failed; retrying", "err", err)
		}
		return err
	}); err != nil {
		return d, err
	}
	if d.instance, err = instanceName(cfg.State); err != nil {
		return d, err
	}
	pipeCfg := streams.Config{
		Brokers: d.brokers, Group: d.cfg.Kafka.Group, Topics: d.topics(), Instance: d.instance,
		BatchSize: d.cfg.Output.BatchSize, FlushInterval: d.cfg.Output.FlushInterval,
		CommitInterval: d.cfg.Output.CommitInterval, DrainTimeout: d.cfg.Output.DrainTimeout,
		MaxInFlight: d.cfg.Output.MaxInFlight, StoreParallelism: d.cfg.Output.StoreParallelism,
		MaxOutputBytes: d.cfg.Output.MaxOutputBytes, MaxPublishAttempts: d.cfg.Output.MaxPublishAttempts,
		LagInterval: d.cfg.Output.LagInterval, StoreCheckInterval: d.cfg.Output.StoreCheckInterval,
		StallTimeout: d.cfg.Output.StallTimeout,
		MergeWait:    d.cfg.Kafka.MergeWait, MaxIdle: d.cfg.Kafka.MaxIdle, Partitioner: d.cfg.Kafka.Partitioner,
		Standby: d.cfg.Kafka.Standby, StandbyLimit: d.cfg.Kafka.StandbyLimit,
		PublishAPIEvents: d.cfg.Decide.PublishEvents,
		Logger:           d.log, Notify: d.notifier, Rules: d.holder,
	}
	if err := pipeCfg.Validate(); err != nil {
		return d, fmt.Errorf("config: %w", err)
	}
	if cfg.State.Kafka {
		d.eng, err = d.restoreFromKafka(ctx, engCfg, &pipeCfg)
	} else {
		d.eng, err = d.restoreEngine(engCfg)
	}
	if err != nil {
		return d, err
	}
	d.state = d.newStateReporter()
	d.pipe = streams.New(pipeCfg, d.eng, d.store, d.metrics)
	if err := d.prepareHTTP(); err != nil {
		return d, err
	}
	return d, nil
}

// restoreEngine builds the engine from the checkpoint a clean shutdown
// left in state.dir (engine.RestoreFile removes it), or empty.
func (d *daemon) restoreEngine(cfg engine.Config) (*engine.Engine, error) {
	if d.cfg.State.Dir == "" {
		return engine.New(cfg, d.set, d.holder), nil
	}
	path := filepath.Join(d.cfg.State.Dir, checkpointFile)
	eng, err := engine.RestoreFile(cfg, d.set, d.holder, path)
	switch {
	case errors.Is(err, engine.ErrCheckpointUnusable):
		// A checkpoint from another feature set or shard count: start
		// empty rather than refuse to run; the replay rebuilds recent state.
		d.log.Warn("checkpoint not usable; starting with empty state", "path", path, "err", err)
	case err != nil:
		return nil, err
	case eng != nil:
		d.log.Info("engine state restored", "path", path)
		d.logFeatureChange(eng.FeatureRestore(), "since the checkpoint")
		return eng, nil
	}
	return engine.New(cfg, d.set, d.holder), nil
}

func (d *daemon) topics() streams.Topics {
	k := d.cfg.Kafka
	return streams.Topics{Inputs: k.Inputs, Decisions: k.DecisionsTopic, Alerts: k.AlertsTopic,
		Actions: k.ActionsTopic, DLQ: k.DLQTopic}
}

// startRules builds the rules API on the fleet's rule topic and installs
// the version that must run before anything decides (rulesapi.Start): the
// rule directory published as version 1 on a fresh topic, the topic's
// newest version when the directory is the one already published, or the
// directory as a new version when it changed while riskd was stopped.
// riskd never writes into the rule directory.
func (d *daemon) startRules(ctx context.Context) error {
	rulesTopic, err := rulesync.New(rulesync.Config{Brokers: d.brokers, Topic: d.cfg.Kafka.RulesTopic, Logger: d.log})
	if err != nil {
		return fmt.Errorf("rules topic: %w", err)
	}
	d.rulesAPI, err = rulesapi.New(rulesapi.Config{
		Holder: d.holder, Features: d.set, FeatureSet: d.set, Engine: d.engCfg,
		Dir: d.cfg.Rules.Dir, FeaturesFile: d.cfg.Rules.Features, SwapEngine: d.swapEngineFeatures,
		Sync: rulesTopic, Store: d.store, Logger: d.log,
		OnInstall: func(rs *rules.RuleSet, rec rulesync.Record) {
			d.reloads.WithLabelValues("ok").Inc()
			d.log.Info("rules installed from the rules topic", "version", rs.Version.String(),
				"author", rec.Author, "message", rec.Message, "rules", len(rs.Rules))
			d.recordRuleSet(context.Background(), rs, d.ruleSource(rec))
		},
	})
	if err != nil {
		return fmt.Errorf("rules api: %w", err)
	}
	st, err := d.rulesAPI.Start(ctx)
	if err != nil {
		return fmt.Errorf("rules %s: %w", d.cfg.Rules.Dir, err)
	}
	d.rulesDirHash = st.DirHash
	if st.Published {
		d.log.Info("rule directory published", "dir", d.cfg.Rules.Dir, "version", st.Set.Version.String(), "why", st.Reason)
	}
	d.log.Info("rules loaded", "dir", d.cfg.Rules.Dir, "version", st.Set.Version.String(), "rules", len(st.Set.Rules),
		"author", st.Record.Author, "message", st.Record.Message)
	d.recordRuleSet(ctx, st.Set, d.ruleSource(st.Record))
	return nil
}

// ruleSource is the rulesets table's source of a version: the rule
// directory, or the API and who published through it.
func (d *daemon) ruleSource(rec rulesync.Record) string {
	if rec.Source == rulesync.SourceDir {
		return "dir:" + d.cfg.Rules.Dir
	}
	return "api:" + rec.Author
}

func (d *daemon) recordRuleSet(ctx context.Context, rs *rules.RuleSet, source string) {
	row := chstore.RuleSetRow{Version: rs.Version.String(), Seq: rs.Version.Seq, Hash: rs.Version.Hash,
		RuleCount: len(rs.Rules), Source: source}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.store.WriteRuleSet(wctx, row); err != nil {
		d.log.Error("recording rule set version", "version", row.Version, "err", err)
	}
}

// run serves until ctx ends, then shuts down in the order that loses
// nothing: stop fetching and drain the pipeline (outputs durable, offsets
// committed), checkpoint the engine, stop the shards, close the store.
func (d *daemon) run(ctx context.Context) error {
	defer d.close()
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEngine()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.pipe.RunEngine(engCtx) // d.eng.Run, reported to /readyz
	}()
	if err := d.reapplyActions(ctx); err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.followActions(ctx)
	}()

	p := d.pipe
	// Published rule sets: follow the fleet's topic before serving, so a
	// publish through this instance's API is installed here too.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.rulesAPI.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Error("following the rules topic stopped", "err", err)
		}
	}()
	notifyCtx, stopNotify := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNotify()
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.notifier.Run(notifyCtx)
	}()
	srv := d.serveHTTP(&wg)
	// A changed rule directory is published through the rule topic, so it
	// is a version in the history and every instance installs it (counted
	// and recorded by OnInstall); the directory as Start found it is Known.
	watcher := &rules.Watcher{
		Dir: d.cfg.Rules.Dir, CurrentFeatures: d.currentFeatures, Holder: d.holder, Interval: d.cfg.Rules.PollInterval,
		Known: d.rulesDirHash,
		Publish: func(files map[string][]byte, rs *rules.RuleSet) error {
			seq, err := d.rulesAPI.PublishDir(ctx, files, rs)
			if err == nil {
				d.log.Info("rule directory changed; published", "dir", d.cfg.Rules.Dir, "seq", seq, "hash", rs.Version.Hash)
			}
			return err
		},
		OnError: func(err error) {
			d.reloads.WithLabelValues("error").Inc()
			d.log.Error("rule reload rejected; the previous rules keep running", "dir", d.cfg.Rules.Dir, "err", err)
		},
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		watcher.Run(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.watchFeatures(ctx)
	}()

	wg.Add(1)
	go func() {
		defer wg.Done()
		d.state.Run(ctx)
	}()
	d.log.Info("riskd running", "brokers", d.brokers, "inputs", d.cfg.Kafka.Inputs, "clickhouse", d.cfg.ClickHouse.Addr)
	// The API stops taking requests when shutdown begins, while the output
	// stage still runs, so decisions it answers are recorded too.
	httpStopped := make(chan struct{})
	context.AfterFunc(ctx, func() {
		defer close(httpStopped)
		d.cancelHTTP()
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutCtx); err != nil {
			d.log.Warn("http shutdown", "err", err)
		}
	})
	runErr := p.Run(ctx)
	if runErr == nil {
		d.log.Info("intake stopped and drained")
		if err := d.checkpoint(); err != nil {
			d.log.Error("checkpoint failed; the next start rebuilds state from replayed events", "err", err)
		}
	} else {
		d.log.Error("stopped without a full drain; the next start restores the last saved state and replays from there", "err", runErr)
	}
	<-httpStopped
	stopNotify() // after the drain: what it made durable has been handed over
	stopEngine()
	wg.Wait()
	d.log.Info("riskd stopped")
	return runErr
}

// newStateReporter registers the engine's state gauges, so heap per
// active account can be read off /metrics.
func (d *daemon) newStateReporter() *engine.StateReporter {
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		d.reg.MustRegister(g)
		return g
	}
	return &engine.StateReporter{Engine: d.eng,
		Accounts: gauge("riskd_active_accounts", "Accounts with feature state in the engine."),
		Entities: gauge("riskd_state_entities", "Keyed entities (accounts, devices, IPs, payees, ...) with feature state."),
		Queued:   gauge("riskd_shard_queued_messages", "Messages waiting in shard queues."),
		HeapLive: gauge("riskd_heap_live_bytes",
			"Heap bytes live after the last garbage collection (runtime/metrics /gc/heap/live:bytes)."),
	}
}

// checkpoint writes the engine's state after the drain, when it matches
// the committed offsets exactly.
func (d *daemon) checkpoint() error {
	if d.cfg.State.Dir == "" || d.cfg.State.Kafka { // in Kafka, the pipeline saved it
		return nil
	}
	path := filepath.Join(d.cfg.State.Dir, checkpointFile)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.eng.SaveCheckpoint(ctx, path); err != nil {
		return err
	}
	d.log.Info("engine state checkpointed", "path", path)
	return nil
}

// prepareHTTP builds the API and the operational endpoints and binds
// cfg.HTTP.Listen, so the address is known before run serves it.
func (d *daemon) prepareHTTP() error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	// 200 when every readiness condition holds, else 503 naming the
	// failing ones; the body is streams.Readiness as JSON either way.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := d.pipe.Ready()
		w.Header().Set("Content-Type", "application/json")
		if !r.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(r)
	})
	d.api = api.NewServer(d.tokens, d.log, d.reg)
	d.api.Handle(api.DecideRoute(d.pipe, api.DecideConfig{Deadline: d.cfg.Decide.Deadline,
		OnTimeout: d.onTimeout, MaxBody: int64(d.cfg.Engine.MaxEventBytes), Rules: d.holder, Instance: d.instance,
		Router: d.pipe}, d.reg))
	d.api.Handle(api.AccountRoutes(api.NewLockService(d.eng, d.store, d.pipe, time.Now))...)
	d.api.Handle(api.TimelineRoutes(d.store, api.NewLockService(d.eng, d.store, d.pipe, time.Now), time.Now)...)
	d.api.Handle(api.SuppressionRoutes(api.NewSuppressionService(d.eng, d.store, d.pipe, d.holder, time.Now))...)
	d.api.Handle(api.CaseRoutes(d.store, time.Now)...)
	d.api.Handle(api.OverviewRoute(d.store, d.reg, time.Now))
	d.api.Handle(api.FigureRoutes(d.store, d.pipe, d.pipe, d.reg, time.Now)...)
	d.api.Handle(d.rulesAPI.Routes()...)
	d.api.Handle(api.AlertStreamRoute(d.notifier.StreamHandler()))
	d.api.Handle(d.webhooks.Routes()...)
	if d.cfg.HTTP.Pprof {
		// Profiles expose internals and cost CPU: admin tokens only.
		for _, p := range []struct {
			path string
			h    http.HandlerFunc
		}{{"/debug/pprof/", pprof.Index}, {"/debug/pprof/cmdline", pprof.Cmdline},
			{"/debug/pprof/profile", pprof.Profile}, {"/debug/pprof/symbol", pprof.Symbol},
			{"/debug/pprof/trace", pprof.Trace}} {
			d.api.Handle(api.Route{Pattern: "GET " + p.path, Roles: nil, Handler: p.h})
		}
		mux.Handle("/debug/pprof/", d.api)
	}
	mux.Handle("/v1/", d.api)
	if d.api.HasTokens() { // with no token no one could sign in: the console is off
		con, err := console.New(console.Config{SessionTTL: d.cfg.Console.SessionTTL,
			Secure: d.cfg.HTTP.TLSCert != "" && d.cfg.HTTP.TLSKey != ""}, d.api, d.log)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		mux.Handle("/console", con)
		mux.Handle("/console/", con)
	}
	d.httpCtx, d.cancelHTTP = context.WithCancel(context.Background())
	d.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		BaseContext: func(net.Listener) context.Context { return d.httpCtx }}
	if d.cfg.HTTP.Listen == "" {
		return nil
	}
	l, err := net.Listen("tcp", d.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	d.listener, d.httpAddr = l, l.Addr().String()
	advertised, err := advertisedAPI(d.cfg.HTTP, d.httpAddr)
	if err != nil {
		return err
	}
	d.pipe.SetAPI(advertised)
	return nil
}

// advertisedAPI is where the other instances reach this one's API:
// http.advertise, or the listen address (listening on addr) with the host
// name standing in for an unspecified IP.
func advertisedAPI(cfg HTTPConfig, addr string) (string, error) {
	if cfg.Advertise != "" {
		u, err := url.Parse(cfg.Advertise)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return "", fmt.Errorf("config: http.advertise: %q: want http(s)://host:port", cfg.Advertise)
		}
		return strings.TrimSuffix(cfg.Advertise, "/"), nil
	}
	scheme := "http"
	if cfg.TLSCert != "" && cfg.TLSKey != "" {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("http: listen address %s: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("http: the host name for http.advertise: %w", err)
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// serveHTTP serves the prepared listener until the server is shut down.
func (d *daemon) serveHTTP(wg *sync.WaitGroup) *http.Server {
	if d.listener == nil {
		return d.srv
	}
	tlsOn := d.cfg.HTTP.TLSCert != "" && d.cfg.HTTP.TLSKey != ""
	wg.Add(1)
	go func() {
		defer wg.Done()
		serve := func() error { return d.srv.Serve(d.listener) }
		if tlsOn {
			serve = func() error { return d.srv.ServeTLS(d.listener, d.cfg.HTTP.TLSCert, d.cfg.HTTP.TLSKey) }
		}
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http server", "err", err)
		}
	}()
	d.log.Info("http listening", "addr", d.httpAddr, "tls", tlsOn)
	return d.srv
}

// newNotifier builds the alert fan-out (webhooks, live stream) from the
// config; webhook secrets may come from environment variables.
func (d *daemon) newNotifier() (*notify.Notifier, error) {
	cfg := notify.Config{MaxAttempts: d.cfg.Notify.MaxAttempts,
		DeadLetters: d.store, Registerer: d.reg, Logger: d.log}
	for i, w := range d.cfg.Notify.Webhooks {
		secret := w.Secret
		if w.SecretEnv != "" {
			if secret = os.Getenv(w.SecretEnv); secret == "" {
				return nil, fmt.Errorf("config: notify.webhooks[%d] (%s): %s is not set", i, w.Name, w.SecretEnv)
			}
		}
		cfg.Subscribers = append(cfg.Subscribers, notify.Subscriber{Name: w.Name, URL: w.URL, Kinds: w.Kinds, Secret: secret})
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return notify.New(cfg), nil
}

func (d *daemon) close() {
	if d.listener != nil {
		d.listener.Close() // when run never served it
	}
	if d.store != nil {
		d.store.Close()
	}
	if d.broker != nil {
		d.broker.Close()
	}
}
