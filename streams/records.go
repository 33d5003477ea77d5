package streams

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"riskd/engine"
	"riskd/event"
	"riskd/rules"
	"riskd/streams/notify"
)

// Header names on output and dead-letter messages. Consumers de-duplicate
// by HeaderEventID: after a crash riskd replays from the last commit and may
// publish an event's outputs again (at-least-once), always with the same id.
//
// A dead letter too large to forward whole (over Config.MaxOutputBytes) is
// cut to its first bytes and carries HeaderTruncated ("true"),
// HeaderOriginalBytes (the decimal length of the whole body) and
// HeaderOriginalSHA256 (the hex SHA-256 of the whole body), so the input
// can be found and checked in the source topic. A parked output (one the
// writer or the broker refused for good) is a dead letter that names the
// topic it was meant for in HeaderParkedTopic and the refusal in
// HeaderError; it always carries the original size and checksum.
const (
	HeaderEventID         = "riskd-event-id"
	HeaderError           = "riskd-error"
	HeaderSourceTopic     = "riskd-source-topic"
	HeaderSourcePartition = "riskd-source-partition"
	HeaderSourceOffset    = "riskd-source-offset"
	HeaderFailedAt        = "riskd-failed-at"
	HeaderTruncated       = "riskd-truncated"
	HeaderOriginalBytes   = "riskd-original-bytes"
	HeaderOriginalSHA256  = "riskd-original-sha256"
	HeaderParkedTopic     = "riskd-parked-topic"
)

// Bounds on what a dead letter takes from its input.
const (
	// maxHeaderBytes bounds each header value that comes from input (the
	// reason text, the event id) and a dead letter's key. A longer reason
	// is cut; a longer event id is left out, since a cut id would name
	// another event.
	maxHeaderBytes = 1 << 10
	// eventIDScanBytes is how much of a message eventIDOf reads.
	eventIDScanBytes = 64 << 10
	// maxParkedBytes bounds a parked output (key, value and headers): it
	// replaces a message that was refused, so it keeps little of it.
	maxParkedBytes = 64 << 10
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
	LateFor        []string              `json:"late_for,omitempty"`        // groups whose windows it was too late for: "account", "device.id", ...
	Warming        []string              `json:"warming,omitempty"`         // features its rules read that started empty at a restore and whose window has not filled
	WarmingSkipped []string              `json:"warming_skipped,omitempty"` // rules left out (when_warming: skip) because a feature they read is warming
	Alerts         []engine.AlertMessage `json:"-"`
	// ThrottledAlerts are the alerts the engine's throttle held back: sent
	// nowhere, recorded here so an analyst sees which and why.
	ThrottledAlerts []ThrottledAlertRecord `json:"throttled_alerts,omitempty"`
	// Candidate is what the candidate rule set decided beside the live
	// one (engine.Decision.Candidate), when one ran: never acted on.
	Candidate *CandidateRecord `json:"candidate,omitempty"`
}

// CandidateRecord is the candidate rule set's outcome in a decision record.
type CandidateRecord struct {
	Version string       `json:"version"`
	Action  rules.Action `json:"action"`
	Score   int          `json:"score"`
	Matched []string     `json:"matched,omitempty"`
}

