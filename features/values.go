package features

// MaxWindows bounds how many window features one Set may declare. Values
// carries them in a fixed array so rules read them without allocating.
const MaxWindows = 64

// NeverSecs is what a seconds-since feature holds when the thing never
// happened for the account (about 31 years), so `secs_since_x < 600` is
// false for it without a special case in every rule.
const NeverSecs = 1e9

// Values are the feature values for one event, as of that event's time
// (window counts include it, except for the entities it was late for, and
// no event dated after its bucket; profile flags compare it with what came
// before; see Store.Observe).
// Rules see Profile fields as f.<name> and window features as
// f.<declared name>.
type Values struct {
	Profile Profile
	// Windows holds window features by their index in the Set.
	Windows [MaxWindows]float64
}

// Profile holds the built-in per-account features every wallet needs.
type Profile struct {
	// NewDevice: the account has not used this device.id before.
	NewDevice bool `expr:"new_device"`
	// NewPayee: first payment or payee_add to this payee_id.
	NewPayee bool `expr:"new_payee"`
	// NewCountry: first event from this geo.country.
	NewCountry bool `expr:"new_country"`
	// NewIP: first event from this IP address.
	NewIP bool `expr:"new_ip"`
	// SecsSincePasswordReset, SecsSinceProfileChange, SecsSinceLogin and
	// SecsSinceDeviceBind count event-time seconds since the last such event
	// before this one; NeverSecs if there was none.
	SecsSincePasswordReset float64 `expr:"secs_since_password_reset"`
	SecsSinceProfileChange float64 `expr:"secs_since_profile_change"`
	SecsSinceLogin         float64 `expr:"secs_since_login"`
	SecsSinceDeviceBind    float64 `expr:"secs_since_device_bind"`
	SecsSincePayeeAdd      float64 `expr:"secs_since_payee_add"`
	// AvgAmount30d is the account's average payment amount (minor units)
	// over about 30 days, before this event; 0 with no history.
	AvgAmount30d float64 `expr:"avg_amount_30d"`
	// AmountRatio is this event's amount over AvgAmount30d (0 without history).
	AmountRatio float64 `expr:"amount_ratio"`
	// KmFromLast and KmhFromLast: great-circle distance and implied speed
	// from the account's previous geo point; 0 without one.
	KmFromLast  float64 `expr:"km_from_last"`
	KmhFromLast float64 `expr:"kmh_from_last"`
	// AccountAgeDays: days since the first event seen for the account.
	AccountAgeDays float64 `expr:"account_age_days"`
	// EventsSeen counts the account's events before this one (capped).
	EventsSeen float64 `expr:"events_seen"`
}
