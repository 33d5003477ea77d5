package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"riskd/internal/keyhash"
)

// Errors of Run and of the subscriber changes (Add, Update, SetPaused,
// Remove, Resend).
var (
	// ErrRunning is returned by Run when the Notifier is already running or
	// has run: a Notifier runs once.
	ErrRunning = errors.New("notify: Run called twice")
	// ErrStopped is returned by subscriber changes once Run has stopped.
	ErrStopped = errors.New("notify: the notifier has stopped")
	// ErrSubscriberExists is returned by Add for a name already in use.
	ErrSubscriberExists = errors.New("notify: subscriber already exists")
	// ErrNoSubscriber is returned for a name that is not a subscriber.
	ErrNoSubscriber = errors.New("notify: no such subscriber")
	// ErrPaused is returned by Resend to a paused subscriber.
	ErrPaused = errors.New("notify: subscriber is paused")
)

// pausedError is the LastError of a notification parked because its
// subscriber was paused.
const pausedError = "paused: not sent while the subscriber was paused"

// Notifier fans notifications out to webhook subscribers and live stream
// clients. Publish never blocks; Run owns the delivery goroutines.
// Subscribers can be added, changed, paused and removed while it runs.
type Notifier struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	client *http.Client

	// mu orders Publish: ids, the ring, the stream clients and the queues
	// all see notifications in the same order. Everything done under it is
	// non-blocking. It also guards subs and the run state, so a subscriber
	// is added or removed between two Publish calls, never during one.
	mu      sync.Mutex
	subs    []*subscriber
	runCtx  context.Context // Run's context while running, nil before
	lastID  uint64
	ring    ring
	clients map[*streamClient]struct{}
	closed  bool // Run has stopped: nothing is queued any more

	published  atomic.Uint64
	sseDropped atomic.Uint64

	started atomic.Bool
	// stopped is closed when Run's context ends; stream handlers return.
	stopped  chan struct{}
	stopOnce sync.Once
}

// subscriber is one webhook endpoint with its queues, workers and counters.
type subscriber struct {
	name string
	// conf is what Update may change; workers read it at every attempt,
	// so a new URL or secret applies from the next attempt on.
	conf   atomic.Pointer[subConf]
	paused atomic.Bool
	// shards are the per-worker queues; an account always uses
	// shards[hash(account) % len].
	shards []chan queued
	// ctx ends when the subscriber is removed or Run stops; wg counts its
	// workers.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	delivered, retried, parked, overflow, abandoned atomic.Uint64
	counter                                         map[string]prometheus.Counter // by outcome
	latency                                         prometheus.Observer
}

// subConf is a subscriber's replaceable settings.
type subConf struct {
	Subscriber
	secret []byte
}

// queued is a notification waiting for a subscriber's worker.
type queued struct {
	n  Notification
	at time.Time // when it was published, for the latency histogram
}

func (s *subscriber) count(outcome string, v *atomic.Uint64) {
	v.Add(1)
	s.counter[outcome].Inc()
}

func (s *subscriber) wants(kind string) bool { return s.conf.Load().wants(kind) }

// New builds a Notifier; call Run to start deliveries. Publish may be
// called before Run: notifications queue up (within QueueSize) until then.
func New(cfg Config) *Notifier {
	cfg = cfg.withDefaults()
	n := &Notifier{
		cfg:     cfg,
		log:     cfg.Logger,
		m:       newMetrics(cfg.Registerer, cfg.Subscribers),
		client:  cfg.Client,
		ring:    ring{buf: make([]Notification, cfg.StreamBuffer)},
		clients: map[*streamClient]struct{}{},
		stopped: make(chan struct{}),
	}
	if us := cfg.Now().UnixMicro(); us > 0 {
		n.lastID = uint64(us)
	}
	if n.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Workers
		n.client = &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	for _, s := range cfg.Subscribers {
		n.subs = append(n.subs, n.newSubscriber(s))
	}
	return n
}

