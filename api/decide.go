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
	// Rules is the holder of the rule sets the engine decides with (a
	// *rules.Holder), read for each matched rule's wallet fields (code,
	// category, step_up, user_message). Nil answers every reason with
	// its action's defaults.
	Rules RuleSets
	// Instance names this riskd in the fleet; every answer carries it, so
	// the caller knows which instance decided.
	Instance string
	// Router, when set, finds the instance that owns an event's account:
	// a call for an account another instance owns is forwarded there
	// (forward.go), whose state has the account's windows and profile.
	Router Router
}

// RuleSets gives the rule set installed now.
type RuleSets interface {
	Load() *rules.RuleSet
}

// SchemaVersion is the version of the decide answer's JSON schema
// (docs/decide-response.v1.schema.json); it changes when a field or a
// category changes meaning or is removed, not when one is added.
const SchemaVersion = 1

// DecideResponse is the answer to the authorization hook. Code,
// Category, Message and StepUp are the wallet's contract for the decision
// as a whole: those of the deciding reason (the matched rule with the
// decision's action and the highest score, the first in rule order among
// equals), or, when no rule decided (nothing matched, a locked account, a
// score threshold, a duplicate, a timeout fallback), the code named after
// that case and the category, message and step-up of its action's
// defaults (rules.WalletDefault). docs/WALLET.md documents them.
type DecideResponse struct {
	SchemaVersion int          `json:"schema_version"`
	EventID       string       `json:"event_id"`
	Action        rules.Action `json:"action"`
	Score         int          `json:"score"`
	Code          string       `json:"code"`
	Category      string       `json:"category"`
	Message       string       `json:"message"`
	// StepUp is set for a challenge only.
	StepUp         string     `json:"step_up,omitempty"`
	Reasons        []Reason   `json:"reasons"`
	Reason         string     `json:"reason,omitempty"` // account_locked, duplicate, score_threshold, timeout
	RuleSetVersion string     `json:"ruleset_version,omitempty"`
	Locked         bool       `json:"locked"`
	LockUntil      *time.Time `json:"lock_until,omitempty"`
	LatencyMS      float64    `json:"latency_ms"`
	// Fallback is true when the deadline passed and Action is the
	// configured fail-open or fail-closed action, not a decision.
	Fallback  bool `json:"fallback"`
	Duplicate bool `json:"duplicate,omitempty"`
	// Suppressed are the ids of rules that matched but that support
	// suppressed for the account for a while: they did not count (no
	// action, score, reason). Absent almost always; for support's
	// records, not a reason to show the user.
	Suppressed []string `json:"suppressed,omitempty"`
	// Instance is the riskd instance that decided (its state.instance).
	Instance string `json:"instance,omitempty"`
}

// Reason is one matched rule, with its wallet fields as the rule
// declares them or as its action's defaults give them.
type Reason struct {
	RuleID   string       `json:"rule_id"`
	Action   rules.Action `json:"action"`
	Score    int          `json:"score"`
	Code     string       `json:"code"`
	Category string       `json:"category"`
	Message  string       `json:"message"`
	// StepUp is set for a challenge only.
	StepUp string `json:"step_up,omitempty"`
}

// ReasonTimeout marks a fallback answer.
const ReasonTimeout = "timeout"

// Decision-level codes when no rule decided (the deciding rule's own code
// otherwise).
const (
	// CodeClear: nothing matched.
	CodeClear = "clear"
	// CodeAccountLocked: the account was locked already; rules did not run.
	CodeAccountLocked = "account_locked"
	// CodeScoreThreshold: the sum of scores raised the action.
	CodeScoreThreshold = "score_threshold"
	// CodeDuplicate: the event id was decided before; the action is
	// repeated, its reasons are not.
	CodeDuplicate = "duplicate"
	// CodeTimeout: the deadline passed; the action is the fallback.
	CodeTimeout = "timeout"
)

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
		Help:    "POST /v1/decide latency by outcome (decided, fallback, invalid, forwarded: answered by the instance that owns the account).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14), // 50µs .. 0.4s
	}, []string{"outcome"})
	if reg != nil {
		reg.MustRegister(latency)
	}
	var fwd *forwarder
	if cfg.Router != nil {
		fwd = newForwarder(cfg.Router, cfg.Instance, reg)
	}
	h := func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		raw, ok := ReadBody(w, r)
		if !ok {
			latency.WithLabelValues("invalid").Observe(time.Since(start).Seconds())
			return
		}
		// The set in place before the decision and the one after it: the
		// decision names one of them unless two swaps came in between.
		var before *rules.RuleSet
		if cfg.Rules != nil {
			before = cfg.Rules.Load()
		}
		ctx, cancel := context.WithTimeout(r.Context(), cfg.Deadline)
		defer cancel()
		if fwd != nil && fwd.forward(ctx, w, r, raw) {
			latency.WithLabelValues("forwarded").Observe(time.Since(start).Seconds())
			return
		}
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
			resp := DecideResponse{
				SchemaVersion: SchemaVersion, EventID: eventID(raw), Action: cfg.OnTimeout, Reason: ReasonTimeout, Reasons: []Reason{},
				Fallback: true, LatencyMS: millis(time.Since(start)), Instance: cfg.Instance,
			}
			resp.setWallet(CodeTimeout, rules.WalletDefault(cfg.OnTimeout))
			WriteJSON(w, http.StatusOK, resp)
		case err != nil:
			latency.WithLabelValues("invalid").Observe(time.Since(start).Seconds())
			WriteError(w, http.StatusServiceUnavailable, err.Error())
		default:
			latency.WithLabelValues("decided").Observe(time.Since(start).Seconds())
			resp := decideResponse(dec, ruleSetOf(dec, before, cfg.Rules), time.Since(start))
			resp.Instance = cfg.Instance
			WriteJSON(w, http.StatusOK, resp)
		}
	}
	return Route{Pattern: "POST /v1/decide", Roles: []Role{RoleHook}, MaxBody: cfg.MaxBody, Handler: http.HandlerFunc(h)}
}

