package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Notification kinds.
const (
	KindAlert  = "alert"  // a user-facing alert raised by a rule
	KindLock   = "lock"   // the account was locked (until a time)
	KindUnlock = "unlock" // the account was unlocked
)

var kinds = []string{KindAlert, KindLock, KindUnlock}

// Notification is one message for alert subscribers.
type Notification struct {
	// ID is assigned by Publish: strictly increasing within a process, and
	// seeded from the clock (Unix microseconds at New) so that ids normally
	// keep increasing across restarts too. It is the SSE event id and the
	// Riskd-Delivery header. Any value set by the caller is overwritten.
	ID uint64
	// Kind is KindAlert, KindLock or KindUnlock.
	Kind string
	// AccountID is the wallet account; per-account order is kept on every
	// webhook subscriber and it is the SSE ?account= filter.
	AccountID string
	// EventID is the event that caused it (empty for a manual unlock).
	EventID string
	// RuleID is the rule that raised it, when one did.
	RuleID string
	// At is when it happened; zero means the Notifier's clock at Publish.
	At time.Time
	// Body is the JSON sent as the webhook body and the SSE data, as is
	// (streams.AlertRecord or streams.ActionRecord). Publish keeps a
	// reference: the caller must not modify it afterwards.
	Body json.RawMessage
}

// Subscriber is a webhook endpoint.
type Subscriber struct {
	// Name identifies the subscriber in metrics, logs and dead letters.
	Name string
	// URL receives an HTTP POST per notification (http or https).
	URL string
	// Kinds lists the kinds it wants; empty means all.
	Kinds []string
	// Secret is the HMAC-SHA256 key of the Riskd-Signature header.
	Secret string
}

func (s Subscriber) wants(kind string) bool {
	return len(s.Kinds) == 0 || slices.Contains(s.Kinds, kind)
}

// DeadLetter is a notification that a webhook subscriber did not take:
// every attempt failed, or the subscriber refused it for good (a 4xx other
// than 408 and 429). It is parked so an operator can inspect and redeliver it.
type DeadLetter struct {
	// Subscriber is the subscriber's configured name.
	Subscriber string
	// NotificationID is the id sent in the Riskd-Delivery header.
	NotificationID uint64
	// Kind is "alert", "lock" or "unlock".
	Kind      string
	AccountID string
	EventID   string
	RuleID    string
	// Body is the request body exactly as it was signed and sent.
	Body string
	// Attempts is how many deliveries were tried.
	Attempts uint32
	// LastError describes the last failure: an HTTP status with the start
	// of the response body, or a transport error.
	LastError string
	// ParkedAt is when it was parked (to the second); zero means now.
	ParkedAt time.Time
}

// DeadLetters parks notifications that a subscriber did not take
// (*chstore.Store in production, whose table webhook_dead_letters stores
// DeadLetter as it is). It should retry until it succeeds or ctx ends; ctx
// ends when the Notifier stops.
type DeadLetters interface {
	WriteWebhookDeadLetter(ctx context.Context, r DeadLetter) error
}

// Config sets up a Notifier. Zero values take the defaults given per field.
type Config struct {
	// Subscribers are the webhook endpoints known at start (the config
	// file's); Add and Remove change the set while the Notifier runs.
	Subscribers []Subscriber
	// QueueSize bounds the notifications waiting per subscriber (default
	// 10000), split evenly across its workers. When a worker's share is
	// full, Publish drops the notification for that subscriber, counts it
	// (dropped_overflow) and returns: scoring never waits for a subscriber.
	QueueSize int
	// Workers is the number of concurrent deliveries per subscriber
	// (default 4). An account always maps to the same worker, which
	// delivers one notification at a time in Publish order; a slow or
	// failing account holds up only the accounts that share its worker.
	Workers int
	// RetryMin and RetryMax bound the backoff between attempts (defaults 1s
	// and 5m): the wait after attempt n is uniform in
	// [0, min(RetryMax, RetryMin*2^(n-1))] ("full jitter"), or longer when a
	// 429/503 response asks for it with Retry-After (capped at RetryMax).
	RetryMin, RetryMax time.Duration
	// MaxAttempts is the number of tries before a notification is parked
	// (default 10; with the default backoff the nine waits add up to about
	// 4 minutes on average and at most 8.5).
	MaxAttempts int
	// AttemptTimeout bounds one HTTP attempt, response included (default
	// 10s); a timeout is retried.
	AttemptTimeout time.Duration
	// DeadLetters receives parked notifications; nil means they are only
	// counted and logged.
	DeadLetters DeadLetters
	// StreamBuffer is how many recent notifications the live stream keeps
	// for clients that reconnect with Last-Event-ID (default 1000).
	StreamBuffer int
	// StreamClientBuffer bounds the notifications waiting for one stream
	// client (default 256); a client that falls further behind is
	// disconnected and can reconnect with Last-Event-ID.
	StreamClientBuffer int
	// Heartbeat is the interval of the stream's keep-alive comments
	// (default 15s).
	Heartbeat time.Duration
	// StreamWriteTimeout bounds one write to a stream client (default 30s);
	// a client that does not read is disconnected.
	StreamWriteTimeout time.Duration
	// LogInterval is how often dropped notifications are summarised in the
	// log (default 1m), instead of one line per message.
	LogInterval time.Duration
	// Client sends the webhooks. Default: a client of its own that does
	// not follow redirects (a 3xx is a permanent failure: POSTs must not
	// silently become GETs or go to another host).
	Client *http.Client
	// Registerer gets the metrics; nil means they are not registered.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock for signatures and default times; default time.Now.
	Now func() time.Time
}

