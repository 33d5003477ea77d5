package console

import (
	"testing"
	"time"

	"riskd/api"
)

// At the cap, expired sessions go first, then the one closest to expiry.
func TestSessionsAreBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newSessions(time.Hour, 2, func() time.Time { return now })
	a, _ := s.create(api.Caller{Name: "a"})
	now = now.Add(time.Minute)
	b, _ := s.create(api.Caller{Name: "b"})
	now = now.Add(time.Minute)
	c, _ := s.create(api.Caller{Name: "c"})
	if _, ok := s.get(a); ok {
		t.Error("the oldest session survived a third sign-in at cap 2")
	}
	for _, id := range []string{b, c} {
		if _, ok := s.get(id); !ok {
			t.Errorf("a newer session was dropped")
		}
	}
	now = now.Add(time.Hour - time.Minute) // b has expired, c has a minute left
	d, _ := s.create(api.Caller{Name: "d"})
	if _, ok := s.get(c); !ok {
		t.Error("a live session was dropped while an expired one could go")
	}
	if _, ok := s.get(d); !ok || s.count() != 2 {
		t.Errorf("after the sweep: %d sessions", s.count())
	}
	s.end(d)
	if _, ok := s.get(d); ok {
		t.Error("an ended session is still found")
	}
}
