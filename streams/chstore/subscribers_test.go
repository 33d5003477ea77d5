package chstore_test

import (
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"riskd/internal/chtest"
	"riskd/streams/chstore"
)

func TestWebhookSubscribersReadTheLatestVersionAndSkipRemovals(t *testing.T) {
	st := chtest.Open(t)
	ctx := t.Context()
	at := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	// Written out of order, as separate parts: the highest version wins
	// whether or not ClickHouse merged them.
	for _, r := range []chstore.WebhookSubscriberRow{
		{Name: "crm", URL: "https://crm/v2", Kinds: []string{"alert"}, Secret: "s2", Paused: true, Version: 20, UpdatedAt: at, UpdatedBy: "admin-token"},
		{Name: "crm", URL: "https://crm/v1", Secret: "s1", Version: 10, UpdatedAt: at, UpdatedBy: "admin-token"},
		{Name: "gone", URL: "https://gone", Secret: "s", Version: 10, UpdatedAt: at},
		{Name: "gone", URL: "https://gone", Secret: "s", Deleted: true, Version: 11, UpdatedAt: at},
		{Name: "back", URL: "https://back/1", Secret: "s", Deleted: true, Version: 11, UpdatedAt: at},
		{Name: "back", URL: "https://back/2", Secret: "b", Version: 12, UpdatedAt: at},
	} {
		if err := st.WriteWebhookSubscriber(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.WebhookSubscribers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"back", "crm"}) {
		t.Fatalf("subscribers %v, want [back crm] (gone was removed)", names)
	}
	crm := got[1]
	if crm.URL != "https://crm/v2" || !slices.Equal(crm.Kinds, []string{"alert"}) || crm.Secret != "s2" || !crm.Paused ||
		crm.Version != 20 || !crm.UpdatedAt.Equal(at) || crm.UpdatedBy != "admin-token" {
		t.Errorf("crm = %+v, want version 20", crm)
	}
	if got[0].URL != "https://back/2" || got[0].Secret != "b" {
		t.Errorf("back = %+v, want the version written after its removal", got[0])
	}
}

func TestWebhookSubscriberVersionsOnlyGrow(t *testing.T) {
	now := time.Unix(100, 0)
	if v := chstore.WebhookSubscriberVersion(0, now); v != uint64(now.UnixNano()) {
		t.Errorf("first version %d, want the clock %d", v, now.UnixNano())
	}
	if v := chstore.WebhookSubscriberVersion(uint64(now.UnixNano())+5, now); v != uint64(now.UnixNano())+6 {
		t.Errorf("version after a clock step back %d, want previous+1", v)
	}
}

func TestAResentDeadLetterIsNeitherListedNorCounted(t *testing.T) {
	st := chtest.Open(t)
	ctx := t.Context()
	at := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	for id := uint64(1); id <= 3; id++ {
		if err := st.WriteWebhookDeadLetter(ctx, chstore.WebhookDeadLetter{Subscriber: "sms", NotificationID: id,
			Kind: "alert", AccountID: "acct-1", Body: "{}", Attempts: 2, LastError: "HTTP 500", ParkedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	r, found, err := st.WebhookDeadLetter(ctx, "sms", 2)
	if err != nil || !found || r.Attempts != 2 {
		t.Fatalf("WebhookDeadLetter(sms, 2) = %+v, %v, %v", r, found, err)
	}
	// A failed resend rewrites the row with more attempts and its error.
	r.Attempts, r.LastError = 3, "HTTP 502"
	if err := st.WriteWebhookDeadLetter(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r2, _, _ := st.WebhookDeadLetter(ctx, "sms", 2); r2.Attempts != 3 || r2.LastError != "HTTP 502" {
		t.Errorf("after a failed resend: %+v, want 3 attempts, HTTP 502", r2)
	}
	if err := st.MarkWebhookDeadLetterResent(ctx, r, at.Add(time.Hour), "admin-token"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := st.WebhookDeadLetter(ctx, "sms", 2); err != nil || found {
		t.Errorf("resent notification still found: %v, %v", found, err)
	}
	if n, err := st.CountWebhookDeadLetters(ctx, "sms"); err != nil || n != 2 {
		t.Errorf("CountWebhookDeadLetters = %d, %v; want 2", n, err)
	}
	counts, err := st.WebhookDeadLetterCounts(ctx)
	if err != nil || len(counts) != 1 || counts["sms"] != 2 {
		t.Errorf("WebhookDeadLetterCounts = %v, %v; want sms: 2", counts, err)
	}
	list, err := st.WebhookDeadLetters(ctx, "sms", 10)
	if err != nil || len(list) != 2 || list[0].NotificationID != 1 || list[1].NotificationID != 3 {
		t.Errorf("WebhookDeadLetters = %+v, %v; want ids 1 and 3", list, err)
	}
	if err := st.MarkWebhookDeadLetterResent(ctx, chstore.WebhookDeadLetter{Subscriber: "sms"}, at, "x"); err == nil ||
		err.Error() != "chstore: mark webhook dead letter resent: zero parked_at; pass the row as read" {
		t.Errorf("mark without parked_at: %v", err)
	}
}

func TestWebhookSubscriberRowsLogWithoutTheirSecret(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("loaded", "row", chstore.WebhookSubscriberRow{Name: "crm", URL: "https://crm", Secret: "hunter2-secret", Version: 3})
	if strings.Contains(buf.String(), "hunter2") || !strings.Contains(buf.String(), "row.name=crm") {
		t.Errorf("log line %q", buf.String())
	}
	js, _ := json.Marshal(chstore.WebhookSubscriberRow{Name: "crm", Secret: "hunter2-secret"})
	if strings.Contains(string(js), "hunter2") {
		t.Errorf("JSON %s shows the secret", js)
	}
}
