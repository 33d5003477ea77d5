package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"riskd/event"
	"riskd/rules"
)

func TestLockTable(t *testing.T) {
	lt := newLockTable()
	lt.lock(1, 1000, "brute-force-lock", 0)
	if until, ok := lt.lockedUntil(1, 999); !ok || until != 1000 {
		t.Errorf("one ms before expiry: locked=%v until=%d, want locked until 1000", ok, until)
	}
	if _, ok := lt.lockedUntil(1, 1000); ok {
		t.Error("a lock is still in force at its expiry instant")
	}
	lt.lock(2, 5000, "a", 0)
	if got := lt.lock(2, 3000, "b", 0); got != 5000 {
		t.Errorf("a shorter lock shortened a longer one: until=%d, want 5000", got)
	}
	if !lt.unlock(2) {
		t.Error("unlock of a locked account reported no lock")
	}
	if _, ok := lt.lockedUntil(2, 0); ok {
		t.Error("account still locked after unlock")
	}
	if lt.unlock(3) {
		t.Error("unlock of an account never locked reported a lock")
	}
}

func TestDedupeRemembersAtLeastCapacityEvents(t *testing.T) {
	d := newDedupe(3)
	for id := uint64(1); id <= 3; id++ {
		d.record(id, rules.Action(id), uint32(id), 0)
	}
	d.record(4, rules.Block, 4, 0) // rotates: 1..3 become the previous generation
	for id := uint64(1); id <= 3; id++ {
		if a, sum, ok := d.seen(id); !ok || a != rules.Action(id) || sum != uint32(id) {
			t.Errorf("id %d after rotation: seen=%v action=%v", id, ok, a)
		}
	}
	for id := uint64(5); id <= 7; id++ {
		d.record(id, rules.Allow, 1, 0) // 7 rotates again: 1..3 are dropped
	}
	if _, _, ok := d.seen(1); ok {
		t.Error("id 1 still remembered after two rotations; the set is not bounded")
	}
	if _, _, ok := d.seen(4); !ok {
		t.Error("id 4 forgotten too early")
	}
}

func TestStatsCountAccountsAcrossShards(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 3}, set, holder)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		ev := event.Event{ID: fmt.Sprintf("s%d", i), Type: event.TypeLogin, TS: 1795478400000, AccountID: fmt.Sprintf("acct-%d", i)}
		if err := e.Submit(ctx, Message{Value: msg(ev), Done: func(*Decision, error) { wg.Done() }}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	st, err := e.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Accounts != 10 {
		t.Fatalf("Stats.Accounts = %d, want 10", st.Accounts)
	}
}

func TestUrgentMessagesGoAheadOfTheBacklog(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 1, QueueSize: 200}, set, holder)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Hold the shard so a backlog builds up behind it.
	release := make(chan struct{})
	held := make(chan struct{})
	go e.Do(ctx, "any", func(*Scorer) { close(held); <-release })
	<-held
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	submit := func(id string, urgent bool) {
		wg.Add(1)
		ev := event.Event{ID: id, Type: event.TypeLogin, TS: 1795478400000, AccountID: "acct-" + id}
		m := Message{Value: msg(ev), Urgent: urgent, Done: func(*Decision, error) {
			mu.Lock()
			order = append(order, id)
			mu.Unlock()
			wg.Done()
		}}
		if err := e.Submit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		submit(fmt.Sprintf("backlog-%d", i), false)
	}
	submit("urgent", true)
	close(release)
	wg.Wait()
	if order[0] != "urgent" {
		t.Fatalf("urgent message decided at position %d, want first", slices.Index(order, "urgent"))
	}
}
