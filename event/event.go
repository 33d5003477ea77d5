package event

import (
	"strings"
	"time"
)

// Event types of the wallet. A Decoder refuses any other type unless its
// Vocabulary declares it, so a misspelt or invented type reaches the
// dead-letter topic instead of slipping past every rule written for the
// real ones.
const (
	TypePayment       = "payment"
	TypeLogin         = "login"
	TypeLoginFailed   = "login_failed"
	TypePasswordReset = "password_reset"
	TypeMFA           = "mfa"
	TypeDeviceBind    = "device_bind"
	TypePayeeAdd      = "payee_add"
	TypeProfileChange = "profile_change"
	TypeTopup         = "topup"
	TypeWithdrawal    = "withdrawal"
	TypeRefund        = "refund"
	TypePointsRedeem  = "points_redeem"
)

// MovesMoney reports whether events of type typ move money (payments,
// top-ups, withdrawals, refunds, points redeemed): they go to the payments
// topic, the others to account-events.
func MovesMoney(typ string) bool {
	switch typ {
	case TypePayment, TypeTopup, TypeWithdrawal, TypeRefund, TypePointsRedeem:
		return true
	}
	return false
}

// KnownTypes lists the event types of the wallet, in a stable order.
var KnownTypes = []string{
	TypePayment, TypeLogin, TypeLoginFailed, TypePasswordReset, TypeMFA,
	TypeDeviceBind, TypePayeeAdd, TypeProfileChange, TypeTopup,
	TypeWithdrawal, TypeRefund, TypePointsRedeem,
}

// Event is one wallet event as rules and features see it.
//
// Strings produced by a Decoder alias the decoder's buffers and stay valid
// only until that decoder's next Decode call; call Clone to keep an event
// longer. The expr tags are the names rules use (event.amount, event.device.id).
type Event struct {
	// ID is the producer's unique id; the engine de-duplicates on it.
	ID string `expr:"event_id"`
	// Type is the event type: one of KnownTypes, or a type the Decoder's
	// Vocabulary declares.
	Type string `expr:"type"`
	// TS is the event time in Unix milliseconds. Windows run on this clock.
	TS int64 `expr:"ts"`
	// AccountID is the wallet account the event belongs to; also the Kafka key
	// and the shard key.
	AccountID string `expr:"account_id"`
	// Amount is in minor units of Currency (cents), never a decimal, so sums
	// are exact. JSON must carry it as an integer (12.00 is accepted as 12;
	// 12.5 and "12.50" are refused).
	Amount int64 `expr:"amount"`
	// Currency is an ISO 4217 code.
	Currency string `expr:"currency"`
	// Channel is qr, nfc, online, transfer or transit (KnownChannels), or
	// a channel the Decoder's Vocabulary declares; empty when not sent.
	Channel    string `expr:"channel"`
	MerchantID string `expr:"merchant_id"`
	// MCC is the merchant category code, kept as text ("5411").
	MCC     string `expr:"mcc"`
	PayeeID string `expr:"payee_id"`
	CardID  string `expr:"card_id"`
	Device  Device `expr:"device"`
	IP      string `expr:"ip"`
	Geo     Geo    `expr:"geo"`
	// BalanceBefore and BalanceAfter are the account's balance before and
	// after the event, in minor units of Currency like Amount, within
	// ±MaxBalance; negative for an overdrawn account. The Has fields tell
	// a balance of 0 from one not sent.
	BalanceBefore    int64 `expr:"balance_before"`
	HasBalanceBefore bool  `expr:"has_balance_before"`
	BalanceAfter     int64 `expr:"balance_after"`
	HasBalanceAfter  bool  `expr:"has_balance_after"`
	// KYCLevel is the identity verification level the wallet gives the
	// account, 0 (none) to MaxKYCLevel; HasKYCLevel tells 0 from not sent.
	KYCLevel    int  `expr:"kyc_level"`
	HasKYCLevel bool `expr:"has_kyc_level"`
	// MFAPassed says the user passed a second factor for this event;
	// HasMFAPassed tells false from not sent.
	MFAPassed    bool `expr:"mfa_passed"`
	HasMFAPassed bool `expr:"has_mfa_passed"`
	// AccountCreatedAt is when the wallet opened the account, in Unix
	// milliseconds like TS; 0 when not sent, which HasAccountCreatedAt
	// also says.
	AccountCreatedAt    int64 `expr:"account_created_at"`
	HasAccountCreatedAt bool  `expr:"has_account_created_at"`
	// AccountAgeDays is whole days from AccountCreatedAt to TS, 0 when the
	// account is younger than a day, when AccountCreatedAt is after TS,
	// or when it was not sent. The Decoder derives it (SetDerived), unlike
	// f.account_age_days, which counts from the first event riskd saw.
	AccountAgeDays int64 `expr:"account_age_days"`
	// TZ is the IANA time zone of the user ("Europe/Berlin"), at most
	// MaxTZBytes; empty when not sent. local_hour() reads the event's hour
	// in it, UTC without it.
	TZ string `expr:"tz"`
	// Attrs holds the "attrs" object and every unknown top-level field.
	// Non-string JSON values are kept as their JSON text ("3", "true").
	Attrs Attrs `expr:"attrs"`
	// Label is the traffic generator's ground truth (a fraud scenario name or
	// empty). Rules cannot read it: it exists only to score detection.
	Label string `expr:"-"`
}

