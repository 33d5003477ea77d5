package streams

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"riskd/engine"
	"riskd/rules"
)

// Every decided event is published as a DecisionRecord. Going through
// encoding/json cost a record, a map of its features and the reflection
// walk for each (a tenth of the pipeline's CPU), so the records are
// appended here straight from the engine's Decision. The bytes are exactly
// json.Marshal's of the record (TestDecisionRecordJSONIsEncodingJSONs):
// consumers see no change, field order, escaping and number format
// included.

// errUnsupportedFloat is encoding/json's refusal of NaN and ±Inf, which a
// feature value can hold only through a bug upstream.
var errUnsupportedFloat = errors.New("json: unsupported value")

// appendDecisionRecord appends the JSON of newDecisionRecord(d) to dst.
func appendDecisionRecord(dst []byte, d *engine.Decision) ([]byte, error) {
	b := append(dst, `{"event_id":`...)
	b = appendJSONString(b, d.EventID)
	b = append(b, `,"account_id":`...)
	b = appendJSONString(b, d.AccountID)
	b = append(b, `,"event_type":`...)
	b = appendJSONString(b, d.EventType)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, d.EventTS, 10)
	b = append(b, `,"decided_at":`...)
	var err error
	if b, err = appendJSONTime(b, d.DecidedAt); err != nil {
		return dst, err
	}
	b = append(b, `,"action":`...)
	b = appendJSONAction(b, d.Action)
	b = append(b, `,"score":`...)
	b = strconv.AppendInt(b, int64(d.Score), 10)
	if d.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, d.Reason)
	}
	b = appendRuleIDs(b, `,"matched":`, d.Matched)
	b = appendRuleIDs(b, `,"shadow":`, d.Shadow)
	b = appendRuleIDs(b, `,"errored":`, d.Errored)
	b = append(b, `,"ruleset_version":`...)
	b = appendJSONString(b, d.RuleSetVersion)
	if len(d.Features) > 0 {
		b = append(b, `,"features":`...)
		if b, err = appendFeatures(b, d.Features); err != nil {
			return dst, err
		}
	}
	b = append(b, `,"latency_us":`...)
	b = strconv.AppendInt(b, d.Latency.Microseconds(), 10)
	if !d.LockUntil.IsZero() {
		b = append(b, `,"lock_until":`...)
		if b, err = appendJSONTime(b, d.LockUntil); err != nil {
			return dst, err
		}
	}
	if d.Late {
		b = append(b, `,"late":true`...)
	}
	b = appendStrings(b, `,"late_for":`, d.LateFor)
	b = appendStrings(b, `,"warming":`, d.Warming)
	b = appendStrings(b, `,"warming_skipped":`, d.WarmingSkipped)
	if len(d.ThrottledAlerts) > 0 {
		b = append(b, `,"throttled_alerts":[`...)
		for i, a := range d.ThrottledAlerts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"rule_id":`...)
			b = appendJSONString(b, a.RuleID)
			b = append(b, `,"sent_ts":`...)
			b = strconv.AppendInt(b, a.SentTS, 10)
			b = append(b, `,"until_ts":`...)
			b = strconv.AppendInt(b, a.UntilTS, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if c := &d.Candidate; c.Version != "" {
		b = append(b, `,"candidate":{"version":`...)
		b = appendJSONString(b, c.Version)
		b = append(b, `,"action":`...)
		b = appendJSONAction(b, c.Action)
		b = append(b, `,"score":`...)
		b = strconv.AppendInt(b, int64(c.Score), 10)
		b = appendStrings(b, `,"matched":`, c.Matched)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// appendAlertRecord appends the JSON of an AlertRecord.
func appendAlertRecord(dst []byte, r *AlertRecord) []byte {
	b := append(dst, `{"event_id":`...)
	b = appendJSONString(b, r.EventID)
	b = append(b, `,"account_id":`...)
	b = appendJSONString(b, r.AccountID)
	b = append(b, `,"rule_id":`...)
	b = appendJSONString(b, r.RuleID)
	b = append(b, `,"action":`...)
	b = appendJSONAction(b, r.Action)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, r.Message)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, r.EventTS, 10)
	return append(b, '}')
}

// appendRuleIDs appends key and the hits' rule ids, or nothing for none
// (omitempty).
func appendRuleIDs(b []byte, key string, hits []engine.RuleHit) []byte {
	if len(hits) == 0 {
		return b
	}
	b = append(b, key...)
	b = append(b, '[')
	for i := range hits {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, hits[i].RuleID)
	}
	return append(b, ']')
}

// appendStrings appends key and the strings, or nothing for none
// (omitempty).
func appendStrings(b []byte, key string, ss []string) []byte {
	if len(ss) == 0 {
		return b
	}
	b = append(b, key...)
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendFeatures appends the features as encoding/json writes a map:
// keys sorted, a repeated name keeping its last value. A decision reads
// a handful of features: an insertion sort of their positions (stable, so
// the last of a repeated name comes last) costs less than a map.
func appendFeatures(b []byte, fs []engine.FeatureValue) ([]byte, error) {
	var small [32]int32
	order := small[:0]
	if len(fs) > len(small) {
		order = make([]int32, 0, len(fs))
	}
	for i := range fs {
		j := len(order)
		order = append(order, int32(i))
		for ; j > 0 && fs[order[j-1]].Name > fs[i].Name; j-- {
			order[j] = order[j-1]
		}
		order[j] = int32(i)
	}
	b = append(b, '{')
	first := true
	for k, i := range order {
		if k+1 < len(order) && fs[order[k+1]].Name == fs[i].Name {
			continue // a later value of the same name wins
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, fs[i].Name)
		b = append(b, ':')
		var err error
		if b, err = appendJSONFloat(b, fs[i].Value); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// appendJSONAction appends an action as its MarshalText does, quoted.
func appendJSONAction(b []byte, a rules.Action) []byte {
	return appendJSONString(b, a.String())
}

// appendJSONTime appends t in UTC as time.Time's MarshalJSON does
// (RFC 3339 with nanoseconds), refusing the years it refuses.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return b, fmt.Errorf("json: time %v: year outside of range [0,9999]", t)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// appendJSONFloat appends f as encoding/json does for a float64: the
// shortest decimal, in exponent form below 1e-6 and from 1e21 on, with
// a two-digit negative exponent shortened ("1e-07" is "1e-7").
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, fmt.Errorf("%w: %v", errUnsupportedFloat, f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does by default: the
// HTML characters <, > and & escaped, invalid UTF-8 as \ufffd, and the
// line and paragraph separators U+2028 and U+2029 escaped. The event
// package's encoder leaves those as they are, so it cannot serve here:
// the records' consumers have always read encoding/json's bytes.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
