package streams

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"riskd/engine"
	"riskd/internal/kafkatest"
)

// bigEventBytes is an input just under the broker's default
// message.max.bytes (1,048,588, on kfake as on Apache Kafka) and the
// test producer's batch limit (1,048,576), and over the output writer's
// batch limit of 1,000,000: the decoder refuses it (over its 64 KiB limit),
// so it goes to the dead-letter topic.
const bigEventBytes = 1_040_000

// bigEvent is a JSON event of exactly size bytes whose event_id comes
// first, padded by a long attribute.
func bigEvent(t *testing.T, id, account string, size int) kafka.Message {
	t.Helper()
	head := fmt.Sprintf(`{"event_id":%q,"type":"payment","ts":1795538400000,"account_id":%q,"amount":100,"currency":"USD","pad":"`, id, account)
	pad := size - len(head) - len(`"}`)
	if pad < 0 {
		t.Fatalf("bigEvent: size %d is too small", size)
	}
	v := make([]byte, 0, size)
	v = append(v, head...)
	v = append(v, bytes.Repeat([]byte("x"), pad)...)
	v = append(v, `"}`...)
	return kafka.Message{Key: []byte(account), Value: v}
}

// normalEvents are n small payments over a few accounts, ids "n0".."n<n-1>".
func normalEvents(n int) (msgs []kafka.Message, ids []string) {
	const ts = 1795538400000
	for i := range n {
		id := "n" + strconv.Itoa(i)
		acct := "acct-" + strconv.Itoa(i%5)
		msgs = append(msgs, inputEvent(id, "payment", acct, ts+int64(i)*1000, `,"amount":1500,"currency":"USD","channel":"qr"`))
		ids = append(ids, id)
	}
	return msgs, ids
}

// memStore is a DecisionStore in memory: the event ids written, once each.
type memStore struct {
	mu  sync.Mutex
	ids map[string]bool
}

func newMemStore() *memStore { return &memStore{ids: map[string]bool{}} }

func (s *memStore) WriteDecisions(_ context.Context, ds []*engine.Decision) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		s.ids[d.EventID] = true
	}
	return nil
}

// waitFor waits until every id is stored, or fails the test when ctx ends:
// a stream that stalls never stores them.
func (s *memStore) waitFor(ctx context.Context, t *testing.T, ids ...string) {
	t.Helper()
	for {
		s.mu.Lock()
		var missing []string
		for _, id := range ids {
			if !s.ids[id] {
				missing = append(missing, id)
			}
		}
		s.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the stream stalled: %d of %d decisions never stored (%v...)", len(missing), len(ids), missing[0])
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// eventIDs are the riskd-event-id headers of msgs, sorted.
func eventIDs(msgs []kafka.Message) []string {
	var ids []string
	for _, m := range msgs {
		ids = append(ids, kafkatest.Headers(m)[HeaderEventID])
	}
	slices.Sort(ids)
	return ids
}

// counterValues gathers a counter vector: its value by the first label's
// value. Series initialised at zero show up too.
func counterValues(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			label := ""
			if ls := m.GetLabel(); len(ls) > 0 {
				label = ls[0].GetValue()
			}
			got[label] = m.GetCounter().GetValue()
		}
	}
	return got
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestOversizeMessageIsDeadLetteredTruncatedAndTheStreamGoesOn(t *testing.T) {
	kafkatest.Run(t, testOversizeMessageIsDeadLetteredTruncatedAndTheStreamGoesOn)
}

func testOversizeMessageIsDeadLetteredTruncatedAndTheStreamGoesOn(t *testing.T, b kafkatest.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rig := newTestRig(t, b)
	payments := rig.topics.Inputs[0]
	big := bigEvent(t, "big-1", "acct-1", bigEventBytes)
	rig.produce(t, payments, big)
	normal, ids := normalEvents(20)
	rig.produce(t, payments, normal...)

	store := newMemStore()
	m := NewMetrics(nil)
	runPipelineWith(t, rig, store, "oversize", m, func(c *Config) { c.DrainTimeout = 2 * time.Second })
	store.waitFor(ctx, t, ids...)

	decisions := rig.readAll(t, rig.topics.Decisions, len(ids))
	if got, want := eventIDs(decisions), slices.Sorted(slices.Values(ids)); !slices.Equal(got, want) {
		t.Errorf("decisions published for %v, want %v", got, want)
	}
	dlq := rig.readAll(t, rig.topics.DLQ, 1)
	if len(dlq) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dlq))
	}
	dl := dlq[0]
	h := kafkatest.Headers(dl)
	for k, want := range map[string]string{
		HeaderEventID:         "big-1",
		HeaderSourceTopic:     payments,
		HeaderTruncated:       "true",
		HeaderOriginalBytes:   strconv.Itoa(len(big.Value)),
		HeaderOriginalSHA256:  sha256Hex(big.Value),
		HeaderSourcePartition: h[HeaderSourcePartition], // present, any value
	} {
		if h[k] != want || h[k] == "" {
			t.Errorf("dead letter header %s = %q, want %q", k, h[k], want)
		}
	}
	if !strings.Contains(h[HeaderError], "bytes, limit is") {
		t.Errorf("dead letter reason = %q, want the size refusal", h[HeaderError])
	}
	if n := outputBytes(dl); n > DefaultMaxOutputBytes {
		t.Errorf("dead letter is %d bytes (key, value, headers), over the default bound %d", n, DefaultMaxOutputBytes)
	}
	if len(dl.Value) == 0 || !bytes.HasPrefix(big.Value, dl.Value) {
		t.Errorf("dead letter body (%d bytes) is not a prefix of the input", len(dl.Value))
	}
	if got := counterValues(t, m.Parked); got[rig.topics.DLQ] != 0 || len(got) != 4 {
		t.Errorf("parked outputs = %v, want zero for each of the 4 output topics", got)
	}
}

