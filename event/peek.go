package event

import (
	"strings"
	"time"

	"github.com/valyala/fastjson"
)

// TSPeeker reads the event time of messages without decoding the rest of
// them, for ordering messages before they are decided (the stream merges
// its partitions by it). One goroutine owns each TSPeeker: its rare
// fallback reuses a parser's memory.
type TSPeeker struct {
	p fastjson.Parser
}

// TS returns raw's event time in Unix milliseconds. ok is false when the
// message has no ts the Decoder would accept; the Decoder then says what
// is wrong.
//
// It walks the top-level object only as far as the first "ts" key,
// skipping the values before it without building them, and answers as
// fastjson's Value.Get("ts") would on the whole message, with one
// difference: what follows the ts value's "," is not read, so a message
// malformed only there gets its ts where fastjson would fail. That is
// harmless: the merge orders such a message by its ts instead of sending
// it at once, and the Decoder refuses it either way; the answer still
// depends on the bytes alone, so the merge order stays deterministic.
// Escapes fall back to fastjson, so they get its answer exactly: a ts
// string with a backslash, and a key with one ("t\u0073") when no plain
// "ts" key follows (fastjson prefers a plain "ts" anywhere to an escaped
// one).
func (pk *TSPeeker) TS(raw []byte) (ms int64, ok bool) {
	ms, verdict := peekTS(b2s(raw))
	switch verdict {
	case peekFound:
		return ms, true
	case peekFallback:
		return pk.tsFastjson(raw)
	default:
		return 0, false
	}
}

// What peekTS found.
const (
	peekNone     = iota // no ts the Decoder would accept
	peekFound           // a ts, in range
	peekFallback        // an escape peekTS does not interpret: ask fastjson
)

// maxPeekDepth is fastjson.MaxDepth: values nested deeper fail its parse,
// so they fail the scan too.
const maxPeekDepth = fastjson.MaxDepth

// peekTS is the scan behind TS. It follows fastjson's parser (parser.go of
// valyala/fastjson v1.6.10) byte for byte in what it accepts: the four
// JSON whitespace bytes, strings ended by the first quote not escaped by
// an odd run of backslashes (escapes and control bytes not checked),
// numbers as any run of 0-9 . e E + - or an inf/nan, true, false, null,
// and no more than maxPeekDepth levels.
func peekTS(s string) (int64, int) {
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return 0, peekNone
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return 0, peekNone
	}
	escaped := false // a key with a backslash came before
	for {
		if i >= len(s) || s[i] != '"' {
			return 0, peekNone
		}
		end, esc := scanString(s, i+1)
		if end < 0 {
			return 0, peekNone
		}
		key := s[i+1 : end]
		escaped = escaped || esc
		i = skipSpace(s, end+1)
		if i >= len(s) || s[i] != ':' {
			return 0, peekNone
		}
		i = skipSpace(s, i+1)
		if !esc && len(key) == 2 && key[0] == 't' && key[1] == 's' {
			return peekValue(s, i)
		}
		i = skipValue(s, i, 2)
		if i < 0 {
			return 0, peekNone
		}
		i = skipSpace(s, i)
		if i >= len(s) {
			return 0, peekNone
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case '}':
			// No plain "ts". fastjson would then unescape the keys and
			// look again; only it knows whether one was "ts".
			if escaped {
				return 0, peekFallback
			}
			return 0, peekNone
		default:
			return 0, peekNone
		}
	}
}

// peekValue reads the ts value starting at s[i], as the Decoder would
// accept it: epoch milliseconds as a plain run of digits, or an RFC 3339
// string, in [minTSMillis, maxTSMillis).
func peekValue(s string, i int) (int64, int) {
	if i >= len(s) {
		return 0, peekNone
	}
	var ms int64
	var next int
	switch c := s[i]; {
	case c == '"':
		end, esc := scanString(s, i+1)
		if end < 0 {
			return 0, peekNone
		}
		if esc {
			return 0, peekFallback
		}
		t, err := time.Parse(time.RFC3339Nano, s[i+1:end])
		if err != nil {
			return 0, peekNone
		}
		ms, next = t.UnixMilli(), end+1
	case c >= '0' && c <= '9':
		// fastjson's number is the whole run of number bytes, and
		// Int64 takes it only if all of it is digits (leading zeros
		// too). A '-' makes it negative or zero: out of range either way.
		j := i
		for ; j < len(s) && s[j] >= '0' && s[j] <= '9'; j++ {
			if ms < maxTSMillis { // saturate: anything larger is refused
				ms = ms*10 + int64(s[j]-'0')
			}
		}
		if j < len(s) && isNumberByte(s[j]) {
			return 0, peekNone
		}
		next = j
	default:
		return 0, peekNone // object, array, true, false, null, nan, negative
	}
	if ms < minTSMillis || ms >= maxTSMillis {
		return 0, peekNone
	}
	// fastjson needs a ',' or '}' after a value, and nothing but space
	// after the top-level object; check that much.
	next = skipSpace(s, next)
	switch {
	case next < len(s) && s[next] == ',':
	case next < len(s) && s[next] == '}' && skipSpace(s, next+1) == len(s):
	default:
		return 0, peekNone
	}
	return ms, peekFound
}

