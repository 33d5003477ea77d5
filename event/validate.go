package event

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Channel values of payments, as the wallet sends them.
const (
	ChannelQR       = "qr"
	ChannelNFC      = "nfc"
	ChannelOnline   = "online"
	ChannelTransfer = "transfer"
	ChannelTransit  = "transit"
)

// KnownChannels lists the payment channels, in a stable order.
var KnownChannels = []string{ChannelQR, ChannelNFC, ChannelOnline, ChannelTransfer, ChannelTransit}

// DefaultMaxIDBytes bounds every id field (event_id, account_id, device.id,
// payee_id, card_id, merchant_id, ip) unless a Decoder is told otherwise.
// Real ids are UUIDs or short prefixed numbers; an id of kilobytes is an
// attack on the state tables, whose keys are hashed but whose decisions and
// stored rows carry the id.
const DefaultMaxIDBytes = 128

// maxQuoted is how much of an offending value a problem quotes, so a hostile
// value cannot make the dead-letter reason as large as itself.
const maxQuoted = 40

// Vocabulary is the set of event types and payment channels a Decoder
// accepts: the documented ones (KnownTypes, KnownChannels) and whatever a
// deployment declares beside them. The zero value accepts only the
// documented ones.
type Vocabulary struct {
	// ExtraTypes are event types accepted beside KnownTypes.
	ExtraTypes []string
	// ExtraChannels are channels accepted beside KnownChannels.
	ExtraChannels []string
}

func (v *Vocabulary) typeOK(t string) bool {
	switch t {
	case TypePayment, TypeLogin, TypeLoginFailed, TypePasswordReset, TypeMFA,
		TypeDeviceBind, TypePayeeAdd, TypeProfileChange, TypeTopup,
		TypeWithdrawal, TypeRefund, TypePointsRedeem:
		return true
	}
	return v != nil && contains(v.ExtraTypes, t)
}

func (v *Vocabulary) channelOK(c string) bool {
	switch c {
	case ChannelQR, ChannelNFC, ChannelOnline, ChannelTransfer, ChannelTransit:
		return true
	}
	return v != nil && contains(v.ExtraChannels, c)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// valid reports whether ev passes every check validate makes, without
// recording anything: the fast path's test, which allocates nothing.
func (d *Decoder) valid(ev *Event) bool {
	limit := d.maxIDBytes()
	return d.Vocabulary.typeOK(ev.Type) &&
		(ev.Channel == "" || d.Vocabulary.channelOK(ev.Channel)) &&
		idOK(ev.ID, limit) && idOK(ev.AccountID, limit) && idOK(ev.Device.ID, limit) &&
		idOK(ev.PayeeID, limit) && idOK(ev.CardID, limit) && idOK(ev.MerchantID, limit) &&
		idOK(ev.IP, limit) && (ev.TZ == "" || zoneOK(ev.TZ))
}

// validate records a problem for each field of ev that decoded but is not
// acceptable: a type or channel outside the vocabulary, an id that is too
// long or not printable text. Empty fields are left to the required-field
// checks.
func (d *Decoder) validate(ev *Event) {
	if ev.Type != "" && !d.Vocabulary.typeOK(ev.Type) {
		d.problem("type", fmt.Sprintf("unknown event type %s (want one of %s%s)",
			quote(ev.Type), strings.Join(KnownTypes, ", "), extras(d.Vocabulary, true)))
	}
	if ev.Channel != "" && !d.Vocabulary.channelOK(ev.Channel) {
		d.problem("channel", fmt.Sprintf("unknown channel %s (want one of %s%s)",
			quote(ev.Channel), strings.Join(KnownChannels, ", "), extras(d.Vocabulary, false)))
	}
	limit := d.maxIDBytes()
	for _, f := range [...]struct{ name, value string }{
		{"event_id", ev.ID}, {"account_id", ev.AccountID}, {"device.id", ev.Device.ID},
		{"payee_id", ev.PayeeID}, {"card_id", ev.CardID}, {"merchant_id", ev.MerchantID}, {"ip", ev.IP},
	} {
		if reason := idProblem(f.value, limit); reason != "" {
			d.problem(f.name, reason)
		}
	}
	switch {
	case ev.TZ == "":
	case len(ev.TZ) > MaxTZBytes:
		d.problem("tz", fmt.Sprintf("is %d bytes, limit is %d", len(ev.TZ), MaxTZBytes))
	case !zoneOK(ev.TZ):
		d.problem("tz", fmt.Sprintf(`unknown time zone %s (want an IANA name such as "Europe/Berlin", or leave tz out for UTC)`, quote(ev.TZ)))
	}
}

func extras(v *Vocabulary, types bool) string {
	if v == nil {
		return ""
	}
	list := v.ExtraChannels
	if types {
		list = v.ExtraTypes
	}
	if len(list) == 0 {
		return ""
	}
	return ", " + strings.Join(list, ", ")
}

func (d *Decoder) maxIDBytes() int {
	if d.MaxIDBytes > 0 {
		return d.MaxIDBytes
	}
	return DefaultMaxIDBytes
}

// idOK is idProblem's allocation-free yes or no. Printable ASCII, the
// common case, is one comparison per byte.
func idOK(s string, limit int) bool {
	if len(s) > limit {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return idProblem(s, limit) == ""
		}
	}
	return true
}

// idProblem says what is wrong with an id, or "" if nothing is. An id must
// be printable text: valid UTF-8 with no control characters (NUL, newline)
// and no invisible format characters (the right-to-left override and other
// bidi controls, zero-width joiners), which make one id display as another
// to the support agent and analyst who read it.
func idProblem(s string, limit int) string {
	if len(s) > limit {
		return fmt.Sprintf("is %d bytes, limit is %d", len(s), limit)
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return fmt.Sprintf("is not valid UTF-8 (byte %d)", i)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || !unicode.IsPrint(r) && r != ' ':
			return fmt.Sprintf("contains %U at byte %d; ids must be printable text", r, i)
		}
		i += size
	}
	return ""
}

// quote quotes a value for a problem, cut to maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("... (%d bytes)", len(s))
}