func TestOutputTheBrokerRefusesIsParkedAndTheStreamGoesOn(t *testing.T) {
	kafkatest.Run(t, testOutputTheBrokerRefusesIsParkedAndTheStreamGoesOn)
}

// The decisions topic takes no message over 64 bytes, so the broker
// refuses every decision record (MESSAGE_TOO_LARGE) however often it is
// sent; each is parked on the DLQ and the stream goes on.
func testOutputTheBrokerRefusesIsParkedAndTheStreamGoesOn(t *testing.T, b kafkatest.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rig := newTestRig(t, b)
	rig.topics.Decisions += "-tiny"
	createTopic(t, b.Addr(), rig.topics.Decisions, map[string]string{"max.message.bytes": "64"})
	normal, ids := normalEvents(10)
	rig.produce(t, rig.topics.Inputs[0], normal...)

	store := newMemStore()
	m := NewMetrics(nil)
	runPipelineWith(t, rig, store, "refused", m, func(c *Config) {
		c.DrainTimeout = 2 * time.Second
		c.RetryMin, c.RetryMax = 10*time.Millisecond, 50*time.Millisecond
		c.MaxPublishAttempts = 2
	})
	store.waitFor(ctx, t, ids...)

	dlq := rig.readAll(t, rig.topics.DLQ, len(ids))
	if got, want := eventIDs(dlq), slices.Sorted(slices.Values(ids)); !slices.Equal(got, want) {
		t.Fatalf("parked decisions for %v, want %v", got, want)
	}
	for _, dl := range dlq {
		h := kafkatest.Headers(dl)
		if h[HeaderParkedTopic] != rig.topics.Decisions {
			t.Errorf("parked message names topic %q, want %q", h[HeaderParkedTopic], rig.topics.Decisions)
		}
		if !strings.Contains(h[HeaderError], "MESSAGE_TOO_LARGE") {
			t.Errorf("parked message error = %q, want the broker's refusal", h[HeaderError])
		}
		if h[HeaderOriginalBytes] != strconv.Itoa(len(dl.Value)) || h[HeaderOriginalSHA256] != sha256Hex(dl.Value) {
			t.Errorf("parked decision %s: size/checksum headers %s/%s do not match its whole body (%d bytes)",
				h[HeaderEventID], h[HeaderOriginalBytes], h[HeaderOriginalSHA256], len(dl.Value))
		}
		if _, ok := h[HeaderTruncated]; ok {
			t.Errorf("a small decision was marked truncated")
		}
	}
	if got := counterValues(t, m.Parked); got[rig.topics.Decisions] != float64(len(ids)) {
		t.Errorf("parked outputs = %v, want %d for %s", got, len(ids), rig.topics.Decisions)
	}
}

func TestOutputTheWriterRefusesIsParkedAndTheStreamGoesOn(t *testing.T) {
	kafkatest.Run(t, testOutputTheWriterRefusesIsParkedAndTheStreamGoesOn)
}

