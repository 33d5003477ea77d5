package notify

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ring keeps the last len(buf) notifications, oldest first from start.
type ring struct {
	buf   []Notification
	start int
	n     int
}

func (r *ring) push(note Notification) {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = note
		r.n++
		return
	}
	r.buf[r.start] = note
	r.start = (r.start + 1) % len(r.buf)
}

// after returns the kept notifications with an id above id, oldest first.
func (r *ring) after(id uint64) []Notification {
	var out []Notification
	for i := range r.n {
		if note := r.buf[(r.start+i)%len(r.buf)]; note.ID > id {
			out = append(out, note)
		}
	}
	return out
}

// oldest is the id of the oldest kept notification, 0 when empty.
func (r *ring) oldest() uint64 {
	if r.n == 0 {
		return 0
	}
	return r.buf[r.start].ID
}

// streamClient is one connected stream. Publish sends to ch without
// blocking; when ch is full it removes the client and closes gone.
type streamClient struct {
	account string // "" = every account
	ch      chan Notification
	gone    chan struct{}
}

// StreamHandler serves the live alert stream, GET /v1/alerts/stream, as
// Server-Sent Events. Each notification is an event:
//
//	id: <notification id>
//	event: <kind>
//	data: <body>
//
// A client reconnecting with the Last-Event-ID header gets the
// notifications it missed from a buffer of the last StreamBuffer; if the
// id is no longer in the buffer (or is from another process), an
// "event: reset" comes first, then the whole buffer: the client should
// resynchronise from the alerts topic or table. ?account=ID limits the
// stream to one account. A comment line is sent every Heartbeat. A client
// that falls StreamClientBuffer notifications behind is disconnected (it
// never slows Publish) and may reconnect with Last-Event-ID. The handler
// returns when the request's context ends or the Notifier stops.
// Authentication is left to the caller's middleware.
func (n *Notifier) StreamHandler() http.Handler { return http.HandlerFunc(n.serveStream) }

func (n *Notifier) serveStream(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "the alert stream is read with GET", http.StatusMethodNotAllowed)
		return
	}
	var lastID uint64
	resume := false
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			http.Error(w, "Last-Event-ID: "+strconv.Quote(v)+" is not a notification id (a decimal number)", http.StatusBadRequest)
			return
		}
		lastID, resume = id, true
	}
	select {
	case <-n.stopped:
		http.Error(w, "the alert stream is shutting down", http.StatusServiceUnavailable)
		return
	default:
	}
	c := &streamClient{account: r.URL.Query().Get("account"),
		ch: make(chan Notification, n.cfg.StreamClientBuffer), gone: make(chan struct{})}
	backlog, reset, resetFrom := n.subscribe(c, lastID, resume)
	defer n.unsubscribe(c)
	n.m.sseClients.Inc()
	defer n.m.sseClients.Dec()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // no proxy buffering (nginx)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var buf bytes.Buffer
	flush := func() bool {
		// A client that does not read would otherwise hold this goroutine.
		_ = rc.SetWriteDeadline(time.Now().Add(n.cfg.StreamWriteTimeout))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		buf.Reset()
		return rc.Flush() == nil
	}
	buf.WriteString(": riskd alert stream\n\n")
	if reset {
		buf.WriteString("event: reset\ndata: {\"last_event_id\":" + strconv.FormatUint(lastID, 10) +
			",\"oldest_id\":" + strconv.FormatUint(resetFrom, 10) + "}\n\n")
	}
	for _, note := range backlog {
		if c.account == "" || c.account == note.AccountID {
			writeEvent(&buf, note)
		}
	}
	if !flush() {
		return
	}
	beat := time.NewTicker(n.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-n.stopped:
			return
		case <-c.gone:
			return
		case note := <-c.ch:
			writeEvent(&buf, note)
			// Batch what is already waiting into one write.
			for more := true; more && buf.Len() < 64<<10; {
				select {
				case note := <-c.ch:
					writeEvent(&buf, note)
				default:
					more = false
				}
			}
		case <-beat.C:
			buf.WriteString(": heartbeat\n\n")
		}
		if !flush() {
			return
		}
	}
}

// subscribe registers c for live notifications and, for a resuming
// client, returns what it missed, atomically with respect to Publish so
// nothing is missed or sent twice. reset is true when lastID is not
// covered by the ring; resetFrom is then the oldest id that is.
func (n *Notifier) subscribe(c *streamClient, lastID uint64, resume bool) (backlog []Notification, reset bool, resetFrom uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.clients[c] = struct{}{}
	if !resume {
		return nil, false, 0
	}
	oldest := n.ring.oldest()
	if oldest == 0 {
		oldest = n.lastID + 1
	}
	if lastID > n.lastID || lastID+1 < oldest {
		return n.ring.after(0), true, oldest
	}
	return n.ring.after(lastID), false, 0
}

func (n *Notifier) unsubscribe(c *streamClient) {
	n.mu.Lock()
	delete(n.clients, c)
	n.mu.Unlock()
}

// writeEvent appends one SSE event; a body with line breaks becomes
// several data lines, which the client joins back with "\n".
func writeEvent(buf *bytes.Buffer, note Notification) {
	buf.WriteString("id: ")
	buf.WriteString(strconv.FormatUint(note.ID, 10))
	buf.WriteString("\nevent: ")
	buf.WriteString(note.Kind)
	buf.WriteByte('\n')
	body := strings.ReplaceAll(string(note.Body), "\r\n", "\n")
	for line := range strings.SplitSeq(body, "\n") {
		buf.WriteString("data: ")
		buf.WriteString(strings.TrimSuffix(line, "\r"))
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
}
