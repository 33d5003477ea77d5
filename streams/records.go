package streams

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/engine"
	"riskd/rules"
	"riskd/streams/notify"
)

// Header names on output and dead-letter messages. Consumers de-duplicate
// by HeaderEventID: after a crash riskd replays from the last commit and may
// publish an event's outputs again (at-least-once), always with the same id.
const (
	HeaderEventID         = "riskd-event-id"
	HeaderError           = "riskd-error"
	HeaderSourceTopic     = "riskd-source-topic"
	HeaderSourcePartition = "riskd-source-partition"
	HeaderSourceOffset    = "riskd-source-offset"
	HeaderFailedAt        = "riskd-failed-at"
)

// DecisionRecord is a decision as published on the decisions topic.
type DecisionRecord struct {
	EventID        string                `json:"event_id"`
	AccountID      string                `json:"account_id"`
	EventType      string                `json:"event_type"`
	EventTS        int64                 `json:"ts"`
	DecidedAt      time.Time             `json:"decided_at"`
	Action         rules.Action          `json:"action"`
	Score          int                   `json:"score"`
	Reason         string                `json:"reason,omitempty"`
	Matched        []string              `json:"matched,omitempty"`
	Shadow         []string              `json:"shadow,omitempty"`
	Errored        []string              `json:"errored,omitempty"`
	RuleSetVersion string                `json:"ruleset_version"`
	Features       map[string]float64    `json:"features,omitempty"`
	LatencyMicros  int64                 `json:"latency_us"`
	LockUntil      *time.Time            `json:"lock_until,omitempty"`
	Late           bool                  `json:"late,omitempty"`
	Alerts         []engine.AlertMessage `json:"-"`
}

// AlertRecord is one user-facing alert on the alerts topic.
type AlertRecord struct {
	EventID   string       `json:"event_id"`
	AccountID string       `json:"account_id"`
	RuleID    string       `json:"rule_id"`
	Action    rules.Action `json:"action"`
	Message   string       `json:"message"`
	EventTS   int64        `json:"ts"`
}

// ActionRecord is a command for the wallet's account service on the
// actions topic: lock (until a time) or unlock.
type ActionRecord struct {
	Type      string    `json:"type"` // "lock" or "unlock"
	AccountID string    `json:"account_id"`
	Until     time.Time `json:"until,omitzero"`
	Reason    string    `json:"reason"`
	EventID   string    `json:"event_id,omitempty"`
	At        time.Time `json:"at"`
}

func ruleIDs(hits []engine.RuleHit) []string {
	if len(hits) == 0 {
		return nil
	}
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.RuleID
	}
	return ids
}

func newDecisionRecord(d *engine.Decision) DecisionRecord {
	r := DecisionRecord{
		EventID: d.EventID, AccountID: d.AccountID, EventType: d.EventType, EventTS: d.EventTS,
		DecidedAt: d.DecidedAt.UTC(), Action: d.Action, Score: d.Score, Reason: d.Reason,
		Matched: ruleIDs(d.Matched), Shadow: ruleIDs(d.Shadow), Errored: ruleIDs(d.Errored),
		RuleSetVersion: d.RuleSetVersion, LatencyMicros: d.Latency.Microseconds(), Late: d.Late,
	}
	if len(d.Features) > 0 {
		r.Features = make(map[string]float64, len(d.Features))
		for _, f := range d.Features {
			r.Features[f.Name] = f.Value
		}
	}
	if !d.LockUntil.IsZero() {
		until := d.LockUntil.UTC()
		r.LockUntil = &until
	}
	return r
}

// newLock reports whether d locked its account (as opposed to being refused
// because the account was already locked).
func newLock(d *engine.Decision) bool {
	return d.Action == rules.Lock && d.Reason != engine.ReasonAccountLocked && !d.LockUntil.IsZero()
}

