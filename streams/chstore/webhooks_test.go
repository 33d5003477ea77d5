package chstore_test

import (
	"testing"
	"time"

	"riskd/internal/chtest"
	"riskd/streams/chstore"
)

func TestWebhookDeadLettersAreStoredOnceAndReadBack(t *testing.T) {
	st := chtest.Open(t)
	ctx := t.Context()
	at := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	rows := []chstore.WebhookDeadLetter{
		{Subscriber: "sms", NotificationID: 41, Kind: "alert", AccountID: "acct-1", EventID: "ev-1", RuleID: "scam-payee",
			Body: `{"event_id":"ev-1","message":"This payee is reported."}`, Attempts: 8, LastError: "HTTP 503: busy", ParkedAt: at},
		{Subscriber: "sms", NotificationID: 42, Kind: "lock", AccountID: "acct-1", EventID: "ev-2",
			Body: `{"type":"lock"}`, Attempts: 1, LastError: "HTTP 400: bad request", ParkedAt: at.Add(time.Second)},
		{Subscriber: "cases", NotificationID: 41, Kind: "alert", AccountID: "acct-1", EventID: "ev-1", RuleID: "scam-payee",
			Body: `{}`, Attempts: 3, LastError: "dial tcp: connection refused", ParkedAt: at},
	}
	for range 2 { // a retried write collapses
		for _, r := range rows {
			if err := st.WriteWebhookDeadLetter(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		subscriber string
		want       uint64
	}{{"", 3}, {"sms", 2}, {"cases", 1}, {"nobody", 0}} {
		if n, err := st.CountWebhookDeadLetters(ctx, c.subscriber); err != nil || n != c.want {
			t.Errorf("CountWebhookDeadLetters(%q) = %d, %v; want %d", c.subscriber, n, err, c.want)
		}
	}
	got, err := st.WebhookDeadLetters(ctx, "sms", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("WebhookDeadLetters(sms) returned %d rows, want 2: %+v", len(got), got)
	}
	for i, want := range rows[:2] {
		g := got[i]
		if !g.ParkedAt.Equal(want.ParkedAt) {
			t.Errorf("row %d parked_at = %v, want %v", i, g.ParkedAt, want.ParkedAt)
		}
		g.ParkedAt = want.ParkedAt
		if g != want {
			t.Errorf("row %d = %+v\nwant %+v", i, g, want)
		}
	}
}

func TestWebhookDeadLetterNeedsASubscriber(t *testing.T) {
	st := chtest.Open(t)
	err := st.WriteWebhookDeadLetter(t.Context(), chstore.WebhookDeadLetter{NotificationID: 1})
	if err == nil || err.Error() != "chstore: write webhook dead letter: empty subscriber" {
		t.Errorf("err = %v, want the empty-subscriber error", err)
	}
}
