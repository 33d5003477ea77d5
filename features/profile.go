package features

import (
	"math"
	"slices"

	"riskd/event"
	"riskd/internal/keyhash"
)

// Indexes of profile.lastAt.
const (
	lastPasswordReset = iota
	lastProfileChange
	lastLogin
	lastDeviceBind
	lastPayeeAdd
	numLast
)

// Tags mixed into first-seen hashes so a device and an IP with the same
// text do not collide.
const (
	seenDevice byte = iota + 1
	seenPayee
	seenCountry
	seenIP
)

// avgTauMs is the time constant of the payment amount average: weights
// fall by e every 30 days.
const avgTauMs = 30 * 24 * 3600 * 1000

const earthKm = 6371.0088

// profile is one account's built-in state.
type profile struct {
	first, last int64
	events      uint32
	// seen holds tagged hashes of devices, payees, countries and IPs in
	// least-recently-seen-first order, at most Config.MaxSeen, in the
	// Store's seen arena. It follows events, in the four bytes an int64
	// after it would leave.
	seen   list
	lastAt [numLast]int64
	// paySum and payCnt are exponentially decayed (tau 30 days) sums of
	// payment amounts and counts, as of payTS.
	paySum, payCnt float64
	payTS          int64
	lat, lon       float64
	geoTS          int64 // never when there is no point yet
}

func newProfile(ts int64) profile {
	p := profile{first: ts, last: ts, geoTS: never, payTS: never}
	for i := range p.lastAt {
		p.lastAt[i] = never
	}
	return p
}

func seenHash(tag byte, v string) uint64 {
	h := keyhash.New()
	h.AddByte(tag)
	h.Add(v)
	return h.Sum()
}

// touch marks h as seen now in the first-seen set seen (the view of
// p.seen in ar), keeping the set bounded, and returns the set's view.
func (p *profile) touch(seen []uint64, h uint64, bound int, ar *arena[uint64]) []uint64 {
	for i, x := range seen {
		if x == h {
			copy(seen[i:], seen[i+1:])
			seen[len(seen)-1] = h
			return seen
		}
	}
	if len(seen) >= bound {
		copy(seen, seen[1:])
		seen[len(seen)-1] = h
		return seen
	}
	return ar.appendTo(&p.seen, seen, h)
}

func paysPayee(t string) bool { return t == event.TypePayment || t == event.TypePayeeAdd }

func secsSince(ts, at int64) float64 {
	if at == never {
		return NeverSecs
	}
	return math.Max(0, float64(ts-at)/1000)
}

// seenKeys are the tagged first-seen hashes of one event, worked out once
// for read and update; the entry of a value the event lacks is unused.
type seenKeys [4]uint64

// Indexes of seenKeys.
const (
	skDevice = iota
	skPayee
	skCountry
	skIP
)

func seenKeysOf(ev *event.Event) seenKeys {
	var k seenKeys
	if ev.Device.ID != "" {
		k[skDevice] = seenHash(seenDevice, ev.Device.ID)
	}
	if ev.PayeeID != "" && paysPayee(ev.Type) {
		k[skPayee] = seenHash(seenPayee, ev.PayeeID)
	}
	if ev.Geo.Country != "" {
		k[skCountry] = seenHash(seenCountry, ev.Geo.Country)
	}
	if ev.IP != "" {
		k[skIP] = seenHash(seenIP, ev.IP)
	}
	return k
}

