package event

import (
	"sort"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends ev as a JSON object in the wire format Decode reads and
// returns the extended buffer. The generator and tests use it; it writes
// only non-empty optional fields and keeps attrs in key order, so equal
// events encode to equal bytes.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"event_id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, e.TS, 10)
	b = append(b, `,"account_id":`...)
	b = appendString(b, e.AccountID)
	if e.Amount != 0 {
		b = append(b, `,"amount":`...)
		b = strconv.AppendInt(b, e.Amount, 10)
	}
	b = appendField(b, "currency", e.Currency)
	b = appendField(b, "channel", e.Channel)
	b = appendField(b, "merchant_id", e.MerchantID)
	b = appendField(b, "mcc", e.MCC)
	b = appendField(b, "payee_id", e.PayeeID)
	b = appendField(b, "card_id", e.CardID)
	if e.Device != (Device{}) {
		b = append(b, `,"device":{"id":`...)
		b = appendString(b, e.Device.ID)
		b = appendField(b, "os", e.Device.OS)
		b = appendField(b, "app_version", e.Device.AppVersion)
		if e.Device.Rooted {
			b = append(b, `,"rooted":true`...)
		}
		if e.Device.Emulator {
			b = append(b, `,"emulator":true`...)
		}
		b = append(b, '}')
	}
	b = appendField(b, "ip", e.IP)
	if e.Geo.Country != "" || e.Geo.HasPoint {
		b = append(b, `,"geo":{"country":`...)
		b = appendString(b, e.Geo.Country)
		if e.Geo.HasPoint {
			b = append(b, `,"lat":`...)
			b = strconv.AppendFloat(b, e.Geo.Lat, 'f', -1, 64)
			b = append(b, `,"lon":`...)
			b = strconv.AppendFloat(b, e.Geo.Lon, 'f', -1, 64)
		}
		b = append(b, '}')
	}
	if e.HasBalanceBefore {
		b = append(b, `,"balance_before":`...)
		b = strconv.AppendInt(b, e.BalanceBefore, 10)
	}
	if e.HasBalanceAfter {
		b = append(b, `,"balance_after":`...)
		b = strconv.AppendInt(b, e.BalanceAfter, 10)
	}
	if e.HasKYCLevel {
		b = append(b, `,"kyc_level":`...)
		b = strconv.AppendInt(b, int64(e.KYCLevel), 10)
	}
	if e.HasMFAPassed {
		b = append(b, `,"mfa_passed":`...)
		b = strconv.AppendBool(b, e.MFAPassed)
	}
	if e.HasAccountCreatedAt {
		b = append(b, `,"account_created_at":`...)
		b = strconv.AppendInt(b, e.AccountCreatedAt, 10)
	}
	b = appendField(b, "tz", e.TZ)
	if len(e.Attrs) > 0 {
		keys := make([]string, 0, len(e.Attrs))
		for k := range e.Attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, `,"attrs":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, e.Attrs[k])
		}
		b = append(b, '}')
	}
	b = appendField(b, "label", e.Label)
	return append(b, '}')
}

func appendField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string, escaping what JSON requires.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				i += size
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
