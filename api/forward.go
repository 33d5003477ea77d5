package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"riskd/event"
	"riskd/streams"
)

// Router says which instance reads an account's partition, and so holds
// its state, and where that instance's API answers (*streams.Pipeline in
// production: the consumer group's description).
type Router interface {
	Owner(accountID string) (streams.Member, bool)
	// HasPeers reports whether another instance reads some partition:
	// alone, no call is forwarded and none pays for finding its account.
	HasPeers() bool
}

// HeaderForwardedBy marks a decide call that one instance forwarded to the
// owner of its account: the receiver decides it itself, whatever its own
// view of the fleet, so a call is forwarded at most once.
const HeaderForwardedBy = "Riskd-Forwarded-By"

// maxForwardedAnswer bounds the owner's answer read back: a decide answer
// is a few hundred bytes, plus its reasons.
const maxForwardedAnswer = 1 << 20

// forwarder sends a decide call to the instance that owns its account.
type forwarder struct {
	router Router
	self   string
	client *http.Client
	// forwarded counts calls by outcome: forwarded (the owner answered),
	// failed (it did not: decided here).
	forwarded *prometheus.CounterVec
}

func newForwarder(router Router, self string, reg prometheus.Registerer) *forwarder {
	f := &forwarder{
		router: router, self: self,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}},
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_decide_forwarded_total",
			Help: "POST /v1/decide calls for an account another instance owns, by outcome (forwarded: that instance answered; failed: it did not in time, so this one decided).",
		}, []string{"outcome"}),
	}
	for _, o := range []string{"forwarded", "failed"} {
		f.forwarded.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(f.forwarded)
	}
	return f
}

// forward answers the call with the owner's answer when raw's account is
// owned by another instance that says where its API is, and reports
// whether it did. It leaves the call to this instance when it was
// forwarded already, when the owner is this instance or unknown, when raw
// does not decode (the local decide explains why), and when the owner
// does not answer within most of ctx's time: then this instance decides,
// with its view of the account (locks from every instance, but not the
// account's windows).
func (f *forwarder) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, raw []byte) bool {
	if r.Header.Get(HeaderForwardedBy) != "" || !f.router.HasPeers() {
		return false
	}
	var ev event.Event
	if err := (&event.Decoder{}).Decode(raw, &ev); err != nil {
		return false
	}
	owner, ok := f.router.Owner(ev.AccountID)
	if !ok || owner.Instance == f.self || owner.API == "" {
		return false
	}
	status, body, err := f.ask(ctx, owner.API, r.Header.Get("Authorization"), raw)
	if err != nil {
		f.forwarded.WithLabelValues("failed").Inc()
		return false
	}
	f.forwarded.WithLabelValues("forwarded").Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
	return true
}

// ask posts raw to the owner's decide API with the caller's credentials
// and returns its answer. It gives the owner three quarters of ctx's time
// left, so this instance can still decide in the rest.
func (f *forwarder) ask(ctx context.Context, api, authorization string, raw []byte) (int, []byte, error) {
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Until(deadline)*3/4)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v1/decide", bytes.NewReader(raw))
	if err != nil {
		return 0, nil, fmt.Errorf("forward to %s: %w", api, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", authorization)
	req.Header.Set(HeaderForwardedBy, f.self)
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("forward to %s: %w", api, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxForwardedAnswer+1))
	switch {
	case err != nil:
		return 0, nil, fmt.Errorf("forward to %s: %w", api, err)
	case len(body) > maxForwardedAnswer:
		return 0, nil, fmt.Errorf("forward to %s: answer over %d bytes", api, maxForwardedAnswer)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		// The owner cannot decide (not ready, shutting down) or does not
		// take this instance's credentials: decide here instead.
		return 0, nil, fmt.Errorf("forward to %s: %w", api, errors.New(resp.Status))
	}
	return resp.StatusCode, body, nil
}
