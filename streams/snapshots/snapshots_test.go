package snapshots

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/internal/kafkatest"
)

// smallRecords makes snapshots of a few KB span many chunks: 995 bytes of
// payload per chunk.
const smallRecords = 1024

func newStore(t *testing.T, b kafkatest.Broker, topic, name string, maxRecordBytes int) *Store {
	t.Helper()
	s, err := New(Config{Brokers: []string{b.Addr()}, Topic: topic, Name: name, MaxRecordBytes: maxRecordBytes})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func uniqueTopic() string { return "riskd.state-test-" + kafkatest.Suffix() }

// randomData is n reproducible bytes.
func randomData(n int, seed uint64) []byte {
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func snapshotOf(seq uint64, data []byte) Snapshot {
	return Snapshot{
		Seq:     seq,
		Offsets: map[string]map[int]int64{"payments": {0: int64(seq) * 100, 1: 7}},
		// Another instance decides partition 2; this state's shared part
		// stands there too.
		SharedOffsets: map[string]map[int]int64{"payments": {0: int64(seq) * 100, 1: 7, 2: int64(seq) * 90}},
		Meta:          map[string]string{"format": "1", "seq": strconv.FormatUint(seq, 10)},
		Data:          data,
		CreatedAt:     time.Date(2026, 3, 1, 12, 0, int(seq), 0, time.UTC),
	}
}

func mustSave(t *testing.T, ctx context.Context, s *Store, snap Snapshot) SaveStats {
	t.Helper()
	st, err := s.Save(ctx, snap)
	if err != nil {
		t.Fatalf("Save %d: %v", snap.Seq, err)
	}
	return st
}

func mustLoad(t *testing.T, ctx context.Context, s *Store) (Snapshot, LoadStats) {
	t.Helper()
	snap, st, err := s.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return snap, st
}

func sameSnapshot(t *testing.T, got, want Snapshot) {
	t.Helper()
	if got.Seq != want.Seq {
		t.Fatalf("Seq = %d, want %d", got.Seq, want.Seq)
	}
	if !reflect.DeepEqual(got.Offsets, want.Offsets) {
		t.Errorf("Offsets = %v, want %v", got.Offsets, want.Offsets)
	}
	if !reflect.DeepEqual(got.SharedOffsets, want.SharedOffsets) {
		t.Errorf("SharedOffsets = %v, want %v", got.SharedOffsets, want.SharedOffsets)
	}
	if !reflect.DeepEqual(got.Meta, want.Meta) {
		t.Errorf("Meta = %v, want %v", got.Meta, want.Meta)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("Data: %d bytes differ from the %d saved", len(got.Data), len(want.Data))
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want.CreatedAt)
	}
}

func refusedStrings(errs []error) []string {
	var out []string
	for _, err := range errs {
		out = append(out, err.Error())
	}
	return out
}

// latest reads the whole topic and returns the newest value per key, as
// compaction would leave it (nil for a tombstone).
func latest(t *testing.T, ctx context.Context, b kafkatest.Broker, topic string) map[string][]byte {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second, Transport: &kafka.Transport{}} // fresh metadata
	end, err := listOffset(ctx, client, topic, kafka.LastOffsetOf)
	if err != nil {
		t.Fatalf("end offset of %s: %v", topic, err)
	}
	out := map[string][]byte{}
	for _, m := range kafkatest.ReadAll(t, b.Addr(), topic, int(end), time.Minute) {
		out[string(m.Key)] = m.Value
	}
	return out
}

// overwrite produces value under key, as a damaged or foreign record.
func overwrite(t *testing.T, b kafkatest.Broker, topic, key string, value []byte) {
	t.Helper()
	kafkatest.Produce(t, b.Addr(), topic, kafka.Message{Key: []byte(key), Value: value})
}

// flipPayloadByte returns value with one payload byte of a chunk changed.
func flipPayloadByte(value []byte) []byte {
	v := slices.Clone(value)
	v[chunkHeaderLen+len(v[chunkHeaderLen:])/2] ^= 0x40
	return v
}