// ruleSetOf returns the rule set that made d: before (loaded ahead of
// the decision) or the one installed now, whichever d names, or nil when
// neither does (two swaps during one decision) or there is no holder.
// Looking the rules up here keeps the engine's decision free of them.
func ruleSetOf(d *engine.Decision, before *rules.RuleSet, holder RuleSets) *rules.RuleSet {
	if holder == nil {
		return nil
	}
	if before != nil && before.Version.String() == d.RuleSetVersion {
		return before
	}
	if now := holder.Load(); now != nil && now.Version.String() == d.RuleSetVersion {
		return now
	}
	return nil
}

// decideResponse builds the answer to d; rs is the set that decided it,
// or nil to answer each reason with its action's defaults.
func decideResponse(d *engine.Decision, rs *rules.RuleSet, took time.Duration) DecideResponse {
	resp := DecideResponse{
		SchemaVersion: SchemaVersion, EventID: d.EventID, Action: d.Action, Score: d.Score, Reason: d.Reason,
		Reasons: make([]Reason, 0, len(d.Matched)), RuleSetVersion: d.RuleSetVersion, LatencyMS: millis(took), Duplicate: d.Duplicate,
		Suppressed: d.Suppressed,
	}
	deciding := -1 // index in Reasons of the deciding rule
	for _, h := range d.Matched {
		wallet := rules.WalletDefault(h.Action)
		if rs != nil {
			if r := rs.Rule(h.RuleID); r != nil {
				wallet = r.Wallet
			}
		}
		resp.Reasons = append(resp.Reasons, Reason{RuleID: h.RuleID, Action: h.Action, Score: h.Score,
			Code: wallet.Code, Category: wallet.Category, Message: wallet.UserMessage, StepUp: wallet.StepUp})
		if h.Action == d.Action && (deciding < 0 || h.Score > resp.Reasons[deciding].Score) {
			deciding = len(resp.Reasons) - 1
		}
	}
	switch {
	case d.Duplicate:
		resp.setWallet(CodeDuplicate, rules.WalletDefault(d.Action))
	case d.Reason == engine.ReasonAccountLocked:
		// The locking rule's message says why ("locked for 30 minutes after
		// several wrong passwords"); a support lock, or a rule gone since,
		// gets lock's default.
		wallet := rules.WalletDefault(rules.Lock)
		if rs != nil {
			if r := rs.Rule(d.LockedBy); r != nil && r.Action == rules.Lock && r.Wallet.Category == wallet.Category {
				wallet.UserMessage = r.Wallet.UserMessage
			}
		}
		resp.setWallet(CodeAccountLocked, wallet)
	case deciding >= 0 && d.Reason != engine.ReasonScoreThreshold:
		r := resp.Reasons[deciding]
		resp.Code, resp.Category, resp.Message, resp.StepUp = r.Code, r.Category, r.Message, r.StepUp
	case d.Reason == engine.ReasonScoreThreshold:
		resp.setWallet(CodeScoreThreshold, rules.WalletDefault(d.Action))
	default: // nothing matched, or only rules that score
		resp.setWallet(CodeClear, rules.WalletDefault(d.Action))
	}
	if !d.LockUntil.IsZero() {
		until := d.LockUntil.UTC()
		resp.Locked, resp.LockUntil = true, &until
	}
	return resp
}

// setWallet sets the decision-level wallet fields to code and w's
// category, message and step-up.
func (r *DecideResponse) setWallet(code string, w rules.Wallet) {
	r.Code, r.Category, r.Message, r.StepUp = code, w.Category, w.UserMessage, w.StepUp
}

// eventID pulls event_id out of a body the engine did not get to decode.
func eventID(raw []byte) string {
	var ev event.Event
	if err := (&event.Decoder{}).Decode(raw, &ev); err != nil {
		return ""
	}
	return ev.ID
}
