package snapshots

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"riskd/internal/backoff"
)

// DefaultTopic is the snapshot topic when Config.Topic is empty.
const DefaultTopic = "riskd.state"

// DefaultMaxRecordBytes is the largest record value written when
// Config.MaxRecordBytes is 0: under the brokers' default message.max.bytes
// (1,048,588) with room for framing, like riskd's other outputs.
const DefaultMaxRecordBytes = 900_000

// Record size bounds. streams (which this package sits beside and cannot
// import) writes with kafka-go writers whose BatchBytes is 1,000,000: the
// largest message they take, so that a message always fits the brokers'
// default message.max.bytes of 1,048,588. It keeps 1000 bytes of that for
// kafka-go's framing of one message (streams.writerBatchBytes and
// streams.recordOverhead). Snapshots produce with kafka.Client directly, but
// keep to the same bound so a snapshot topic needs no broker setting that
// riskd's other topics do not; the key is counted on top of the framing.
const (
	writerBatchBytes = 1_000_000
	recordOverhead   = 1000
	// maxKeyBytes bounds a record key: a Name of at most maxNameBytes
	// plus "/<slot>/<index>" or "/<slot>/manifest".
	maxKeyBytes  = 256
	maxNameBytes = 200
	// MaxRecordBytesLimit is the largest Config.MaxRecordBytes accepted.
	MaxRecordBytesLimit = writerBatchBytes - recordOverhead - maxKeyBytes
	// MinRecordBytes is the smallest Config.MaxRecordBytes accepted: a
	// chunk header with a useful payload, and a manifest, must fit.
	MinRecordBytes = 1024
)

// ErrNoSnapshot is returned by Load when nothing is saved under the Name
// (or the topic does not exist): the engine starts from empty state.
var ErrNoSnapshot = errors.New("snapshots: no snapshot saved")

// ErrNoUsableSnapshot is wrapped by Load's error when records of snapshots
// exist under the Name but none passes verification. The error also wraps
// and names the reason each was refused. Starting from empty state then
// is a decision for the caller, not something to do silently.
var ErrNoUsableSnapshot = errors.New("snapshots: no usable snapshot")

// Snapshot is one saved engine state and the input positions it reflects.
type Snapshot struct {
	// Seq increases per Name; the writer picks it: the Seq of the last
	// snapshot saved (or loaded) plus one. A failed Save is retried with
	// the same Seq, so the newest complete snapshot is never overwritten.
	Seq uint64
	// Offsets is topic -> partition -> the next offset to read: the state
	// includes every input before it. Values are stored as given,
	// negative sentinels included.
	Offsets map[string]map[int]int64
	// SharedOffsets is the same for the part of the state that every
	// instance of a fleet keeps for every partition (the shared entity
	// windows); nil in a snapshot saved without it.
	SharedOffsets map[string]map[int]int64
	// Meta holds small facts the engine checks before using the state
	// (format version, shard count, feature fingerprint...). It travels in
	// the manifest, which must fit in one record.
	Meta map[string]string
	// Data is the state itself, opaque here; it may be GiBs.
	Data []byte
	// CreatedAt is when the state was cut; zero means when Save starts.
	CreatedAt time.Time
}

// SaveStats says what a Save wrote.
type SaveStats struct {
	// Bytes is the key and value bytes produced, Records the records
	// (chunks, the manifest, tombstones for stale chunks).
	Bytes   int64
	Records int
	// Duration is the whole Save, topic check included.
	Duration time.Duration
}

// LoadStats says what a Load read and what it refused.
type LoadStats struct {
	// Bytes and Records count the key and value bytes and the records
	// fetched from the topic, every Name's, over every pass.
	Bytes   int64
	Records int
	// Duration is the whole Load.
	Duration time.Duration
	// Refused has one error per snapshot newer than the one returned that
	// was skipped, newest first, saying why ("snapshot 7: chunk 3:
	// checksum mismatch"). A manifest too damaged to tell its Seq is
	// listed too, since it may be newer.
	Refused []error
}

// Config says where snapshots are kept.
type Config struct {
	// Brokers are the Kafka bootstrap addresses.
	Brokers []string
	// Topic is the compacted snapshot topic; empty means DefaultTopic.
	Topic string
	// Name prefixes every key, so several riskd groups can share one
	// topic; the consumer group is a good choice. At most 200 bytes of
	// UTF-8.
	Name string
	// MaxRecordBytes bounds a record value; 0 means DefaultMaxRecordBytes.
	// Between MinRecordBytes and MaxRecordBytesLimit.
	MaxRecordBytes int
	// Logger receives what no result carries: topic creation, warnings
	// about an existing topic's settings, and failures to tombstone stale
	// chunks after a Save. nil means slog.Default().
	Logger *slog.Logger
}

