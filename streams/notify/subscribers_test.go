package notify_test

import (
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"riskd/internal/chtest"
	"riskd/streams/notify"
)

// workers counts the goroutines running a delivery worker, from their stacks.
func workers() int { return running("riskd/streams/notify.(*Notifier).work(") }

// running counts the goroutines whose stacks contain fn.
func running(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), fn)
		}
		buf = make([]byte, 2*len(buf))
	}
}

func TestSubscriberAddedWhileRunningGetsDeliveriesAndRemovalLeavesNoGoroutines(t *testing.T) {
	rc := newReceiver(t, time.Now)
	srv := serve(t, rc)
	cfg := testConfig(t)
	cfg.Workers = 3
	n := notify.New(cfg)
	run(t, n)
	waitFor(t, "Run to start", func() bool { return running("notify.(*Notifier).logDrops(") == 1 })
	baseline := runtime.NumGoroutine()

	if err := n.Add(notify.Subscriber{Name: "crm", URL: srv.URL, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "3 workers", func() bool { return workers() == 3 })
	for i := range 5 {
		n.Publish(note(notify.KindAlert, "acct-"+itoa(i), "r", i))
	}
	waitFor(t, "5 signed deliveries", func() bool { return rc.count() == 5 })
	waitFor(t, "5 deliveries counted", func() bool { return n.Stats().Subscribers["crm"].Delivered == 5 })

	if err := n.Remove("crm"); err != nil {
		t.Fatal(err)
	}
	// Remove returns once the workers have ended.
	if got := workers(); got != 0 {
		t.Errorf("%d workers after Remove, want 0", got)
	}
	// The HTTP connections' goroutines end once their sockets are closed.
	waitFor(t, "the goroutine count to return to its baseline", func() bool { return runtime.NumGoroutine() <= baseline })
	n.Publish(note(notify.KindAlert, "acct-0", "r", 9))
	if _, ok := n.Stats().Subscribers["crm"]; ok {
		t.Error("a removed subscriber still has stats")
	}
	if rc.requestCount() != 5 {
		t.Errorf("%d requests, want 5: nothing after the removal", rc.requestCount())
	}
}

func TestRemovingASubscriberAbandonsItsDeliveryInFlight(t *testing.T) {
	hung := make(chan struct{}, 10)
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hung <- struct{}{}
		<-r.Context().Done() // never answers
	}))
	cfg := testConfig(t, notify.Subscriber{Name: "hung", URL: srv.URL, Secret: secret})
	cfg.Workers = 1
	cfg.AttemptTimeout = time.Hour
	n := notify.New(cfg)
	run(t, n)
	for i := range 3 {
		n.Publish(note(notify.KindAlert, "acct-1", "r", i))
	}
	<-hung
	if err := n.Remove("hung"); err != nil { // returns: the attempt is cancelled
		t.Fatal(err)
	}
	if got := workers(); got != 0 {
		t.Errorf("%d workers after Remove, want 0", got)
	}
	if err := n.Remove("hung"); !errors.Is(err, notify.ErrNoSubscriber) {
		t.Errorf("second Remove = %v, want ErrNoSubscriber", err)
	}
}

func TestAddRefusesBadSubscribersAndDuplicates(t *testing.T) {
	n := notify.New(testConfig(t, notify.Subscriber{Name: "sms", URL: "http://x", Secret: secret}))
	if err := n.Add(notify.Subscriber{Name: "sms", URL: "http://y", Secret: secret}); !errors.Is(err, notify.ErrSubscriberExists) {
		t.Errorf("Add of a used name = %v, want ErrSubscriberExists", err)
	}
	err := n.Add(notify.Subscriber{Name: "x", URL: "http://" + strings.Repeat("a", notify.MaxURLLength), Secret: secret})
	if err == nil || err.Error() != "notify.subscriber.url: 2055 characters, over the limit of 2048" {
		t.Errorf("Add of a long URL = %v", err)
	}
	if err := n.Update(notify.Subscriber{Name: "nobody", URL: "http://y", Secret: secret}); !errors.Is(err, notify.ErrNoSubscriber) {
		t.Errorf("Update of an unknown name = %v, want ErrNoSubscriber", err)
	}
	if err := n.SetPaused("nobody", true); !errors.Is(err, notify.ErrNoSubscriber) {
		t.Errorf("SetPaused of an unknown name = %v, want ErrNoSubscriber", err)
	}
	stop := run(t, n)
	stop()
	if err := n.Add(notify.Subscriber{Name: "late", URL: "http://y", Secret: secret}); !errors.Is(err, notify.ErrStopped) {
		t.Errorf("Add after the stop = %v, want ErrStopped", err)
	}
}

// keyed is a receiver that checks signatures with a secret it can change
// and records the delivery ids it accepted.
type keyed struct {
	mu     sync.Mutex
	secret string
	ids    []string
	status int
	bad    int
}

