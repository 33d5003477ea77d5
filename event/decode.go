package event

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"

	"github.com/valyala/fastjson"
)

// DefaultMaxBytes is the largest message a Decoder accepts unless told
// otherwise. Real wallet events are a few hundred bytes; anything near this
// size is a producer bug or an attack, and goes to the dead-letter topic.
const DefaultMaxBytes = 64 << 10

// maxAttrs bounds how many attrs one event may carry, so a hostile message
// cannot grow the per-shard attrs map without limit.
const maxAttrs = 64

// ErrTooLarge is wrapped by Decode's error when a message exceeds the limit.
var ErrTooLarge = errors.New("message too large")

// Problem is one thing wrong with a message.
type Problem struct {
	// Field is the JSON path of the offending field ("device.id"), or empty
	// for problems with the message as a whole.
	Field string
	// Reason says what is wrong, for a person reading the dead-letter topic.
	Reason string
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Reason
	}
	return p.Field + ": " + p.Reason
}

// Error is returned by Decode for a message that cannot become an Event. It
// lists every problem found, not just the first, so a producer can fix them
// all at once.
type Error struct {
	Problems []Problem
	cause    error
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

func (e *Error) Unwrap() error { return e.cause }

// Decoder turns JSON messages into Events. It is not safe for concurrent use:
// each shard or consumer owns one, and the Events it fills alias its buffers
// until the next call (see Event).
//
// Messages of the usual shape (no string escapes, integer ts and amount,
// plain numbers, the device, geo and attrs objects) are decoded in one pass
// over a copy of the bytes (fastpath.go); anything else, and every message
// with a problem, is decoded again on valyala/fastjson with a reused
// Parser, which alone reports problems. Both allocate nothing per event and
// keep unknown fields in Attrs, which a struct decode (goccy/go-json,
// encoding/json) would drop; BenchmarkDecode compares all three on the same
// events (see bench/RESULTS.md).
type Decoder struct {
	// MaxBytes is the size limit; zero means DefaultMaxBytes.
	MaxBytes int
	// MaxIDBytes bounds each id field; zero means DefaultMaxIDBytes.
	MaxIDBytes int
	// Vocabulary adds accepted event types and channels to the documented
	// ones; nil accepts only those.
	Vocabulary *Vocabulary

	parser  fastjson.Parser
	buf     []byte // the fast path's copy of the message; Event strings alias it
	scratch []byte // backing for attr values that are not JSON strings
	errs    []Problem
}

// Decode parses msg into ev. On error ev holds whatever was decoded and the
// returned error is an *Error listing each problem.
func (d *Decoder) Decode(msg []byte, ev *Event) error {
	ev.Reset()
	d.errs = d.errs[:0]
	d.scratch = d.scratch[:0]
	limit := d.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if len(msg) > limit {
		return &Error{
			Problems: []Problem{{Reason: fmt.Sprintf("message is %d bytes, limit is %d", len(msg), limit)}},
			cause:    ErrTooLarge,
		}
	}
	if d.fastDecode(msg, ev) && d.valid(ev) {
		return nil
	}
	return d.decodeFull(msg, ev)
}

// decodeFull is Decode on fastjson, for every message the fast path gives
// up on; it alone reports problems.
func (d *Decoder) decodeFull(msg []byte, ev *Event) error {
	ev.Reset()
	d.errs = d.errs[:0]
	d.scratch = d.scratch[:0]
	v, err := d.parser.ParseBytes(msg)
	if err != nil {
		return &Error{Problems: []Problem{{Reason: "malformed JSON: " + parseProblem(err)}}, cause: err}
	}
	obj, err := v.Object()
	if err != nil {
		return &Error{Problems: []Problem{{Reason: "message is not a JSON object"}}}
	}
	var seenTS bool
	obj.Visit(func(key []byte, v *fastjson.Value) {
		switch string(key) {
		case "event_id":
			ev.ID = d.str("event_id", v)
		case "type":
			ev.Type = d.str("type", v)
		case "account_id":
			ev.AccountID = d.str("account_id", v)
		case "ts":
			seenTS = true
			ev.TS = d.timestamp("ts", v)
		case "amount":
			ev.Amount = d.amount(v)
		case "currency":
			ev.Currency = d.str("currency", v)
		case "channel":
			ev.Channel = d.str("channel", v)
		case "merchant_id":
			ev.MerchantID = d.str("merchant_id", v)
		case "mcc":
			ev.MCC = d.strOrNumber("mcc", v)
		case "payee_id":
			ev.PayeeID = d.str("payee_id", v)
		case "card_id":
			ev.CardID = d.str("card_id", v)
		case "ip":
			ev.IP = d.str("ip", v)
		case "label":
			ev.Label = d.str("label", v)
		case "balance_before":
			ev.BalanceBefore, ev.HasBalanceBefore = d.balance("balance_before", v)
		case "balance_after":
			ev.BalanceAfter, ev.HasBalanceAfter = d.balance("balance_after", v)
		case "kyc_level":
			ev.KYCLevel, ev.HasKYCLevel = d.kycLevel(v)
		case "mfa_passed":
			ev.MFAPassed, ev.HasMFAPassed = d.optBoolean("mfa_passed", v)
		case "account_created_at":
			ev.AccountCreatedAt, ev.HasAccountCreatedAt = 0, false
			if v.Type() != fastjson.TypeNull {
				ev.AccountCreatedAt = d.timestamp("account_created_at", v)
				ev.HasAccountCreatedAt = ev.AccountCreatedAt != 0
			}
		case "tz":
			ev.TZ = d.str("tz", v)
		case "device":
			d.device(v, &ev.Device, ev)
		case "geo":
			d.geo(v, &ev.Geo, ev)
		case "attrs":
			d.attrs(v, ev)
		default:
			d.setAttr(ev, b2s(key), v)
		}
	})
	d.require(ev.ID != "", "event_id")
	d.require(ev.Type != "", "type")
	d.require(ev.AccountID != "", "account_id")
	d.require(seenTS, "ts")
	d.validate(ev)
	ev.SetDerived()
	if len(d.errs) > 0 {
		return &Error{Problems: append([]Problem(nil), d.errs...)}
	}
	return nil
}

func (d *Decoder) problem(field, reason string) {
	d.errs = append(d.errs, Problem{Field: field, Reason: reason})
}

func (d *Decoder) require(ok bool, field string) {
	if !ok {
		for _, p := range d.errs {
			if p.Field == field {
				return // already reported as wrong, not missing
			}
		}
		d.problem(field, "required field is missing")
	}
}

func (d *Decoder) str(field string, v *fastjson.Value) string {
	if v.Type() == fastjson.TypeNull {
		return ""
	}
	b, err := v.StringBytes()
	if err != nil {
		d.problem(field, "want a string, got "+v.Type().String())
		return ""
	}
	return b2s(b)
}

// strOrNumber accepts codes that producers send either way (mcc: 5411 or "5411").
func (d *Decoder) strOrNumber(field string, v *fastjson.Value) string {
	if v.Type() == fastjson.TypeNumber {
		return d.jsonText(v)
	}
	return d.str(field, v)
}

// timestamp reads a time field (ts, account_created_at): epoch
// milliseconds or an RFC 3339 string, within the accepted range.
func (d *Decoder) timestamp(field string, v *fastjson.Value) int64 {
	switch v.Type() {
	case fastjson.TypeNumber:
		ms, err := v.Int64()
		if err != nil || ms <= 0 {
			d.problem(field, "want epoch milliseconds as a positive integer or an RFC 3339 string, got "+v.String())
			return 0
		}
		if ms < minTSMillis { // 1973 in ms, 5138 in seconds: seconds sent by mistake
			d.problem(field, fmt.Sprintf("%d looks like epoch seconds; send epoch milliseconds", ms))
			return 0
		}
		return d.inRange(field, ms, v)
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		t, err := time.Parse(time.RFC3339Nano, b2s(b))
		if err != nil {
			d.problem(field, fmt.Sprintf("bad timestamp %q: want RFC 3339 (2026-11-24T16:31:00Z) or epoch milliseconds", b))
			return 0
		}
		return d.inRange(field, t.UnixMilli(), v)
	default:
		d.problem(field, "want epoch milliseconds or an RFC 3339 string, got "+v.Type().String())
		return 0
	}
}

// Event times riskd accepts: from 1973-03-03 (1e11 ms) to 5138-11-16
// (1e14 ms). Anything outside is a producer bug, and a window keyed on it
// would never expire.
const (
	minTSMillis = int64(1e11)
	maxTSMillis = int64(1e14)
)

func (d *Decoder) inRange(field string, ms int64, v *fastjson.Value) int64 {
	if ms < minTSMillis || ms >= maxTSMillis {
		d.problem(field, fmt.Sprintf("%s is outside the accepted range 1973-03-03 to 5138-11-16", v))
		return 0
	}
	return ms
}

func (d *Decoder) amount(v *fastjson.Value) int64 {
	if v.Type() == fastjson.TypeNull {
		return 0
	}
	if v.Type() != fastjson.TypeNumber {
		d.problem("amount", "want an integer number of minor units (cents), got "+v.Type().String())
		return 0
	}
	n, err := v.Int64()
	if err != nil {
		f, ferr := v.Float64()
		if ferr == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			n = int64(f)
		} else {
			d.problem("amount", "want an integer number of minor units (cents), got "+v.String())
			return 0
		}
	}
	if n < 0 {
		d.problem("amount", "must not be negative; send refunds as type refund")
		return 0
	}
	return n
}