func TestConfigValidationNamesTheField(t *testing.T) {
	ok := Config{Brokers: []string{"127.0.0.1:9092"}, Name: "riskd"}
	with := func(f func(*Config)) Config {
		c := ok
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no brokers", with(func(c *Config) { c.Brokers = nil }), "Config.Brokers"},
		{"blank broker", with(func(c *Config) { c.Brokers = []string{" "} }), "Config.Brokers[0]"},
		{"bad topic", with(func(c *Config) { c.Topic = "riskd state" }), "Config.Topic"},
		{"long topic", with(func(c *Config) { c.Topic = strings.Repeat("t", 250) }), "Config.Topic"},
		{"no name", with(func(c *Config) { c.Name = "" }), "Config.Name"},
		{"long name", with(func(c *Config) { c.Name = strings.Repeat("n", maxNameBytes+1) }), "Config.Name"},
		{"name not UTF-8", with(func(c *Config) { c.Name = "riskd\xff" }), "Config.Name"},
		{"negative record size", with(func(c *Config) { c.MaxRecordBytes = -1 }), "Config.MaxRecordBytes"},
		{"tiny record size", with(func(c *Config) { c.MaxRecordBytes = MinRecordBytes - 1 }), "Config.MaxRecordBytes"},
		{"record size over the writer's limit", with(func(c *Config) { c.MaxRecordBytes = MaxRecordBytesLimit + 1 }), "Config.MaxRecordBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("New: err = %v, want one naming %s", err, tc.field)
			}
		})
	}

	s, err := New(with(func(c *Config) { c.MaxRecordBytes = MaxRecordBytesLimit }))
	if err != nil {
		t.Fatalf("New at the record size limit: %v", err)
	}
	if s, err = New(ok); err != nil {
		t.Fatal(err)
	}
	if s.cfg.Topic != DefaultTopic || s.cfg.MaxRecordBytes != DefaultMaxRecordBytes || s.cfg.Logger == nil {
		t.Errorf("defaults: topic %q, max record bytes %d, logger %v", s.cfg.Topic, s.cfg.MaxRecordBytes, s.cfg.Logger)
	}
	// The bound restated from streams: a value, its key and the framing
	// fit in one kafka-go writer batch of 1,000,000 bytes.
	if MaxRecordBytesLimit+maxKeyBytes+recordOverhead != 1_000_000 {
		t.Errorf("MaxRecordBytesLimit %d + key %d + framing %d != 1,000,000", MaxRecordBytesLimit, maxKeyBytes, recordOverhead)
	}
	if longest := len(chunkKey(strings.Repeat("n", maxNameBytes), 1, 1<<31)); longest > maxKeyBytes {
		t.Errorf("longest chunk key is %d bytes, over maxKeyBytes %d", longest, maxKeyBytes)
	}
}

func TestKeysOfOneNameOnly(t *testing.T) {
	for _, tc := range []struct {
		key         string
		slot, index int
		ok          bool
	}{
		{"g/0/0", 0, 0, true},
		{"g/1/12", 1, 12, true},
		{"g/1/manifest", 1, -1, true},
		{"g/2/0", 0, 0, false},
		{"g/0/007", 0, 0, false},
		{"g/0/-1", 0, 0, false},
		{"g/0/", 0, 0, false},
		{"g/0/manifest2", 0, 0, false},
		{"g/1/0/manifest", 0, 0, false}, // name "g/1"'s manifest, not ours
		{"g/x/0/manifest", 0, 0, false},
		{"gg/0/0", 0, 0, false},
		{"g", 0, 0, false},
		{"", 0, 0, false},
	} {
		slot, index, ok := parseKey("g", []byte(tc.key))
		if ok != tc.ok || ok && (slot != tc.slot || index != tc.index) {
			t.Errorf("parseKey(g, %q) = %d, %d, %v; want %d, %d, %v", tc.key, slot, index, ok, tc.slot, tc.index, tc.ok)
		}
	}
	if slot, index, ok := parseKey("g/1", []byte("g/1/0/manifest")); !ok || slot != 0 || index != -1 {
		t.Errorf(`parseKey("g/1", "g/1/0/manifest") = %d, %d, %v`, slot, index, ok)
	}
}