func (k *keyed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	k.mu.Lock()
	defer k.mu.Unlock()
	if notify.Verify([]byte(k.secret), r.Header.Get(notify.HeaderSignature), body, time.Now(), time.Minute) != nil {
		k.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if k.status != 0 {
		http.Error(w, "down", k.status)
		return
	}
	k.ids = append(k.ids, r.Header.Get(notify.HeaderDelivery))
	w.WriteHeader(http.StatusNoContent)
}

func (k *keyed) got() (ids []string, bad int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.ids...), k.bad
}

func TestUpdateSendsLaterDeliveriesToTheNewURLWithTheNewSecret(t *testing.T) {
	old, fresh := &keyed{secret: "old-secret"}, &keyed{secret: "new-secret"}
	oldSrv, freshSrv := serve(t, old), serve(t, fresh)
	n := notify.New(testConfig(t, notify.Subscriber{Name: "crm", URL: oldSrv.URL, Secret: "old-secret"}))
	run(t, n)
	n.Publish(note(notify.KindAlert, "acct-1", "r", 0))
	waitFor(t, "the first delivery", func() bool { ids, _ := old.got(); return len(ids) == 1 })
	if err := n.Update(notify.Subscriber{Name: "crm", URL: freshSrv.URL, Secret: "new-secret", Kinds: []string{notify.KindLock}}); err != nil {
		t.Fatal(err)
	}
	n.Publish(note(notify.KindAlert, "acct-1", "r", 1)) // no longer wanted
	n.Publish(note(notify.KindLock, "acct-1", "r", 2))
	waitFor(t, "the lock at the new URL", func() bool { ids, _ := fresh.got(); return len(ids) == 1 })
	waitFor(t, "the lock counted", func() bool { return n.Stats().Subscribers["crm"].Delivered == 2 })
	if ids, bad := old.got(); len(ids) != 1 || bad != 0 {
		t.Errorf("old receiver: %v, %d bad", ids, bad)
	}
	if _, bad := fresh.got(); bad != 0 {
		t.Errorf("new receiver saw %d bad signatures", bad)
	}
	info := n.Subscribers()
	if len(info) != 1 || info[0].URL != freshSrv.URL || info[0].SecretFingerprint != notify.Fingerprint([]byte("new-secret")) {
		t.Errorf("Subscribers() = %+v", info)
	}
}

func TestPausedSubscriberParksEverythingAndResendDeliversItAfterResume(t *testing.T) {
	store := chtest.Open(t)
	k := &keyed{secret: secret}
	srv := serve(t, k)
	cfg := testConfig(t, notify.Subscriber{Name: "crm", URL: srv.URL, Secret: secret})
	cfg.DeadLetters = store
	n := notify.New(cfg)
	run(t, n)
	if err := n.SetPaused("crm", true); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		n.Publish(note(notify.KindAlert, "acct-"+itoa(i%2), "r", i))
	}
	waitFor(t, "4 notifications parked", func() bool { return n.Stats().Subscribers["crm"].Parked == 4 })
	if ids, _ := k.got(); len(ids) != 0 {
		t.Fatalf("a paused subscriber received %v", ids)
	}
	parked, err := store.WebhookDeadLetters(t.Context(), "crm", 10)
	if err != nil || len(parked) != 4 {
		t.Fatalf("parked %d, %v; want 4", len(parked), err)
	}
	for _, d := range parked {
		if d.LastError != "paused: not sent while the subscriber was paused" || d.Attempts != 0 {
			t.Errorf("parked row %+v, want 0 attempts and the paused error", d)
		}
	}
	if err := n.Resend(t.Context(), parked[0]); !errors.Is(err, notify.ErrPaused) {
		t.Errorf("Resend while paused = %v, want ErrPaused", err)
	}
	if err := n.SetPaused("crm", false); err != nil {
		t.Fatal(err)
	}
	for _, d := range parked {
		if err := n.Resend(t.Context(), d); err != nil {
			t.Fatalf("Resend %d: %v", d.NotificationID, err)
		}
	}
	ids, bad := k.got()
	if len(ids) != 4 || bad != 0 {
		t.Errorf("after resend: %v delivered, %d bad signatures; want all 4", ids, bad)
	}
	if st := n.Stats().Subscribers["crm"]; st.Delivered != 4 {
		t.Errorf("stats %+v, want 4 delivered", st)
	}
	// A resend that fails says why.
	k.mu.Lock()
	k.status = http.StatusInternalServerError
	k.mu.Unlock()
	if err := n.Resend(t.Context(), parked[0]); err == nil || !strings.Contains(err.Error(), "HTTP 500: down") {
		t.Errorf("Resend to a failing receiver = %v, want the HTTP 500", err)
	}
}
