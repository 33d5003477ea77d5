package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header names of a webhook delivery.
const (
	// HeaderSignature carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
	HeaderSignature = "Riskd-Signature"
	// HeaderDelivery is the notification id; it is the same on every
	// attempt of one delivery, so receivers de-duplicate retries by it.
	HeaderDelivery = "Riskd-Delivery"
	// HeaderEvent is the notification kind: alert, lock or unlock.
	HeaderEvent = "Riskd-Event"
)

// Errors returned by Verify.
var (
	// ErrSignatureHeader is returned when the header is missing, has no
	// t= or no v1= part, or t is not a number.
	ErrSignatureHeader = errors.New("notify: malformed Riskd-Signature header")
	// ErrSignatureTimestamp is returned when t is further than the tolerance
	// from now (too old: a possible replay; too far ahead: a broken clock).
	ErrSignatureTimestamp = errors.New("notify: signature timestamp outside tolerance")
	// ErrSignatureMismatch is returned when no v1= value matches the body.
	ErrSignatureMismatch = errors.New("notify: signature does not match")
)

// Sign returns the Riskd-Signature header value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// Fingerprint identifies a secret without revealing it: the first 8 hex
// digits of its SHA-256, shown by the API so an operator can tell which
// secret a receiver holds.
func Fingerprint(secret []byte) string {
	sum := sha256.Sum256(secret)
	return hex.EncodeToString(sum[:4])
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a Riskd-Signature header against the raw request body: the
// timestamp must be within tolerance of now (either side), and one of the
// v1= signatures (a header may carry several while a secret is rotated) must
// equal the HMAC of "<t>.<body>", compared in constant time. It returns nil
// or one of ErrSignatureHeader, ErrSignatureTimestamp, ErrSignatureMismatch.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return ErrSignatureHeader
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrSignatureHeader
	}
	if age := now.Sub(time.Unix(sec, 0)); age > tolerance || age < -tolerance {
		return ErrSignatureTimestamp
	}
	want := mac(secret, ts, body)
	matched := false
	for _, s := range sigs {
		// Every candidate is compared, so the time taken does not say which
		// one matched.
		got, err := hex.DecodeString(s)
		if err == nil && hmac.Equal(got, want) {
			matched = true
		}
	}
	if !matched {
		return ErrSignatureMismatch
	}
	return nil
}
