package notify_test

import (
	"errors"
	"testing"
	"time"

	"riskd/streams/notify"
)

func TestSignaturesVerifyAndRejectTampering(t *testing.T) {
	key := []byte("whsec-1")
	body := []byte(`{"event_id":"ev-1","account_id":"acct-42","message":"Your wallet was locked."}`)
	sent := time.Unix(1_773_480_413, 0)
	header := notify.Sign(key, sent, body)
	if want := "t=1773480413,v1="; header[:len(want)] != want {
		t.Fatalf("Sign = %q, want it to start with %q", header, want)
	}
	tests := []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"the signed body verifies", key, header, body, sent.Add(time.Minute), nil},
		{"a body with one byte changed fails", key, header, []byte(`{"event_id":"ev-2","account_id":"acct-42","message":"Your wallet was locked."}`), sent, notify.ErrSignatureMismatch},
		{"a body with a trailing newline fails", key, header, append(append([]byte(nil), body...), '\n'), sent, notify.ErrSignatureMismatch},
		{"another secret fails", []byte("whsec-2"), header, body, sent, notify.ErrSignatureMismatch},
		{"a timestamp moved to now fails", key, "t=1773480999" + header[len("t=1773480413"):], body, time.Unix(1_773_480_999, 0), notify.ErrSignatureMismatch},
		{"a delivery older than the tolerance fails", key, header, body, sent.Add(5*time.Minute + time.Second), notify.ErrSignatureTimestamp},
		{"a delivery exactly at the tolerance passes", key, header, body, sent.Add(5 * time.Minute), nil},
		{"a timestamp far in the future fails", key, header, body, sent.Add(-10 * time.Minute), notify.ErrSignatureTimestamp},
		{"a header with a second, matching signature passes (secret rotation)", key, notify.Sign([]byte("old"), sent, body) + ",v1=" + header[len("t=1773480413,v1="):], body, sent, nil},
		{"an empty header is malformed", key, "", body, sent, notify.ErrSignatureHeader},
		{"a header without v1 is malformed", key, "t=1773480413", body, sent, notify.ErrSignatureHeader},
		{"a header without t is malformed", key, header[len("t=1773480413,"):], body, sent, notify.ErrSignatureHeader},
		{"a non-numeric t is malformed", key, "t=yesterday,v1=00", body, sent, notify.ErrSignatureHeader},
		{"a v1 that is not hex fails", key, "t=1773480413,v1=zz", body, sent, notify.ErrSignatureMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := notify.Verify(tt.secret, tt.header, tt.body, tt.now, 5*time.Minute)
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// The recipe in the package doc, followed by hand: HMAC-SHA256 over
// "<t>.<body>", hex, compared with v1.
func TestSignatureFollowsTheDocumentedRecipe(t *testing.T) {
	got := notify.Sign([]byte("key"), time.Unix(1700000000, 0), []byte(`{"a":1}`))
	want := "t=1700000000,v1=" + recipeHMAC("key", `1700000000.{"a":1}`)
	// From printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
	const openssl = "t=1700000000,v1=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
	if got != want || got != openssl {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}