// newSubscriber builds a subscriber's queues and counters; its workers
// start with Run (or at once, when added to a running Notifier).
func (n *Notifier) newSubscriber(s Subscriber) *subscriber {
	sub := &subscriber{name: s.Name, counter: map[string]prometheus.Counter{},
		latency: n.m.latency.WithLabelValues(s.Name)}
	sub.conf.Store(&subConf{Subscriber: cloneSubscriber(s), secret: []byte(s.Secret)})
	for _, o := range outcomes {
		sub.counter[o] = n.m.deliveries.WithLabelValues(s.Name, o)
	}
	perShard := max(n.cfg.QueueSize/n.cfg.Workers, 1)
	for range n.cfg.Workers {
		sub.shards = append(sub.shards, make(chan queued, perShard))
	}
	return sub
}

func cloneSubscriber(s Subscriber) Subscriber {
	s.Kinds = slices.Clone(s.Kinds)
	return s
}

// start runs s's workers under parent; n.mu is held.
func (n *Notifier) start(parent context.Context, s *subscriber) {
	s.ctx, s.cancel = context.WithCancel(parent)
	for _, q := range s.shards {
		s.wg.Go(func() { n.work(s.ctx, s, q) })
	}
}

// Publish hands a notification to every subscriber that wants its kind and
// to the live stream. It never blocks on a subscriber: a full queue drops
// the notification for that subscriber only (counted as dropped_overflow),
// and a stream client that is behind is disconnected. It does not throttle:
// the engine holds back repeats of an alert once for every output
// (engine.Config.AlertThrottle), so webhooks and the stream get the alerts
// the alerts topic and table hold. A paused subscriber's notifications are
// queued as usual; its worker parks them (see SetPaused).
// Safe for concurrent use; notifications of one account must be published
// from one goroutine to keep their order.
func (n *Notifier) Publish(note Notification) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lastID++
	note.ID = n.lastID
	if note.At.IsZero() {
		note.At = n.cfg.Now()
	}
	n.published.Add(1)
	n.ring.push(note)
	for c := range n.clients {
		if c.account != "" && c.account != note.AccountID {
			continue
		}
		select {
		case c.ch <- note:
		default:
			// Behind by a whole buffer: disconnect it rather than wait.
			// It reconnects with Last-Event-ID and catches up from the ring.
			delete(n.clients, c)
			close(c.gone)
			n.sseDropped.Add(1)
			n.m.sseDropped.Inc()
		}
	}
	if len(n.subs) == 0 {
		return
	}
	q := queued{n: note, at: time.Now()}
	shard := shardOf(note.AccountID, n.cfg.Workers)
	for _, s := range n.subs {
		if !s.wants(note.Kind) {
			continue
		}
		if n.closed {
			s.count(OutcomeAbandoned, &s.abandoned)
			continue
		}
		select {
		case s.shards[shard] <- q:
		default:
			// The worker's queue is full: drop for this subscriber only;
			// Run logs a summary once per LogInterval.
			s.count(OutcomeDroppedOverflow, &s.overflow)
		}
	}
}

func shardOf(account string, n int) int {
	return int(keyhash.String(account) % uint64(n))
}

// Run delivers webhooks until ctx ends, then stops: attempts in flight are
// cancelled, backoff waits cut short, and what was queued or retrying is
// abandoned (counted, not parked: the alerts and actions topics remain the
// durable record). Stream handlers return too. Run returns nil once every
// goroutine it started (subscribers added while it ran included) has
// ended, or ErrRunning if called a second time.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	n.mu.Lock()
	n.runCtx = ctx
	for _, s := range n.subs {
		n.start(ctx, s)
	}
	n.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { n.logDrops(ctx) })
	<-ctx.Done()
	n.stopOnce.Do(func() { close(n.stopped) })
	n.mu.Lock()
	n.closed = true
	subs := slices.Clone(n.subs)
	n.mu.Unlock()
	wg.Wait()
	var left uint64
	for _, s := range subs {
		s.cancel()
		s.wg.Wait()
		left += n.drain(s)
	}
	n.client.CloseIdleConnections()
	if left > 0 {
		n.log.Warn("notify: stopped with webhook notifications still queued; they were not delivered", "abandoned", left)
	}
	return nil
}

// drain counts what is left in a stopped subscriber's queues as abandoned.
func (n *Notifier) drain(s *subscriber) uint64 {
	var left uint64
	for _, q := range s.shards {
		for drained := false; !drained; {
			select {
			case <-q:
				s.count(OutcomeAbandoned, &s.abandoned)
				left++
			default:
				drained = true
			}
		}
	}
	return left
}