func TestChunkAndManifestFormat(t *testing.T) {
	payload := []byte("some engine state")
	v := appendChunk(nil, 9, 0xabc, 3, payload)
	e, err := readChunkMeta(0, kafka.NewBytes(v))
	if err != nil || e.err != nil {
		t.Fatalf("readChunkMeta: %v, %v", err, e.err)
	}
	if e.hdr.seq != 9 || e.hdr.saveID != 0xabc || e.hdr.index != 3 || e.size != len(payload) {
		t.Errorf("header %+v, size %d", e.hdr, e.size)
	}
	for name, damaged := range map[string][]byte{
		"payload": flipPayloadByte(v),
		"seq":     func() []byte { d := slices.Clone(v); d[12] ^= 1; return d }(),
		"index":   func() []byte { d := slices.Clone(v); d[24] ^= 1; return d }(),
	} {
		if e, _ := readChunkMeta(0, kafka.NewBytes(damaged)); !errors.Is(e.err, errChecksum) {
			t.Errorf("damaged %s: err = %v, want a checksum mismatch", name, e.err)
		}
	}
	if e, _ := readChunkMeta(0, kafka.NewBytes([]byte("RKSC"))); e.err == nil {
		t.Error("a 4-byte chunk passed")
	}
	if e, _ := readChunkMeta(0, kafka.NewBytes(append([]byte("XXXX"), v[4:]...))); !errors.Is(e.err, errNotChunk) {
		t.Errorf("bad magic: err = %v", e.err)
	}

	m := manifest{Format: formatVersion, Name: "g", Seq: 4, SaveID: formatSaveID(7), Chunks: 2, ChunkBytes: 10, Length: 15,
		SHA256: strings.Repeat("ab", 32), Offsets: map[string]map[int]int64{"t": {0: -2}}, Meta: map[string]string{"<&>": "x"},
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))}
	value, err := encodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeManifest("g", value)
	if err != nil {
		t.Fatalf("decodeManifest: %v", err)
	}
	if !got.CreatedAt.Equal(m.CreatedAt) || got.Offsets["t"][0] != -2 || got.Meta["<&>"] != "x" || got.Seq != 4 {
		t.Errorf("decoded %+v", got)
	}
	if _, err := decodeManifest("h", value); err == nil {
		t.Error("a manifest of name g decoded as h's")
	}
	damaged := bytes.Replace(value, []byte(`"seq":4`), []byte(`"seq":6`), 1)
	if _, err := decodeManifest("g", damaged); !errors.Is(err, errChecksum) {
		t.Errorf("manifest with a changed Seq: err = %v, want a checksum mismatch", err)
	}
	m.Format = formatVersion + 1
	newer, _ := encodeManifest(m)
	if _, err := decodeManifest("g", newer); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("manifest of a newer format: err = %v", err)
	}
	m.Format, m.Chunks = formatVersion, 3
	wrong, _ := encodeManifest(m)
	if _, err := decodeManifest("g", wrong); err == nil {
		t.Error("a manifest whose chunk count does not match its length decoded")
	}
}

func TestEnsureCreatesACompactedSinglePartitionTopic(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		topic := uniqueTopic()
		s := newStore(t, b, topic, "riskd", 0)
		for range 2 { // the second finds it and leaves it
			if err := s.Ensure(ctx); err != nil {
				t.Fatalf("Ensure: %v", err)
			}
		}
		client := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second, Transport: &kafka.Transport{}} // fresh metadata
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			t.Fatal(err)
		}
		if len(meta.Topics) != 1 || len(meta.Topics[0].Partitions) != 1 {
			t.Fatalf("metadata of %s: %+v, want one topic of one partition", topic, meta.Topics)
		}
		cfgs, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"cleanup.policy", "segment.ms"},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range cfgs.Resources {
			for _, e := range r.ConfigEntries {
				got[e.ConfigName] = e.ConfigValue
			}
		}
		if got["cleanup.policy"] != "compact" || got["segment.ms"] != "600000" {
			t.Errorf("topic config %v, want cleanup.policy=compact, segment.ms=600000", got)
		}
	})
}

func TestRoundTripOfASmallSnapshot(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		s := newStore(t, b, uniqueTopic(), "riskd-group", 0)
		want := Snapshot{
			Seq: 1,
			Offsets: map[string]map[int]int64{
				"payments": {0: 1234, 1: 0, 2: 99},
				"logins":   {0: 5, 3: kafka.FirstOffset}, // a sentinel the pipeline uses for an unread partition
			},
			Meta:      map[string]string{"format": "3", "shards": "16", "features": "f1d0b4de"},
			Data:      []byte("the engine's state, opaque here"),
			CreatedAt: time.Date(2026, 2, 3, 4, 5, 6, 789, time.UTC),
		}
		st := mustSave(t, ctx, s, want)
		if st.Records != 2 || st.Bytes <= int64(len(want.Data)) {
			t.Errorf("SaveStats %+v, want 2 records (a chunk and the manifest) of more than the data", st)
		}
		got, lst := mustLoad(t, ctx, newStore(t, b, s.Topic(), "riskd-group", 0))
		sameSnapshot(t, got, want)
		if len(lst.Refused) != 0 || lst.Records < 2 || lst.Bytes <= int64(len(want.Data)) {
			t.Errorf("LoadStats %+v", lst)
		}
	})
}

