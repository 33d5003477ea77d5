package streams

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/internal/kafkatest"
)

// The DLQ page's read: the newest dead letters across partitions, newest
// first, with their reasons and sources, payloads cut to the bound.
func TestDeadLettersReadsTheNewestAcrossPartitions(t *testing.T) {
	b := kafkatest.Embedded(t)
	topics := DefaultTopics()
	topics.DLQ = "dlq-read" + kafkatest.Suffix()
	p := &Pipeline{cfg: Config{Brokers: []string{b.Addr()}, Topics: topics}}
	if err := EnsureTopics(t.Context(), []string{b.Addr()}, 3, topics.DLQ); err != nil {
		t.Fatal(err)
	}
	if got, err := p.DeadLetters(t.Context(), 5); err != nil || len(got) != 0 {
		t.Fatalf("empty topic: %v, %v, want none", got, err)
	}

	base := time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC)
	var msgs []kafka.Message
	for i := range 12 {
		in := kafka.Message{Topic: "payments", Partition: i % 3, Offset: int64(100 + i), Key: []byte(fmt.Sprintf("acct-%d", i)),
			Value: []byte(fmt.Sprintf(`{"event_id":"e%d","ts":"never"}`, i))}
		dl := topics.deadLetter(in, fmt.Errorf("invalid event %d: ts", i), base, 1<<20)
		dl.Time = base.Add(time.Duration(i) * time.Second)
		dl.Topic = "" // the writer names it
		msgs = append(msgs, dl)
	}
	big := topics.deadLetter(kafka.Message{Topic: "payments", Key: []byte("acct-big"),
		Value: []byte(strings.Repeat("é", MaxDeadLetterPayload))}, errors.New("malformed JSON"), base, 1<<20)
	big.Time, big.Topic = base.Add(time.Minute), ""
	msgs = append(msgs, big)
	kafkatest.Produce(t, b.Addr(), topics.DLQ, msgs...)

	got, err := p.DeadLetters(t.Context(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("%d dead letters, want 5", len(got))
	}
	if got[0].Reason != "malformed JSON" || got[0].PayloadBytes != 2*MaxDeadLetterPayload || len(got[0].Payload) > MaxDeadLetterPayload+3 ||
		!strings.HasPrefix(strings.Repeat("é", MaxDeadLetterPayload), strings.TrimSuffix(got[0].Payload, "\uFFFD")) {
		t.Errorf("newest: %+v, want the big one, its payload cut to %d bytes", got[0], MaxDeadLetterPayload)
	}
	for i, dl := range got[1:] {
		n := 11 - i
		want := DeadLetter{Reason: fmt.Sprintf("invalid event %d: ts", n), SourceTopic: "payments",
			SourcePartition: fmt.Sprint(n % 3), SourceOffset: fmt.Sprint(100 + n), EventID: fmt.Sprintf("e%d", n)}
		if dl.Reason != want.Reason || dl.SourceTopic != want.SourceTopic || dl.SourcePartition != want.SourcePartition ||
			dl.SourceOffset != want.SourceOffset || dl.EventID != want.EventID || !dl.Time.Equal(base.Add(time.Duration(n)*time.Second)) {
			t.Errorf("dead letter %d: %+v, want %+v at %s", i+1, dl, want, base.Add(time.Duration(n)*time.Second))
		}
	}
	if _, err := p.DeadLetters(t.Context(), MaxDeadLetters+1); !errors.Is(err, ErrBadDeadLetterLimit) {
		t.Errorf("over the bound: %v, want ErrBadDeadLetterLimit", err)
	}
}
