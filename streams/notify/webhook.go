package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"riskd/internal/backoff"
)

// work is one delivery worker: it takes its shard's notifications in order
// and finishes each (delivered, parked or abandoned) before the next, which
// is what keeps one account's notifications in Publish order.
func (n *Notifier) work(ctx context.Context, s *subscriber, q <-chan queued) {
	for {
		select {
		case <-ctx.Done():
			return
		case item := <-q:
			n.deliver(ctx, s, item)
		}
	}
}

// attempt is the outcome of one HTTP POST.
type attempt struct {
	ok        bool
	permanent bool          // not worth repeating: park at once
	wait      time.Duration // the server's Retry-After, if any
	err       string        // what went wrong, for the dead letter
}

// deliver tries a notification until it is delivered, refused for good, or
// out of attempts (then parks it), or until ctx ends (then abandons it).
func (n *Notifier) deliver(ctx context.Context, s *subscriber, item queued) {
	var last attempt
	tries := 0
	for tries < n.cfg.MaxAttempts {
		if ctx.Err() != nil {
			s.count(OutcomeAbandoned, &s.abandoned)
			return
		}
		if s.paused.Load() {
			n.park(ctx, s, item.n, tries, pausedError)
			return
		}
		tries++
		last = n.post(ctx, s, item.n)
		if last.ok {
			s.count(OutcomeDelivered, &s.delivered)
			s.latency.Observe(time.Since(item.at).Seconds())
			return
		}
		if ctx.Err() != nil { // the failure was our own shutdown
			s.count(OutcomeAbandoned, &s.abandoned)
			return
		}
		if last.permanent || tries == n.cfg.MaxAttempts {
			break
		}
		s.count(OutcomeRetried, &s.retried)
		t := time.NewTimer(max(backoff.Delay(n.cfg.RetryMin, n.cfg.RetryMax, tries), min(last.wait, n.cfg.RetryMax)))
		select {
		case <-ctx.Done():
			t.Stop()
			s.count(OutcomeAbandoned, &s.abandoned)
			return
		case <-t.C:
		}
	}
	n.park(ctx, s, item.n, tries, last.err)
}

// post makes one signed delivery attempt and classifies the answer:
//   - 2xx: delivered.
//   - 408, 429 and 5xx, timeouts and transport errors: retried; they say
//     "not now", and the receiver may be restarting or overloaded.
//   - any other status (3xx, 4xx): permanent. The receiver understood the
//     request and refused it (bad signature or secret, unknown endpoint,
//     rejected content); sending the same bytes again gets the same answer
//     and would hold up the account's later notifications for nothing. It
//     is parked after this one attempt, for an operator to fix and replay.
func (n *Notifier) post(ctx context.Context, s *subscriber, note Notification) attempt {
	conf := s.conf.Load()
	actx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, conf.URL, bytes.NewReader(note.Body))
	if err != nil {
		return attempt{permanent: true, err: "build request: " + err.Error()}
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "riskd-webhook/1")
	h.Set(HeaderSignature, Sign(conf.secret, n.cfg.Now(), note.Body))
	h.Set(HeaderDelivery, strconv.FormatUint(note.ID, 10))
	h.Set(HeaderEvent, note.Kind)
	resp, err := n.client.Do(req)
	if err != nil {
		return attempt{err: err.Error()}
	}
	// Keep the start of the answer for the dead letter, and read a bounded
	// rest so the connection can be reused.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return attempt{ok: true}
	}
	a := attempt{err: fmt.Sprintf("HTTP %d", code)}
	if msg := strings.TrimSpace(string(head)); msg != "" {
		a.err += ": " + msg
	}
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			a.wait = time.Duration(secs) * time.Second
		}
	default:
		a.permanent = true
	}
	return a
}

// park writes a notification the subscriber did not take to the dead
// letters, then the worker moves on to the account's next one. The write
// blocks this worker while the store retries (its accounts wait rather
// than lose the notification), and gives up only when ctx ends.
func (n *Notifier) park(ctx context.Context, s *subscriber, note Notification, tries int, lastErr string) {
	if n.cfg.DeadLetters == nil {
		s.count(OutcomeParked, &s.parked)
		n.log.Warn("notify: webhook gave up; no dead-letter store configured, notification dropped",
			"subscriber", s.name, "id", note.ID, "kind", note.Kind, "account", note.AccountID,
			"event_id", note.EventID, "attempts", tries, "last_error", lastErr)
		return
	}
	row := DeadLetter{
		Subscriber: s.name, NotificationID: note.ID, Kind: note.Kind, AccountID: note.AccountID,
		EventID: note.EventID, RuleID: note.RuleID, Body: string(note.Body), Attempts: uint32(tries),
		LastError: lastErr, ParkedAt: n.cfg.Now(),
	}
	if err := n.cfg.DeadLetters.WriteWebhookDeadLetter(ctx, row); err != nil {
		s.count(OutcomeAbandoned, &s.abandoned)
		n.log.Error("notify: could not park a webhook notification; it is lost for this subscriber",
			"subscriber", s.name, "id", note.ID, "account", note.AccountID, "event_id", note.EventID, "err", err)
		return
	}
	s.count(OutcomeParked, &s.parked)
	n.log.Warn("notify: webhook gave up; notification parked in webhook_dead_letters",
		"subscriber", s.name, "id", note.ID, "kind", note.Kind, "account", note.AccountID,
		"event_id", note.EventID, "attempts", tries, "last_error", lastErr)
}