func TestLargeDataSpansManyChunks(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		s := newStore(t, b, uniqueTopic(), "riskd", 0)
		want := snapshotOf(1, randomData(12<<20, 1))
		st := mustSave(t, ctx, s, want)
		chunks := (len(want.Data) + DefaultMaxRecordBytes - chunkHeaderLen - 1) / (DefaultMaxRecordBytes - chunkHeaderLen)
		if chunks < 10 || st.Records != chunks+1 {
			t.Errorf("SaveStats.Records = %d, want %d chunks and a manifest", st.Records, chunks)
		}
		got, lst := mustLoad(t, ctx, newStore(t, b, s.Topic(), "riskd", 0))
		sameSnapshot(t, got, want)
		if lst.Bytes < 2*int64(len(want.Data)) { // the first pass and the assembly each read it all
			t.Errorf("LoadStats.Bytes = %d, want at least twice the data", lst.Bytes)
		}
	})
}

func TestLoadReturnsTheNewestOfSeveralSaves(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		s := newStore(t, b, uniqueTopic(), "riskd", smallRecords)
		for seq := uint64(1); seq <= 3; seq++ {
			want := snapshotOf(seq, randomData(5000+int(seq)*100, seq))
			mustSave(t, ctx, s, want)
			got, st := mustLoad(t, ctx, newStore(t, b, s.Topic(), "riskd", smallRecords))
			sameSnapshot(t, got, want)
			if len(st.Refused) != 0 {
				t.Errorf("after save %d: refused %v", seq, st.Refused)
			}
		}
	})
}

func TestDamagedChunkFallsBackToTheOlderSnapshot(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		s := newStore(t, b, uniqueTopic(), "riskd", smallRecords)
		older := snapshotOf(1, randomData(6000, 1))
		mustSave(t, ctx, s, older)
		mustSave(t, ctx, s, snapshotOf(2, randomData(6000, 2)))

		key := chunkKey("riskd", 0, 3)
		overwrite(t, b, s.Topic(), key, flipPayloadByte(latest(t, ctx, b, s.Topic())[key]))

		got, st := mustLoad(t, ctx, newStore(t, b, s.Topic(), "riskd", smallRecords))
		sameSnapshot(t, got, older)
		if want := []string{"snapshot 2: chunk 3: checksum mismatch"}; !slices.Equal(refusedStrings(st.Refused), want) {
			t.Errorf("Refused = %q, want %q", refusedStrings(st.Refused), want)
		}
	})
}

func TestDamagedManifestFallsBackToTheOlderSnapshot(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		s := newStore(t, b, uniqueTopic(), "riskd", smallRecords)
		older := snapshotOf(1, randomData(3000, 1))
		mustSave(t, ctx, s, older)
		mustSave(t, ctx, s, snapshotOf(2, randomData(3000, 2)))

		key := manifestKey("riskd", 0)
		value := latest(t, ctx, b, s.Topic())[key]
		overwrite(t, b, s.Topic(), key, bytes.Replace(value, []byte(`"seq":2`), []byte(`"seq":4`), 1))

		got, st := mustLoad(t, ctx, newStore(t, b, s.Topic(), "riskd", smallRecords))
		sameSnapshot(t, got, older)
		want := []string{"slot 0: manifest: checksum mismatch (the slot's newest chunks are of snapshot 2)"}
		if !slices.Equal(refusedStrings(st.Refused), want) {
			t.Errorf("Refused = %q, want %q", refusedStrings(st.Refused), want)
		}
	})
}