// Device describes the phone the event came from.
type Device struct {
	ID         string `expr:"id"`
	OS         string `expr:"os"`
	AppVersion string `expr:"app_version"`
	Rooted     bool   `expr:"rooted"`
	Emulator   bool   `expr:"emulator"`
}

// Geo is where the event happened. HasPoint tells whether Lat/Lon were sent,
// since 0,0 is a valid point in the Atlantic.
type Geo struct {
	Country  string  `expr:"country"`
	Lat      float64 `expr:"lat"`
	Lon      float64 `expr:"lon"`
	HasPoint bool    `expr:"has_point"`
}

// Attrs are free key/values; a map so rules can write event.attrs["k"].
type Attrs map[string]string

// Time returns TS as a time.Time in UTC.
func (e *Event) Time() time.Time { return time.UnixMilli(e.TS).UTC() }

// SetDerived computes the fields derived from others (AccountAgeDays). The
// Decoder calls it; code that builds an Event by hand calls it after
// setting TS and AccountCreatedAt.
func (e *Event) SetDerived() {
	e.AccountAgeDays = 0
	if e.HasAccountCreatedAt && e.TS > e.AccountCreatedAt {
		e.AccountAgeDays = (e.TS - e.AccountCreatedAt) / msPerDay
	}
}

const msPerDay = 24 * 60 * 60 * 1000

// LocalHour is the hour of day (0..23) of TS in the event's time zone TZ,
// or in UTC when TZ is empty or not a zone LoadZone knows.
func (e *Event) LocalHour() int { return LocalHour(e.TS, e.TZ) }

// Field returns the value of an entity field by its rule name ("account",
// "account_id", "device.id", "ip", "payee_id", "card_id", "merchant_id",
// "geo.country", "attrs.NAME") and whether the name is known. Features use
// it to find the key an aggregate is grouped by; hot paths should resolve
// the name once with FieldGetter.
func (e *Event) Field(name string) (string, bool) {
	get, ok := FieldGetter(name)
	if !ok {
		return "", false
	}
	return get(e), true
}

// CanonicalField maps the aliases rules and feature files may use for an
// entity field ("account", "device", "payee", "country", ...) to one name,
// so two spellings of the same field share state. Unknown names come back
// unchanged; FieldGetter decides whether they exist.
func CanonicalField(name string) string {
	switch name {
	case "account", "account_id":
		return "account_id"
	case "device", "device_id", "device.id":
		return "device.id"
	case "payee", "payee_id":
		return "payee_id"
	case "card", "card_id":
		return "card_id"
	case "merchant", "merchant_id":
		return "merchant_id"
	case "country", "geo.country":
		return "geo.country"
	}
	return name
}

// FieldGetter resolves a field name (or an alias, see CanonicalField) to an
// accessor once, so per-event code does no string matching.
func FieldGetter(name string) (func(*Event) string, bool) {
	switch CanonicalField(name) {
	case "account_id":
		return func(e *Event) string { return e.AccountID }, true
	case "event_id":
		return func(e *Event) string { return e.ID }, true
	case "type":
		return func(e *Event) string { return e.Type }, true
	case "device.id":
		return func(e *Event) string { return e.Device.ID }, true
	case "device.os":
		return func(e *Event) string { return e.Device.OS }, true
	case "ip":
		return func(e *Event) string { return e.IP }, true
	case "payee_id":
		return func(e *Event) string { return e.PayeeID }, true
	case "card_id":
		return func(e *Event) string { return e.CardID }, true
	case "merchant_id":
		return func(e *Event) string { return e.MerchantID }, true
	case "mcc":
		return func(e *Event) string { return e.MCC }, true
	case "channel":
		return func(e *Event) string { return e.Channel }, true
	case "currency":
		return func(e *Event) string { return e.Currency }, true
	case "geo.country":
		return func(e *Event) string { return e.Geo.Country }, true
	}
	if key, ok := strings.CutPrefix(name, "attrs."); ok && key != "" {
		return func(e *Event) string { return e.Attrs[key] }, true
	}
	return nil, false
}

// Clone returns a deep copy whose strings do not alias any decoder buffer.
func (e *Event) Clone() Event {
	c := *e
	c.ID = strings.Clone(e.ID)
	c.Type = strings.Clone(e.Type)
	c.AccountID = strings.Clone(e.AccountID)
	c.Currency = strings.Clone(e.Currency)
	c.Channel = strings.Clone(e.Channel)
	c.MerchantID = strings.Clone(e.MerchantID)
	c.MCC = strings.Clone(e.MCC)
	c.PayeeID = strings.Clone(e.PayeeID)
	c.CardID = strings.Clone(e.CardID)
	c.Device.ID = strings.Clone(e.Device.ID)
	c.Device.OS = strings.Clone(e.Device.OS)
	c.Device.AppVersion = strings.Clone(e.Device.AppVersion)
	c.IP = strings.Clone(e.IP)
	c.Geo.Country = strings.Clone(e.Geo.Country)
	c.TZ = strings.Clone(e.TZ)
	c.Label = strings.Clone(e.Label)
	if e.Attrs != nil {
		c.Attrs = make(Attrs, len(e.Attrs))
		for k, v := range e.Attrs {
			c.Attrs[strings.Clone(k)] = strings.Clone(v)
		}
	}
	return c
}

// Reset clears the event for reuse, keeping the Attrs map's storage.
func (e *Event) Reset() {
	attrs := e.Attrs
	clear(attrs)
	*e = Event{Attrs: attrs}
}
