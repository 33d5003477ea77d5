package notify_test

import (
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"riskd/internal/chtest"
	"riskd/streams/notify"
)

// publishInterleaved publishes perAccount alerts for each account, the
// accounts taking turns, each alert from its own rule.
func publishInterleaved(n *notify.Notifier, accounts []string, perAccount int) {
	for i := range perAccount {
		for _, a := range accounts {
			n.Publish(note(notify.KindAlert, a, "rule-"+itoa(i), i))
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// checkInOrder fails unless every account received exactly 0..perAccount-1
// in order.
func checkInOrder(t *testing.T, ds []delivery, accounts []string, perAccount int) {
	t.Helper()
	want := make([]int, perAccount)
	for i := range want {
		want[i] = i
	}
	got := byAccount(ds)
	for _, a := range accounts {
		if !slices.Equal(got[a], want) {
			t.Errorf("account %s received %v, want %v (once each, in Publish order)", a, got[a], want)
		}
	}
}

func TestSubscriberThatAnswers503GetsEverythingInOrderOnceItRecovers(t *testing.T) {
	rc := newReceiver(t, time.Now)
	var down atomic.Bool
	down.Store(true)
	rc.status = func(payload) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	srv := serve(t, rc)
	cfg := testConfig(t, notify.Subscriber{Name: "sms", URL: srv.URL, Secret: secret})
	cfg.Workers = 2
	n := notify.New(cfg)
	run(t, n)
	accounts := []string{"acct-a", "acct-b", "acct-c", "acct-d", "acct-e"}
	publishInterleaved(n, accounts, 20)
	waitFor(t, "retries while the subscriber is down", func() bool { return n.Stats().Subscribers["sms"].Retried >= 20 })
	if got := rc.count(); got != 0 {
		t.Fatalf("%d deliveries accepted while the subscriber was down", got)
	}
	down.Store(false)
	waitFor(t, "all 100 deliveries", func() bool { return rc.count() == 100 })
	checkInOrder(t, rc.deliveries(), accounts, 20)
	// The receiver records a delivery before it answers; the notifier counts
	// it once the answer is back.
	waitFor(t, "100 deliveries counted", func() bool { return n.Stats().Subscribers["sms"].Delivered == 100 })
	st := n.Stats().Subscribers["sms"]
	if st.Delivered != 100 || st.Parked != 0 || st.DroppedOverflow != 0 {
		t.Errorf("stats = %+v, want 100 delivered, none parked or dropped", st)
	}
}

// restartable is an HTTP server that can be closed (connections refused)
// and started again on the same address.
type restartable struct {
	t    *testing.T
	h    http.Handler
	addr string
	srv  *httptest.Server
}

func newRestartable(t *testing.T, h http.Handler) *restartable {
	r := &restartable{t: t, h: h}
	r.start("127.0.0.1:0")
	r.addr = r.srv.Listener.Addr().String()
	t.Cleanup(func() { r.srv.Close() })
	return r
}

func (r *restartable) start(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		r.t.Fatalf("listen on %s: %v", addr, err)
	}
	r.srv = httptest.NewUnstartedServer(r.h)
	r.srv.Listener.Close()
	r.srv.Listener = ln
	r.srv.Start()
}

func (r *restartable) URL() string { return "http://" + r.addr }

func TestSubscriberWhoseServerIsDownGetsEverythingInOrderAfterItComesBack(t *testing.T) {
	rc := newReceiver(t, time.Now)
	srv := newRestartable(t, rc)
	srv.srv.Close()
	cfg := testConfig(t, notify.Subscriber{Name: "cases", URL: srv.URL(), Secret: secret})
	cfg.Workers = 3
	n := notify.New(cfg)
	run(t, n)
	accounts := []string{"acct-1", "acct-2", "acct-3", "acct-4"}
	publishInterleaved(n, accounts, 15)
	waitFor(t, "retries while the server is closed", func() bool { return n.Stats().Subscribers["cases"].Retried >= 12 })
	srv.start(srv.addr)
	waitFor(t, "all 60 deliveries", func() bool { return rc.count() == 60 })
	checkInOrder(t, rc.deliveries(), accounts, 15)
}

func TestSlowSubscriberDoesNotSlowPublish(t *testing.T) {
	rc := newReceiver(t, time.Now)
	rc.status = func(payload) int {
		time.Sleep(100 * time.Millisecond)
		return http.StatusOK
	}
	srv := serve(t, rc)
	cfg := testConfig(t, notify.Subscriber{Name: "slow", URL: srv.URL, Secret: secret})
	cfg.Workers = 2
	cfg.QueueSize = 1000
	n := notify.New(cfg)
	run(t, n)
	const total = 10_000
	for i := range total {
		n.Publish(note(notify.KindAlert, "acct-"+itoa(i%50), "r", i))
	}
	received := rc.count()
	st := n.Stats()
	if st.Published != total {
		t.Errorf("Published = %d, want %d", st.Published, total)
	}
	if received >= 500 {
		t.Errorf("the subscriber received %d of %d while Publish ran; Publish waited for it", received, total)
	}
	// What was neither delivered nor queued (1000) nor in a worker's
	// hands (2) was dropped, and counted.
	if dropped := n.Overflow(); dropped+uint64(received)+1000+2 < total || dropped == 0 {
		t.Errorf("Overflow = %d with %d received; want every notification beyond the queue counted", dropped, received)
	}
	t.Logf("published %d; subscriber had %d; dropped %d", total, received, n.Overflow())
}

func TestOverflowIsCountedPerSubscriberAndExported(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, time.Now)
	rc.status = func(payload) int {
		<-release
		return http.StatusOK
	}
	srv := serve(t, rc)
	fast := newReceiver(t, time.Now)
	fastSrv := serve(t, fast)
	reg := prometheus.NewPedanticRegistry()
	cfg := testConfig(t,
		notify.Subscriber{Name: "small", URL: srv.URL, Secret: secret},
		notify.Subscriber{Name: "big", URL: fastSrv.URL, Secret: secret})
	cfg.Workers = 1
	cfg.QueueSize = 10
	cfg.Registerer = reg
	n := notify.New(cfg)
	// Before Run nothing is taken off the queues: 10 fit, 40 overflow.
	for i := range 50 {
		n.Publish(note(notify.KindAlert, "acct-1", "r", i))
	}
	if got := n.Stats().Subscribers["small"].DroppedOverflow; got != 40 {
		t.Errorf("small: DroppedOverflow = %d, want 40", got)
	}
	if got := n.Overflow(); got != 80 {
		t.Errorf("Overflow = %d, want 80 (40 for each subscriber)", got)
	}
	run(t, n)
	close(release)
	waitFor(t, "the 10 queued deliveries", func() bool { return rc.count() == 10 && fast.count() == 10 })
	want := map[string]float64{
		"big/abandoned": 0, "big/delivered": 10, "big/dropped_overflow": 40, "big/parked": 0, "big/retried": 0,
		"small/abandoned": 0, "small/delivered": 10, "small/dropped_overflow": 40, "small/parked": 0, "small/retried": 0,
	}
	var got map[string]float64
	waitFor(t, "delivered counters", func() bool {
		got = deliveryCounters(t, reg)
		return maps.Equal(got, want)
	})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "riskd_webhook_delivery_seconds" {
			for _, m := range mf.GetMetric() {
				if c := m.GetHistogram().GetSampleCount(); c != 10 {
					t.Errorf("riskd_webhook_delivery_seconds %v has %d samples, want 10", m.GetLabel(), c)
				}
			}
		}
	}
}

