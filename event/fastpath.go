package event

import (
	"strings"

	"github.com/valyala/fastjson/fastfloat"
)

// The fast path decodes the messages producers normally send in one pass
// over the bytes, with no parse tree: strings without escapes, integer ts
// and amount, plain numbers for coordinates, true/false/null, and the
// device, geo and attrs objects. On anything else (an escape, a value of an
// unexpected type, a number fastjson would refuse, any validation problem,
// a missing field) it gives up and Decode starts over on the fastjson path,
// which produces every error message. So the fast path only ever accepts
// messages the fastjson path accepts, and must fill the Event exactly as
// that path would; TestFastPathMatchesFastjson and FuzzDecode compare the
// two.
//
// Like fastjson, it works on a copy of the message held by the Decoder, so
// the Event's strings alias the Decoder's buffer, not the caller's bytes.

// fastDecode reports whether it decoded msg into ev; on false ev holds junk
// and the caller must decode again on the full path.
func (d *Decoder) fastDecode(msg []byte, ev *Event) bool {
	d.buf = append(d.buf[:0], msg...)
	s := b2s(d.buf)
	i := skipSpace(s, 0)
	seenTS := false
	i, ok := d.object(s, i, func(key string, i int) (int, bool) {
		var ok bool
		switch key {
		case "event_id":
			ev.ID, i, ok = plainString(s, i)
		case "type":
			ev.Type, i, ok = plainString(s, i)
		case "account_id":
			ev.AccountID, i, ok = plainString(s, i)
		case "ts":
			seenTS = true
			var ms int64
			ms, i, ok = plainInt(s, i)
			if ok && (ms < minTSMillis || ms >= maxTSMillis) { // also refuses 0
				return i, false
			}
			ev.TS = ms
		case "amount":
			if j, ok := null(s, i); ok {
				ev.Amount = 0
				return j, true
			}
			ev.Amount, i, ok = plainInt(s, i)
		case "currency":
			ev.Currency, i, ok = plainString(s, i)
		case "channel":
			ev.Channel, i, ok = plainString(s, i)
		case "merchant_id":
			ev.MerchantID, i, ok = plainString(s, i)
		case "mcc":
			ev.MCC, i, ok = stringOrNumber(s, i)
		case "payee_id":
			ev.PayeeID, i, ok = plainString(s, i)
		case "card_id":
			ev.CardID, i, ok = plainString(s, i)
		case "ip":
			ev.IP, i, ok = plainString(s, i)
		case "label":
			ev.Label, i, ok = plainString(s, i)
		case "balance_before":
			ev.BalanceBefore, ev.HasBalanceBefore, i, ok = optInt(s, i, -MaxBalance, MaxBalance)
		case "balance_after":
			ev.BalanceAfter, ev.HasBalanceAfter, i, ok = optInt(s, i, -MaxBalance, MaxBalance)
		case "kyc_level":
			var n int64
			n, ev.HasKYCLevel, i, ok = optInt(s, i, 0, MaxKYCLevel)
			ev.KYCLevel = int(n)
		case "mfa_passed":
			ev.MFAPassed, ev.HasMFAPassed, i, ok = optBoolean(s, i)
		case "account_created_at":
			ev.AccountCreatedAt, ev.HasAccountCreatedAt, i, ok = optInt(s, i, minTSMillis, maxTSMillis-1)
		case "tz":
			ev.TZ, i, ok = plainString(s, i)
		case "device":
			i, ok = d.fastDevice(s, i, ev)
		case "geo":
			i, ok = d.fastGeo(s, i, ev)
		case "attrs":
			if j, ok := null(s, i); ok {
				return j, true
			}
			i, ok = d.object(s, i, func(key string, i int) (int, bool) {
				return d.fastAttr(ev, key, s, i)
			})
		default:
			i, ok = d.fastAttr(ev, key, s, i)
		}
		return i, ok
	})
	if !ok || skipSpace(s, i) != len(s) {
		return false
	}
	if ev.HasAccountCreatedAt {
		ev.SetDerived()
	}
	return ev.ID != "" && ev.Type != "" && ev.AccountID != "" && seenTS
}

