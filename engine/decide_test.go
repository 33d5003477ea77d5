package engine

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"riskd/event"
	"riskd/internal/keyhash"
)

// mustDecide decides raw on e and fails the test if it cannot.
func mustDecide(t testing.TB, ctx context.Context, e *Engine, raw []byte) *Decision {
	t.Helper()
	d, err := e.Decide(ctx, Message{Value: raw})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// startEngine runs e until the test ends and returns the context it runs
// under.
func startEngine(t testing.TB, e *Engine) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { e.Run(ctx); close(ran) }()
	t.Cleanup(func() { cancel(); <-ran })
	return ctx
}

func TestDecideReturnsEachCallersOwnDecision(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 4, QueueSize: 2, Now: fixedClock()}, set, holder)
	ctx := startEngine(t, e)
	const callers, perCaller = 8, 50
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acct := "acct-" + strconv.Itoa(c)
			for i := range perCaller {
				id := acct + "-" + strconv.Itoa(i)
				d, err := e.Decide(ctx, Message{Value: login(id, acct, t0+int64(i), false), Urgent: i%2 == 0})
				if err != nil {
					t.Error(err)
					return
				}
				if d.EventID != id || d.AccountID != acct {
					t.Errorf("Decide(%s of %s) returned the decision of %s of %s", id, acct, d.EventID, d.AccountID)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestDecideKeepsStateBetweenCalls(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 2, Now: fixedClock()}, set, holder)
	ctx := startEngine(t, e)
	for i := 1; i <= 5; i++ {
		mustDecide(t, ctx, e, login("f"+strconv.Itoa(i), "a1", t0+int64(i), true))
	}
	if d := mustDecide(t, ctx, e, payment("p1", "a1", t0+10, 100, "x")); d.Reason != ReasonAccountLocked {
		t.Errorf("payment after five failed logins: reason %q, want %s", d.Reason, ReasonAccountLocked)
	}
}

func TestDecideReturnsDecodeErrors(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 2}, set, holder)
	ctx := startEngine(t, e)
	d, err := e.Decide(ctx, Message{Value: []byte(`not json`)})
	var de *event.Error
	if d != nil || !errors.As(err, &de) || !strings.HasPrefix(err.Error(), "invalid event: malformed JSON") {
		t.Errorf("Decide(not json) = %v, %v; want no decision and an *event.Error saying malformed JSON", d, err)
	}
}

func TestDecideRefusesAMessageWithDone(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 1}, set, holder)
	called := false
	_, err := e.Decide(context.Background(), Message{Value: login("l1", "a1", t0, false),
		Done: func(*Decision, error) { called = true }})
	if err == nil || err.Error() != "decide: Message.Done must be nil: Decide sets it and waits for it" {
		t.Errorf("Decide with a Done set: err %v", err)
	}
	if called || len(e.shards[0].queue) != 0 {
		t.Error("Decide queued a message whose Done was set")
	}
}

// TestDecideGivesUpWhenContextEnds queues a message on an engine that is
// not running yet, ends the caller's context, and then checks that the
// shard, once running, decides the abandoned message without blocking on
// its Done.
func TestDecideGivesUpWhenContextEnds(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 1, Now: fixedClock()}, set, holder)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := e.Decide(ctx, Message{Value: login("l1", "a1", t0, false)})
		errc <- err
	}()
	for len(e.shards[0].queue) == 0 { // until Decide has queued it
		runtime.Gosched()
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Decide after its context ended: %v, want context.Canceled", err)
	}
	runCtx := startEngine(t, e)
	if d := mustDecide(t, runCtx, e, login("l2", "a1", t0+1, false)); d.EventID != "l2" {
		t.Errorf("next decision is for %s, want l2", d.EventID)
	}
}

func TestDecideAfterShutdownIsErrStopped(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 2}, set, holder)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { e.Run(ctx); close(ran) }()
	cancel()
	<-ran
	if _, err := e.Decide(context.Background(), Message{Value: login("l1", "a1", t0, false)}); !errors.Is(err, ErrStopped) {
		t.Errorf("Decide after Run returned: %v, want ErrStopped", err)
	}
}

