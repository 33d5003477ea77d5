package rulesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// DefaultTopic is the rule-set topic.
const DefaultTopic = "risk.rules"

// Key is the message key of every rule-set record; compaction keeps the
// latest record under it.
const Key = "ruleset"

// DefaultMaxRecordBytes bounds one encoded record (files included). The
// topic is created with max.message.bytes a little above it, because
// Kafka's default (1 MB) is below what a rule set with lists may need.
const DefaultMaxRecordBytes = 8 << 20

// Record is one published rule-set version, the JSON value of a message.
type Record struct {
	// Seq is the record's offset plus one, set by Follow and returned by
	// Publish; a value written with a seq has it overwritten on read.
	Seq uint64 `json:"seq,omitempty"`
	// Hash is rules.HashFiles of Files.
	Hash string `json:"hash"`
	// Files is the whole rule set by slash path (auth.yaml,
	// lists/scam_payees.txt, settings.yaml).
	Files map[string]string `json:"files"`
	// Author is the API token name of who published it.
	Author string `json:"author"`
	// Message is the author's note.
	Message string `json:"message"`
	// PublishedAt is when it was published.
	PublishedAt time.Time `json:"published_at"`
}

// ErrTooLarge is returned by Publish when the encoded record is over
// Config.MaxRecordBytes.
var ErrTooLarge = errors.New("rulesync: record too large")

// Config says where the topic is.
type Config struct {
	// Brokers are the Kafka bootstrap addresses.
	Brokers []string
	// Topic defaults to DefaultTopic.
	Topic string
	// MaxRecordBytes defaults to DefaultMaxRecordBytes.
	MaxRecordBytes int
	// Logger receives Follow's reports of skipped records and read errors;
	// nil means slog.Default().
	Logger *slog.Logger
}

// Validate checks the config and names the offending key.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("rulesync: kafka.brokers: empty")
	}
	if c.MaxRecordBytes < 0 {
		return fmt.Errorf("rulesync: max_record_bytes: %d is negative", c.MaxRecordBytes)
	}
	return nil
}

// Sync publishes to and follows the rule-set topic. It is safe for
// concurrent use.
type Sync struct {
	cfg     Config
	client  *kafka.Client
	skipped atomic.Uint64
	applied atomic.Uint64
	ensured atomic.Bool // EnsureTopic succeeded once
}

// New checks cfg and returns a Sync; it connects lazily.
func New(cfg Config) (*Sync, error) {
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
	return &Sync{cfg: cfg, client: &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second}}, nil
}

// Topic is the topic name in use.
func (s *Sync) Topic() string { return s.cfg.Topic }

// Skipped counts records Follow could not apply (undecodable, or apply
// failed); the previously applied set stays.
func (s *Sync) Skipped() uint64 { return s.skipped.Load() }

// Applied counts records Follow applied successfully.
func (s *Sync) Applied() uint64 { return s.applied.Load() }

// EnsureTopic creates the topic (compacted, one partition) unless it
// exists. Follow calls it before reading, and Publish before its first
// write, so the topic gets its settings whichever comes first.
func (s *Sync) EnsureTopic(ctx context.Context) error {
	resp, err := s.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: s.cfg.Topic, NumPartitions: 1, ReplicationFactor: -1,
		ConfigEntries: []kafka.ConfigEntry{
			{ConfigName: "cleanup.policy", ConfigValue: "compact"},
			{ConfigName: "max.message.bytes", ConfigValue: fmt.Sprint(s.cfg.MaxRecordBytes + 64<<10)},
		},
	}}})
	if err != nil {
		return fmt.Errorf("rulesync: create topic %s: %w", s.cfg.Topic, err)
	}
	if err := resp.Errors[s.cfg.Topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("rulesync: create topic %s: %w", s.cfg.Topic, err)
	}
	return nil
}

// Publish writes rec to the topic, acknowledged by all in-sync replicas,
// and returns the seq the topic assigned it (its offset plus one). It
// returns once the record is durable, not once anyone installed it.
func (s *Sync) Publish(ctx context.Context, rec Record) (uint64, error) {
	rec.Seq = 0
	value, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("rulesync: publish %s: %w", rec.Hash, err)
	}
	if len(value) > s.cfg.MaxRecordBytes {
		return 0, fmt.Errorf("rulesync: publish %s: %w: %d bytes, limit %d", rec.Hash, ErrTooLarge, len(value), s.cfg.MaxRecordBytes)
	}
	if !s.ensured.Load() {
		if err := s.EnsureTopic(ctx); err != nil {
			return 0, err
		}
		s.ensured.Store(true)
	}
	resp, err := s.client.Produce(ctx, &kafka.ProduceRequest{
		Topic: s.cfg.Topic, Partition: 0, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(kafka.Record{Key: kafka.NewBytes([]byte(Key)), Value: kafka.NewBytes(value)}),
	})
	if err != nil {
		return 0, fmt.Errorf("rulesync: publish %s to %s: %w", rec.Hash, s.cfg.Topic, err)
	}
	if resp.Error != nil {
		return 0, fmt.Errorf("rulesync: publish %s to %s: %w", rec.Hash, s.cfg.Topic, resp.Error)
	}
	return uint64(resp.BaseOffset) + 1, nil
}

// Follow reads the topic from the beginning, then live, until ctx ends,
// and returns ctx's error. It calls apply, in topic order and from one
// goroutine, with each record that is the newest the topic held when it
// was read: while catching up, records a later one supersedes are skipped,
// so a starting instance installs only the latest version rather than
// stepping through history. A record apply refuses (or that cannot be
// decoded) is logged and counted in Skipped, and following goes on; the
// set applied before stays in force.
func (s *Sync) Follow(ctx context.Context, apply func(Record) error) error {
	log := s.cfg.Logger
	for {
		if err := s.EnsureTopic(ctx); err == nil {
			s.ensured.Store(true)
			break
		} else if ctx.Err() != nil {
			return ctx.Err()
		} else {
			log.Warn("rulesync: cannot create the rule topic yet; retrying", "topic", s.cfg.Topic, "err", err)
		}
		if !sleep(ctx, time.Second) {
			return ctx.Err()
		}
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   s.cfg.Brokers,
		Topic:     s.cfg.Topic,
		Partition: 0,
		MinBytes:  1,
		MaxBytes:  s.cfg.MaxRecordBytes + 64<<10,
		MaxWait:   250 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		return fmt.Errorf("rulesync: follow %s: %w", s.cfg.Topic, err)
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Warn("rulesync: read failed; retrying", "topic", s.cfg.Topic, "err", err)
			if !sleep(ctx, time.Second) {
				return ctx.Err()
			}
			continue
		}
		if string(m.Key) != Key {
			continue
		}
		if m.HighWaterMark > m.Offset+1 {
			continue // superseded by a record already in the topic
		}
		var rec Record
		if err := json.Unmarshal(m.Value, &rec); err != nil {
			s.skipped.Add(1)
			log.Error("rulesync: undecodable rule-set record skipped; the current rules keep running",
				"topic", s.cfg.Topic, "offset", m.Offset, "err", err)
			continue
		}
		rec.Seq = uint64(m.Offset) + 1
		if err := apply(rec); err != nil {
			s.skipped.Add(1)
			log.Error("rulesync: rule-set record not applied; the current rules keep running",
				"topic", s.cfg.Topic, "seq", rec.Seq, "hash", rec.Hash, "author", rec.Author, "err", err)
			continue
		}
		s.applied.Add(1)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