// MaxOutputBytes above the writer's batch limit (which Validate refuses)
// lets the big dead letter through untruncated; the writer refuses it
// (kerr.MessageTooLarge, before sending it) on every attempt, so it is
// parked in a small dead letter, and the stream goes on.
func testOutputTheWriterRefusesIsParkedAndTheStreamGoesOn(t *testing.T, b kafkatest.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rig := newTestRig(t, b)
	payments := rig.topics.Inputs[0]
	big := bigEvent(t, "big-2", "acct-2", bigEventBytes)
	rig.produce(t, payments, big)
	normal, ids := normalEvents(10)
	rig.produce(t, payments, normal...)

	store := newMemStore()
	m := NewMetrics(nil)
	runPipelineWith(t, rig, store, "writer-refused", m, func(c *Config) {
		c.DrainTimeout = 2 * time.Second
		c.RetryMin, c.RetryMax = 10*time.Millisecond, 50*time.Millisecond
		c.MaxOutputBytes = 2_000_000
		c.MaxPublishAttempts = 2
	})
	store.waitFor(ctx, t, ids...)
	if got, want := eventIDs(rig.readAll(t, rig.topics.Decisions, len(ids))), slices.Sorted(slices.Values(ids)); !slices.Equal(got, want) {
		t.Errorf("decisions published for %v, want %v", got, want)
	}

	dlq := rig.readAll(t, rig.topics.DLQ, 1)
	if len(dlq) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dlq))
	}
	dl := dlq[0]
	h := kafkatest.Headers(dl)
	for k, want := range map[string]string{
		HeaderEventID:        "big-2",
		HeaderParkedTopic:    rig.topics.DLQ,
		HeaderSourceTopic:    payments,
		HeaderTruncated:      "true",
		HeaderOriginalBytes:  strconv.Itoa(len(big.Value)),
		HeaderOriginalSHA256: sha256Hex(big.Value),
	} {
		if h[k] != want {
			t.Errorf("parked dead letter header %s = %q, want %q", k, h[k], want)
		}
	}
	if !strings.Contains(h[HeaderError], "MESSAGE_TOO_LARGE") || !strings.Contains(h[HeaderError], "bytes, limit is") {
		t.Errorf("parked dead letter error = %q, want the writer's refusal and the decoder's reason", h[HeaderError])
	}
	if n := outputBytes(dl); n > maxParkedBytes {
		t.Errorf("parked dead letter is %d bytes, want at most %d", n, maxParkedBytes)
	}
	if len(dl.Value) == 0 || !bytes.HasPrefix(big.Value, dl.Value) {
		t.Errorf("parked body (%d bytes) is not a prefix of the input", len(dl.Value))
	}
	if got := counterValues(t, m.Parked); got[rig.topics.DLQ] != 1 {
		t.Errorf("parked outputs = %v, want 1 for %s", got, rig.topics.DLQ)
	}
}

// createTopic creates topic with 4 partitions and configs.
func createTopic(t testing.TB, addr, topic string, configs map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tc := kafka.TopicConfig{Topic: topic, NumPartitions: 4, ReplicationFactor: -1}
	for k, v := range configs {
		tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{tc}})
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if err := resp.Errors[topic]; err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

func TestABatchTheBrokerRefusesParksNothingItTakesAlone(t *testing.T) {
	kafkatest.Run(t, testABatchTheBrokerRefusesParksNothingItTakesAlone)
}

// The decisions topic takes one decision record but not twenty in one
// batch: the refusal names the batch, not a message, so the retries go
// one message at a time and every decision is published, none parked.
func testABatchTheBrokerRefusesParksNothingItTakesAlone(t *testing.T, b kafkatest.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rig := newTestRig(t, b)
	rig.topics.Decisions += "-small"
	createTopic(t, b.Addr(), rig.topics.Decisions, map[string]string{"max.message.bytes": "4096"})
	const n = 20
	var msgs []kafka.Message
	var ids []string
	for i := range n {
		id := "s" + strconv.Itoa(i)
		msgs = append(msgs, inputEvent(id, "payment", "acct-1", 1795538400000+int64(i)*1000, `,"amount":1500,"currency":"USD","channel":"qr"`))
		ids = append(ids, id)
	}
	rig.produce(t, rig.topics.Inputs[0], msgs...)

	store := newMemStore()
	m := NewMetrics(nil)
	runPipelineWith(t, rig, store, "batch-refused", m, func(c *Config) {
		c.DrainTimeout = 2 * time.Second
		c.RetryMin, c.RetryMax = 10*time.Millisecond, 50*time.Millisecond
		c.MaxPublishAttempts = 2
		// One output batch of all n results, so their decision records
		// (one account, one partition) go to the broker in one batch.
		c.BatchSize, c.FlushInterval = n, 5*time.Second
	})
	store.waitFor(ctx, t, ids...)
	decisions := rig.readAll(t, rig.topics.Decisions, n)
	if got, want := eventIDs(decisions), slices.Sorted(slices.Values(ids)); !slices.Equal(got, want) {
		t.Errorf("decisions published for %v, want %v", got, want)
	}
	for _, d := range decisions {
		if len(d.Value) > 4096-100 {
			t.Fatalf("a decision record is %d bytes: too large for this test's topic limit", len(d.Value))
		}
	}
	if got := counterValues(t, m.Parked); got[rig.topics.Decisions] != 0 {
		t.Errorf("parked outputs = %v, want none", got)
	}
	if got := counterValues(t, m.Errors); got["kafka_out"] == 0 {
		t.Errorf("no output write failed: the broker took the batch, so the test showed nothing")
	}
}
