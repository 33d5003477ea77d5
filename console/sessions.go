package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"

	"riskd/api"
)

// session is one signed-in browser: who it acts as, its CSRF token and
// when it ends.
type session struct {
	caller  api.Caller
	csrf    string
	expires time.Time
	// ended is closed when the session is signed out or removed after it
	// expired, so requests still running on it (a live stream) stop.
	ended chan struct{}
}

// sessions holds the live sessions in memory, keyed by the SHA-256 of
// their id, so a dump of the map would not hand out usable cookies. It is
// bounded: at the cap, expired sessions are swept and, if it is still
// full, the one closest to expiry is dropped (it is also the oldest).
type sessions struct {
	mu  sync.Mutex
	m   map[[32]byte]*session
	ttl time.Duration
	cap int
	now func() time.Time
}

func newSessions(ttl time.Duration, limit int, now func() time.Time) *sessions {
	return &sessions{m: map[[32]byte]*session{}, ttl: ttl, cap: limit, now: now}
}

// create opens a session for caller and returns its id (the cookie's
// value) and the session.
func (s *sessions) create(caller api.Caller) (id string, sess session) {
	id = randomToken()
	sess = session{caller: caller, csrf: randomToken(), expires: s.now().Add(s.ttl), ended: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.cap {
		s.sweepLocked()
	}
	if len(s.m) >= s.cap {
		var oldest [32]byte
		var at time.Time
		for k, v := range s.m {
			if at.IsZero() || v.expires.Before(at) {
				oldest, at = k, v.expires
			}
		}
		s.removeLocked(oldest)
	}
	stored := sess
	s.m[sha256.Sum256([]byte(id))] = &stored
	return id, sess
}

// get returns the live session of id; an expired one is removed.
func (s *sessions) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[key]
	if !ok {
		return session{}, false
	}
	if !s.now().Before(sess.expires) {
		s.removeLocked(key)
		return session{}, false
	}
	return *sess, true
}

// end removes the session of id (signing out).
func (s *sessions) end(id string) {
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	s.removeLocked(key)
	s.mu.Unlock()
}

// removeLocked deletes a session and ends its requests; s.mu is held, so
// a session is removed, and its channel closed, once.
func (s *sessions) removeLocked(key [32]byte) {
	if sess, ok := s.m[key]; ok {
		delete(s.m, key)
		close(sess.ended)
	}
}

// count is the number of sessions held, expired ones included until swept.
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *sessions) sweepLocked() {
	now := s.now()
	for k, v := range s.m {
		if !now.Before(v.expires) {
			s.removeLocked(k)
		}
	}
}

// randomToken is 256 random bits, base64url without padding.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sameSecret compares two secrets in constant time.
func sameSecret(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
