package notify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"riskd/streams/notify"
)

func recipeHMAC(key, msg string) string {
	h := hmac.New(sha256.New, []byte(key))
	h.Write([]byte(msg))
	return hex.EncodeToString(h.Sum(nil))
}

// A receiver checks each delivery before acting on it: the raw body, the
// Riskd-Signature header and a tolerance of five minutes.
func ExampleVerify() {
	secret := []byte("shared-secret")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body) // the raw bytes, before any JSON parsing
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		if err := notify.Verify(secret, r.Header.Get("Riskd-Signature"), body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		// De-duplicate by r.Header.Get("Riskd-Delivery"), then act on body.
		fmt.Printf("accepted %s %s: %s\n", r.Header.Get("Riskd-Event"), r.Header.Get("Riskd-Delivery"), body)
	})

	body := `{"event_id":"ev-1","account_id":"acct-42","rule_id":"scam-payee"}`
	for _, sig := range []string{
		notify.Sign(secret, time.Now(), []byte(body)),          // what riskd sends
		notify.Sign([]byte("guess"), time.Now(), []byte(body)), // a forgery
	} {
		req := httptest.NewRequest(http.MethodPost, "/riskd", strings.NewReader(body))
		req.Header.Set("Riskd-Signature", sig)
		req.Header.Set("Riskd-Delivery", "1773480413000001")
		req.Header.Set("Riskd-Event", "alert")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// accepted alert 1773480413000001: {"event_id":"ev-1","account_id":"acct-42","rule_id":"scam-payee"}
	// 200
	// 401
}