// Validate checks the config and names the offending field. New calls it.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("snapshots: Config.Brokers: empty"))
	}
	for i, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			errs = append(errs, fmt.Errorf("snapshots: Config.Brokers[%d]: empty address", i))
		}
	}
	if err := validTopic(c.Topic); c.Topic != "" && err != nil {
		errs = append(errs, fmt.Errorf("snapshots: Config.Topic: %q: %w", c.Topic, err))
	}
	switch {
	case c.Name == "":
		errs = append(errs, errors.New("snapshots: Config.Name: empty; use the consumer group, so groups sharing the topic keep apart"))
	case len(c.Name) > maxNameBytes:
		errs = append(errs, fmt.Errorf("snapshots: Config.Name: %d bytes, at most %d", len(c.Name), maxNameBytes))
	case !utf8.ValidString(c.Name):
		errs = append(errs, fmt.Errorf("snapshots: Config.Name: %q is not valid UTF-8", c.Name))
	}
	switch {
	case c.MaxRecordBytes < 0:
		errs = append(errs, fmt.Errorf("snapshots: Config.MaxRecordBytes: %d is negative; 0 means %d", c.MaxRecordBytes, DefaultMaxRecordBytes))
	case c.MaxRecordBytes > MaxRecordBytesLimit:
		errs = append(errs, fmt.Errorf("snapshots: Config.MaxRecordBytes: %d is above %d: the %d-byte message limit of riskd's Kafka writers less %d for record framing and %d for the key",
			c.MaxRecordBytes, MaxRecordBytesLimit, writerBatchBytes, recordOverhead, maxKeyBytes))
	case c.MaxRecordBytes > 0 && c.MaxRecordBytes < MinRecordBytes:
		errs = append(errs, fmt.Errorf("snapshots: Config.MaxRecordBytes: %d is below %d, too small for a chunk header and a manifest", c.MaxRecordBytes, MinRecordBytes))
	}
	return errors.Join(errs...)
}

// validTopic applies Kafka's topic name rules, so a bad name fails at New
// rather than at the first Save.
func validTopic(t string) error {
	if len(t) > 249 {
		return errors.New("longer than 249 characters")
	}
	if t == "." || t == ".." {
		return errors.New("not a legal topic name")
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("character %q not allowed (letters, digits, '.', '_', '-')", r)
		}
	}
	return nil
}

// requestTimeout bounds one request to the broker when ctx has no earlier
// deadline: a produce of a full chunk waiting for every in-sync replica
// needs more than the usual few seconds.
const requestTimeout = 30 * time.Second

// Store saves and loads the snapshots of one Name. Save and Load are safe
// for concurrent use; Saves are serialized. One writer per Name is assumed:
// the Store remembers the newest complete Seq it saved or loaded, and
// refuses a Save that would overwrite it.
type Store struct {
	cfg     Config
	log     *slog.Logger
	ensured atomic.Bool // Ensure succeeded once; Save checks before its first write

	saveMu sync.Mutex // one Save at a time

	mu sync.Mutex
	// newest is the Seq of the newest complete snapshot this Store saved
	// or loaded (0: none); newestKnown is false until a Save or Load told
	// us, and Save cannot check Seq before then.
	newest      uint64
	newestKnown bool
	// chunkKeys[slot] is one past the highest chunk index that may hold a
	// live record in that slot, as far as this Store has seen (Load's scan
	// and its own Saves); Save tombstones the keys past its snapshot's end.
	chunkKeys [2]int
}

// New checks cfg and returns a Store; it connects lazily, per call.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.MaxRecordBytes == 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Brokers = slices.Clone(cfg.Brokers)
	return &Store{cfg: cfg, log: cfg.Logger.With("topic", cfg.Topic, "name", cfg.Name)}, nil
}

// Topic is the topic in use.
func (s *Store) Topic() string { return s.cfg.Topic }

// client returns a Kafka client with a transport of its own, and the
// function that closes the transport's connections. Each call gets its own
// so no connection (nor its goroutines) outlives the Save or Load that
// opened it.
func (s *Store) client() (*kafka.Client, func()) {
	transport := &kafka.Transport{}
	return &kafka.Client{Addr: kafka.TCP(s.cfg.Brokers...), Timeout: requestTimeout, Transport: transport},
		transport.CloseIdleConnections
}

// Topic settings Ensure creates the topic with. The active segment is never
// compacted and by default rolls only after 7 days, so without segment.ms
// every Save would add a whole snapshot to the topic for a week; a low
// dirty ratio has the cleaner run after each Save rather than after the
// topic doubled.
var topicConfig = []kafka.ConfigEntry{
	{ConfigName: "cleanup.policy", ConfigValue: "compact"},
	{ConfigName: "segment.ms", ConfigValue: "600000"}, // 10 minutes
	{ConfigName: "min.cleanable.dirty.ratio", ConfigValue: "0.1"},
}

