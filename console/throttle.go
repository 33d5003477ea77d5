package console

import (
	"net"
	"sync"
	"time"
)

// Sign-in throttling: a token is 256 bits or so and cannot be guessed,
// but a script trying tokens at the sign-in form would still fill the
// logs and cost a constant-time comparison against every token per try.
// Failed sign-ins are counted per client address in fixed windows; once
// an address has signInFailures of them in a window, its sign-ins are
// answered 429 until the window ends, correct token or not (checking it
// would tell the script which one was right). A success does not count.
const (
	signInFailures = 10
	signInWindow   = time.Minute
	// maxThrottled bounds the addresses tracked; see throttle.fail.
	maxThrottled = 10000
)

// throttle counts failed sign-ins by client address.
type throttle struct {
	mu     sync.Mutex
	m      map[string]*failures
	limit  int
	window time.Duration
	cap    int
	now    func() time.Time
}

// failures are one address's failed sign-ins in the window from start.
type failures struct {
	start  time.Time
	n      int
	logged bool // the address's first refusal in this window was logged
}

func newThrottle(limit int, window time.Duration, capacity int, now func() time.Time) *throttle {
	return &throttle{m: map[string]*failures{}, limit: limit, window: window, cap: capacity, now: now}
}

// clientAddr is the address a request's failures count against: the
// connection's host. Forwarded headers are not trusted (any client can
// send them), so behind a reverse proxy every client shares its address.
func clientAddr(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// check reports whether addr may try to sign in now; if not, how long
// until it may, and whether this is the window's first refusal (the one
// to log, so a script hammering the form does not flood the log).
func (t *throttle) check(addr string) (wait time.Duration, first bool, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[addr]
	if f == nil {
		return 0, false, true
	}
	now := t.now()
	end := f.start.Add(t.window)
	if !now.Before(end) {
		delete(t.m, addr)
		return 0, false, true
	}
	if f.n < t.limit {
		return 0, false, true
	}
	first, f.logged = !f.logged, true
	return end.Sub(now), first, false
}

// fail counts a failed sign-in from addr. At the cap, the addresses whose
// window has ended are swept and, if it is still full, the one whose
// window started first is dropped: memory stays bounded, at the price of
// forgetting the oldest address's failures under a flood from many.
func (t *throttle) fail(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if f := t.m[addr]; f != nil && now.Before(f.start.Add(t.window)) {
		f.n++
		return
	}
	delete(t.m, addr)
	if len(t.m) >= t.cap {
		var oldest string
		var at time.Time
		for k, f := range t.m {
			if !now.Before(f.start.Add(t.window)) {
				delete(t.m, k)
			} else if at.IsZero() || f.start.Before(at) {
				oldest, at = k, f.start
			}
		}
		if len(t.m) >= t.cap {
			delete(t.m, oldest)
		}
	}
	t.m[addr] = &failures{start: now, n: 1}
}

// count is how many addresses are tracked (for tests).
func (t *throttle) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
