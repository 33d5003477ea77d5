package notify_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"riskd/streams/notify"
)

// sseEvent is one parsed Server-Sent Event; a comment line is an event
// with Comment set.
type sseEvent struct {
	ID, Event, Data, Comment string
}

// sseClient reads one stream connection on a goroutine of its own.
type sseClient struct {
	t      *testing.T
	events chan sseEvent
	cancel context.CancelFunc
	done   chan struct{} // closed when the stream ended
}

// connect opens the stream at url with an optional Last-Event-ID, and
// waits for the handler's opening comment (by then it is subscribed).
func connect(t *testing.T, url, lastID string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("GET %s: %s, Content-Type %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{t: t, events: make(chan sseEvent, 1000), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != (sseEvent{}) {
					c.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.Comment = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[len("id: "):]
			case strings.HasPrefix(line, "event: "):
				ev.Event = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				if ev.Data != "" {
					ev.Data += "\n"
				}
				ev.Data += line[len("data: "):]
			}
		}
	}()
	t.Cleanup(func() { c.close() })
	if ev := c.next(); ev.Comment != "riskd alert stream" {
		t.Fatalf("first event %+v, want the opening comment", ev)
	}
	return c
}

func (c *sseClient) close() {
	c.cancel()
	<-c.done
}

// next returns the next event that is not a heartbeat.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	for {
		select {
		case ev := <-c.events:
			if ev.Comment == "heartbeat" {
				continue
			}
			return ev
		case <-time.After(wait):
			c.t.Fatal("timed out waiting for a stream event")
			return sseEvent{}
		}
	}
}

// nextN returns the next n notification events as "kind id account/seq".
func (c *sseClient) nextN(n int) []sseEvent {
	c.t.Helper()
	out := make([]sseEvent, n)
	for i := range out {
		out[i] = c.next()
	}
	return out
}

func streamServer(t *testing.T, cfg notify.Config) (*notify.Notifier, string) {
	n := notify.New(cfg)
	srv := serve(t, n.StreamHandler())
	run(t, n)
	return n, srv.URL + "/v1/alerts/stream"
}

// published returns what the stream should carry for a notification with
// the given id.
func want(id uint64, nt notify.Notification) sseEvent {
	return sseEvent{ID: strconv.FormatUint(id, 10), Event: nt.Kind, Data: string(nt.Body)}
}

func TestStreamCarriesLiveNotifications(t *testing.T) {
	cfg := testConfig(t)
	n, url := streamServer(t, cfg)
	c := connect(t, url, "")
	notes := []notify.Notification{
		note(notify.KindAlert, "a1", "scam-payee", 0),
		note(notify.KindLock, "a2", "brute-force-lock", 1),
		note(notify.KindUnlock, "a2", "", 2),
	}
	for _, nt := range notes {
		n.Publish(nt)
	}
	got := c.nextN(3)
	first, err := strconv.ParseUint(got[0].ID, 10, 64)
	if err != nil {
		t.Fatalf("id %q: %v", got[0].ID, err)
	}
	for i, nt := range notes {
		if w := want(first+uint64(i), nt); got[i] != w {
			t.Errorf("event %d = %+v, want %+v", i, got[i], w)
		}
	}
}

func TestStreamReconnectWithLastEventIDGetsExactlyTheMissedOnes(t *testing.T) {
	cfg := testConfig(t)
	n, url := streamServer(t, cfg)
	c := connect(t, url, "")
	for i := range 3 {
		n.Publish(note(notify.KindAlert, "a1", "r", i))
	}
	seen := c.nextN(3)
	c.close()
	last := seen[2].ID
	missed := []notify.Notification{note(notify.KindAlert, "a1", "r", 3), note(notify.KindLock, "a2", "r", 4)}
	for _, nt := range missed {
		n.Publish(nt)
	}
	c2 := connect(t, url, last)
	lastID, _ := strconv.ParseUint(last, 10, 64)
	for i, nt := range missed {
		if got, w := c2.next(), want(lastID+1+uint64(i), nt); got != w {
			t.Errorf("replayed event %d = %+v, want %+v", i, got, w)
		}
	}
	// Then live, with nothing repeated in between.
	live := note(notify.KindAlert, "a3", "r", 5)
	n.Publish(live)
	if got, w := c2.next(), want(lastID+3, live); got != w {
		t.Errorf("live event after the replay = %+v, want %+v", got, w)
	}
}