func (d *Decoder) fastDevice(s string, i int, ev *Event) (int, bool) {
	if j, ok := null(s, i); ok {
		return j, true
	}
	dev := &ev.Device
	return d.object(s, i, func(key string, i int) (int, bool) {
		var ok bool
		switch key {
		case "id":
			dev.ID, i, ok = plainString(s, i)
		case "os":
			dev.OS, i, ok = plainString(s, i)
		case "app_version":
			dev.AppVersion, i, ok = stringOrNumber(s, i)
		case "rooted":
			dev.Rooted, i, ok = boolean(s, i)
		case "emulator":
			dev.Emulator, i, ok = boolean(s, i)
		default:
			i, ok = d.fastAttr(ev, d.prefixedString("device.", key), s, i)
		}
		return i, ok
	})
}

func (d *Decoder) fastGeo(s string, i int, ev *Event) (int, bool) {
	if j, ok := null(s, i); ok {
		return j, true
	}
	g := &ev.Geo
	var hasLat, hasLon bool
	i, ok := d.object(s, i, func(key string, i int) (int, bool) {
		var ok bool
		switch key {
		case "country":
			g.Country, i, ok = plainString(s, i)
		case "lat":
			g.Lat, i, ok = coordinate(s, i, 90)
			hasLat = true
		case "lon":
			g.Lon, i, ok = coordinate(s, i, 180)
			hasLon = true
		default:
			i, ok = d.fastAttr(ev, d.prefixedString("geo.", key), s, i)
		}
		return i, ok
	})
	if !ok || hasLat != hasLon {
		return i, false
	}
	g.HasPoint = hasLat && hasLon
	return i, true
}

// fastAttr stores a string, number, true, false or null value as setAttr
// does (non-strings as their JSON text); objects and arrays go to the full
// path, which re-renders them.
func (d *Decoder) fastAttr(ev *Event, key string, s string, i int) (int, bool) {
	var v string
	var ok bool
	if i < len(s) && s[i] == '"' {
		v, i, ok = plainString(s, i)
	} else {
		v, i, ok = literal(s, i)
	}
	if !ok {
		return i, false
	}
	if ev.Attrs == nil {
		ev.Attrs = make(Attrs, 8)
	}
	if len(ev.Attrs) >= maxAttrs {
		if _, exists := ev.Attrs[key]; !exists {
			return i, false
		}
	}
	ev.Attrs[key] = v
	return i, true
}

// object walks the object starting at s[i], calling member with each key
// (which must have no escapes) and the index of its value; member returns
// the index after the value. It returns the index after the closing brace.
func (d *Decoder) object(s string, i int, member func(key string, i int) (int, bool)) (int, bool) {
	if i >= len(s) || s[i] != '{' {
		return i, false
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return i, false
		}
		key, j, ok := plainString(s, i)
		if !ok {
			return i, false
		}
		i = skipSpace(s, j)
		if i >= len(s) || s[i] != ':' {
			return i, false
		}
		if i, ok = member(key, skipSpace(s, i+1)); !ok {
			return i, false
		}
		i = skipSpace(s, i)
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// skipSpace skips the four JSON whitespace bytes, as fastjson does.
func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a string with no backslash (aliasing s), or null as "".
func plainString(s string, i int) (string, int, bool) {
	if i < len(s) && s[i] == '"' {
		// A byte loop: ids and codes are short, where one pass beats two
		// calls of the vectorised IndexByte (for the quote, then a backslash).
		for j := i + 1; j < len(s); j++ {
			switch s[j] {
			case '"':
				return s[i+1 : j], j + 1, true
			case '\\':
				return "", i, false
			}
		}
		return "", i, false
	}
	if j, ok := null(s, i); ok {
		return "", j, true
	}
	return "", i, false
}

// null reports whether s[i:] starts with null, and the index after it.
func null(s string, i int) (int, bool) {
	if strings.HasPrefix(s[i:], "null") {
		return i + 4, true
	}
	return i, false
}

// rawNumber returns the text of a number as fastjson delimits it (digits,
// sign, dot and exponent characters), refusing its inf/nan forms.
func rawNumber(s string, i int) (string, int, bool) {
	j := i
	digits := false
	for ; j < len(s); j++ {
		c := s[j]
		if c >= '0' && c <= '9' {
			digits = true
			continue
		}
		if c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+' {
			continue
		}
		break
	}
	return s[i:j], j, digits
}