// Add adds a webhook subscriber; on a running Notifier its workers start at
// once and it gets the notifications published from then on. It returns
// the validation error (as Config.Validate words it), ErrSubscriberExists,
// or ErrStopped once Run has stopped.
func (n *Notifier) Add(s Subscriber) error {
	if err := validateSubscriber("subscriber", s); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrStopped
	}
	if n.find(s.Name) != nil {
		return fmt.Errorf("%w: %q", ErrSubscriberExists, s.Name)
	}
	sub := n.newSubscriber(s)
	n.subs = append(n.subs, sub)
	if n.runCtx != nil {
		n.start(n.runCtx, sub)
	}
	return nil
}

// Update replaces a subscriber's URL, kinds and secret (the name stays).
// Queued notifications are kept; an attempt in flight finishes with the old
// URL and secret, and every later attempt (retries included) uses the new
// ones. A change of kinds applies to notifications published afterwards.
func (n *Notifier) Update(s Subscriber) error {
	if err := validateSubscriber("subscriber", s); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	sub := n.find(s.Name)
	if sub == nil {
		return fmt.Errorf("%w: %q", ErrNoSubscriber, s.Name)
	}
	sub.conf.Store(&subConf{Subscriber: cloneSubscriber(s), secret: []byte(s.Secret)})
	return nil
}

// SetPaused pauses or resumes a subscriber. A paused subscriber is sent
// nothing: its workers park every notification they take (LastError
// "paused: ..."), in Publish order, instead of holding them in memory
// where a long pause would overflow the queue. A notification that was
// waiting between retries is parked at its next attempt. Resuming does not
// resend what was parked: Resend does, on request. Without
// Config.DeadLetters, parking only counts and logs, so a paused
// subscriber's notifications are then lost.
func (n *Notifier) SetPaused(name string, paused bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	sub := n.find(name)
	if sub == nil {
		return fmt.Errorf("%w: %q", ErrNoSubscriber, name)
	}
	sub.paused.Store(paused)
	return nil
}

// Remove removes a subscriber and returns once its workers have ended. It
// gets nothing published after the call; an attempt in flight is cancelled
// and, with what was queued or waiting for a retry, abandoned (counted,
// not parked: the subscriber is gone). Its metric series are deleted and
// idle HTTP connections closed, so nothing of it is left running.
func (n *Notifier) Remove(name string) error {
	n.mu.Lock()
	sub := n.find(name)
	if sub == nil {
		n.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNoSubscriber, name)
	}
	n.subs = slices.DeleteFunc(n.subs, func(s *subscriber) bool { return s == sub })
	n.mu.Unlock()
	if sub.cancel != nil { // its workers ran
		sub.cancel()
		sub.wg.Wait()
	}
	if left := n.drain(sub); left > 0 {
		n.log.Warn("notify: subscriber removed with notifications still queued; they were not delivered",
			"subscriber", name, "abandoned", left)
	}
	for _, o := range outcomes {
		n.m.deliveries.DeleteLabelValues(name, o)
	}
	n.m.latency.DeleteLabelValues(name)
	// Its keep-alive connections would otherwise linger (the others'
	// idle ones are closed too; they reconnect on their next delivery).
	n.client.CloseIdleConnections()
	return nil
}