// TestUrgentIsDecidedWhileAStreamMessageWaitsForItsTurn holds shard 1 with
// the oldest stream message queued behind it, so shard 0's next stream
// message waits for its turn at the shared windows, and then decides an
// urgent message of shard 0: it must be answered while shard 1 is still
// held (without awaitTurn the test would hang here), and the waiting
// stream message is decided after it once shard 1 goes on.
func TestUrgentIsDecidedWhileAStreamMessageWaitsForItsTurn(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 2, Now: fixedClock()}, set, holder)
	ctx := startEngine(t, e)
	a0, a1 := accountOnShard(0, 2), accountOnShard(1, 2)

	release := holdShard(t, ctx, e, a1)
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	submit := func(id, account string) {
		wg.Add(1)
		err := e.Submit(ctx, Message{Value: login(id, account, t0, false), Done: func(d *Decision, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("%s: %v", id, err)
				return
			}
			mu.Lock()
			order = append(order, d.EventID)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	submit("first-on-1", a1) // the oldest number, queued behind the held shard
	submit("next-on-0", a0)  // shard 0 takes it and waits for its turn
	for len(e.shards[0].queue) > 0 {
		runtime.Gosched()
	}
	d, err := e.Decide(ctx, Message{Value: login("urgent-on-0", a0, t0+1, false), Urgent: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.EventID != "urgent-on-0" {
		t.Fatalf("Decide returned the decision of %s", d.EventID)
	}
	release()
	wg.Wait()
	if !slices.Equal(order, []string{"first-on-1", "next-on-0"}) {
		t.Errorf("stream decisions in order %v, want first-on-1 then next-on-0", order)
	}
}

// TestARepeatedEventPassesTheTurnWithoutWaiting holds shard 1 with the
// oldest stream message queued behind it and submits to shard 0 an event
// decided before: its decision (a duplicate, which reads and changes no
// feature) must come while shard 1 is still held, as the decide API's
// events read back from their input topic do (without passing the test
// would hang here).
func TestARepeatedEventPassesTheTurnWithoutWaiting(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 2, Now: fixedClock()}, set, holder)
	ctx := startEngine(t, e)
	a0, a1 := accountOnShard(0, 2), accountOnShard(1, 2)
	repeated := login("again-on-0", a0, t0, false)
	decided := make(chan *Decision, 2)
	submit := func(raw []byte) {
		err := e.Submit(ctx, Message{Value: raw, Done: func(d *Decision, err error) {
			if err != nil {
				t.Error(err)
			}
			decided <- d
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	submit(repeated)
	if d := <-decided; d == nil || d.Duplicate {
		t.Fatalf("first decision of again-on-0: %+v", d)
	}

	release := holdShard(t, ctx, e, a1)
	submit(login("first-on-1", a1, t0, false)) // the oldest number, queued behind the held shard
	submit(repeated)
	if d := <-decided; d == nil || d.EventID != "again-on-0" || !d.Duplicate {
		t.Fatalf("decision while shard 1 is held: %+v, want again-on-0 as a duplicate", d)
	}
	release()
	if d := <-decided; d == nil || d.EventID != "first-on-1" {
		t.Fatalf("decision after shard 1 went on: %+v, want first-on-1", d)
	}
}

// accountOnShard returns an account id that an engine of shards shards
// places on shard i.
func accountOnShard(i, shards int) string {
	for n := 0; ; n++ {
		if a := "acct-" + strconv.Itoa(n); keyhash.String(a)%uint64(shards) == uint64(i) {
			return a
		}
	}
}

// holdShard holds the shard of account until the returned release is
// called (at the latest when the test ends), and returns once it is held.
func holdShard(t *testing.T, ctx context.Context, e *Engine, account string) (release func()) {
	t.Helper()
	free, held := make(chan struct{}), make(chan struct{})
	go e.Do(ctx, account, func(*Scorer) { close(held); <-free })
	<-held
	var once sync.Once
	release = func() { once.Do(func() { close(free) }) }
	t.Cleanup(release) // before startEngine's cleanup stops the shards
	return release
}
