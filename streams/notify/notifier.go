package notify

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"riskd/internal/keyhash"
)

// ErrRunning is returned by Run when the Notifier is already running or has
// run: a Notifier runs once.
var ErrRunning = errors.New("notify: Run called twice")

// Notifier fans notifications out to webhook subscribers and live stream
// clients. Publish never blocks; Run owns the delivery goroutines.
type Notifier struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	client *http.Client
	subs   []*subscriber

	// mu orders Publish: ids, the ring, the stream clients and the queues
	// all see notifications in the same order. Everything done under it is
	// non-blocking.
	mu      sync.Mutex
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

// subscriber is one webhook endpoint with its queues and counters.
type subscriber struct {
	Subscriber
	secret []byte
	// shards are the per-worker queues; an account always uses
	// shards[hash(account) % len].
	shards []chan queued

	delivered, retried, parked, overflow, abandoned atomic.Uint64
	counter                                         map[string]prometheus.Counter // by outcome
	latency                                         prometheus.Observer
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
	perShard := max(cfg.QueueSize/cfg.Workers, 1)
	for _, s := range cfg.Subscribers {
		sub := &subscriber{Subscriber: s, secret: []byte(s.Secret), counter: map[string]prometheus.Counter{},
			latency: n.m.latency.WithLabelValues(s.Name)}
		for _, o := range outcomes {
			sub.counter[o] = n.m.deliveries.WithLabelValues(s.Name, o)
		}
		for range cfg.Workers {
			sub.shards = append(sub.shards, make(chan queued, perShard))
		}
		n.subs = append(n.subs, sub)
	}
	return n
}

// Publish hands a notification to every subscriber that wants its kind and
// to the live stream. It never blocks on a subscriber: a full queue drops
// the notification for that subscriber only (counted as dropped_overflow),
// and a stream client that is behind is disconnected. It does not throttle:
// the engine holds back repeats of an alert once for every output
// (engine.Config.AlertThrottle), so webhooks and the stream get the alerts
// the alerts topic and table hold.
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
// goroutine it started has ended, or ErrRunning if called a second time.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	var wg sync.WaitGroup
	for _, s := range n.subs {
		for _, q := range s.shards {
			wg.Go(func() { n.work(ctx, s, q) })
		}
	}
	wg.Go(func() { n.logDrops(ctx) })
	<-ctx.Done()
	n.stopOnce.Do(func() { close(n.stopped) })
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	wg.Wait()
	var left uint64
	for _, s := range n.subs {
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
	}
	n.client.CloseIdleConnections()
	if left > 0 {
		n.log.Warn("notify: stopped with webhook notifications still queued; they were not delivered", "abandoned", left)
	}
	return nil
}

// logDrops summarises dropped notifications once per LogInterval, so a
// flood of drops costs one log line per subscriber per interval.
func (n *Notifier) logDrops(ctx context.Context) {
	t := time.NewTicker(n.cfg.LogInterval)
	defer t.Stop()
	logged := make([]uint64, len(n.subs))
	var sseLogged uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, s := range n.subs {
			if total := s.overflow.Load(); total > logged[i] {
				n.log.Warn("notify: webhook queue full; notifications dropped for this subscriber",
					"subscriber", s.Name, "dropped", total-logged[i], "dropped_total", total, "interval", n.cfg.LogInterval)
				logged[i] = total
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
// (see the Outcome constants). Retried counts failed attempts, the others
// count notifications.
type SubscriberStats struct {
	Delivered, Retried, Parked, DroppedOverflow, Abandoned uint64
}

// Stats returns the counters.
func (n *Notifier) Stats() Stats {
	st := Stats{Published: n.published.Load(), StreamDropped: n.sseDropped.Load(),
		Subscribers: map[string]SubscriberStats{}}
	for _, s := range n.subs {
		st.Subscribers[s.Name] = SubscriberStats{Delivered: s.delivered.Load(), Retried: s.retried.Load(),
			Parked: s.parked.Load(), DroppedOverflow: s.overflow.Load(), Abandoned: s.abandoned.Load()}
	}
	return st
}

// Overflow is the number of notifications dropped because a subscriber's
// queue was full, over all subscribers.
func (n *Notifier) Overflow() uint64 {
	var total uint64
	for _, s := range n.subs {
		total += s.overflow.Load()
	}
	return total
}