// MaxBalance bounds balance_before and balance_after either side of 0:
// 2^53-1 minor units, the largest integer a float64 holds exactly, so a
// rule comparing a balance with a float feature compares exact values.
const MaxBalance = 1<<53 - 1

// MaxKYCLevel is the highest kyc_level.
const MaxKYCLevel = 9

// integral reads a JSON number that must hold an integer: an integer, or a
// float with no fraction within ±2^53 (12.00 is 12). ok is false, with
// nothing recorded, for anything else.
func integral(v *fastjson.Value) (n int64, ok bool) {
	if v.Type() != fastjson.TypeNumber {
		return 0, false
	}
	n, err := v.Int64()
	if err == nil {
		return n, true
	}
	f, err := v.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// balance reads balance_before or balance_after: null is not sent.
func (d *Decoder) balance(field string, v *fastjson.Value) (int64, bool) {
	if v.Type() == fastjson.TypeNull {
		return 0, false
	}
	n, ok := integral(v)
	if ok && n >= -MaxBalance && n <= MaxBalance {
		return n, true
	}
	if f, err := v.Float64(); err == nil && f == math.Trunc(f) {
		d.problem(field, fmt.Sprintf("%s is out of range ±%d", describe(v), int64(MaxBalance)))
	} else {
		d.problem(field, "want an integer number of minor units (cents), got "+describe(v))
	}
	return 0, false
}

// kycLevel reads kyc_level: null is not sent.
func (d *Decoder) kycLevel(v *fastjson.Value) (int, bool) {
	if v.Type() == fastjson.TypeNull {
		return 0, false
	}
	n, ok := integral(v)
	if !ok {
		d.problem("kyc_level", fmt.Sprintf("want an integer 0 to %d, got %s", MaxKYCLevel, describe(v)))
		return 0, false
	}
	if n < 0 || n > MaxKYCLevel {
		d.problem("kyc_level", fmt.Sprintf("%d is out of range 0 to %d", n, MaxKYCLevel))
		return 0, false
	}
	return int(n), true
}

// optBoolean reads a flag whose absence differs from false: null is not
// sent.
func (d *Decoder) optBoolean(field string, v *fastjson.Value) (value, present bool) {
	switch v.Type() {
	case fastjson.TypeTrue:
		return true, true
	case fastjson.TypeFalse:
		return false, true
	case fastjson.TypeNull:
		return false, false
	}
	d.problem(field, "want true or false, got "+v.Type().String())
	return false, false
}

// describe names a value for a problem: a number by its text (bounded),
// anything else by its JSON type.
func describe(v *fastjson.Value) string {
	if v.Type() != fastjson.TypeNumber {
		return v.Type().String()
	}
	s := v.String()
	if len(s) > maxQuoted {
		return s[:maxQuoted] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}

func (d *Decoder) device(v *fastjson.Value, dev *Device, ev *Event) {
	o, err := v.Object()
	if err != nil {
		if v.Type() != fastjson.TypeNull {
			d.problem("device", "want an object, got "+v.Type().String())
		}
		return
	}
	o.Visit(func(key []byte, v *fastjson.Value) {
		switch string(key) {
		case "id":
			dev.ID = d.str("device.id", v)
		case "os":
			dev.OS = d.str("device.os", v)
		case "app_version":
			dev.AppVersion = d.strOrNumber("device.app_version", v)
		case "rooted":
			dev.Rooted = d.boolean("device.rooted", v)
		case "emulator":
			dev.Emulator = d.boolean("device.emulator", v)
		default:
			d.setAttr(ev, d.prefixed("device.", key), v)
		}
	})
}

func (d *Decoder) geo(v *fastjson.Value, g *Geo, ev *Event) {
	o, err := v.Object()
	if err != nil {
		if v.Type() != fastjson.TypeNull {
			d.problem("geo", "want an object, got "+v.Type().String())
		}
		return
	}
	var hasLat, hasLon bool
	o.Visit(func(key []byte, v *fastjson.Value) {
		switch string(key) {
		case "country":
			g.Country = d.str("geo.country", v)
		case "lat":
			g.Lat, hasLat = d.coordinate("geo.lat", v, 90)
		case "lon":
			g.Lon, hasLon = d.coordinate("geo.lon", v, 180)
		default:
			d.setAttr(ev, d.prefixed("geo.", key), v)
		}
	})
	if hasLat != hasLon {
		d.problem("geo", "lat and lon must be sent together")
	}
	g.HasPoint = hasLat && hasLon
}

func (d *Decoder) coordinate(field string, v *fastjson.Value, limit float64) (float64, bool) {
	f, err := v.Float64()
	if err != nil {
		d.problem(field, "want a number, got "+v.Type().String())
		return 0, false
	}
	if f < -limit || f > limit {
		d.problem(field, fmt.Sprintf("%g is out of range ±%g", f, limit))
		return 0, false
	}
	return f, true
}

func (d *Decoder) boolean(field string, v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse, fastjson.TypeNull:
		return false
	}
	d.problem(field, "want true or false, got "+v.Type().String())
	return false
}

func (d *Decoder) attrs(v *fastjson.Value, ev *Event) {
	o, err := v.Object()
	if err != nil {
		if v.Type() != fastjson.TypeNull {
			d.problem("attrs", "want an object, got "+v.Type().String())
		}
		return
	}
	o.Visit(func(key []byte, v *fastjson.Value) {
		d.setAttr(ev, b2s(key), v)
	})
}

func (d *Decoder) setAttr(ev *Event, key string, v *fastjson.Value) {
	if ev.Attrs == nil {
		ev.Attrs = make(Attrs, 8)
	}
	if len(ev.Attrs) >= maxAttrs {
		if _, exists := ev.Attrs[key]; !exists {
			d.problem("attrs", fmt.Sprintf("more than %d attributes", maxAttrs))
			return
		}
	}
	if v.Type() == fastjson.TypeString {
		b, _ := v.StringBytes()
		ev.Attrs[key] = b2s(b)
		return
	}
	ev.Attrs[key] = d.jsonText(v)
}

// jsonText renders a non-string value into scratch and aliases it. If append
// grows scratch, earlier aliases keep the old array alive, so they stay valid.
func (d *Decoder) jsonText(v *fastjson.Value) string {
	start := len(d.scratch)
	d.scratch = v.MarshalTo(d.scratch)
	return b2s(d.scratch[start:len(d.scratch):len(d.scratch)])
}

func (d *Decoder) prefixed(prefix string, key []byte) string {
	start := len(d.scratch)
	d.scratch = append(d.scratch, prefix...)
	d.scratch = append(d.scratch, key...)
	return b2s(d.scratch[start:len(d.scratch):len(d.scratch)])
}

// b2s aliases b as a string without copying. Safe here because the bytes
// belong to the Decoder and are not written again before the next Decode.
func b2s(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// maxParseProblem bounds the text of a JSON syntax problem: the message
// travels in a dead-letter header and an HTTP answer.
const maxParseProblem = 300

// parseProblem words a fastjson parse error for a person: fastjson names
// every level it descended ("cannot parse object: cannot parse array
// value: ..." 300 times for deeply nested input) before the cause, so the
// chain is folded to its depth and the cause, and the whole is bounded.
func parseProblem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "cannot parse JSON: ")
	depth := 0
	for {
		rest, ok := cutParsePrefix(msg)
		if !ok {
			break
		}
		msg = rest
		depth++
	}
	if depth > 2 {
		msg = fmt.Sprintf("%s (%d levels deep)", msg, depth)
	}
	if len(msg) > maxParseProblem {
		cut := maxParseProblem
		for cut > 0 && msg[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		msg = msg[:cut] + "..."
	}
	return msg
}

// cutParsePrefix removes one "cannot parse X: " level of a fastjson error.
func cutParsePrefix(msg string) (string, bool) {
	for _, p := range [...]string{"cannot parse object: ", "cannot parse object value: ", "cannot parse array: ",
		"cannot parse array value: ", "cannot parse object key: ", "cannot parse string: "} {
		if rest, ok := strings.CutPrefix(msg, p); ok {
			return rest, true
		}
	}
	return msg, false
}