// skipValue returns the index just past the value starting at s[i], which
// sits at nesting level depth (the top-level object's values are at 2, as
// fastjson counts), or -1 when fastjson would fail on it. Containers are
// walked with a stack of their kinds, so no input can exhaust the
// goroutine stack.
func skipValue(s string, i, depth int) int {
	var stack [maxPeekDepth + 1]byte // the open containers' closing bytes
	n := 0
	for {
		// A value starts at s[i], at level depth+n.
		if depth+n > maxPeekDepth || i >= len(s) {
			return -1
		}
		opened := false
		switch c := s[i]; c {
		case '{', '[':
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			i = skipSpace(s, i+1)
			if i < len(s) && s[i] == closer {
				i++
				break
			}
			stack[n], n, opened = closer, n+1, true
			if closer == '}' {
				if i = skipKey(s, i); i < 0 {
					return -1
				}
			}
		case '"':
			end, _ := scanString(s, i+1)
			if end < 0 {
				return -1
			}
			i = end + 1
		case 't':
			if !strings.HasPrefix(s[i:], "true") {
				return -1
			}
			i += 4
		case 'f':
			if !strings.HasPrefix(s[i:], "false") {
				return -1
			}
			i += 5
		case 'n':
			switch {
			case strings.HasPrefix(s[i:], "null"):
				i += 4
			case hasPrefixFold(s[i:], "nan"):
				i += 3
			default:
				return -1
			}
		default:
			if i = skipNumber(s, i); i < 0 {
				return -1
			}
		}
		if opened {
			continue // the container's first value starts at s[i]
		}
		// A value ended at i: close containers until one continues.
		for {
			if n == 0 {
				return i
			}
			i = skipSpace(s, i)
			if i >= len(s) {
				return -1
			}
			if s[i] == stack[n-1] {
				i++
				n--
				continue
			}
			if s[i] != ',' {
				return -1
			}
			i = skipSpace(s, i+1)
			if stack[n-1] == '}' {
				if i = skipKey(s, i); i < 0 {
					return -1
				}
			}
			break
		}
	}
}

// skipKey skips `"key" :` and the space after it, returning where the
// value starts, or -1.
func skipKey(s string, i int) int {
	if i >= len(s) || s[i] != '"' {
		return -1
	}
	end, _ := scanString(s, i+1)
	if end < 0 {
		return -1
	}
	i = skipSpace(s, end+1)
	if i >= len(s) || s[i] != ':' {
		return -1
	}
	return skipSpace(s, i+1)
}

// skipNumber skips what fastjson takes for a number at s[i]: a run of
// number bytes, or inf or nan (any case) alone or after one sign.
func skipNumber(s string, i int) int {
	j := i
	for j < len(s) && isNumberByte(s[j]) {
		j++
	}
	if j == len(s) || j > i+1 || (j == i+1 && s[i] != '-' && s[i] != '+') {
		return j
	}
	if hasPrefixFold(s[j:], "inf") || hasPrefixFold(s[j:], "nan") {
		return j + 3
	}
	return -1
}

// scanString returns the index of the quote that ends the string whose
// body starts at s[i], or -1, and whether the body holds a backslash.
func scanString(s string, i int) (int, bool) {
	esc := false
	for ; i < len(s); i++ {
		switch s[i] {
		case '"':
			return i, esc
		case '\\':
			esc = true
			i++ // the escaped byte cannot end the string
		}
	}
	return -1, esc
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+'
}

// hasPrefixFold is hasPrefix ignoring ASCII case (p is lower case).
func hasPrefixFold(s, p string) bool {
	if len(s) < len(p) {
		return false
	}
	for k := range len(p) {
		if s[k]|0x20 != p[k] {
			return false
		}
	}
	return true
}

// tsFastjson is the TS of old: it builds the message's fastjson tree.
// TS asks it only about escapes the scan does not interpret.
func (pk *TSPeeker) tsFastjson(raw []byte) (ms int64, ok bool) {
	v, err := pk.p.ParseBytes(raw)
	if err != nil {
		return 0, false
	}
	ts := v.Get("ts")
	if ts == nil {
		return 0, false
	}
	switch ts.Type() {
	case fastjson.TypeNumber:
		n, err := ts.Int64()
		if err != nil {
			return 0, false
		}
		ms = n
	case fastjson.TypeString:
		b, _ := ts.StringBytes()
		t, err := time.Parse(time.RFC3339Nano, b2s(b))
		if err != nil {
			return 0, false
		}
		ms = t.UnixMilli()
	default:
		return 0, false
	}
	if ms < minTSMillis || ms >= maxTSMillis {
		return 0, false
	}
	return ms, true
}