// read fills out with the profile as of before ev; k are ev's seenKeys,
// seen the view of p.seen.
func (p *profile) read(ev *event.Event, k *seenKeys, seen []uint64, out *Profile) {
	fresh := p.events == 0
	*out = Profile{
		NewDevice:              ev.Device.ID != "" && !slices.Contains(seen, k[skDevice]),
		NewPayee:               ev.PayeeID != "" && paysPayee(ev.Type) && !slices.Contains(seen, k[skPayee]),
		NewCountry:             ev.Geo.Country != "" && !slices.Contains(seen, k[skCountry]),
		NewIP:                  ev.IP != "" && !slices.Contains(seen, k[skIP]),
		SecsSincePasswordReset: secsSince(ev.TS, p.lastAt[lastPasswordReset]),
		SecsSinceProfileChange: secsSince(ev.TS, p.lastAt[lastProfileChange]),
		SecsSinceLogin:         secsSince(ev.TS, p.lastAt[lastLogin]),
		SecsSinceDeviceBind:    secsSince(ev.TS, p.lastAt[lastDeviceBind]),
		SecsSincePayeeAdd:      secsSince(ev.TS, p.lastAt[lastPayeeAdd]),
		EventsSeen:             float64(p.events),
	}
	if !fresh {
		out.AccountAgeDays = math.Max(0, float64(ev.TS-p.first)/86400000)
	}
	if p.payCnt > 0 {
		out.AvgAmount30d = p.paySum / p.payCnt
		if out.AvgAmount30d > 0 && ev.Amount > 0 {
			out.AmountRatio = float64(ev.Amount) / out.AvgAmount30d
		}
	}
	if ev.Geo.HasPoint && p.geoTS != never {
		km := haversineKm(p.lat, p.lon, ev.Geo.Lat, ev.Geo.Lon)
		out.KmFromLast = km
		// The time between points is floored at one second so two
		// far-apart events in the same instant give a huge speed, not Inf.
		secs := math.Max(1, math.Abs(float64(ev.TS-p.geoTS))/1000)
		out.KmhFromLast = km / (secs / 3600)
	}
}

// update folds ev into the profile (k are ev's seenKeys), its first-seen
// set into ar. Out-of-order events keep the latest values (a late login
// does not move secs_since_login back).
func (p *profile) update(ev *event.Event, k *seenKeys, maxSeen int, ar *arena[uint64]) {
	if p.events < math.MaxUint32 {
		p.events++
	}
	p.first = min(p.first, ev.TS)
	p.last = max(p.last, ev.TS)
	slot := -1
	switch ev.Type {
	case event.TypePasswordReset:
		slot = lastPasswordReset
	case event.TypeProfileChange:
		slot = lastProfileChange
	case event.TypeLogin:
		slot = lastLogin
	case event.TypeDeviceBind:
		slot = lastDeviceBind
	case event.TypePayeeAdd:
		slot = lastPayeeAdd
	}
	if slot >= 0 {
		p.lastAt[slot] = max(p.lastAt[slot], ev.TS)
	}
	seen := ar.view(p.seen)
	if ev.Device.ID != "" {
		seen = p.touch(seen, k[skDevice], maxSeen, ar)
	}
	if ev.PayeeID != "" && paysPayee(ev.Type) {
		seen = p.touch(seen, k[skPayee], maxSeen, ar)
	}
	if ev.Geo.Country != "" {
		seen = p.touch(seen, k[skCountry], maxSeen, ar)
	}
	if ev.IP != "" {
		p.touch(seen, k[skIP], maxSeen, ar)
	}
	if ev.Type == event.TypePayment && ev.Amount > 0 {
		amt := float64(ev.Amount)
		switch {
		case p.payTS == never:
			p.paySum, p.payCnt, p.payTS = amt, 1, ev.TS
		case ev.TS >= p.payTS:
			d := math.Exp(-float64(ev.TS-p.payTS) / avgTauMs)
			p.paySum = p.paySum*d + amt
			p.payCnt = p.payCnt*d + 1
			p.payTS = ev.TS
		default:
			w := math.Exp(-float64(p.payTS-ev.TS) / avgTauMs)
			p.paySum += amt * w
			p.payCnt += w
		}
	}
	if ev.Geo.HasPoint && ev.TS >= p.geoTS {
		p.lat, p.lon, p.geoTS = ev.Geo.Lat, ev.Geo.Lon, ev.TS
	}
}

// haversineKm is the great-circle distance between two points in degrees.
func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthKm * math.Asin(math.Min(1, math.Sqrt(a)))
}
