package streams

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"riskd/internal/kafkatest"
)

func TestDeadLetterBoundsItsSizeAndNamesTheEvent(t *testing.T) {
	topics := DefaultTopics()
	at := time.Date(2026, 11, 24, 16, 31, 0, 0, time.UTC)
	const limit = 100_000
	big := bigEvent(t, "big-1", "acct-1", 300_000).Value
	cases := []struct {
		name      string
		value     []byte
		reason    string
		wantID    string // "" when the header must be absent
		truncated bool
	}{
		{name: "a small message is forwarded whole with its event id",
			value: []byte(`{"event_id":"e1","type":"payment","ts":"yesterday"}`), reason: "invalid event: ts", wantID: "e1"},
		{name: "a message over the bound is cut to fit with its size and checksum",
			value: big, reason: "invalid event: message is 300000 bytes, limit is 65536", wantID: "big-1", truncated: true},
		{name: "a long reason is cut to the header bound",
			value: []byte(`{"event_id":"e2"}`), reason: strings.Repeat("é", 5000), wantID: "e2"},
		{name: "truncated JSON still names its event",
			value: []byte(`{"event_id":"e3","type":"payment"`), reason: "malformed JSON", wantID: "e3"},
		{name: "a message that is not JSON has no event id",
			value: []byte("\x00\x01binary"), reason: "malformed JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := kafka.Message{Topic: "payments", Partition: 3, Offset: 42, Key: []byte("acct-1"), Value: c.value}
			dl := topics.deadLetter(in, errors.New(c.reason), at, limit)
			h := kafkatest.Headers(dl)
			if dl.Topic != topics.DLQ || string(dl.Key) != "acct-1" {
				t.Errorf("dead letter on %s keyed %q, want %s keyed acct-1", dl.Topic, dl.Key, topics.DLQ)
			}
			if id, ok := h[HeaderEventID]; id != c.wantID || ok != (c.wantID != "") {
				t.Errorf("%s = %q (present %v), want %q", HeaderEventID, id, ok, c.wantID)
			}
			for k, want := range map[string]string{HeaderSourceTopic: "payments", HeaderSourcePartition: "3",
				HeaderSourceOffset: "42", HeaderFailedAt: "2026-11-24T16:31:00Z"} {
				if h[k] != want {
					t.Errorf("%s = %q, want %q", k, h[k], want)
				}
			}
			if n := outputBytes(dl); n > limit {
				t.Errorf("dead letter is %d bytes, over the bound %d", n, limit)
			}
			if r := h[HeaderError]; len(r) > maxHeaderBytes || !utf8.ValidString(r) || !strings.HasPrefix(c.reason, strings.TrimSuffix(r, "…")) {
				t.Errorf("%s is %d bytes (valid UTF-8: %v), want a prefix of the reason within %d", HeaderError, len(r), utf8.ValidString(r), maxHeaderBytes)
			}
			if !c.truncated {
				if !bytes.Equal(dl.Value, c.value) {
					t.Errorf("body changed: %d bytes, want the %d input bytes untouched", len(dl.Value), len(c.value))
				}
				for _, k := range []string{HeaderTruncated, HeaderOriginalBytes, HeaderOriginalSHA256} {
					if _, ok := h[k]; ok {
						t.Errorf("whole dead letter has header %s", k)
					}
				}
				return
			}
			if h[HeaderTruncated] != "true" || h[HeaderOriginalBytes] != strconv.Itoa(len(c.value)) || h[HeaderOriginalSHA256] != sha256Hex(c.value) {
				t.Errorf("truncation headers %s=%q %s=%q %s=%q, want true, %d and the input's SHA-256",
					HeaderTruncated, h[HeaderTruncated], HeaderOriginalBytes, h[HeaderOriginalBytes],
					HeaderOriginalSHA256, h[HeaderOriginalSHA256], len(c.value))
			}
			if !bytes.HasPrefix(c.value, dl.Value) || limit-outputBytes(dl) > 0 {
				t.Errorf("body is %d bytes and the message %d: want the input's first bytes, filling the bound %d exactly",
					len(dl.Value), outputBytes(dl), limit)
			}
		})
	}
}

