package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"riskd/event"
)

// gaugeRecorder is a Gauge that hands each value it is set to a channel.
type gaugeRecorder chan float64

func (g gaugeRecorder) Set(v float64) {
	select {
	case g <- v:
	default: // the test reads only the first report
	}
}

func TestStateReporterReportsAtOnceAndStopsWithItsContext(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 3}, set, holder)
	ctx := startEngine(t, e)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		ev := event.Event{ID: fmt.Sprintf("s%d", i), Type: event.TypeLogin, TS: t0, AccountID: fmt.Sprintf("acct-%d", i)}
		if err := e.Submit(ctx, Message{Value: msg(ev), Done: func(*Decision, error) { wg.Done() }}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()

	accounts, queued, heap := make(gaugeRecorder, 1), make(gaugeRecorder, 1), make(gaugeRecorder, 1)
	r := &StateReporter{Engine: e, Interval: time.Hour, Accounts: accounts, Queued: queued, HeapLive: heap}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	if got := <-accounts; got != 4 { // the first report does not wait for the interval
		t.Errorf("accounts gauge = %v, want 4", got)
	}
	if got := <-queued; got != 0 {
		t.Errorf("queued gauge = %v, want 0", got)
	}
	if got := <-heap; got <= 0 {
		t.Errorf("live heap gauge = %v, want a positive byte count", got)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil when its context ends", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