// deliveryCounters reads riskd_webhook_deliveries_total as
// "subscriber/outcome" -> value.
func deliveryCounters(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "riskd_webhook_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[labels["subscriber"]+"/"+labels["outcome"]] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestRepeatsAreNotThrottledHere: the engine throttles alerts once for
// every output, so the Notifier delivers every repeat it is given (the
// same account, rule and kind, within seconds); a second throttle here
// would make webhooks disagree with the alerts topic and table.
func TestRepeatsAreNotThrottledHere(t *testing.T) {
	clk := newClock()
	rc := newReceiver(t, clk.Now)
	cfg := testConfig(t, notify.Subscriber{Name: "sms", URL: serve(t, rc).URL, Secret: secret})
	cfg.Now = clk.Now
	n := notify.New(cfg)
	run(t, n)
	for i := range 5 {
		n.Publish(note(notify.KindAlert, "a1", "scam-payee", i))
		clk.Advance(time.Second)
	}
	n.Publish(note(notify.KindLock, "a1", "brute-force-lock", 5))
	n.Publish(note(notify.KindLock, "a1", "brute-force-lock", 6))
	// The receiver records a delivery before its answer is counted.
	waitFor(t, "every repeat delivered", func() bool { return n.Stats().Subscribers["sms"].Delivered == 7 })
	if st := n.Stats(); st.Published != 7 || rc.count() != 7 {
		t.Errorf("stats = %+v with %d received, want 7 published and received", st, rc.count())
	}
	checkInOrder(t, rc.deliveries(), []string{"a1"}, 7)
}

func TestSubscribersGetOnlyTheKindsTheyAskFor(t *testing.T) {
	alerts, locks, all := newReceiver(t, time.Now), newReceiver(t, time.Now), newReceiver(t, time.Now)
	cfg := testConfig(t,
		notify.Subscriber{Name: "alerts", URL: serve(t, alerts).URL, Secret: secret, Kinds: []string{notify.KindAlert}},
		notify.Subscriber{Name: "locks", URL: serve(t, locks).URL, Secret: secret, Kinds: []string{notify.KindLock, notify.KindUnlock}},
		notify.Subscriber{Name: "all", URL: serve(t, all).URL, Secret: secret})
	n := notify.New(cfg)
	run(t, n)
	n.Publish(note(notify.KindAlert, "a1", "scam-payee", 0))
	n.Publish(note(notify.KindLock, "a1", "brute-force-lock", 1))
	n.Publish(note(notify.KindUnlock, "a1", "", 2))
	waitFor(t, "every delivery", func() bool { return alerts.count() == 1 && locks.count() == 2 && all.count() == 3 })
	kindsOf := func(rc *receiver) []string {
		var ks []string
		for _, d := range rc.deliveries() {
			ks = append(ks, d.Kind)
		}
		return ks
	}
	for _, c := range []struct {
		rc   *receiver
		want []string
	}{{alerts, []string{"alert"}}, {locks, []string{"lock", "unlock"}}, {all, []string{"alert", "lock", "unlock"}}} {
		if got := kindsOf(c.rc); !slices.Equal(got, c.want) {
			t.Errorf("Riskd-Event headers %v, want %v", got, c.want)
		}
	}
	ds := all.deliveries()
	if ds[0].ID == 0 || ds[1].ID != ds[0].ID+1 || ds[2].ID != ds[1].ID+1 {
		t.Errorf("Riskd-Delivery ids %d %d %d, want consecutive increasing ids", ds[0].ID, ds[1].ID, ds[2].ID)
	}
}

func TestLastAttemptParksInClickHouseAndTheAccountMovesOn(t *testing.T) {
	store := chtest.Open(t)
	rc := newReceiver(t, time.Now)
	var n *notify.Notifier
	var parkedBeforeNext atomic.Int64
	parkedBeforeNext.Store(-1)
	rc.status = func(p payload) int {
		switch p.EventID {
		case "ev-acct-1-0":
			return http.StatusInternalServerError // retried, then parked
		case "ev-acct-2-0":
			return http.StatusUnprocessableEntity // refused for good: parked at once
		case "ev-acct-1-1":
			parkedBeforeNext.Store(int64(n.Stats().Subscribers["cases"].Parked))
		}
		return http.StatusOK
	}
	srv := serve(t, rc)
	cfg := testConfig(t, notify.Subscriber{Name: "cases", URL: srv.URL, Secret: secret})
	cfg.MaxAttempts = 3
	cfg.DeadLetters = store
	n = notify.New(cfg)
	run(t, n)
	for i := range 2 {
		n.Publish(note(notify.KindAlert, "acct-1", "r"+itoa(i), i))
		n.Publish(note(notify.KindAlert, "acct-2", "r"+itoa(i), i))
	}
	waitFor(t, "the second notification of each account", func() bool { return rc.count() == 2 })
	if got := parkedBeforeNext.Load(); got < 1 {
		t.Errorf("acct-1's next notification arrived with %d parked; want it after the first was parked", got)
	}
	if c, err := store.CountWebhookDeadLetters(t.Context(), "cases"); err != nil || c != 2 {
		t.Fatalf("CountWebhookDeadLetters = %d, %v; want 2", c, err)
	}
	rows, err := store.WebhookDeadLetters(t.Context(), "cases", 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.EventID] = r.AccountID + " " + r.Kind + " " + itoa(int(r.Attempts)) + " " + r.LastError
		if r.NotificationID == 0 || !strings.Contains(r.Body, `"event_id":"`+r.EventID+`"`) {
			t.Errorf("parked row %+v: want the notification id and its body", r)
		}
	}
	want := map[string]string{
		"ev-acct-1-0": "acct-1 alert 3 HTTP 500: nope",
		"ev-acct-2-0": "acct-2 alert 1 HTTP 422: nope",
	}
	if len(got) != 2 || got["ev-acct-1-0"] != want["ev-acct-1-0"] || got["ev-acct-2-0"] != want["ev-acct-2-0"] {
		t.Errorf("parked rows %v, want %v", got, want)
	}
	waitFor(t, "both deliveries counted", func() bool { return n.Stats().Subscribers["cases"].Delivered == 2 })
	st := n.Stats().Subscribers["cases"]
	if st.Parked != 2 || st.Delivered != 2 || st.Retried != 2 {
		t.Errorf("stats = %+v, want 2 parked, 2 delivered, 2 retries (acct-1's first, attempts 1 and 2)", st)
	}
}

