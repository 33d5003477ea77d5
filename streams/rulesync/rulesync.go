package rulesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/internal/backoff"
)

// DefaultTopic is the rule-set topic.
const DefaultTopic = "risk.rules"

// Key is the message key of every live rule-set record; compaction keeps
// the latest record under it.
const Key = "ruleset"

// CandidateKey is the message key of candidate records (a shadow publish,
// or the drop of the candidate), on the same topic so that they are
// numbered with the live versions and every instance follows both;
// compaction keeps the latest candidate record beside the latest version.
const CandidateKey = "ruleset.candidate"

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
	// Source is where the set came from: SourceDir for a rule directory
	// (the start-up set, or a change riskd saw in it), SourceAPI for the
	// rules API. Empty in records written before sources were kept.
	Source string `json:"source,omitempty"`
	// DirHash is the hash of the newest set published from a rule
	// directory at or before this record; every publish carries it
	// forward. A restarting instance compares its directory's hash with
	// the latest record's DirHash to tell a directory already published
	// (the topic's latest version runs) from one edited while it was down
	// (published again).
	DirHash string `json:"dir_hash,omitempty"`
	// Candidate marks a candidate record, published under CandidateKey:
	// a set to run in shadow beside the live one, never a live version.
	// A candidate record with no Hash (and no Files) drops the candidate.
	Candidate bool `json:"candidate,omitempty"`
}

// Sources of a Record.
const (
	SourceDir = "dir"
	SourceAPI = "api"
)

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
	// Apache Kafka answers CreateTopics before the partition has a leader
	// every broker knows; a read right after can be told NOT_LEADER.
	err = backoff.Until(ctx, 50*time.Millisecond, time.Second, ensureWait, func(ctx context.Context) error {
		_, err := s.endOffset(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("rulesync: topic %s has no partition leader yet: %w", s.cfg.Topic, err)
	}
	return nil
}

// ensureWait bounds how long EnsureTopic waits for the topic's partition
// to have a leader.
const ensureWait = 15 * time.Second

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
	key := Key
	if rec.Candidate {
		key = CandidateKey
	}
	resp, err := s.client.Produce(ctx, &kafka.ProduceRequest{
		Topic: s.cfg.Topic, Partition: 0, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(kafka.Record{Key: kafka.NewBytes([]byte(key)), Value: kafka.NewBytes(value)}),
	})
	if err != nil {
		return 0, fmt.Errorf("rulesync: publish %s to %s: %w", rec.Hash, s.cfg.Topic, err)
	}
	if resp.Error != nil {
		return 0, fmt.Errorf("rulesync: publish %s to %s: %w", rec.Hash, s.cfg.Topic, resp.Error)
	}
	return uint64(resp.BaseOffset) + 1, nil
}

// Latest returns the newest live record of the topic (with its Seq), or
// false when the topic holds none. Compaction keeps the newest record
// under Key, so this is the version a starting instance would install.
// Candidate records after it are stepped over, at most
// maxLatestStepBack of them.
func (s *Sync) Latest(ctx context.Context) (Record, bool, error) {
	if !s.ensured.Load() {
		if err := s.EnsureTopic(ctx); err != nil {
			return Record{}, false, err
		}
		s.ensured.Store(true)
	}
	end, err := s.endOffset(ctx)
	if err != nil {
		return Record{}, false, fmt.Errorf("rulesync: latest of %s: %w", s.cfg.Topic, err)
	}
	for want, steps := end-1, 0; want >= 0; want, steps = want-1, steps+1 {
		if steps == maxLatestStepBack {
			return Record{}, false, fmt.Errorf("rulesync: latest of %s: no live record among the last %d offsets before %d",
				s.cfg.Topic, maxLatestStepBack, end)
		}
		rec, key, found, err := s.recordAt(ctx, want)
		if err != nil {
			return Record{}, false, fmt.Errorf("rulesync: latest of %s: %w", s.cfg.Topic, err)
		}
		switch {
		case !found || key == CandidateKey:
			continue // compacted away, or a candidate: look further back
		case key != Key:
			return Record{}, false, fmt.Errorf("rulesync: latest of %s: record at offset %d has key %q, not %q", s.cfg.Topic, want, key, Key)
		}
		return rec, true, nil
	}
	return Record{}, false, nil
}

// maxLatestStepBack bounds how many offsets Latest walks back over
// candidate records (or compacted gaps) to find the newest live one.
const maxLatestStepBack = 10000