// lockingRules names the rules that chose to lock, for the lock's reason.
func lockingRules(d *engine.Decision) string {
	reason := ""
	for _, h := range d.Matched {
		if h.Action == rules.Lock {
			if reason != "" {
				reason += ","
			}
			reason += "rule:" + h.RuleID
		}
	}
	if reason == "" {
		reason = d.Reason // a score threshold raised it
	}
	return reason
}

// outputMessages appends the Kafka messages a decision produces: one on the
// decisions topic, one per alert, and a lock command when it locked.
func (t Topics) outputMessages(dst []kafka.Message, d *engine.Decision) ([]kafka.Message, error) {
	key := []byte(d.AccountID)
	hdr := []kafka.Header{{Key: HeaderEventID, Value: []byte(d.EventID)}}
	v, err := json.Marshal(newDecisionRecord(d))
	if err != nil {
		return dst, err
	}
	dst = append(dst, kafka.Message{Topic: t.Decisions, Key: key, Value: v, Headers: hdr})
	for _, a := range d.Alerts {
		v, err := json.Marshal(AlertRecord{EventID: d.EventID, AccountID: d.AccountID,
			RuleID: a.RuleID, Action: d.Action, Message: a.Message, EventTS: d.EventTS})
		if err != nil {
			return dst, err
		}
		dst = append(dst, kafka.Message{Topic: t.Alerts, Key: key, Value: v, Headers: hdr})
	}
	if newLock(d) {
		m, err := t.actionMessage(ActionRecord{Type: "lock", AccountID: d.AccountID, Until: d.LockUntil.UTC(),
			Reason: lockingRules(d), EventID: d.EventID, At: d.DecidedAt.UTC()}, d.EventID)
		if err != nil {
			return dst, err
		}
		dst = append(dst, m)
	}
	return dst, nil
}

// actionMessage is a lock or unlock command on the actions topic; id is its
// de-duplication key (the event id, or the API request's id).
func (t Topics) actionMessage(a ActionRecord, id string) (kafka.Message, error) {
	v, err := json.Marshal(actionAt(a))
	if err != nil {
		return kafka.Message{}, fmt.Errorf("streams: encode action: %w", err)
	}
	return kafka.Message{Topic: t.Actions, Key: []byte(a.AccountID), Value: v,
		Headers: []kafka.Header{{Key: HeaderEventID, Value: []byte(id)}}}, nil
}

// deadLetter builds the DLQ message for a message that could not be decided:
// the raw bytes untouched, the reason and the source position in headers.
func (t Topics) deadLetter(m kafka.Message, reason error, at time.Time) kafka.Message {
	return kafka.Message{
		Topic: t.DLQ,
		Key:   m.Key,
		Value: m.Value,
		Headers: []kafka.Header{
			{Key: HeaderError, Value: []byte(reason.Error())},
			{Key: HeaderSourceTopic, Value: []byte(m.Topic)},
			{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
			{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, m.Offset, 10)},
			{Key: HeaderFailedAt, Value: at.UTC().AppendFormat(nil, time.RFC3339Nano)},
		},
	}
}

// appendNotes adds the notifications of decision d: one per alert and one
// for a new lock. out are the messages outputMessages made for d after its
// decision record (alerts, then the lock command); their bodies are reused,
// and never modified afterwards.
func appendNotes(dst []notify.Notification, d *engine.Decision, out []kafka.Message) []notify.Notification {
	for i, a := range d.Alerts {
		dst = append(dst, notify.Notification{Kind: notify.KindAlert, AccountID: d.AccountID,
			EventID: d.EventID, RuleID: a.RuleID, At: d.DecidedAt, Body: out[i].Value})
	}
	if newLock(d) && len(out) > len(d.Alerts) {
		rule := ""
		for _, h := range d.Matched {
			if h.Action == rules.Lock {
				rule = h.RuleID
				break
			}
		}
		dst = append(dst, notify.Notification{Kind: notify.KindLock, AccountID: d.AccountID,
			EventID: d.EventID, RuleID: rule, At: d.DecidedAt, Body: out[len(d.Alerts)].Value})
	}
	return dst
}
