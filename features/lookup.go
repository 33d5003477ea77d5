package features

// Value returns the value of the feature a rule calls name (a declared
// window feature or a Profile field by its expr name), as float64 with
// booleans as 0 or 1, for decision records. It reports false for an
// unknown name.
func (s *Set) Value(v *Values, name string) (float64, bool) {
	if i, ok := s.Index(name); ok {
		return v.Windows[i], true
	}
	p := &v.Profile
	switch name {
	case "new_device":
		return b2f(p.NewDevice), true
	case "new_payee":
		return b2f(p.NewPayee), true
	case "new_country":
		return b2f(p.NewCountry), true
	case "new_ip":
		return b2f(p.NewIP), true
	case "secs_since_password_reset":
		return p.SecsSincePasswordReset, true
	case "secs_since_profile_change":
		return p.SecsSinceProfileChange, true
	case "secs_since_login":
		return p.SecsSinceLogin, true
	case "secs_since_device_bind":
		return p.SecsSinceDeviceBind, true
	case "secs_since_payee_add":
		return p.SecsSincePayeeAdd, true
	case "avg_amount_30d":
		return p.AvgAmount30d, true
	case "amount_ratio":
		return p.AmountRatio, true
	case "km_from_last":
		return p.KmFromLast, true
	case "kmh_from_last":
		return p.KmhFromLast, true
	case "account_age_days":
		return p.AccountAgeDays, true
	case "events_seen":
		return p.EventsSeen, true
	}
	return 0, false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