func TestDeadLetterCutsAnOversizeKey(t *testing.T) {
	in := kafka.Message{Topic: "payments", Key: bytes.Repeat([]byte("k"), 10_000), Value: []byte(`{}`)}
	dl := DefaultTopics().deadLetter(in, errors.New("bad"), time.Now(), DefaultMaxOutputBytes)
	if len(dl.Key) != maxHeaderBytes {
		t.Errorf("key is %d bytes, want it cut to %d", len(dl.Key), maxHeaderBytes)
	}
}

func TestEventIDOf(t *testing.T) {
	long := strings.Repeat("a", maxHeaderBytes+1)
	far := `{"pad":"` + strings.Repeat("x", eventIDScanBytes) + `","event_id":"far"}`
	cases := []struct {
		name, raw, want string
	}{
		{"the first field", `{"event_id":"e1","type":"payment"}`, "e1"},
		{"after other fields of every kind", `{"a":{"event_id":"inner","b":[1,{"c":"]}"}]},"n":-1.5e3,"t":true,"z":null,"s":"x\"y","event_id":"e2"}`, "e2"},
		{"with blanks around", " \n{ \"event_id\" :\t\"e3\" }", "e3"},
		{"with escapes", `{"event_id":"e\u0034\"q"}`, `e4"q`},
		{"with an escaped key", `{"event\u005fid":"e5"}`, "e5"},
		{"the first of two", `{"event_id":"e6","event_id":"e7"}`, "e6"},
		{"in a cut message", `{"event_id":"e8","pad":"xxx`, "e8"},
		{"not at the top level", `{"a":{"event_id":"inner"}}`, ""},
		{"not a string", `{"event_id":123}`, ""},
		{"empty", `{"event_id":""}`, ""},
		{"too long for a header", `{"event_id":"` + long + `"}`, ""},
		{"beyond the scanned prefix", far, ""},
		{"an array", `[{"event_id":"e9"}]`, ""},
		{"a cut string", `{"event_id":"e10`, ""},
		{"not JSON", "\x00\xff", ""},
		{"empty input", ``, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := eventIDOf([]byte(c.raw))
			if got != c.want || ok != (c.want != "") {
				t.Errorf("eventIDOf = %q, %v; want %q", got, ok, c.want)
			}
		})
	}
}

func TestParkedLetterNamesTheTopicAndKeepsTheOriginalsSize(t *testing.T) {
	topics := DefaultTopics()
	at := time.Date(2026, 11, 24, 16, 31, 0, 0, time.UTC)
	decision := kafka.Message{Topic: topics.Decisions, Key: []byte("acct-1"), Value: []byte(`{"event_id":"e1"}`),
		Headers: []kafka.Header{{Key: HeaderEventID, Value: []byte("e1")}}}
	p := topics.parkedLetter(decision, kafka.MessageSizeTooLarge, at, DefaultMaxOutputBytes)
	h := kafkatest.Headers(p)
	for k, want := range map[string]string{
		HeaderParkedTopic: topics.Decisions, HeaderEventID: "e1", HeaderFailedAt: "2026-11-24T16:31:00Z",
		HeaderError: kafka.MessageSizeTooLarge.Error(), HeaderOriginalBytes: strconv.Itoa(len(decision.Value)),
		HeaderOriginalSHA256: sha256Hex(decision.Value),
	} {
		if h[k] != want {
			t.Errorf("%s = %q, want %q", k, h[k], want)
		}
	}
	if p.Topic != topics.DLQ || !bytes.Equal(p.Value, decision.Value) || h[HeaderTruncated] != "" {
		t.Errorf("parked on %s with %d bytes (truncated %q), want %s with the whole body", p.Topic, len(p.Value), h[HeaderTruncated], topics.DLQ)
	}

	// A dead letter that was already cut keeps the size and checksum of
	// the input it came from, and its own reason after the refusal.
	big := bigEvent(t, "big-1", "acct-1", 300_000)
	big.Topic = "payments"
	dl := topics.deadLetter(big, errors.New("invalid event: too large"), at, 100_000)
	if kafkatest.Headers(dl)[HeaderTruncated] != "true" {
		t.Fatal("the dead letter was not cut")
	}
	p = topics.parkedLetter(dl, kafka.MessageSizeTooLarge, at, DefaultMaxOutputBytes)
	h = kafkatest.Headers(p)
	if n := outputBytes(p); n > maxParkedBytes || n < maxParkedBytes-64 {
		t.Errorf("parked dead letter is %d bytes, want %d (the parked bound)", n, maxParkedBytes)
	}
	if h[HeaderOriginalBytes] != "300000" || h[HeaderOriginalSHA256] != sha256Hex(big.Value) || h[HeaderTruncated] != "true" {
		t.Errorf("size/checksum %s/%s truncated %q, want the input's", h[HeaderOriginalBytes], h[HeaderOriginalSHA256], h[HeaderTruncated])
	}
	if want := kafka.MessageSizeTooLarge.Error() + "; dead letter of: invalid event: too large"; h[HeaderError] != want {
		t.Errorf("%s = %q, want %q", HeaderError, h[HeaderError], want)
	}
	if h[HeaderEventID] != "big-1" || h[HeaderSourceTopic] != "payments" || h[HeaderParkedTopic] != topics.DLQ {
		t.Errorf("parked dead letter headers %v lack the event id, source or parked topic", h)
	}
	if !bytes.HasPrefix(big.Value, p.Value) {
		t.Errorf("parked body is not a prefix of the input")
	}
}