// Validate checks the whole config and names the offending key. New does
// not validate: call Validate at start-up.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("notify.%s: "+format, append([]any{key}, args...)...))
	}
	names := map[string]bool{}
	for i, s := range c.Subscribers {
		key := fmt.Sprintf("subscribers[%d]", i)
		if s.Name != "" && names[s.Name] {
			bad(key+".name", "%q is used twice", s.Name)
		}
		names[s.Name] = true
		if err := validateSubscriber(key, s); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"retry_min", c.RetryMin}, {"retry_max", c.RetryMax}, {"attempt_timeout", c.AttemptTimeout},
		{"heartbeat", c.Heartbeat}, {"stream_write_timeout", c.StreamWriteTimeout}, {"log_interval", c.LogInterval}} {
		if d.v < 0 {
			bad(d.key, "%v is negative", d.v)
		}
	}
	if c.RetryMin > 0 && c.RetryMax > 0 && c.RetryMin > c.RetryMax {
		bad("retry_min", "%v is above retry_max %v", c.RetryMin, c.RetryMax)
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"queue_size", c.QueueSize}, {"workers", c.Workers},
		{"max_attempts", c.MaxAttempts}, {"stream_buffer", c.StreamBuffer}, {"stream_client_buffer", c.StreamClientBuffer}} {
		if n.v < 0 {
			bad(n.key, "%d is negative", n.v)
		}
	}
	return errors.Join(errs...)
}

// MaxURLLength bounds a subscriber's URL.
const MaxURLLength = 2048

// validateSubscriber checks one subscriber, naming keys under key
// ("subscribers[2]"), as Validate and Add word them.
func validateSubscriber(key string, s Subscriber) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("notify.%s.%s: "+format, append([]any{key, field}, args...)...))
	}
	if s.Name == "" {
		bad("name", "empty; every subscriber needs a name for metrics and dead letters")
	}
	if len(s.URL) > MaxURLLength {
		bad("url", "%d characters, over the limit of %d", len(s.URL), MaxURLLength)
	} else if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("url", "%q is not an http(s) URL", s.URL)
	}
	for _, k := range s.Kinds {
		if !slices.Contains(kinds, k) {
			bad("kinds", "unknown kind %q; want alert, lock or unlock", k)
		}
	}
	if s.Secret == "" {
		bad("secret", "empty; deliveries are signed, set a shared secret")
	}
	return errors.Join(errs...)
}

// Kinds lists the notification kinds, for validating subscriptions.
func Kinds() []string { return slices.Clone(kinds) }

func (c Config) withDefaults() Config {
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt(&c.QueueSize, 10_000)
	setInt(&c.Workers, 4)
	setInt(&c.MaxAttempts, 10)
	setInt(&c.StreamBuffer, 1000)
	setInt(&c.StreamClientBuffer, 256)
	setDur(&c.RetryMin, time.Second)
	setDur(&c.RetryMax, 5*time.Minute)
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	setDur(&c.AttemptTimeout, 10*time.Second)
	setDur(&c.Heartbeat, 15*time.Second)
	setDur(&c.StreamWriteTimeout, 30*time.Second)
	setDur(&c.LogInterval, time.Minute)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
