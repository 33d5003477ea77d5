package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

// FollowActions goes on exactly where ReadActions stopped: a command
// published before the read is not followed again, every later one is, in
// order, with its id from the header; placed records come through, other
// records do not.
func TestFollowActionsGoesOnWhereReadActionsStopped(t *testing.T) {
	broker := kafkatest.Embedded(t)
	brokers := []string{broker.Addr()}
	topic := "risk.actions-" + kafkatest.Suffix()
	if err := EnsureTopics(t.Context(), brokers, 2, topic); err != nil {
		t.Fatal(err)
	}
	rec := func(a ActionRecord, id string) kafka.Message {
		a.At = time.Now()
		b, _ := json.Marshal(a)
		return kafka.Message{Key: []byte(a.AccountID), Value: b, Headers: []kafka.Header{{Key: HeaderEventID, Value: []byte(id)}}}
	}
	kafkatest.Produce(t, broker.Addr(), topic, rec(ActionRecord{Type: "lock", AccountID: "acct-1", Instance: "a"}, "lock-1"))
	before, read, err := ReadActions(t.Context(), brokers, topic, time.Unix(0, 0))
	if err != nil || len(before) != 1 || before[0].ID != "lock-1" || before[0].Instance != "a" {
		t.Fatalf("ReadActions: %+v %v, want lock-1 of instance a", before, err)
	}
	if len(read) != 2 {
		t.Fatalf("ReadActions stopped at %v, want both partitions", read)
	}

	got := make(chan ActionRecord, 8)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- FollowActions(ctx, brokers, topic, read, func(a ActionRecord) { got <- a }, nil) }()
	kafkatest.Produce(t, broker.Addr(), topic,
		rec(ActionRecord{Type: "unlock", AccountID: "acct-1", Instance: "a"}, "unlock-1"),
		kafka.Message{Key: []byte("acct-1"), Value: []byte(`{"type":"alert","account_id":"acct-1"}`)},
		rec(ActionRecord{Type: ActionPlaced, AccountID: "acct-1", Instance: "b", Ref: "unlock-1"}, "placed-b-unlock-1"),
		rec(ActionRecord{Type: ActionSuppress, AccountID: "acct-1", RuleID: "r1", Instance: "a"}, "suppress-1"))
	var ids []string
	for len(ids) < 3 {
		select {
		case a := <-got:
			ids = append(ids, a.ID)
		case <-time.After(10 * time.Second):
			t.Fatalf("followed %v, then nothing for 10s", ids)
		}
	}
	if want := []string{"unlock-1", "placed-b-unlock-1", "suppress-1"}; !slices.Equal(ids, want) {
		t.Fatalf("followed %v, want %v", ids, want)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("FollowActions returned %v, want context.Canceled", err)
	}
	select {
	case a := <-got:
		t.Fatalf("followed %+v more", a)
	default:
	}
}

// An instance's own later command on an aspect supersedes another
// instance's earlier one on the same aspect, not on another.
func TestOwnCommandsSupersedeEarlierOnesOfOtherInstances(t *testing.T) {
	p := &Pipeline{}
	t0 := time.Now()
	p.NoteOwnCommand(ActionRecord{Type: "unlock", AccountID: "acct-1", At: t0})
	p.NoteOwnCommand(ActionRecord{Type: ActionSuppress, AccountID: "acct-1", RuleID: "r1", At: t0})
	for _, c := range []struct {
		a    ActionRecord
		want bool
	}{
		{ActionRecord{Type: "lock", AccountID: "acct-1", At: t0.Add(-time.Second)}, true},  // older lock: the unlock stands
		{ActionRecord{Type: "lock", AccountID: "acct-1", At: t0.Add(time.Second)}, false},  // newer: applied
		{ActionRecord{Type: "lock", AccountID: "acct-2", At: t0.Add(-time.Second)}, false}, // another account
		{ActionRecord{Type: ActionUnsuppress, AccountID: "acct-1", RuleID: "r1", At: t0.Add(-time.Second)}, true},
		{ActionRecord{Type: ActionUnsuppress, AccountID: "acct-1", RuleID: "r2", At: t0.Add(-time.Second)}, false}, // another rule
		{ActionRecord{Type: "lock", AccountID: "acct-1", At: t0.Add(-ownCommandMemory - time.Second)}, false},      // beyond memory
	} {
		if got := p.OwnCommandAfter(c.a); got != c.want {
			t.Errorf("OwnCommandAfter(%s of %s, rule %q, %v after the own one) = %v, want %v",
				c.a.Type, c.a.AccountID, c.a.RuleID, c.a.At.Sub(t0), got, c.want)
		}
	}
	// The memory is bounded.
	for i := range ownCommandsMax + 10 {
		p.NoteOwnCommand(ActionRecord{Type: "lock", AccountID: fmt.Sprint("acct-x", i), At: t0})
	}
	if n := len(p.own); n > ownCommandsMax {
		t.Fatalf("%d own commands remembered, want at most %d", n, ownCommandsMax)
	}
}