func TestRefusedTellsPermanentFromTransientErrors(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{kerr.MessageTooLarge, true},
		{fmt.Errorf("%w (uncompressed_bytes=2000000)", kerr.MessageTooLarge), true},
		{kerr.CorruptMessage, true},
		{kerr.InvalidRecord, true},
		{kerr.TopicAuthorizationFailed, true},
		{kerr.LeaderNotAvailable, false},
		{kerr.NotLeaderForPartition, false},
		{kerr.RequestTimedOut, false},
		{kerr.NotEnoughReplicas, false},
		{kerr.UnknownTopicOrPartition, false},
		{kgo.ErrRecordTimeout, false},
		{fmt.Errorf("%w: %w", kgo.ErrRecordRetries, kerr.NotEnoughReplicas), false},
		{io.ErrUnexpectedEOF, false},
		{context.DeadlineExceeded, false},
		{errors.New("dial tcp 127.0.0.1:9092: connect: connection refused"), false},
	}
	for _, c := range cases {
		if got := refused(c.err); got != c.want {
			t.Errorf("refused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"the zero config takes the defaults", Config{}, ""},
		{"a bound just within the writer's limit", Config{MaxOutputBytes: writerBatchBytes - recordOverhead, MaxPublishAttempts: 1}, ""},
		{"a bound over the writer's limit",
			Config{MaxOutputBytes: 1_000_000},
			"output.max_output_bytes: 1000000 is above 999000, the Kafka writer's batch limit of 1000000 bytes less 1000 for record framing; the writer would refuse a message that large"},
		{"a bound too small for a dead letter's headers",
			Config{MaxOutputBytes: 1000},
			"output.max_output_bytes: 1000 is too small to hold a dead letter's headers; want at least 16384"},
		{"a negative bound", Config{MaxOutputBytes: -1}, "output.max_output_bytes: -1 is negative; 0 means 900000"},
		{"negative attempts", Config{MaxPublishAttempts: -2}, "output.max_publish_attempts: -2 is negative; 0 means 3"},
		{"the Java client's partitioner", Config{Partitioner: PartitionerMurmur2}, ""},
		{"an unknown partitioner", Config{Partitioner: "crc32"},
			`kafka.partitioner: "crc32" is not one of fnv1a (kafka-go's Hash, Sarama's default) or murmur2 (the Java client's)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ""
			if err := c.cfg.Validate(); err != nil {
				got = err.Error()
			}
			if got != c.want {
				t.Errorf("Validate() = %q\nwant         %q", got, c.want)
			}
		})
	}
}