// ThrottledAlertRecord is one alert the throttle held back: the rule had
// alerted the account at event time SentTS, and does not again before
// UntilTS (both Unix ms, engine.Config.AlertThrottle apart).
type ThrottledAlertRecord struct {
	RuleID  string `json:"rule_id"`
	SentTS  int64  `json:"sent_ts"`
	UntilTS int64  `json:"until_ts"`
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
// actions topic: lock (until a time) or unlock; or support's suppress
// (a rule for the account, until a time) or unsuppress, which riskd
// re-applies at a restart (ReadActions).
type ActionRecord struct {
	Type      string    `json:"type"` // "lock" or "unlock"
	AccountID string    `json:"account_id"`
	Until     time.Time `json:"until,omitzero"`
	Reason    string    `json:"reason"`
	EventID   string    `json:"event_id,omitempty"`
	At        time.Time `json:"at"`
	// Indefinite marks a lock without an end (Until is then absent):
	// only an unlock lifts it.
	Indefinite bool `json:"indefinite,omitempty"`
	// Actor is who locked or unlocked through the API ("api:<token
	// name>"); empty for a rule's lock.
	Actor string `json:"actor,omitempty"`
	// Verification is how support verified the owner's identity before
	// an unlock (api.VerificationMethods).
	Verification string `json:"verification,omitempty"`
	// Cleared lists the account's window features an unlock reset.
	Cleared []string `json:"cleared,omitempty"`
	// RuleID is the rule of a "suppress" or "unsuppress" command: support
	// suppressed it for the account (until Until) or lifted that early.
	// Consumers that act on locks only ignore these two types.
	RuleID string `json:"rule_id,omitempty"`
	// Position is where in the input stream support's command took effect
	// (see Pipeline.Command): a restart applies it again at that place.
	// Absent for a rule's lock and for a command made while no partition
	// was being read.
	Position Position `json:"position,omitempty"`
	// Instance is the riskd instance whose API took a support command
	// (state.instance, or the host name). Every other instance applies
	// the command when it reads it here (FollowActions); a placed record
	// names the instance that applied it.
	Instance string `json:"instance,omitempty"`
	// Ref is, on a "placed" record (ActionPlaced), the id of the support
	// command that Instance applied at Position in its own stream.
	Ref string `json:"ref,omitempty"`
	// Superseded marks a placed record for a command Instance did not
	// apply: its own API had changed the same thing later (see
	// Pipeline.NoteOwnCommand), so a restart does not apply it either.
	Superseded bool `json:"superseded,omitempty"`
	// ID is the record's riskd-event-id header: a support command's
	// request id, which a placed record's Ref names. Not in the body.
	ID string `json:"-"`
}

// ActionPlaced is the type of riskd's own bookkeeping record on the
// actions topic: an instance applied another instance's support command
// (Ref) at Position in its stream, so its restart applies it again there.
// Consumers that act on locks ignore it, as they ignore suppressions.
const ActionPlaced = "placed"

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
		LateFor: d.LateFor, Warming: d.Warming, WarmingSkipped: d.WarmingSkipped,
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
	if c := d.Candidate; c.Version != "" {
		r.Candidate = &CandidateRecord{Version: c.Version, Action: c.Action, Score: c.Score, Matched: c.Matched}
	}
	for _, a := range d.ThrottledAlerts {
		r.ThrottledAlerts = append(r.ThrottledAlerts,
			ThrottledAlertRecord{RuleID: a.RuleID, SentTS: a.SentTS, UntilTS: a.UntilTS})
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

// outputArena holds the key, the event id header and the decision record
// of each decision of an output batch, so that a batch's messages cost no
// allocations of their own once the arena has grown to a batch's size.
// Each piece is cut with a full slice expression, so later appends never
// write over it; an append that moves the buffer leaves the pieces already
// cut in the old one, which stays theirs. The alert and lock messages'
// values are not in it: notifications hold them after the batch.
//
// reset makes it write over the pieces: publishBatch calls it at the start
// of a batch, when the last batch's publish has returned. By then nothing
// holds them: kafka-go's synchronous WriteMessages returns once each
// produce batch that holds a message is done (the writers have no
// Completion callback), and parked letters and retries live within
// publish. Only when ctx ends can WriteMessages return with its batches
// still sending; then publishBatch fails and runOutput, the arena's owner,
// stops without resetting it.
type outputArena struct {
	buf  []byte
	hdrs []kafka.Header
	// msgs is publishBatch's list of the batch's messages.
	msgs []kafka.Message
}

// maxArenaBytes bounds the buffer kept from one batch for the next: a
// batch of unusually large records gives its memory back.
const maxArenaBytes = 8 << 20

func (a *outputArena) reset() {
	if cap(a.buf) > maxArenaBytes {
		a.buf = nil
	}
	a.buf, a.hdrs = a.buf[:0], a.hdrs[:0]
	clear(a.msgs) // the last batch's alert values go with it
	a.msgs = a.msgs[:0]
}

// text appends s and returns its copy (never nil, as []byte(s) is not).
func (a *outputArena) text(s string) []byte {
	if a.buf == nil {
		a.buf = make([]byte, 0, 64<<10)
	}
	n := len(a.buf)
	a.buf = append(a.buf, s...)
	return a.buf[n:len(a.buf):len(a.buf)]
}

// outputMessages appends the Kafka messages a decision produces: one on the
// decisions topic, one per alert the engine let through (d.Alerts; the
// throttled ones, d.ThrottledAlerts, appear only in the decision record),
// and a lock command when it locked. Lock commands are never throttled.
// The messages' keys, event ids and the decision record live in arena (see
// outputArena).
func (t Topics) outputMessages(dst []kafka.Message, d *engine.Decision, arena *outputArena) ([]kafka.Message, error) {
	key := arena.text(d.AccountID)
	arena.hdrs = append(arena.hdrs, kafka.Header{Key: HeaderEventID, Value: arena.text(d.EventID)})
	hdr := arena.hdrs[len(arena.hdrs)-1 : len(arena.hdrs) : len(arena.hdrs)]
	n := len(arena.buf)
	b, err := appendDecisionRecord(arena.buf, d)
	if err != nil {
		return dst, err
	}
	arena.buf = b
	v := b[n:len(b):len(b)]
	dst = append(dst, kafka.Message{Topic: t.Decisions, Key: key, Value: v, Headers: hdr})
	for _, a := range d.Alerts {
		// Its own buffer (notifications hold it), sized for one allocation
		// unless escapes lengthen the text.
		size := 128 + len(d.EventID) + len(d.AccountID) + len(a.RuleID) + len(a.Message)
		v := appendAlertRecord(make([]byte, 0, size), &AlertRecord{EventID: d.EventID, AccountID: d.AccountID,
			RuleID: a.RuleID, Action: d.Action, Message: a.Message, EventTS: d.EventTS})
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

// HeaderOrigin marks the input messages riskd itself wrote: "decide" for
// an event decided through the decide API (Config.PublishAPIEvents).
const HeaderOrigin = "riskd-origin"

// inputMessage is d's event, decided through the decide API, as a message
// of its input topic.
func (t Topics) inputMessage(d *engine.Decision) kafka.Message {
	return kafka.Message{Topic: t.inputFor(d.EventType), Key: []byte(d.AccountID), Value: d.Raw, Headers: []kafka.Header{
		{Key: HeaderEventID, Value: []byte(d.EventID)}, {Key: HeaderOrigin, Value: []byte("decide")}}}
}

// inputFor is the input topic the wallet's producers write events of
// eventType to: the first input for money movements, the last for the
// rest.
func (t Topics) inputFor(eventType string) string {
	if event.MovesMoney(eventType) {
		return t.Inputs[0]
	}
	return t.Inputs[len(t.Inputs)-1]
}

// handedOverMessage is a decide API event that never reached a shard
// (Pipeline.handOver), for its input topic: placed as inputMessage places
// a decided one, without the origin header, so that the stream decides it
// as the wallet's own event.
func (t Topics) handedOverMessage(raw []byte) kafka.Message {
	typ, _ := stringFieldOf(raw, "type")
	account, _ := stringFieldOf(raw, "account_id")
	return kafka.Message{Topic: t.inputFor(typ), Key: []byte(account), Value: raw,
		Headers: []kafka.Header{{Key: HeaderEventID, Value: []byte(eventIDOrEmpty(raw))}}}
}

// isFromDecide reports whether m is an event riskd wrote to its input
// topic after deciding it through the decide API.
func isFromDecide(m kafka.Message) bool {
	for _, h := range m.Headers {
		if h.Key == HeaderOrigin && string(h.Value) == "decide" {
			return true
		}
	}
	return false
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
// the raw bytes untouched, the reason and the source position in headers,
// and the event id when eventIDOf can read it. A message larger than
// maxBytes (key, value and headers) is cut to fit (see fitValue); a key
// over maxHeaderBytes is cut to its first maxHeaderBytes.
func (t Topics) deadLetter(m kafka.Message, reason error, at time.Time, maxBytes int) kafka.Message {
	hdr := make([]kafka.Header, 0, 9)
	if id, ok := eventIDOf(m.Value); ok {
		hdr = append(hdr, kafka.Header{Key: HeaderEventID, Value: []byte(id)})
	}
	hdr = append(hdr,
		kafka.Header{Key: HeaderError, Value: boundText(reason.Error(), maxHeaderBytes)},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
		kafka.Header{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, m.Offset, 10)},
		kafka.Header{Key: HeaderFailedAt, Value: at.UTC().AppendFormat(nil, time.RFC3339Nano)},
	)
	key := m.Key
	if len(key) > maxHeaderBytes {
		key = key[:maxHeaderBytes]
	}
	return fitValue(kafka.Message{Topic: t.DLQ, Key: key, Value: m.Value, Headers: hdr}, maxBytes, false)
}

// parkedLetter replaces an output message m that the writer or the broker
// refused for good (reason) with a small dead letter: on the DLQ topic,
// with m's key and headers, HeaderParkedTopic naming m's topic, the
// refusal in HeaderError (after m's own reason when m is a dead letter),
// the original size and checksum, and as much of m's body as fits in
// min(maxBytes, maxParkedBytes). Header values over maxHeaderBytes are cut,
// but an event id that long is left out.
func (t Topics) parkedLetter(m kafka.Message, reason error, at time.Time, maxBytes int) kafka.Message {
	text := reason.Error()
	hdr := make([]kafka.Header, 0, len(m.Headers)+3)
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderError:
			text += "; dead letter of: " + string(h.Value)
		case HeaderParkedTopic, HeaderFailedAt:
		case HeaderEventID:
			if len(h.Value) <= maxHeaderBytes { // a cut id would name another event
				hdr = append(hdr, h)
			}
		default:
			if len(h.Value) > maxHeaderBytes {
				h.Value = boundText(string(h.Value), maxHeaderBytes)
			}
			hdr = append(hdr, h)
		}
	}
	hdr = append(hdr,
		kafka.Header{Key: HeaderParkedTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderError, Value: boundText(text, maxHeaderBytes)},
		kafka.Header{Key: HeaderFailedAt, Value: at.UTC().AppendFormat(nil, time.RFC3339Nano)},
	)
	key := m.Key
	if len(key) > maxHeaderBytes {
		key = key[:maxHeaderBytes]
	}
	return fitValue(kafka.Message{Topic: t.DLQ, Key: key, Value: m.Value, Headers: hdr}, min(maxBytes, maxParkedBytes), true)
}

// outputBytes is the size of m that Config.MaxOutputBytes bounds: key,
// value, and header keys and values. Kafka's record framing comes on top
// (see recordOverhead).
func outputBytes(m kafka.Message) int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// fitValue cuts m's value so that outputBytes(m) <= maxBytes. A message it
// cuts, or any message when record is set, gets HeaderOriginalBytes and
// HeaderOriginalSHA256 of its value, and HeaderTruncated when cut. If m
// already carries them (a dead letter cut before) they are kept: they
// describe the input, not the part of it m still holds. The headers are
// copied, never appended in place.
func fitValue(m kafka.Message, maxBytes int, record bool) kafka.Message {
	over := outputBytes(m) > maxBytes
	if !over && !record {
		return m
	}
	var known, cut bool
	for _, h := range m.Headers {
		known = known || h.Key == HeaderOriginalBytes
		cut = cut || h.Key == HeaderTruncated
	}
	hdr := slices.Clip(m.Headers)
	if !known {
		sum := sha256.Sum256(m.Value)
		hdr = append(hdr,
			kafka.Header{Key: HeaderOriginalBytes, Value: strconv.AppendInt(nil, int64(len(m.Value)), 10)},
			kafka.Header{Key: HeaderOriginalSHA256, Value: hex.AppendEncode(nil, sum[:])})
	}
	if over && !cut {
		hdr = append(hdr, kafka.Header{Key: HeaderTruncated, Value: []byte("true")})
	}
	m.Headers = hdr
	if room := maxBytes - (outputBytes(m) - len(m.Value)); room < len(m.Value) {
		m.Value = m.Value[:max(room, 0)]
	}
	return m
}

// boundText is s cut to at most n bytes on a UTF-8 boundary, ending in
// "…" when cut.
func boundText(s string, n int) []byte {
	if len(s) <= n {
		return []byte(s)
	}
	const ellipsis = "…"
	end := max(n-len(ellipsis), 0)
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return append([]byte(s[:end]), ellipsis...)
}

// eventIDOf reads the top-level "event_id" string of a JSON object from at
// most the first eventIDScanBytes of raw, skipping other values without
// decoding them, so it is cheap on any input, even a cut or malformed one.
// It reports false when raw does not start as an object, or the field is
// absent from the scanned prefix, not a string, empty, longer than
// maxHeaderBytes or not UTF-8. The first of repeated fields wins.
func eventIDOf(raw []byte) (string, bool) { return stringFieldOf(raw, "event_id") }

// eventIDOrEmpty is raw's event_id, or "" when it has none that can be read.
func eventIDOrEmpty(raw []byte) string {
	id, _ := eventIDOf(raw)
	return id
}

// stringFieldOf is eventIDOf for the top-level string field name.
func stringFieldOf(raw []byte, name string) (string, bool) {
	s := raw[:min(len(raw), eventIDScanBytes)]
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return "", false
	}
	for i = skipSpace(s, i+1); i < len(s) && s[i] == '"'; {
		end, esc := scanString(s, i)
		if end < 0 {
			return "", false
		}
		key, ok := jsonString(s[i:end], esc)
		i = skipSpace(s, end)
		if !ok || i >= len(s) || s[i] != ':' {
			return "", false
		}
		i = skipSpace(s, i+1)
		if key == name {
			if i >= len(s) || s[i] != '"' {
				return "", false
			}
			end, esc := scanString(s, i)
			if end < 0 || end-i-2 > 6*maxHeaderBytes { // escapes take up to 6 bytes a byte
				return "", false
			}
			id, ok := jsonString(s[i:end], esc)
			if !ok || id == "" || len(id) > maxHeaderBytes || !utf8.ValidString(id) {
				return "", false
			}
			return id, true
		}
		if i = skipValue(s, i); i < 0 {
			return "", false
		}
		if i = skipSpace(s, i); i >= len(s) || s[i] != ',' {
			return "", false // the object ends (or is broken) without the field
		}
		i = skipSpace(s, i+1)
	}
	return "", false
}

func skipSpace(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index after the JSON string that starts at s[i]
// (a quote), and whether it holds escapes; -1 when it is not closed.
func scanString(s []byte, i int) (end int, esc bool) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			esc = true
			j++
		case '"':
			return j + 1, esc
		}
	}
	return -1, esc
}

