package main

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"riskd/console"
	"riskd/engine"
	"riskd/features"
	"riskd/streams"
	"riskd/streams/snapshots"
)

// Config is riskd's configuration file. Every key can be overridden by an
// environment variable named RISKD_ plus its path in capitals, dots as
// underscores: kafka.brokers is RISKD_KAFKA_BROKERS (lists are
// comma-separated), clickhouse.password is RISKD_CLICKHOUSE_PASSWORD.
// Defaults run locally from the repository root with no file at all.
type Config struct {
	Kafka      KafkaConfig      `yaml:"kafka"`
	ClickHouse ClickHouseConfig `yaml:"clickhouse"`
	Engine     EngineConfig     `yaml:"engine"`
	Rules      RulesConfig      `yaml:"rules"`
	Output     OutputConfig     `yaml:"output"`
	HTTP       HTTPConfig       `yaml:"http"`
	State      StateConfig      `yaml:"state"`
	Log        LogConfig        `yaml:"log"`
	Auth       AuthConfig       `yaml:"auth"`
	Decide     DecideConfig     `yaml:"decide"`
	Notify     NotifyConfig     `yaml:"notify"`
	Console    ConsoleConfig    `yaml:"console"`
	Runtime    RuntimeConfig    `yaml:"runtime"`

	// Features tunes the feature windows' state (features.Config:
	// buckets, late_tolerance, max_distinct, profile_ttl, max_seen);
	// checked with features.Config.Validate.
	Features features.Config `yaml:"features"`
}

type NotifyConfig struct {
	// Webhooks are the alert subscribers; each delivery is signed with its
	// secret (HMAC-SHA256, header Riskd-Signature).
	Webhooks []WebhookConfig `yaml:"webhooks"`
	// Throttle is the old name of engine.alert_throttle, still read: when
	// set (and engine.alert_throttle is not), it is the alert throttle.
	Throttle time.Duration `yaml:"throttle"`
	// MaxAttempts before a delivery is parked in webhook_dead_letters.
	MaxAttempts int `yaml:"max_attempts"`
}

type WebhookConfig struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Kinds wanted: alert, lock, unlock; empty means all.
	Kinds []string `yaml:"kinds"`
	// SecretEnv names the environment variable holding the signing secret,
	// so the secret stays out of the file; Secret is read when it is unset.
	SecretEnv string `yaml:"secret_env"`
	Secret    string `yaml:"secret"`
}

type AuthConfig struct {
	// Tokens are "name:role:secret" entries (roles: hook, analyst, support,
	// viewer, admin). Prefer RISKD_AUTH_TOKENS over the file for secrets.
	// With none, every /v1 request is refused.
	Tokens []string `yaml:"tokens"`
}

type ConsoleConfig struct {
	// SessionTTL is how long a console sign-in lasts (5m to 168h). The
	// console is served at /console on the HTTP listener whenever
	// auth.tokens has a token.
	SessionTTL time.Duration `yaml:"session_ttl"`
}

type DecideConfig struct {
	// Deadline bounds a synchronous decision; past it OnTimeout is answered.
	Deadline time.Duration `yaml:"deadline"`
	// OnTimeout is the fallback action: allow fails open, block or
	// challenge fail closed.
	OnTimeout string `yaml:"on_timeout"`
	// PublishEvents appends each event decided through the API to its
	// input topic, so that every instance's shared entity windows count
	// it and a restart replays it (streams.Config.PublishAPIEvents).
	PublishEvents bool `yaml:"publish_events"`
}

type KafkaConfig struct {
	Brokers []string `yaml:"brokers"`
	// Embedded starts the in-process Kafka-protocol broker on Listen and
	// ignores Brokers.
	Embedded bool   `yaml:"embedded"`
	Listen   string `yaml:"listen"`
	// DataDir keeps the embedded broker's log across restarts; empty keeps it in memory.
	DataDir string `yaml:"data_dir"`
	Group   string `yaml:"group"`
	// Partitions is used when riskd creates missing topics.
	Partitions     int      `yaml:"partitions"`
	Inputs         []string `yaml:"inputs"`
	DecisionsTopic string   `yaml:"decisions_topic"`
	AlertsTopic    string   `yaml:"alerts_topic"`
	ActionsTopic   string   `yaml:"actions_topic"`
	DLQTopic       string   `yaml:"dlq_topic"`
	// RulesTopic carries published rule sets to every instance (compacted,
	// one partition; riskd creates it).
	RulesTopic string `yaml:"rules_topic"`
	// MergeWait and MaxIdle tune the merge of the input partitions in
	// event-time order (streams.Config.MergeWait and MaxIdle): how long to
	// wait for a partition with unread records, and for a caught-up one.
	MergeWait time.Duration `yaml:"merge_wait"`
	MaxIdle   time.Duration `yaml:"max_idle"`
	// Partitioner is how the wallet's producers map an account id (the
	// key) to a partition: "fnv1a" (kafka-go's Hash, Sarama's default;
	// riskctl gen and the demo) or "murmur2" (the Java client's default).
	// The decide API forwards a call to the instance that reads the
	// account's partition, computed this way.
	Partitioner string `yaml:"partitioner"`
	// Standby has this instance decide the partitions other instances own
	// too, without outputs, so one that moves here goes on at once
	// (streams.Config.Standby); StandbyLimit bounds the decisions it keeps
	// per partition until the owner commits them.
	Standby      bool `yaml:"standby"`
	StandbyLimit int  `yaml:"standby_limit"`
}