func TestInterruptedSaveFallsBackToThePreviousSnapshot(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		s := newStore(t, b, uniqueTopic(), "riskd", smallRecords)
		mustSave(t, ctx, s, snapshotOf(1, randomData(4000, 1)))
		previous := snapshotOf(2, randomData(4000, 2))
		mustSave(t, ctx, s, previous)

		// Save 3 wrote three chunks into slot 1 (over snapshot 1's) and
		// died before its manifest.
		data := randomData(5000, 3)
		var msgs []kafka.Message
		for i := range 3 {
			chunk := data[i*(smallRecords-chunkHeaderLen) : (i+1)*(smallRecords-chunkHeaderLen)]
			msgs = append(msgs, kafka.Message{Key: []byte(chunkKey("riskd", 1, i)), Value: appendChunk(nil, 3, 0x5eed, uint32(i), chunk)})
		}
		kafkatest.Produce(t, b.Addr(), s.Topic(), msgs...)

		got, st := mustLoad(t, ctx, newStore(t, b, s.Topic(), "riskd", smallRecords))
		sameSnapshot(t, got, previous)
		if want := []string{"snapshot 3: no manifest (save interrupted?)"}; !slices.Equal(refusedStrings(st.Refused), want) {
			t.Errorf("Refused = %q, want %q", refusedStrings(st.Refused), want)
		}
	})
}

func TestChunkOfAnotherSaveOfTheSameSeqIsRefused(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		s := newStore(t, b, uniqueTopic(), "riskd", smallRecords)
		older := snapshotOf(1, randomData(4000, 1))
		mustSave(t, ctx, s, older)
		second := snapshotOf(2, randomData(4000, 2))
		mustSave(t, ctx, s, second)

		// A second writer of Seq 2 (which should not exist) got one chunk
		// in: same Seq, index and length, a sound checksum, other data.
		other := randomData(smallRecords-chunkHeaderLen, 9)
		overwrite(t, b, s.Topic(), chunkKey("riskd", 0, 1), appendChunk(nil, 2, 0xd1ff, 1, other))

		got, st := mustLoad(t, ctx, newStore(t, b, s.Topic(), "riskd", smallRecords))
		sameSnapshot(t, got, older)
		if want := []string{"snapshot 2: chunk 1: from another save of snapshot 2"}; !slices.Equal(refusedStrings(st.Refused), want) {
			t.Errorf("Refused = %q, want %q", refusedStrings(st.Refused), want)
		}
	})
}

func TestStaleLongerChunkListDoesNotConfuseAShorterSnapshot(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		topic := uniqueTopic()
		s := newStore(t, b, topic, "riskd", smallRecords)
		mustSave(t, ctx, s, snapshotOf(1, randomData(20*smallRecords, 1))) // slot 1, 21 chunks
		mustSave(t, ctx, s, snapshotOf(2, randomData(100, 2)))

		// A writer that has seen nothing of the topic (so cannot clean up)
		// saves a short snapshot into slot 1.
		short := snapshotOf(3, randomData(3*smallRecords, 3)) // 4 chunks
		mustSave(t, ctx, newStore(t, b, topic, "riskd", smallRecords), short)
		held := latest(t, ctx, b, topic)
		if stale := held[chunkKey("riskd", 1, 20)]; len(stale) == 0 {
			t.Fatal("the stale chunk 20 of snapshot 1 is not in the topic; the test proves nothing")
		}

		got, st := mustLoad(t, ctx, newStore(t, b, topic, "riskd", smallRecords))
		sameSnapshot(t, got, short)
		if len(st.Refused) != 0 {
			t.Errorf("Refused = %v", st.Refused)
		}
	})
}

func TestSaveTombstonesStaleChunksItHasSeen(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		topic := uniqueTopic()
		writer := newStore(t, b, topic, "riskd", smallRecords)
		mustSave(t, ctx, writer, snapshotOf(1, randomData(20*smallRecords, 1))) // slot 1, 21 chunks
		mustSave(t, ctx, writer, snapshotOf(2, randomData(100, 2)))

		// A restarted writer learns the slot's chunks from Load.
		restarted := newStore(t, b, topic, "riskd", smallRecords)
		if got, _ := mustLoad(t, ctx, restarted); got.Seq != 2 {
			t.Fatalf("loaded %d, want 2", got.Seq)
		}
		short := snapshotOf(3, randomData(3*smallRecords, 3)) // 4 chunks
		st := mustSave(t, ctx, restarted, short)
		if st.Records != 4+1+17 {
			t.Errorf("SaveStats.Records = %d, want 4 chunks, a manifest and 17 tombstones", st.Records)
		}
		held := latest(t, ctx, b, topic)
		for i := 4; i <= 20; i++ {
			if v, ok := held[chunkKey("riskd", 1, i)]; !ok || v != nil {
				t.Errorf("chunk %d of slot 1: newest value %d bytes, want a tombstone", i, len(v))
			}
		}
		got, lst := mustLoad(t, ctx, newStore(t, b, topic, "riskd", smallRecords))
		sameSnapshot(t, got, short)
		if len(lst.Refused) != 0 {
			t.Errorf("Refused = %v", lst.Refused)
		}
	})
}