func TestStopAbandonsInFlightAndQueuedDeliveriesPromptly(t *testing.T) {
	hung := make(chan struct{}, 100)
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so the server notices the client going away
		hung <- struct{}{}
		<-r.Context().Done() // never answers
	}))
	cfg := testConfig(t, notify.Subscriber{Name: "hung", URL: srv.URL, Secret: secret})
	cfg.Workers = 1
	cfg.AttemptTimeout = time.Hour
	n := notify.New(cfg)
	stop := run(t, n)
	for i := range 5 {
		n.Publish(note(notify.KindAlert, "acct-1", "r"+itoa(i), i))
	}
	select {
	case <-hung:
	case <-time.After(wait):
		t.Fatal("no delivery attempt")
	}
	stop() // fails the test if Run does not return
	if err := n.Run(t.Context()); !errors.Is(err, notify.ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	n.Publish(note(notify.KindAlert, "acct-1", "late", 9))
	if st := n.Stats().Subscribers["hung"]; st.Abandoned != 6 || st.Delivered != 0 {
		t.Errorf("stats = %+v, want 6 abandoned (1 in flight, 4 queued, 1 published after the stop)", st)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		name string
		cfg  notify.Config
		want string
	}{
		{"a valid config passes", notify.Config{Subscribers: []notify.Subscriber{{Name: "a", URL: "https://x/y", Secret: "k"}}}, ""},
		{"a subscriber needs a name", notify.Config{Subscribers: []notify.Subscriber{{URL: "https://x", Secret: "k"}}},
			"notify.subscribers[0].name: empty; every subscriber needs a name for metrics and dead letters"},
		{"names are unique", notify.Config{Subscribers: []notify.Subscriber{{Name: "a", URL: "https://x", Secret: "k"}, {Name: "a", URL: "https://x", Secret: "k"}}},
			`notify.subscribers[1].name: "a" is used twice`},
		{"the URL must be http(s)", notify.Config{Subscribers: []notify.Subscriber{{Name: "a", URL: "ftp://x", Secret: "k"}}},
			`notify.subscribers[0].url: "ftp://x" is not an http(s) URL`},
		{"kinds are known", notify.Config{Subscribers: []notify.Subscriber{{Name: "a", URL: "http://x", Secret: "k", Kinds: []string{"alerts"}}}},
			`notify.subscribers[0].kinds: unknown kind "alerts"; want alert, lock or unlock`},
		{"a secret is required", notify.Config{Subscribers: []notify.Subscriber{{Name: "a", URL: "http://x"}}},
			"notify.subscribers[0].secret: empty; deliveries are signed, set a shared secret"},
		{"retry_min must not exceed retry_max", notify.Config{RetryMin: time.Minute, RetryMax: time.Second},
			"notify.retry_min: 1m0s is above retry_max 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}