// jsonString decodes a quoted JSON string; only one with escapes needs
// the decoder.
func jsonString(quoted []byte, esc bool) (string, bool) {
	if !esc {
		return string(quoted[1 : len(quoted)-1]), true
	}
	var v string
	if err := json.Unmarshal(quoted, &v); err != nil {
		return "", false
	}
	return v, true
}

// skipValue returns the index after the JSON value that starts at s[i],
// or -1 when it does not end within s. Objects and arrays are skipped by
// counting brackets outside strings, without recursion.
func skipValue(s []byte, i int) int {
	if i >= len(s) {
		return -1
	}
	switch s[i] {
	case '"':
		end, _ := scanString(s, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(s); j++ {
			switch s[j] {
			case '"':
				end, _ := scanString(s, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default: // a number, true, false or null
		j := i
		for j < len(s) && !strings.ContainsRune(",}] \t\n\r", rune(s[j])) {
			j++
		}
		if j == i || j == len(s) {
			return -1
		}
		return j
	}
}

// appendNotes adds the notifications of decision d: one per alert the
// engine let through (d.Alerts, never d.ThrottledAlerts) and one for a new
// lock (locks are never throttled). out are the messages outputMessages
// made for d after its decision record (alerts, then the lock command);
// their bodies are reused, and never modified afterwards.
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