// find returns the subscriber called name, or nil; n.mu is held.
func (n *Notifier) find(name string) *subscriber {
	for _, s := range n.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// SubscriberInfo describes a subscriber without its secret.
type SubscriberInfo struct {
	Name, URL string
	Kinds     []string
	// Paused is true while its notifications are parked instead of sent.
	Paused bool
	// SecretFingerprint identifies the secret without revealing it
	// (Fingerprint).
	SecretFingerprint string
	Stats             SubscriberStats
}

// Subscribers lists the subscribers in the order they were added.
func (n *Notifier) Subscribers() []SubscriberInfo {
	n.mu.Lock()
	subs := slices.Clone(n.subs)
	n.mu.Unlock()
	out := make([]SubscriberInfo, 0, len(subs))
	for _, s := range subs {
		c := s.conf.Load()
		out = append(out, SubscriberInfo{Name: s.name, URL: c.URL, Kinds: slices.Clone(c.Kinds),
			Paused: s.paused.Load(), SecretFingerprint: Fingerprint(c.secret), Stats: s.stats()})
	}
	return out
}

// Resend makes one signed delivery attempt of a parked notification to its
// subscriber, with the subscriber's current URL and secret and the original
// notification id (Riskd-Delivery), outside the subscriber's queues: it
// neither waits behind nor holds up live notifications. It returns nil on a
// 2xx answer (counted as delivered), ErrNoSubscriber, ErrPaused, ErrStopped,
// or an error describing the failed attempt. Remembering that it was
// resent is the caller's (the dead-letter store's) job.
func (n *Notifier) Resend(ctx context.Context, d DeadLetter) error {
	n.mu.Lock()
	sub, closed := n.find(d.Subscriber), n.closed
	n.mu.Unlock()
	switch {
	case closed:
		return ErrStopped
	case sub == nil:
		return fmt.Errorf("%w: %q", ErrNoSubscriber, d.Subscriber)
	case sub.paused.Load():
		return fmt.Errorf("%w: %q", ErrPaused, d.Subscriber)
	}
	a := n.post(ctx, sub, Notification{ID: d.NotificationID, Kind: d.Kind, AccountID: d.AccountID,
		EventID: d.EventID, RuleID: d.RuleID, Body: []byte(d.Body)})
	if !a.ok {
		return fmt.Errorf("notify: resend %s/%d: %s", d.Subscriber, d.NotificationID, a.err)
	}
	sub.count(OutcomeDelivered, &sub.delivered)
	return nil
}

// logDrops summarises dropped notifications once per LogInterval, so a
// flood of drops costs one log line per subscriber per interval.
func (n *Notifier) logDrops(ctx context.Context) {
	t := time.NewTicker(n.cfg.LogInterval)
	defer t.Stop()
	logged := map[*subscriber]uint64{}
	var sseLogged uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.mu.Lock()
		subs := slices.Clone(n.subs)
		n.mu.Unlock()
		for _, s := range subs {
			if total := s.overflow.Load(); total > logged[s] {
				n.log.Warn("notify: webhook queue full; notifications dropped for this subscriber",
					"subscriber", s.name, "dropped", total-logged[s], "dropped_total", total, "interval", n.cfg.LogInterval)
				logged[s] = total
			}
		}
		for s := range logged { // removed subscribers
			if !slices.Contains(subs, s) {
				delete(logged, s)
			}
		}
		if total := n.sseDropped.Load(); total > sseLogged {
			n.log.Warn("notify: slow alert stream clients disconnected", "clients", total-sseLogged, "interval", n.cfg.LogInterval)
			sseLogged = total
		}
	}
}

// Stats are counters since New.
type Stats struct {
	// Published counts notifications accepted (given an id).
	Published uint64
	// StreamDropped counts live stream clients disconnected for falling
	// behind.
	StreamDropped uint64
	// Subscribers has the webhook counters by subscriber name.
	Subscribers map[string]SubscriberStats
}

// SubscriberStats count one webhook subscriber's notifications by outcome
// (see the Outcome constants) since it was added. Retried counts failed
// attempts, the others count notifications; a successful Resend counts as
// delivered.
type SubscriberStats struct {
	Delivered, Retried, Parked, DroppedOverflow, Abandoned uint64
}

// Stats returns the counters of the current subscribers (a removed
// subscriber's are gone with it).
func (n *Notifier) Stats() Stats {
	st := Stats{Published: n.published.Load(), StreamDropped: n.sseDropped.Load(),
		Subscribers: map[string]SubscriberStats{}}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.subs {
		st.Subscribers[s.name] = s.stats()
	}
	return st
}

func (s *subscriber) stats() SubscriberStats {
	return SubscriberStats{Delivered: s.delivered.Load(), Retried: s.retried.Load(),
		Parked: s.parked.Load(), DroppedOverflow: s.overflow.Load(), Abandoned: s.abandoned.Load()}
}

// Overflow is the number of notifications dropped because a subscriber's
// queue was full, over all subscribers.
func (n *Notifier) Overflow() uint64 {
	var total uint64
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.subs {
		total += s.overflow.Load()
	}
	return total
}