func TestBothSlotsBadIsNoUsableSnapshot(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		s := newStore(t, b, uniqueTopic(), "riskd", smallRecords)
		mustSave(t, ctx, s, snapshotOf(1, randomData(4000, 1)))
		mustSave(t, ctx, s, snapshotOf(2, randomData(4000, 2)))
		held := latest(t, ctx, b, s.Topic())
		overwrite(t, b, s.Topic(), chunkKey("riskd", 0, 1), flipPayloadByte(held[chunkKey("riskd", 0, 1)]))
		overwrite(t, b, s.Topic(), chunkKey("riskd", 1, 0), []byte("not a chunk at all, but long enough for a header"))

		_, st, err := newStore(t, b, s.Topic(), "riskd", smallRecords).Load(ctx)
		if !errors.Is(err, ErrNoUsableSnapshot) || errors.Is(err, ErrNoSnapshot) {
			t.Fatalf("Load: err = %v, want ErrNoUsableSnapshot", err)
		}
		for _, reason := range []string{
			"snapshot 2: chunk 1: checksum mismatch",
			"snapshot 1: chunk 0: not a snapshot chunk (bad magic)",
		} {
			if !strings.Contains(err.Error(), reason) {
				t.Errorf("Load: err = %v\nwant it to name %q", err, reason)
			}
		}
		if len(st.Refused) != 0 {
			t.Errorf("LoadStats.Refused = %v on failure; the error carries the reasons", st.Refused)
		}
	})
}

func TestEmptyOrMissingTopicIsNoSnapshot(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		s := newStore(t, b, uniqueTopic(), "riskd", 0)
		if _, _, err := s.Load(ctx); !errors.Is(err, ErrNoSnapshot) {
			t.Errorf("Load from a missing topic: err = %v, want ErrNoSnapshot", err)
		}
		if err := s.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Load(ctx); !errors.Is(err, ErrNoSnapshot) || errors.Is(err, ErrNoUsableSnapshot) {
			t.Errorf("Load from an empty topic: err = %v, want ErrNoSnapshot", err)
		}
	})
}

func TestNamesSharingATopicDoNotSeeEachOther(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		topic := uniqueTopic()
		// "group-a/1" extends "group-a": its keys must not read as group-a's.
		names := []string{"group-a", "group-a/1", "group-b"}
		want := map[string]Snapshot{}
		for i, name := range names {
			s := newStore(t, b, topic, name, smallRecords)
			for seq := uint64(1); seq <= uint64(i+1); seq++ {
				snap := snapshotOf(seq, randomData(2000*(i+1), seq+uint64(10*i)))
				snap.Meta["name"] = name
				mustSave(t, ctx, s, snap)
				want[name] = snap
			}
		}
		// Records that are no one's, and tombstones for keys of a Name
		// that never saved, change nothing.
		kafkatest.Produce(t, b.Addr(), topic,
			kafka.Message{Key: []byte("group-a"), Value: []byte("x")},
			kafka.Message{Key: []byte("group-a/2/0"), Value: []byte("x")},
			kafka.Message{Key: []byte("group-a/0/00"), Value: []byte("x")},
			kafka.Message{Key: []byte("group-a/0/manifest/x"), Value: []byte("x")},
			kafka.Message{Key: []byte("group-c/0/manifest")},
		)
		if b.Name == "embedded" { // Apache Kafka refuses a record without a key on a compacted topic
			kafkatest.Produce(t, b.Addr(), topic, kafka.Message{Value: []byte("no key")})
		}
		for _, name := range names {
			got, st := mustLoad(t, ctx, newStore(t, b, topic, name, smallRecords))
			sameSnapshot(t, got, want[name])
			if len(st.Refused) != 0 {
				t.Errorf("%s: Refused = %v", name, st.Refused)
			}
		}
		if _, _, err := newStore(t, b, topic, "group-c", 0).Load(ctx); !errors.Is(err, ErrNoSnapshot) {
			t.Errorf("Load of a Name that never saved: err = %v, want ErrNoSnapshot", err)
		}
	})
}

