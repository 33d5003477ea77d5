package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"riskd/streams/notify"
)

// wait is the generous bound of every poll: long enough for a loaded CI
// machine, never part of what a test asserts.
const wait = 30 * time.Second

// waitFor polls cond until it holds or wait runs out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const secret = "s3cret"

// payload is the test body: which account and which of its notifications.
type payload struct {
	Account string `json:"account_id"`
	Seq     int    `json:"seq"`
	EventID string `json:"event_id"`
}

func note(kind, account, rule string, seq int) notify.Notification {
	ev := fmt.Sprintf("ev-%s-%d", account, seq)
	body, _ := json.Marshal(payload{Account: account, Seq: seq, EventID: ev})
	return notify.Notification{Kind: kind, AccountID: account, EventID: ev, RuleID: rule, Body: body}
}

// delivery is one request a receiver accepted.
type delivery struct {
	ID      uint64
	Kind    string
	Payload payload
}

// receiver is a webhook subscriber on a real HTTP server. It checks every
// request's signature with the documented recipe and records those it
// answers with 2xx; status decides the answer (nil: 200).
type receiver struct {
	t      testing.TB
	now    func() time.Time
	status func(p payload) int

	mu       sync.Mutex
	got      []delivery
	requests int
	badSig   int
}

func newReceiver(t testing.TB, now func() time.Time) *receiver {
	return &receiver{t: t, now: now}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var p payload
	jsonErr := json.Unmarshal(body, &p)
	id, idErr := strconv.ParseUint(r.Header.Get(notify.HeaderDelivery), 10, 64)
	// Tests that move the clock sign and check at different clock times;
	// the tolerance itself is tested in sign_test.go.
	sigErr := notify.Verify([]byte(secret), r.Header.Get(notify.HeaderSignature), body, rc.now(), time.Hour)
	rc.mu.Lock()
	rc.requests++
	if sigErr != nil || jsonErr != nil || idErr != nil || r.Method != http.MethodPost ||
		r.Header.Get("Content-Type") != "application/json" {
		rc.badSig++
		rc.mu.Unlock()
		rc.t.Errorf("bad delivery: method %s, signature %v, body %v, id %v, content type %q",
			r.Method, sigErr, jsonErr, idErr, r.Header.Get("Content-Type"))
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	status := rc.status
	rc.mu.Unlock()
	code := http.StatusOK
	if status != nil {
		code = status(p)
	}
	if code/100 != 2 {
		http.Error(w, "nope", code)
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, delivery{ID: id, Kind: r.Header.Get(notify.HeaderEvent), Payload: p})
	rc.mu.Unlock()
	w.WriteHeader(code)
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

func (rc *receiver) requestCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests
}

// serve starts rc on a real HTTP server, closed when the test ends.
func serve(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// testConfig is a config with fast retries and test logging.
func testConfig(t testing.TB, subs ...notify.Subscriber) notify.Config {
	return notify.Config{
		Subscribers: subs,
		RetryMin:    time.Millisecond,
		RetryMax:    20 * time.Millisecond,
		MaxAttempts: 1000,
		Logger:      slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

// run starts n.Run and stops it when the test ends, failing the test if
// it does not return.
func run(t testing.TB, n *notify.Notifier) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(wait):
				t.Errorf("Run did not return within %v of its context ending", wait)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// byAccount groups the delivered sequence numbers per account, in arrival
// order.
func byAccount(ds []delivery) map[string][]int {
	out := map[string][]int{}
	for _, d := range ds {
		out[d.Payload.Account] = append(out[d.Payload.Account], d.Payload.Seq)
	}
	return out
}