// plainInt reads a non-negative integer number as fastjson's Int64 would
// accept it; a sign, a fraction or an exponent falls back.
func plainInt(s string, i int) (int64, int, bool) {
	raw, j, ok := rawNumber(s, i)
	if !ok || raw[0] == '-' {
		return 0, i, false
	}
	n, err := fastfloat.ParseInt64(raw)
	if err != nil || n < 0 {
		return 0, i, false
	}
	return n, j, true
}

// coordinate reads a number as fastjson's Float64 would, within ±limit.
func coordinate(s string, i int, limit float64) (float64, int, bool) {
	raw, j, ok := rawNumber(s, i)
	if !ok {
		return 0, i, false
	}
	f, err := fastfloat.Parse(raw)
	if err != nil || f < -limit || f > limit || f != f {
		return 0, i, false
	}
	return f, j, true
}

// optInt reads null (not sent) or an integer in [lo, hi] as fastjson's
// Int64 would; a fraction, an exponent or a value out of range falls back.
func optInt(s string, i int, lo, hi int64) (n int64, present bool, j int, ok bool) {
	if j, ok := null(s, i); ok {
		return 0, false, j, true
	}
	raw, j, ok := rawNumber(s, i)
	if !ok {
		return 0, false, i, false
	}
	n, err := fastfloat.ParseInt64(raw)
	if err != nil || n < lo || n > hi {
		return 0, false, i, false
	}
	return n, true, j, true
}

// optBoolean reads true, false or null (not sent).
func optBoolean(s string, i int) (value, present bool, j int, ok bool) {
	switch {
	case strings.HasPrefix(s[i:], "true"):
		return true, true, i + 4, true
	case strings.HasPrefix(s[i:], "false"):
		return false, true, i + 5, true
	case strings.HasPrefix(s[i:], "null"):
		return false, false, i + 4, true
	}
	return false, false, i, false
}

func boolean(s string, i int) (bool, int, bool) {
	switch {
	case strings.HasPrefix(s[i:], "true"):
		return true, i + 4, true
	case strings.HasPrefix(s[i:], "false"):
		return false, i + 5, true
	case strings.HasPrefix(s[i:], "null"):
		return false, i + 4, true
	}
	return false, i, false
}

// stringOrNumber is strOrNumber: a plain string, null, or a number's text.
func stringOrNumber(s string, i int) (string, int, bool) {
	if i < len(s) && s[i] != '"' && s[i] != 'n' {
		return rawNumber(s, i)
	}
	return plainString(s, i)
}

// literal reads true, false, null or a number as its JSON text.
func literal(s string, i int) (string, int, bool) {
	for _, lit := range [...]string{"true", "false", "null"} {
		if strings.HasPrefix(s[i:], lit) {
			return lit, i + len(lit), true
		}
	}
	return rawNumber(s, i)
}

// prefixedString is prefixed for a string key.
func (d *Decoder) prefixedString(prefix, key string) string {
	start := len(d.scratch)
	d.scratch = append(d.scratch, prefix...)
	d.scratch = append(d.scratch, key...)
	return b2s(d.scratch[start:len(d.scratch):len(d.scratch)])
}
