package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"riskd/engine"
	"riskd/event"
	"riskd/rules"
)

// Decider decides one raw event synchronously on its account's shard
// (*streams.Pipeline in production), and returns an error when ctx ends
// first. DecideRoute sets that deadline itself, so it reads a timeout off
// its own context, not off the Decider's error value: api needs no
// sentinel from the package that implements the interface.
type Decider interface {
	Decide(ctx context.Context, raw []byte) (*engine.Decision, error)
}

// DecideConfig sets up POST /v1/decide.
type DecideConfig struct {
	// Deadline bounds the wait for the shard; 0 means 50ms.
	Deadline time.Duration
	// OnTimeout is the action answered when the deadline passes: Allow
	// fails open (the payment goes through), Block or Challenge fail
	// closed. The response says it was a fallback.
	OnTimeout rules.Action
	// MaxBody bounds the event; 0 means event.DefaultMaxBytes.
	MaxBody int64
}

// DecideResponse is the answer to the authorization hook.
type DecideResponse struct {
	EventID        string       `json:"event_id"`
	Action         rules.Action `json:"action"`
	Score          int          `json:"score"`
	Reasons        []Reason     `json:"reasons"`
	Reason         string       `json:"reason,omitempty"` // account_locked, duplicate, score_threshold, timeout
	RuleSetVersion string       `json:"ruleset_version,omitempty"`
	Locked         bool         `json:"locked"`
	LockUntil      *time.Time   `json:"lock_until,omitempty"`
	LatencyMS      float64      `json:"latency_ms"`
	// Fallback is true when the deadline passed and Action is the
	// configured fail-open or fail-closed action, not a decision.
	Fallback  bool `json:"fallback"`
	Duplicate bool `json:"duplicate,omitempty"`
}

// Reason is one matched rule.
type Reason struct {
	RuleID string       `json:"rule_id"`
	Action rules.Action `json:"action"`
	Score  int          `json:"score"`
}

// ReasonTimeout marks a fallback answer.
const ReasonTimeout = "timeout"

// DecideRoute is POST /v1/decide for the hook role; reg receives the
// latency histogram (nil: not registered).
func DecideRoute(d Decider, cfg DecideConfig, reg prometheus.Registerer) Route {
	if cfg.Deadline <= 0 {
		cfg.Deadline = 50 * time.Millisecond
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = event.DefaultMaxBytes
	}
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "riskd_decide_seconds",
		Help:    "POST /v1/decide latency by outcome (decided, fallback, invalid).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14), // 50µs .. 0.4s
	}, []string{"outcome"})
	if reg != nil {
		reg.MustRegister(latency)
	}
	h := func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		raw, ok := ReadBody(w, r)
		if !ok {
			latency.WithLabelValues("invalid").Observe(time.Since(start).Seconds())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), cfg.Deadline)
		defer cancel()
		dec, err := d.Decide(ctx, raw)
		var bad *event.Error
		switch {
		case errors.As(err, new(*engine.ErrFutureEvent)): // well formed, dated too far ahead of the clock
			latency.WithLabelValues("invalid").Observe(time.Since(start).Seconds())
			WriteJSON(w, http.StatusUnprocessableEntity, ErrorBody{Error: err.Error()})
		case errors.As(err, &bad) || errors.Is(err, event.ErrTooLarge):
			latency.WithLabelValues("invalid").Observe(time.Since(start).Seconds())
			WriteJSON(w, http.StatusBadRequest, ErrorBody{Error: err.Error()})
		case errors.As(err, new(*engine.ErrEventIDConflict)):
			latency.WithLabelValues("invalid").Observe(time.Since(start).Seconds())
			WriteJSON(w, http.StatusConflict, ErrorBody{Error: err.Error()})
		case err != nil && ctx.Err() != nil: // the deadline passed (or the caller left)
			latency.WithLabelValues("fallback").Observe(time.Since(start).Seconds())
			WriteJSON(w, http.StatusOK, DecideResponse{
				EventID: eventID(raw), Action: cfg.OnTimeout, Reason: ReasonTimeout, Reasons: []Reason{},
				Fallback: true, LatencyMS: millis(time.Since(start)),
			})
		case err != nil:
			latency.WithLabelValues("invalid").Observe(time.Since(start).Seconds())
			WriteError(w, http.StatusServiceUnavailable, err.Error())
		default:
			latency.WithLabelValues("decided").Observe(time.Since(start).Seconds())
			WriteJSON(w, http.StatusOK, decideResponse(dec, time.Since(start)))
		}
	}
	return Route{Pattern: "POST /v1/decide", Roles: []Role{RoleHook}, MaxBody: cfg.MaxBody, Handler: http.HandlerFunc(h)}
}

func decideResponse(d *engine.Decision, took time.Duration) DecideResponse {
	resp := DecideResponse{
		EventID: d.EventID, Action: d.Action, Score: d.Score, Reason: d.Reason, Reasons: make([]Reason, 0, len(d.Matched)),
		RuleSetVersion: d.RuleSetVersion, LatencyMS: millis(took), Duplicate: d.Duplicate,
	}
	for _, h := range d.Matched {
		resp.Reasons = append(resp.Reasons, Reason{RuleID: h.RuleID, Action: h.Action, Score: h.Score})
	}
	if !d.LockUntil.IsZero() {
		until := d.LockUntil.UTC()
		resp.Locked, resp.LockUntil = true, &until
	}
	return resp
}

// eventID pulls event_id out of a body the engine did not get to decode.
func eventID(raw []byte) string {
	var ev event.Event
	if err := (&event.Decoder{}).Decode(raw, &ev); err != nil {
		return ""
	}
	return ev.ID
}