type ClickHouseConfig struct {
	Addr     string `yaml:"addr"`
	Database string `yaml:"database"`
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

type EngineConfig struct {
	// Shards defaults to the number of CPUs.
	Shards         int `yaml:"shards"`
	QueueSize      int `yaml:"queue_size"`
	DedupeCapacity int `yaml:"dedupe_capacity"`
	MaxEventBytes  int `yaml:"max_event_bytes"`
	// AlertThrottle: a rule alerts one account at most once per interval of
	// event time, on every output (alerts topic and table, webhooks, live
	// stream); 0 means 10m, negative turns throttling off. Lock commands
	// are never throttled.
	AlertThrottle time.Duration `yaml:"alert_throttle"`
	// MaxFutureSkew: an event dated more than this ahead of the wall clock
	// is refused (dead-letter topic with the reason; 422 on the decide
	// API); 0 means 5m, negative turns the check off. Old events are not
	// refused.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
}

// RulesConfig says where the rules come from. riskd reads Dir and never
// writes into it: the start-up set is published from it as version 1,
// and published versions live in the rule topic (kafka.rules_topic) and
// ClickHouse's history.
type RulesConfig struct {
	// Dir is the rule directory read at start and watched; a change
	// (every PollInterval) is published as a new version.
	Dir string `yaml:"dir"`
	// Features is the feature definitions file.
	Features     string        `yaml:"features"`
	PollInterval time.Duration `yaml:"poll_interval"`
}

type OutputConfig struct {
	BatchSize      int           `yaml:"batch_size"`
	FlushInterval  time.Duration `yaml:"flush_interval"`
	CommitInterval time.Duration `yaml:"commit_interval"`
	DrainTimeout   time.Duration `yaml:"drain_timeout"`
	// MaxInFlight bounds fetched messages whose outputs are not durable
	// yet, and apart from them the decide API's decisions; 0 means 4 +
	// StoreParallelism batches.
	MaxInFlight int `yaml:"max_in_flight"`
	// StoreParallelism is how many batches may write to ClickHouse at once.
	StoreParallelism int `yaml:"store_parallelism"`
	// MaxOutputBytes bounds one output message (key, value and headers),
	// below the Kafka writer's batch limit; a dead letter over it is
	// truncated, any other output over it is parked on the DLQ.
	MaxOutputBytes int `yaml:"max_output_bytes"`
	// MaxPublishAttempts is how often an output the broker refuses is
	// tried before it is parked on the DLQ; transient failures (broker
	// down) are retried until they pass.
	MaxPublishAttempts int `yaml:"max_publish_attempts"`
	// LagInterval is how often riskd_consumer_lag is asked of the broker.
	LagInterval time.Duration `yaml:"lag_interval"`
	// StoreCheckInterval is how often ClickHouse is pinged while no write
	// succeeds; /readyz fails after a failed ping or three intervals
	// without a success.
	StoreCheckInterval time.Duration `yaml:"store_check_interval"`
	// StallTimeout is how long a batch may take to become durable before
	// /readyz reports the output stage stalled.
	StallTimeout time.Duration `yaml:"stall_timeout"`
}

type HTTPConfig struct {
	// Listen serves the API (/v1/...), /metrics, /healthz and /readyz;
	// empty disables it.
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey, both set, serve HTTPS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// Pprof serves Go's profiler at /debug/pprof/ to admin tokens only.
	Pprof bool `yaml:"pprof"`
	// Advertise is where the other instances of the group reach this
	// one's API ("http://10.0.0.5:8080"), for forwarded decide calls;
	// empty means the listen address, with the host name when it listens
	// on every interface.
	Advertise string `yaml:"advertise"`
}

type StateConfig struct {
	// Kafka keeps the engine's state in Kafka: a snapshot in Topic every
	// SnapshotInterval and at a clean stop, restored on start (after a
	// crash too) and brought up to the committed offsets by replaying
	// the inputs (see streams/statesave.go).
	Kafka            bool          `yaml:"kafka"`
	Topic            string        `yaml:"topic"`
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`
	// PartitionLinger is how long the state of a partition moved to
	// another instance stays here, and in this instance's snapshots,
	// before it is dropped, so that the new owner finds it in whichever
	// snapshot of this instance it loads (streams.Config.PartitionLinger).
	PartitionLinger time.Duration `yaml:"partition_linger"`
	// Instance names this instance's snapshots within the group; empty
	// means the host name. An instance restarted under another name
	// rebuilds its state from the input topics.
	Instance string `yaml:"instance"`
	// Dir holds the engine checkpoint written on a clean shutdown and
	// read (then removed) on start when Kafka is false; empty disables
	// checkpoints.
	Dir string `yaml:"dir"`
}

// RuntimeConfig sets Go's garbage collector. riskd's heap is mostly
// long-lived state, and every collection marks all of it beside the
// shards (mark phases of 40 to 500 ms for 300 MB of state on two cores,
// a quarter of the cores and the allocating goroutines' assists while
// they last). A larger GCPercent makes the collections rarer at the
// price of memory; a MemoryLimit bounds that price.
type RuntimeConfig struct {
	// GCPercent is GOGC: a collection starts when the heap has grown by
	// this percentage of what the last one left live. 0 leaves the GOGC
	// variable, or Go's 100; -1 turns the percentage off, which needs a
	// MemoryLimit.
	GCPercent int `yaml:"gc_percent"`
	// MemoryLimit is GOMEMLIMIT, in bytes with an optional unit (KiB,
	// MiB, GiB, TiB): the collector runs as often as it must to keep
	// the process under it, whatever GCPercent says. Empty leaves the
	// GOMEMLIMIT variable, or no limit.
	MemoryLimit string `yaml:"memory_limit"`
}

type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// DefaultConfig is what riskd runs with when no file sets a key.
func DefaultConfig() Config {
	return Config{
		Kafka: KafkaConfig{
			Brokers: []string{"127.0.0.1:9092"}, Listen: "127.0.0.1:9092", Group: "riskd", Partitions: 8,
			Inputs:         []string{"payments", "account-events"},
			DecisionsTopic: "risk.decisions", AlertsTopic: "risk.alerts", ActionsTopic: "risk.actions", DLQTopic: "risk.dlq",
			RulesTopic: "risk.rules", MergeWait: streams.DefaultMergeWait, StandbyLimit: streams.DefaultStandbyLimit,
		},
		ClickHouse: ClickHouseConfig{Addr: "127.0.0.1:9000", Database: "riskd", User: "default"},
		Engine:     EngineConfig{AlertThrottle: engine.DefaultAlertThrottle, MaxFutureSkew: engine.DefaultMaxFutureSkew},
		Rules: RulesConfig{Dir: "bench/reference/rules", Features: "bench/reference/features.yaml",
			PollInterval: 2 * time.Second},
		Features: features.DefaultConfig(),
		Output: OutputConfig{BatchSize: 5000, FlushInterval: 200 * time.Millisecond,
			CommitInterval: time.Second, DrainTimeout: 30 * time.Second,
			MaxOutputBytes: streams.DefaultMaxOutputBytes, MaxPublishAttempts: streams.DefaultMaxPublishAttempts,
			LagInterval: 5 * time.Second, StoreCheckInterval: 5 * time.Second, StallTimeout: streams.DefaultStallTimeout},
		HTTP: HTTPConfig{Listen: "127.0.0.1:8080"},
		State: StateConfig{Kafka: true, Topic: snapshots.DefaultTopic, SnapshotInterval: streams.DefaultSnapshotInterval,
			PartitionLinger: streams.DefaultPartitionLinger,
			Dir:             "var/state"},
		Log:     LogConfig{Level: "info", Format: "text"},
		Decide:  DecideConfig{Deadline: 50 * time.Millisecond, OnTimeout: "allow", PublishEvents: true},
		Notify:  NotifyConfig{MaxAttempts: 10},
		Console: ConsoleConfig{SessionTTL: console.DefaultSessionTTL},
	}
}

// LoadConfig reads path (optional: "" means defaults only) over the
// defaults, then applies RISKD_* environment variables from env.
func LoadConfig(path string, env []string) (Config, error) {
	cfg := DefaultConfig()
	var throttleSet bool // engine.alert_throttle was given, in the file or the environment
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true) // a misspelt key is an error, not a silent default
		if err := dec.Decode(&cfg); err != nil && err.Error() != "EOF" {
			return cfg, fmt.Errorf("config %s: %w", path, nameKeys(err, b))
		}
		var given struct {
			Engine struct {
				AlertThrottle *time.Duration `yaml:"alert_throttle"`
			} `yaml:"engine"`
		}
		if err := yaml.Unmarshal(b, &given); err == nil { // it decoded above; only presence matters here
			throttleSet = given.Engine.AlertThrottle != nil
		}
	}
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "RISKD_") {
			vars[k] = v
		}
	}
	if _, ok := vars["RISKD_ENGINE_ALERT_THROTTLE"]; ok {
		throttleSet = true
	}
	if err := applyEnv(reflect.ValueOf(&cfg).Elem(), "RISKD", vars); err != nil {
		return cfg, err
	}
	if err := cfg.applyThrottleAlias(throttleSet); err != nil {
		return cfg, err
	}
	// Variables that webhooks name as their secret_env hold secrets, not
	// keys: a name such as RISKD_WEBHOOK_SECRET_NOTIFIER is theirs.
	for _, w := range cfg.Notify.Webhooks {
		delete(vars, w.SecretEnv)
	}
	for k := range vars {
		return cfg, fmt.Errorf("config: unknown environment variable %s (not a config key, nor a webhook's secret_env)", k)
	}
	if _, err := cfg.Runtime.limit(); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Features.Validate(); err != nil { // "features config: late_tolerance ...": names the key
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// nameKeys adds the key to each value yaml could not decode from b, so the
// error says which key is wrong, not only where: "line 3: cannot unmarshal
// ..." becomes "line 3 (engine.max_future_skew): cannot unmarshal ...".
// Other errors are returned as they are.
func nameKeys(err error, b []byte) error {
	te, ok := err.(*yaml.TypeError)
	if !ok {
		return err
	}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return err
	}
	keyAt := map[int]string{} // line of a scalar value -> its key path
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				if path != "" {
					key = path + "." + key
				}
				if v := n.Content[i+1]; v.Kind == yaml.ScalarNode {
					keyAt[v.Line] = key
				} else {
					walk(v, key)
				}
			}
		}
	}
	walk(&doc, "")
	named := &yaml.TypeError{Errors: make([]string, len(te.Errors))}
	for i, e := range te.Errors {
		var line int
		if _, serr := fmt.Sscanf(e, "line %d:", &line); serr == nil && keyAt[line] != "" {
			prefix := fmt.Sprintf("line %d", line)
			e = prefix + " (" + keyAt[line] + ")" + strings.TrimPrefix(e, prefix)
		}
		named.Errors[i] = e
	}
	return named
}

// applyThrottleAlias reads notify.throttle, the old name of
// engine.alert_throttle, into engine.alert_throttle. Both given with
// different values is an error: which one was meant cannot be guessed.
func (c *Config) applyThrottleAlias(newKeySet bool) error {
	old := c.Notify.Throttle
	switch {
	case old == 0:
	case !newKeySet:
		c.Engine.AlertThrottle = old
	case c.Engine.AlertThrottle != old:
		return fmt.Errorf("config: notify.throttle (%v) is the old name of engine.alert_throttle (%v): set only engine.alert_throttle",
			old, c.Engine.AlertThrottle)
	}
	return nil
}

// applyEnv walks the config struct by its yaml names and sets each field
// whose variable is present, deleting used variables from vars.
func applyEnv(v reflect.Value, prefix string, vars map[string]string) error {
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		name := prefix + "_" + strings.ToUpper(strings.Split(f.Tag.Get("yaml"), ",")[0])
		field := v.Field(i)
		if field.Kind() == reflect.Struct {
			if err := applyEnv(field, name, vars); err != nil {
				return err
			}
			continue
		}
		s, ok := vars[name]
		if !ok {
			continue
		}
		delete(vars, name)
		if err := setField(field, s); err != nil {
			return fmt.Errorf("config: %s: %w", name, err)
		}
	}
	return nil
}

func setField(field reflect.Value, s string) error {
	switch field.Interface().(type) {
	case string:
		field.SetString(s)
	case []string:
		var list []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		field.Set(reflect.ValueOf(list))
	case bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		field.SetBool(b)
	case int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		field.SetInt(int64(n))
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		field.SetInt(int64(d))
	default:
		return fmt.Errorf("unsupported type %s", field.Type())
	}
	return nil
}

// brokers are the Kafka addresses to use, after the embedded broker (if
// any) has started on embeddedAddr.
func (c KafkaConfig) brokers(embeddedAddr string) []string {
	if c.Embedded {
		return []string{embeddedAddr}
	}
	return c.Brokers
}