func TestStreamSendsResetWhenTheLastEventIDIsNoLongerBuffered(t *testing.T) {
	cfg := testConfig(t)
	cfg.StreamBuffer = 3
	n, url := streamServer(t, cfg)
	c := connect(t, url, "")
	var notes []notify.Notification
	for i := range 5 {
		notes = append(notes, note(notify.KindAlert, "a1", "r", i))
		n.Publish(notes[i])
	}
	got := c.nextN(5)
	first, _ := strconv.ParseUint(got[0].ID, 10, 64)
	for _, lastID := range []uint64{first, first + 1_000_000} { // evicted; from a future (other) process
		t.Run("Last-Event-ID "+strconv.FormatUint(lastID-first, 10)+" after the first", func(t *testing.T) {
			c2 := connect(t, url, strconv.FormatUint(lastID, 10))
			reset := c2.next()
			if reset.Event != "reset" || reset.Data != `{"last_event_id":`+strconv.FormatUint(lastID, 10)+`,"oldest_id":`+strconv.FormatUint(first+2, 10)+`}` {
				t.Errorf("first event %+v, want a reset naming the oldest buffered id %d", reset, first+2)
			}
			for i := 2; i < 5; i++ {
				if ev, w := c2.next(), want(first+uint64(i), notes[i]); ev != w {
					t.Errorf("buffered event = %+v, want %+v", ev, w)
				}
			}
		})
	}
	// The newest id: nothing missed, no reset.
	c3 := connect(t, url, got[4].ID)
	live := note(notify.KindAlert, "a1", "r", 9)
	n.Publish(live)
	if ev, w := c3.next(), want(first+5, live); ev != w {
		t.Errorf("up-to-date client got %+v first, want %+v", ev, w)
	}
}

func TestStreamAccountFilter(t *testing.T) {
	cfg := testConfig(t)
	n, url := streamServer(t, cfg)
	c := connect(t, url+"?account=a1", "")
	for i, acct := range []string{"a2", "a1", "a2", "a3", "a1"} {
		n.Publish(note(notify.KindAlert, acct, "r", i))
	}
	got := c.nextN(2)
	var seqs []string
	for _, ev := range got {
		seqs = append(seqs, ev.Data)
	}
	if !slices.Equal(seqs, []string{`{"account_id":"a1","seq":1,"event_id":"ev-a1-1"}`, `{"account_id":"a1","seq":4,"event_id":"ev-a1-4"}`}) {
		t.Errorf("filtered stream carried %v, want a1's two alerts only", seqs)
	}
	// Replay honours the filter too.
	first, _ := strconv.ParseUint(got[0].ID, 10, 64)
	c2 := connect(t, url+"?account=a1", strconv.FormatUint(first-1, 10)) // a2's first
	if ev := c2.next(); ev.ID != got[0].ID {
		t.Errorf("replay for a1 started with %+v, want id %s", ev, got[0].ID)
	}
	if ev := c2.next(); ev.ID != got[1].ID {
		t.Errorf("replay for a1 continued with %+v, want id %s", ev, got[1].ID)
	}
}

func TestStreamHeartbeatsAndEndsWhenTheNotifierStops(t *testing.T) {
	cfg := testConfig(t)
	cfg.Heartbeat = 10 * time.Millisecond
	n := notify.New(cfg)
	srv := serve(t, n.StreamHandler())
	stop := run(t, n)
	c := connect(t, srv.URL, "")
	select {
	case ev := <-c.events:
		if ev.Comment != "heartbeat" {
			t.Errorf("got %+v, want a heartbeat comment", ev)
		}
	case <-time.After(wait):
		t.Fatal("no heartbeat")
	}
	stop()
	select {
	case <-c.done:
	case <-time.After(wait):
		t.Fatal("the stream did not end when the Notifier stopped")
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET after stop: %s, want 503", resp.Status)
	}
}

func TestStreamRejectsBadRequests(t *testing.T) {
	n := notify.New(testConfig(t))
	srv := serve(t, n.StreamHandler())
	for _, c := range []struct {
		name, method, lastID string
		want                 int
	}{
		{"POST is not allowed", http.MethodPost, "", http.StatusMethodNotAllowed},
		{"a Last-Event-ID that is not a number is refused", http.MethodGet, "abc", http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, srv.URL, nil)
			if c.lastID != "" {
				req.Header.Set("Last-Event-ID", c.lastID)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("status %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
}

func TestSlowStreamClientIsDroppedWithoutSlowingPublish(t *testing.T) {
	cfg := testConfig(t)
	cfg.StreamClientBuffer = 1
	cfg.StreamWriteTimeout = 2 * time.Second // long enough that the handler is still blocked when Publish overtakes it
	n, url := streamServer(t, cfg)
	// A client that sends its request and then never reads.
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(url, "/v1/alerts/stream"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /v1/alerts/stream HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(status, "200") {
		t.Fatalf("status line %q, %v", status, err)
	}
	// 1 MiB bodies: the socket buffers fill after a few, the handler's
	// write blocks, its one-slot queue fills, and Publish drops it.
	big := note(notify.KindAlert, "a1", "r", 0)
	big.Body = []byte(`"` + strings.Repeat("x", 1<<20) + `"`)
	for range 200 {
		n.Publish(big)
	}
	if st := n.Stats(); st.Published != 200 || st.StreamDropped != 1 {
		t.Errorf("stats = %+v, want 200 published and the client dropped", st)
	}
}
