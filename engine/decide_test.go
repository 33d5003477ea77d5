package engine

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"riskd/event"
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