func TestSaveRefusesASeqThatWouldHideOrOverwriteTheNewest(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		s := newStore(t, b, uniqueTopic(), "riskd", smallRecords)
		if _, err := s.Save(ctx, snapshotOf(0, nil)); err == nil || !strings.Contains(err.Error(), "Seq 0") {
			t.Errorf("Save of Seq 0: err = %v", err)
		}
		mustSave(t, ctx, s, snapshotOf(1, randomData(100, 1)))
		mustSave(t, ctx, s, snapshotOf(2, randomData(100, 2)))
		for _, seq := range []uint64{1, 2, 4} {
			if _, err := s.Save(ctx, snapshotOf(seq, nil)); err == nil || !strings.Contains(err.Error(), "(save 3)") {
				t.Errorf("Save of Seq %d after 2: err = %v, want a refusal that says to save 3", seq, err)
			}
		}
		// A restarted writer knows the newest from Load.
		restarted := newStore(t, b, s.Topic(), "riskd", smallRecords)
		mustLoad(t, ctx, restarted)
		if _, err := restarted.Save(ctx, snapshotOf(1, nil)); err == nil {
			t.Error("Save of Seq 1 after loading 2 succeeded")
		}
		want := snapshotOf(3, randomData(100, 3))
		mustSave(t, ctx, restarted, want)
		got, _ := mustLoad(t, ctx, newStore(t, b, s.Topic(), "riskd", smallRecords))
		sameSnapshot(t, got, want)
	})
}

func TestOversizedManifestIsRefusedBeforeWriting(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		s := newStore(t, b, uniqueTopic(), "riskd", smallRecords)
		snap := snapshotOf(1, randomData(5000, 1))
		snap.Meta = map[string]string{"big": strings.Repeat("m", smallRecords)}
		if _, err := s.Save(ctx, snap); err == nil || !strings.Contains(err.Error(), "manifest") {
			t.Fatalf("Save with a manifest over MaxRecordBytes: err = %v", err)
		}
		if _, _, err := s.Load(ctx); !errors.Is(err, ErrNoSnapshot) {
			t.Errorf("Load after the refused save: err = %v, want ErrNoSnapshot (nothing written)", err)
		}
	})
}

func TestEmptyDataRoundTrips(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		s := newStore(t, b, uniqueTopic(), "riskd", 0)
		want := snapshotOf(1, nil)
		want.Meta, want.Offsets = nil, map[string]map[int]int64{}
		if st := mustSave(t, ctx, s, want); st.Records != 1 {
			t.Errorf("SaveStats.Records = %d, want just the manifest", st.Records)
		}
		got, _ := mustLoad(t, ctx, newStore(t, b, s.Topic(), "riskd", 0))
		sameSnapshot(t, got, want)
		if got.Data == nil || len(got.Data) != 0 {
			t.Errorf("Data = %v, want empty", got.Data)
		}
		if keys := slices.Collect(maps.Keys(got.Offsets)); len(keys) != 0 {
			t.Errorf("Offsets = %v", got.Offsets)
		}
	})
}

// TestNamesListsTheGroupsSnapshotsNewestFirst: a new member of a group
// finds the other members' snapshots by the group's prefix, newest first,
// each with its newest Seq, and not another group's.
func TestNamesListsTheGroupsSnapshotsNewestFirst(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, b kafkatest.Broker) {
		ctx := testCtx(t)
		topic := uniqueTopic()
		save := func(name string, seq uint64, at time.Time) {
			t.Helper()
			s := newStore(t, b, topic, name, 0)
			if err := s.Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			snap := snapshotOf(seq, []byte("state of "+name))
			snap.CreatedAt = at
			if _, err := s.Save(ctx, snap); err != nil {
				t.Fatalf("save %s %d: %v", name, seq, err)
			}
		}
		t0 := time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)
		save("riskd/a", 1, t0)
		save("riskd/a", 2, t0.Add(2*time.Minute))
		save("riskd/b", 1, t0.Add(time.Minute))
		save("riskd-other/c", 1, t0.Add(3*time.Minute))
		got, err := newStore(t, b, topic, "riskd/new", 0).Names(ctx, "riskd/")
		if err != nil {
			t.Fatal(err)
		}
		want := []Saved{{"riskd/a", 2, t0.Add(2 * time.Minute), snapshotOf(2, nil).Offsets},
			{"riskd/b", 1, t0.Add(time.Minute), snapshotOf(1, nil).Offsets}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Names = %+v, want %+v", got, want)
		}
	})
}