// ensureWait bounds how long Ensure waits for a topic it created to have a
// leader: Apache Kafka answers CreateTopics before every broker knows the
// topic, and a Save right after would fail.
const ensureWait = 15 * time.Second

// Ensure creates the topic if it is missing: one partition (Load reads one
// partition, and compaction keeps the newest value per key only within a
// partition), cleanup.policy=compact, and settings that let compaction run
// soon. An existing topic is left as it is; Ensure logs a warning when it
// is not compacted or has more than one partition. Save calls Ensure
// before its first write.
func (s *Store) Ensure(ctx context.Context) error {
	client, done := s.client()
	defer done()
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: s.cfg.Topic, NumPartitions: 1, ReplicationFactor: -1, ConfigEntries: topicConfig,
	}}})
	if err != nil {
		return fmt.Errorf("snapshots: create topic %s: %w", s.cfg.Topic, err)
	}
	switch err := resp.Errors[s.cfg.Topic]; {
	case errors.Is(err, kafka.TopicAlreadyExists):
		s.checkExisting(ctx, client)
	case err != nil:
		return fmt.Errorf("snapshots: create topic %s: %w", s.cfg.Topic, err)
	default:
		s.log.Info("snapshots: created the snapshot topic", "config", topicConfig)
	}
	if err := s.awaitLeader(ctx, client); err != nil {
		return err
	}
	s.ensured.Store(true)
	return nil
}

// awaitLeader asks for the partition's end offset until its leader answers.
func (s *Store) awaitLeader(ctx context.Context, client *kafka.Client) error {
	err := backoff.Until(ctx, 50*time.Millisecond, time.Second, ensureWait, func(ctx context.Context) error {
		_, err := listOffset(ctx, client, s.cfg.Topic, kafka.LastOffsetOf)
		return err
	})
	if err != nil {
		return fmt.Errorf("snapshots: topic %s has no partition leader yet: %w", s.cfg.Topic, err)
	}
	return nil
}

// checkExisting warns about an existing topic that cannot keep snapshots
// safely. It only logs: the topic belongs to whoever made it.
func (s *Store) checkExisting(ctx context.Context, client *kafka.Client) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.cfg.Topic}})
	if err == nil {
		for _, t := range meta.Topics {
			if t.Name == s.cfg.Topic && t.Error == nil && len(t.Partitions) != 1 {
				s.log.Warn("snapshots: the snapshot topic has more than one partition; only partition 0 is used",
					"partitions", len(t.Partitions))
			}
		}
	}
	cfgs, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: s.cfg.Topic, ConfigNames: []string{"cleanup.policy"},
	}}})
	if err != nil {
		s.log.Debug("snapshots: cannot read the snapshot topic's settings", "err", err)
		return
	}
	for _, r := range cfgs.Resources {
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "cleanup.policy" && !strings.Contains(e.ConfigValue, "compact") {
				s.log.Warn("snapshots: the snapshot topic is not compacted; retention may delete the only snapshot, and superseded chunks are kept until it does",
					"cleanup.policy", e.ConfigValue)
			}
		}
	}
}

// listOffset asks for one offset of partition 0 (which: kafka.FirstOffsetOf
// or kafka.LastOffsetOf). One request asks one kind: kafka-go files either
// answer under LastOffset (see streams/offsets.go listOffsets).
func listOffset(ctx context.Context, client *kafka.Client, topic string, which func(int) kafka.OffsetRequest) (int64, error) {
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {which(0)}}})
	if err != nil {
		return 0, err
	}
	for _, po := range res.Topics[topic] {
		if po.Partition != 0 {
			continue
		}
		if po.Error != nil {
			return 0, po.Error
		}
		if po.LastOffset >= 0 {
			return po.LastOffset, nil
		}
		return po.FirstOffset, nil
	}
	return 0, kafka.UnknownTopicOrPartition
}

// produce writes recs to partition 0 and returns once every in-sync
// replica has them; any record not acknowledged is an error.
func (s *Store) produce(ctx context.Context, client *kafka.Client, recs ...kafka.Record) error {
	resp, err := client.Produce(ctx, &kafka.ProduceRequest{
		Topic: s.cfg.Topic, Partition: 0, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(recs...),
	})
	if err != nil {
		return err
	}
	if resp == nil {
		return errors.New("no produce response")
	}
	if resp.Error != nil {
		return resp.Error
	}
	for i, err := range resp.RecordErrors {
		return fmt.Errorf("record %d of %d refused: %w", i, len(recs), err)
	}
	return nil
}
