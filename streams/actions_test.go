package streams

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/internal/kafkatest"
)

// When a broker cannot answer the time query of ReadActions, the
// partition is read from its start: the commands at or after since are
// kept, in offset order, and the older ones and other records left out.
func TestActionsAreFoundTheLongWayWhenTheTimeQueryFails(t *testing.T) {
	broker := kafkatest.Embedded(t)
	const topic = "risk.actions"
	if err := EnsureTopics(t.Context(), []string{broker.Addr()}, 1, topic); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	rec := func(typ, account string, at time.Time) kafka.Message {
		b, _ := json.Marshal(ActionRecord{Type: typ, AccountID: account, Reason: "r", At: at})
		return kafka.Message{Key: []byte(account), Value: b, Time: at}
	}
	kafkatest.Produce(t, broker.Addr(), topic,
		rec("lock", "acct-old", since.Add(-time.Minute)),
		rec("lock", "acct-1", since),
		kafka.Message{Key: []byte("x"), Value: []byte(`{"type":"alert"}`), Time: since.Add(time.Second)},
		rec("unlock", "acct-1", since.Add(2*time.Second)))

	client := &kafka.Client{Addr: kafka.TCP(broker.Addr())}
	got, err := readAllSince(t.Context(), []string{broker.Addr()}, client, topic, 0, 4, since)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Type != "lock" || got[0].AccountID != "acct-1" || got[1].Type != "unlock" {
		t.Fatalf("read %+v, want acct-1's lock then its unlock", got)
	}
	// An empty partition is nothing to read, not a wait.
	if got, err := readAllSince(t.Context(), []string{broker.Addr()}, client, topic, 0, 0, since); err != nil || len(got) != 0 {
		t.Fatalf("empty range: %v %v", got, err)
	}
}