// recordAt reads the record at offset want; found is false when the
// offset holds none any more (compaction removed it).
func (s *Sync) recordAt(ctx context.Context, want int64) (rec Record, key string, found bool, err error) {
	resp, err := s.client.Fetch(ctx, &kafka.FetchRequest{Topic: s.cfg.Topic, Partition: 0, Offset: want,
		MinBytes: 1, MaxBytes: int64(s.cfg.MaxRecordBytes + 64<<10), MaxWait: 500 * time.Millisecond})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return Record{}, "", false, fmt.Errorf("fetch offset %d: %w", want, err)
	}
	for {
		kr, err := resp.Records.ReadRecord()
		if err != nil {
			// io.EOF included: the record at want was not in the answer.
			return Record{}, "", false, fmt.Errorf("record at offset %d: %w", want, err)
		}
		if kr.Offset < want {
			continue // a batch may start before the offset asked for
		}
		key, value, err := readKV(kr)
		if err != nil {
			return Record{}, "", false, fmt.Errorf("record at offset %d: %w", want, err)
		}
		if kr.Offset > want {
			return Record{}, "", false, nil
		}
		if key == Key || key == CandidateKey {
			if err := json.Unmarshal(value, &rec); err != nil {
				return Record{}, "", false, fmt.Errorf("record at offset %d: %w", want, err)
			}
			rec.Seq = uint64(kr.Offset) + 1
			rec.Candidate = key == CandidateKey
		}
		return rec, key, true, nil
	}
}

// PublishIfChanged publishes rec unless the topic's newest record already
// holds the same files (same Hash); then it returns that record and false.
// Instances that start together from one directory, or see it change at
// once, call it so the history gets one version, not one per instance; a
// publish of the same files within the few milliseconds between the check
// and the write can still slip through, and is then a version with the
// same files as the one before.
func (s *Sync) PublishIfChanged(ctx context.Context, rec Record) (Record, bool, error) {
	latest, found, err := s.Latest(ctx)
	if err != nil {
		return Record{}, false, err
	}
	if found && latest.Hash == rec.Hash {
		return latest, false, nil
	}
	seq, err := s.Publish(ctx, rec)
	if err != nil {
		return Record{}, false, err
	}
	rec.Seq = seq
	return rec, true, nil
}

// endOffset is the offset after the newest record of partition 0.
func (s *Sync) endOffset(ctx context.Context) (int64, error) {
	res, err := s.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{s.cfg.Topic: {kafka.LastOffsetOf(0)}}})
	if err != nil {
		return 0, err
	}
	for _, po := range res.Topics[s.cfg.Topic] {
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

// readKV reads a fetched record's key and value and releases them.
func readKV(kr *kafka.Record) (string, []byte, error) {
	var key, value []byte
	var err error
	if kr.Key != nil {
		key, err = io.ReadAll(kr.Key)
		kr.Key.Close()
	}
	if kr.Value != nil {
		var verr error
		value, verr = io.ReadAll(kr.Value)
		kr.Value.Close()
		err = errors.Join(err, verr)
	}
	return string(key), value, err
}

// Follow reads the topic from the beginning, then live, until ctx ends,
// and returns ctx's error. It calls apply, in topic order and from one
// goroutine, with each record that is the newest of its key (live
// versions under Key, candidates under CandidateKey, with
// Record.Candidate set) that the topic held when it was read: while
// catching up, records a later one of the same key supersedes are
// skipped, so a starting instance installs only the latest version and
// the latest candidate rather than stepping through history. A record apply refuses (or that cannot be
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
	// pending holds, while catching up, the newest record of each key
	// read so far; they are applied in offset order once the reader is at
	// the end. Two keys, so it stays tiny.
	var pending []kafka.Message
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
		key := string(m.Key)
		if key != Key && key != CandidateKey {
			continue
		}
		pending = slices.DeleteFunc(pending, func(p kafka.Message) bool { return string(p.Key) == key })
		pending = append(pending, m)
		if m.HighWaterMark > m.Offset+1 {
			continue // more records in the topic: one may supersede it
		}
		for _, p := range pending {
			s.applyMessage(p, apply)
		}
		pending = pending[:0]
	}
}

// applyMessage decodes a record read by Follow and applies it, logging and
// counting one that cannot be decoded or is refused.
func (s *Sync) applyMessage(m kafka.Message, apply func(Record) error) {
	log := s.cfg.Logger
	var rec Record
	if err := json.Unmarshal(m.Value, &rec); err != nil {
		s.skipped.Add(1)
		log.Error("rulesync: undecodable rule-set record skipped; the current rules keep running",
			"topic", s.cfg.Topic, "offset", m.Offset, "err", err)
		return
	}
	rec.Seq = uint64(m.Offset) + 1
	rec.Candidate = string(m.Key) == CandidateKey
	if err := apply(rec); err != nil {
		s.skipped.Add(1)
		log.Error("rulesync: rule-set record not applied; the current rules keep running",
			"topic", s.cfg.Topic, "seq", rec.Seq, "hash", rec.Hash, "author", rec.Author, "candidate", rec.Candidate, "err", err)
		return
	}
	s.applied.Add(1)
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
