package traffic

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"riskd/event"
)

// Scenario names, used as Event.Label of fraud events.
const (
	BruteForce         = "brute_force"
	CredentialStuffing = "credential_stuffing"
	AccountTakeover    = "account_takeover"
	ScamPayee          = "scam_payee"
	CardTesting        = "card_testing"
	DeviceFarm         = "device_farm"
	PointsAbuse        = "points_abuse"
	ImpossibleTravel   = "impossible_travel"
)

// Scenarios lists the fraud scenarios in the order the generator picks
// them from.
var Scenarios = []string{
	BruteForce, CredentialStuffing, AccountTakeover, ScamPayee,
	CardTesting, DeviceFarm, PointsAbuse, ImpossibleTravel,
}

// ScamPayees are the payee ids the scam_payee scenario pays; the reference
// list bench/reference/rules/lists/scam_payees.txt holds the same ids.
var ScamPayees = func() []string {
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = fmt.Sprintf("payee-scam-%04d", i+1)
	}
	return ids
}()

// Config sets up a Generator.
type Config struct {
	// Accounts is the size of the account table; at least 16 are used.
	Accounts int
	// Seed makes the stream reproducible.
	Seed uint64
	// FraudRate is the fraction of events that come from fraud scenarios
	// (0.01 = 1%), on average over a stream much longer than an attack:
	// scenarios start at random and play their steps over minutes of
	// event time, so attacks still playing at the end are cut short. It
	// is clamped to [0, 1].
	FraudRate float64
	// Start is the event time of the first event; zero means
	// 2026-11-24T00:00:00Z.
	Start time.Time
	// EventsPerSecond sets the mean event-time spacing. It is event time
	// only, independent of how fast events are generated or consumed, and
	// with the account count it sets how busy each account is: every
	// account gets EventsPerSecond/Accounts events a second. Zero or less
	// means Accounts/7200, one event per account every two hours on
	// average (a dozen a day), which keeps per-account velocity features
	// realistic; much busier accounts make normal traffic trip velocity
	// rules.
	EventsPerSecond float64
	// FlatRate spaces events at a constant mean rate. Otherwise the rate
	// follows the wallet's day (dailyRhythm): quiet nights, busy lunch
	// hours and evenings, with the same mean over a whole day. Harnesses
	// that need event time to track the wall clock set it.
	FlatRate bool
	// ActivitySpread sets how unevenly owners use the wallet: the standard
	// deviation of the log of each account's share of honest events (0.9:
	// an owner at the 90th percentile about ten times as busy as one at the
	// 10th; shares capped at 0.05 and 4 times the mean). Zero or less: every
	// account equally busy, as harnesses that need per-account traffic no
	// denser than the mean expect. With it, the history an account has
	// when it is attacked ranges from none to hundreds of events.
	ActivitySpread float64
	// IDPrefix starts every event id (then a sequence number); empty means
	// "e-". Runs that share a store use different prefixes so their event
	// ids do not collide.
	IDPrefix string
}

type place struct {
	country  string
	currency string
	lat, lon float64
}

// Home cities of the wallet's (euro-area) users.
var homes = []place{
	{"DE", "EUR", 52.52, 13.405}, {"DE", "EUR", 48.137, 11.575},
	{"FR", "EUR", 48.857, 2.352}, {"FR", "EUR", 45.764, 4.836},
	{"NL", "EUR", 52.37, 4.895}, {"ES", "EUR", 40.417, -3.704},
	{"ES", "EUR", 41.385, 2.173}, {"IT", "EUR", 41.903, 12.496},
	{"IT", "EUR", 45.464, 9.19}, {"BE", "EUR", 50.85, 4.352},
	{"AT", "EUR", 48.208, 16.373}, {"PT", "EUR", 38.722, -9.139},
}

// Far places fraud comes from.
var foreign = []place{
	{"NG", "NGN", 6.524, 3.379}, {"BR", "BRL", -23.55, -46.633},
	{"US", "USD", 40.713, -74.006}, {"VN", "VND", 10.823, 106.63},
	{"ID", "IDR", -6.208, 106.846}, {"RU", "RUB", 55.756, 37.617},
	{"PH", "PHP", 14.599, 120.984}, {"MX", "MXN", 19.433, -99.133},
}

type merchant struct {
	id, mcc string
	online  bool
}

var everydayMCCs = []string{"5411", "5812", "5814", "5541", "5912", "5999", "5732", "4121", "5311", "5651"}
var onlineMCCs = []string{"5969", "5942", "5735", "5818", "4722", "5815"}
var appVersions = []string{"5.12.0", "5.12.1", "5.13.0", "5.14.2"}

type device struct {
	id, os, app      string
	rooted, emulator bool
}

type account struct {
	id        string
	home      *place
	lat, lon  float64
	devices   [2]device
	nDevices  int
	card      string
	homeIP    string
	mobileIP  string
	payees    [3]string
	merchants [6]int
	typical   float64 // typical payment in cents
	phones    int     // phones bought since the table was made, numbers new device ids

	// A trip (see travel): away is where the owner is, nil at home. The
	// owner is in transit, with no events, from departure to arrive and
	// from leave to back; at away from arrive to leave.
	away                *place
	awayLat, awayLon    float64
	arrive, leave, back int64
	tripIP              string // the hotel's or café's Wi-Fi abroad

	// joinAt is when the owner opens the account (Unix ms): before the
	// stream for most, during it for the sign-ups (see signupShare);
	// joined says the owner's first event was played.
	joinAt int64
	joined bool
	// events counts the owner's events so far (saturating), so attacks
	// can pick dormant accounts.
	events uint16
}

// Honest scripts: what an owner does in a few minutes, played through the
// same queue as attacks (script.honest) but unlabelled.
const (
	honestPhone  = 1 + iota // sign in on a new phone (after a password reset, sometimes), bind it
	honestPayee             // add a payee and pay them
	honestSignup            // open the account, often redeem the welcome points, top up
)

// Generator produces events; it is not safe for concurrent use.
type Generator struct {
	cfg       Config
	rng       *rand.Rand
	accounts  []account
	payees    []string
	merchants []merchant
	online    []int // indexes of online merchants
	transit   merchant

	startMS int64
	offset  float64 // event-time offset from start, ms
	lastTS  int64
	seq     int64
	idBuf   []byte

	// Scripts in progress, attacks and owners' habits: scripts holds them
	// by slot (free lists the unused slots), queue is a min-heap of slots
	// by the event time of their next step. Their number is bounded by how many start within
	// the longest script's duration; slots are reused, so the slices stop
	// growing once that many are live.
	scripts   []script
	free      []int32
	queue     []int32
	startProb float64 // chance that an event starts a scenario
	// pick chooses the account of an honest event by its activity (Vose's
	// alias method: pickProb[i] is the chance to keep account i, else
	// pickAlias[i]), so some accounts are busy and have long histories
	// and many are seldom seen; nil without Config.ActivitySpread.
	pickProb   []float32
	pickAlias  []int32
	tripIPs    []string // Wi-Fi addresses abroad, shared by travellers
	serial     int64    // numbers attacker ids (devices, cards, payees)
	order      uint64   // numbers scripts, honest and attacks
	attacks    uint64   // numbers attacks; the last one started
	lastAttack uint64   // attack of the event just generated, 0 if honest
	lastRole   Role
	lastVictim string // see Victim
	lastHonest int    // account of the latest honest event: a victim with history
	jsonEv     event.Event

	// Fraud rings that outlive one attack: points farms (their phones and
	// addresses serve batch after batch of fresh accounts) and money mules
	// (one payee paid by victim after victim). live* index the ones still
	// in use; farms and mules are never removed, only retired.
	farms     []farm
	liveFarms []int32
	mules     []mule
	liveMules []int32
	// popular is how many of the first payees are shared ones (a landlord,
	// a club, a seller taking transfers) that many owners add.
	popular int
}

// farm is a points farm: a small pool of phones (some of them emulators)
// and addresses it runs its batches of fresh accounts from.
type farm struct {
	devs    []device
	ips     []string
	where   *place
	batches int // batches still to run before the farm is dropped
}

// mule is a money mule's payee that scam victims are told to pay.
type mule struct {
	payee   string
	victims int // victims still to pay it before it is burned
}

// script is one fraud scenario being played, or one of an owner's
// multi-step habits (honest != 0).
type script struct {
	kind    string
	id      uint64 // attack id, from 1; 0 for an honest script
	order   uint64 // start order of every script, for ties in the queue
	honest  uint8  // honestPhone, ...; 0 for an attack
	step, n int
	due     int64 // event time of the next step, Unix ms
	acct    int
	accts   [16]string // fraudster-owned accounts (farms)
	dev     device
	ip      string
	where   *place
	payee   string
	card    string
	amount  int64
	swap    bool  // account_takeover: payee_add before device_bind; points_abuse: every sign-up before the redemptions
	farm    int32 // points_abuse: index in Generator.farms
	off     int   // points_abuse: first phone and address of the batch in the farm's pools
}

// New builds the account table and returns a Generator.
func New(cfg Config) *Generator {
	if cfg.Accounts < 16 {
		cfg.Accounts = 16
	}
	cfg.FraudRate = math.Min(1, math.Max(0, cfg.FraudRate))
	if cfg.IDPrefix == "" {
		cfg.IDPrefix = "e-"
	}
	if cfg.EventsPerSecond <= 0 {
		cfg.EventsPerSecond = float64(cfg.Accounts) / 7200
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	}
	g := &Generator{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		startMS: cfg.Start.UnixMilli(),
		idBuf:   make([]byte, 0, 24),
	}
	g.lastTS = g.startMS - 1
	// With start chance q and mean scenario length L, the labelled share
	// is qL/(qL+1-q); solve for q so that it equals FraudRate.
	p := cfg.FraudRate
	g.startProb = p / (meanScriptLen*(1-p) + p)
	r := g.rng

	nMerchants := 200 + cfg.Accounts/20
	g.merchants = make([]merchant, nMerchants)
	for i := range g.merchants {
		m := &g.merchants[i]
		m.id = fmt.Sprintf("m-%05d", i+1)
		if i%4 == 0 {
			m.online = true
			m.mcc = onlineMCCs[r.IntN(len(onlineMCCs))]
			g.online = append(g.online, i)
		} else {
			m.mcc = everydayMCCs[r.IntN(len(everydayMCCs))]
		}
	}
	g.transit = merchant{id: "m-transit", mcc: "4111"}

	g.payees = make([]string, 2*cfg.Accounts)
	for i := range g.payees {
		g.payees[i] = fmt.Sprintf("payee-%06d", i+1)
	}

	g.accounts = make([]account, cfg.Accounts)
	for i := range g.accounts {
		a := &g.accounts[i]
		a.id = fmt.Sprintf("acct-%06d", i+1)
		a.home = &homes[r.IntN(len(homes))]
		a.lat = round4(a.home.lat + (r.Float64()-0.5)*0.1)
		a.lon = round4(a.home.lon + (r.Float64()-0.5)*0.1)
		a.nDevices = 1 + r.IntN(2)
		for d := 0; d < a.nDevices; d++ {
			dv := &a.devices[d]
			dv.id = fmt.Sprintf("dev-%06d-%d", i+1, d+1)
			if r.IntN(10) < 6 {
				dv.os = "android"
				dv.rooted = r.IntN(100) == 0
			} else {
				dv.os = "ios"
			}
			dv.app = appVersions[r.IntN(len(appVersions))]
		}
		a.card = fmt.Sprintf("card-%06d", i+1)
		a.homeIP = fmt.Sprintf("81.%d.%d.%d", 10+i>>16&0xff, i>>8&0xff, i&0xff)
		a.mobileIP = fmt.Sprintf("100.%d.%d.%d", 64+i>>16&0x3f, i>>8&0xff, i&0xff)
		for p := range a.payees {
			a.payees[p] = g.payees[r.IntN(len(g.payees))]
		}
		for m := range a.merchants {
			a.merchants[m] = r.IntN(nMerchants)
		}
		a.typical = 500 + r.ExpFloat64()*2500
		a.joinAt = g.startMS - 1
		if r.Float64() < signupShare {
			a.joinAt = g.startMS + g.between(0, 3*24*time.Hour)
		}
	}
	if sd := cfg.ActivitySpread; sd > 0 {
		// Log-normal weights of mean about 1, from a twentieth of the mean
		// rate to four times it.
		weights := make([]float64, cfg.Accounts)
		for i := range weights {
			weights[i] = math.Min(4, math.Max(0.05, math.Exp(sd*r.NormFloat64()-sd*sd/2)))
		}
		g.pickProb, g.pickAlias = aliasTable(weights)
	}
	g.tripIPs = make([]string, 256)
	for i := range g.tripIPs {
		g.tripIPs[i] = fmt.Sprintf("%d.%d.%d.%d", 31+r.IntN(180), r.IntN(256), r.IntN(256), 1+r.IntN(254))
	}
	g.shareFamilyPhones()
	g.popular = max(10, cfg.Accounts/2000)
	return g
}

// shareFamilyPhones lets families share phones, as they do: 3% of owners
// also use the phone of another owner (a partner's phone, a family
// tablet), a quarter of those phones serve a third owner too, and a fifth
// of the owners who sign up during the stream do it on a family member's
// phone. So honest phones with two or three accounts exist, and an
// honest sign-up can come from a phone other accounts use, as a farm's do.
func (g *Generator) shareFamilyPhones() {
	r := g.rng
	n := len(g.accounts)
	for i := range g.accounts {
		a := &g.accounts[i]
		if a.joinAt > g.startMS {
			if r.IntN(5) == 0 {
				a.devices[0], a.nDevices = g.accounts[r.IntN(n)].devices[0], 1
			}
			continue
		}
		if r.IntN(100) >= 3 {
			continue
		}
		shared := a.devices[0]
		members := 1 + r.IntN(4)/3 // one other owner, or two for a quarter
		for m := 0; m < members; m++ {
			b := &g.accounts[r.IntN(n)]
			if b == a || b.joinAt > g.startMS {
				continue
			}
			b.devices[1], b.nDevices = shared, 2
		}
	}
}

// aliasTable builds Vose's alias table for drawing i with probability
// w[i]/sum(w) in constant time.
func aliasTable(w []float64) ([]float32, []int32) {
	n := len(w)
	var sum float64
	for _, x := range w {
		sum += x
	}
	prob := make([]float32, n)
	alias := make([]int32, n)
	scaled := make([]float64, n)
	var small, large []int32
	for i, x := range w {
		scaled[i] = x * float64(n) / sum
		if scaled[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		prob[s], alias[s] = float32(scaled[s]), l
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range large {
		prob[i], alias[i] = 1, i
	}
	for _, i := range small { // rounding leftovers
		prob[i], alias[i] = 1, i
	}
	return prob, alias
}

// pickAccount draws an account by activity (any account alike without
// Config.ActivitySpread).
func (g *Generator) pickAccount() int {
	if g.pickProb == nil {
		return g.rng.IntN(len(g.accounts))
	}
	i := g.rng.IntN(len(g.pickProb))
	if g.rng.Float32() < g.pickProb[i] {
		return i
	}
	return int(g.pickAlias[i])
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// Next fills ev with the next event. ev is Reset first (keeping its Attrs
// map, which a later Next on the same ev refills); the strings it gets stay
// valid after later calls. It allocates only the event id, plus a few ids
// when a fraud scenario starts or an owner gets a new phone (and a slot
// while the number of scripts in progress, attacks and owners' habits,
// grows past its peak so far).
func (g *Generator) Next(ev *event.Event) {
	ev.Reset()
	g.seq++
	g.idBuf = append(g.idBuf[:0], g.cfg.IDPrefix...)
	g.idBuf = strconv.AppendInt(g.idBuf, g.seq, 10)
	ev.ID = string(g.idBuf)

	rate := g.cfg.EventsPerSecond
	if !g.cfg.FlatRate {
		rate *= dailyRhythm[hourOfDay(g.startMS+int64(g.offset))]
	}
	g.offset += g.rng.ExpFloat64() * 1000 / rate
	ts := g.startMS + int64(g.offset)
	if ts <= g.lastTS {
		ts = g.lastTS + 1
	}
	g.lastTS = ts
	ev.TS = ts

	g.lastAttack, g.lastRole, g.lastVictim = 0, 0, ""
	if len(g.queue) > 0 && g.scripts[g.queue[0]].due <= ts {
		if slot := g.popDue(); g.scripts[slot].honest != 0 {
			g.honestStep(ev, slot)
		} else {
			g.fraud(ev, slot)
		}
		return
	}
	if g.cfg.FraudRate > 0 && g.rng.Float64() < g.startProb {
		g.fraud(ev, g.start())
		return
	}
	g.normal(ev)
}

// Attack says which attack the event just generated belongs to (0 for
// honest traffic) and its role in it. See the package doc.
func (g *Generator) Attack() (id uint64, role Role) { return g.lastAttack, g.lastRole }

// Victim names the account of the table whose owner the event just
// generated harms when that is not the event's account: the owner of the
// card a device_farm pays with. It is "" otherwise (honest traffic, and
// attacks whose victim is the event's own account).
func (g *Generator) Victim() string { return g.lastVictim }

// dailyRhythm scales the event rate by hour of day (UTC, which is close to
// the euro-area homes' local time): a wallet is quiet at night and busiest
// at lunch and in the evening. The weights average 1, so a whole day keeps
// the configured mean rate.
var dailyRhythm = func() [24]float64 {
	w := [24]float64{0.25, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 1.0, 1.3, 1.2, 1.2, 1.4,
		1.7, 1.5, 1.2, 1.2, 1.3, 1.5, 1.7, 1.7, 1.5, 1.2, 0.8, 0.5}
	var sum float64
	for _, x := range w {
		sum += x
	}
	for i := range w {
		w[i] *= 24 / sum
	}
	return w
}()

func hourOfDay(ms int64) int {
	h := (ms / 3_600_000) % 24
	if h < 0 {
		h += 24
	}
	return int(h)
}

// Config returns the configuration in use, with defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// AppendJSON generates the next event and appends its JSON to buf.
func (g *Generator) AppendJSON(buf []byte) []byte {
	g.Next(&g.jsonEv)
	return g.jsonEv.AppendJSON(buf)
}

// ---- normal traffic

func (g *Generator) pickDevice(a *account) *device {
	return &a.devices[g.rng.IntN(a.nDevices)]
}

// ownerContext fills what every event of an owner carries: device, ip, geo,
// at home or where the owner travelled to (see travel).
func (g *Generator) ownerContext(ev *event.Event, a *account) {
	ev.AccountID = a.id
	if a.events < math.MaxUint16 {
		a.events++
	}
	d := g.pickDevice(a)
	ev.Device = event.Device{ID: d.id, OS: d.os, AppVersion: d.app, Rooted: d.rooted}
	if a.away != nil && ev.TS >= a.back {
		a.away = nil // home again
	}
	if a.away != nil && ev.TS >= a.arrive {
		// Abroad: the phone roams on its home carrier or joins local Wi-Fi.
		ev.IP = a.mobileIP
		if g.rng.IntN(2) == 0 {
			ev.IP = a.tripIP
		}
		ev.Geo = event.Geo{Country: a.away.country, Lat: a.awayLat, Lon: a.awayLon, HasPoint: true}
		return
	}
	if g.rng.IntN(5) == 0 {
		ev.IP = a.mobileIP
	} else {
		ev.IP = a.homeIP
	}
	ev.Geo = event.Geo{Country: a.home.country, Lat: a.lat, Lon: a.lon, HasPoint: true}
}

// Places honest owners travel to beyond the euro-area homes, some of them
// countries fraud comes from too.
var destinations = []place{
	{"GB", "GBP", 51.507, -0.128}, {"US", "USD", 40.713, -74.006},
	{"US", "USD", 25.762, -80.192}, {"TH", "THB", 13.756, 100.502},
	{"MA", "MAD", 31.629, -7.981}, {"BR", "BRL", -22.907, -43.173},
	{"MX", "MXN", 21.162, -86.851}, {"TR", "TRY", 41.008, 28.978},
	{"JP", "JPY", 35.676, 139.65}, {"CH", "CHF", 47.377, 8.541},
}

// signupShare is the share of accounts opened during the first three days
// of the stream rather than before it.
const signupShare = 0.03

// tripChance is the chance that an owner's event is their last before a
// trip: with a dozen events a day, a trip every few months.
const tripChance = 1.0 / 1000

// travel starts a trip for a, which is at home at ts: to another home city
// or abroad, for a few days. The journey takes as long as a real one
// (a train near by, a flight far away, with time to reach the airport),
// and the owner is silent on the way, so honest travel is never faster
// than an airliner.
func (g *Generator) travel(a *account, ts int64) {
	r := g.rng
	to := &homes[r.IntN(len(homes))]
	if r.IntN(5) < 2 {
		to = &destinations[r.IntN(len(destinations))]
	}
	lat, lon := round4(to.lat+(r.Float64()-0.5)*0.1), round4(to.lon+(r.Float64()-0.5)*0.1)
	km := haversineKm(a.lat, a.lon, lat, lon)
	speed := 700.0
	if km < 1000 {
		speed = 150
	}
	hours := 1 + km/speed + 3*r.Float64()
	journey := int64(hours * 3_600_000)
	a.away, a.awayLat, a.awayLon = to, lat, lon
	a.arrive = ts + journey
	a.leave = a.arrive + g.between(24*time.Hour, 10*24*time.Hour)
	a.back = a.leave + journey
	a.tripIP = g.tripIPs[r.IntN(len(g.tripIPs))]
}

// idle reports whether a's owner can do nothing at ts: the account is not
// opened yet, or the owner is on the way to or back from a trip.
func (a *account) idle(ts int64) bool {
	return ts < a.joinAt || a.away != nil && (ts < a.arrive || ts >= a.leave && ts < a.back)
}

func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	h := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * 6371 * math.Asin(math.Sqrt(h))
}

// amountAround draws a log-normal amount around typical cents.
func (g *Generator) amountAround(typical, spread float64) int64 {
	v := typical * math.Exp(g.rng.NormFloat64()*spread)
	if v < 50 {
		v = 50
	}
	return int64(v)
}

// phoneChance is the chance that an owner's event is their first on a new
// phone: a new phone every few months.
const phoneChance = 1.0 / 2000

func (g *Generator) normal(ev *event.Event) {
	r := g.rng
	// An owner on a train or a plane, or whose account is not opened yet,
	// does nothing: draw another one (a few times; such owners are few).
	g.lastHonest = g.pickAccount()
	for try := 0; try < 8 && g.accounts[g.lastHonest].idle(ev.TS); try++ {
		g.lastHonest = g.pickAccount()
	}
	a := &g.accounts[g.lastHonest]
	switch {
	case !a.joined:
		a.joined = true
		if a.joinAt > g.startMS { // opened during the stream: a sign-up
			g.honestScript(ev, honestSignup)
			return
		}
	case a.away == nil && r.Float64() < tripChance:
		g.travel(a, ev.TS)
	case r.Float64() < phoneChance:
		g.newPhone(a)
		g.honestScript(ev, honestPhone)
		return
	}
	g.ownerContext(ev, a)
	x := r.IntN(1000)
	switch {
	case x < 700:
		g.normalPayment(ev, a)
	case x < 850:
		ev.Type = event.TypeLogin
	case x < 865:
		ev.Type = event.TypeLoginFailed
	case x < 885:
		ev.Type = event.TypeMFA
		ev.Attrs = setAttr(ev.Attrs, "result", "ok")
	case x < 935:
		ev.Type = event.TypeTopup
		ev.Amount = 1000 * int64(1+r.IntN(20))
		ev.Currency = a.home.currency
		ev.CardID = a.card
	case x < 955:
		ev.Type = event.TypeWithdrawal
		ev.Amount = g.amountAround(20000, 0.7)
		ev.Currency = a.home.currency
	case x < 968:
		ev.Type = event.TypePointsRedeem
		ev.Amount = 100 * int64(1+r.IntN(15))
		ev.Currency = a.home.currency
	case x < 980:
		ev.Type = event.TypeRefund
		m := &g.merchants[a.merchants[r.IntN(len(a.merchants))]]
		ev.MerchantID, ev.MCC = m.id, m.mcc
		ev.Amount = g.amountAround(a.typical, 0.5)
		ev.Currency = a.home.currency
	case x < 990:
		ev.Type = event.TypePayeeAdd
		ev.PayeeID = g.payees[r.IntN(len(g.payees))]
		if r.IntN(20) == 0 {
			// A payee many owners add: a landlord, a club's treasurer, a
			// seller taking transfers; fan-in that is no mule's.
			ev.PayeeID = g.payees[r.IntN(g.popular)]
		}
		// The new payee joins the usual ones, and half the time the owner
		// pays them minutes later.
		a.payees[r.IntN(len(a.payees))] = ev.PayeeID
		if r.IntN(2) == 0 {
			g.honestScript(ev, honestPayee)
		}
	case x < 994:
		ev.Type = event.TypePasswordReset
	case x < 997:
		ev.Type = event.TypeProfileChange
		ev.Attrs = setAttr(ev.Attrs, "field", "email")
	default:
		ev.Type = event.TypeDeviceBind
	}
}

// newPhone replaces a's first phone with a new one.
func (g *Generator) newPhone(a *account) {
	r := g.rng
	a.phones++
	d := &a.devices[0]
	d.id = "dev-" + a.id[len("acct-"):] + "-n" + strconv.Itoa(a.phones)
	d.os, d.rooted = "ios", false
	if r.IntN(10) < 6 {
		d.os = "android"
	}
	d.app = appVersions[len(appVersions)-1]
}

// honestScript plays the first step of an honest script of kind for the
// account of the latest honest event and queues the rest.
func (g *Generator) honestScript(ev *event.Event, kind uint8) {
	r := g.rng
	slot := g.newScript()
	s := &g.scripts[slot]
	s.honest, s.acct = kind, g.lastHonest
	switch kind {
	case honestPhone: // (password_reset) login device_bind
		s.n = 2
		if r.IntN(10) < 3 {
			s.n = 3 // forgot the password on the new phone
		}
	case honestPayee: // payee_add (already played) payment
		s.n, s.step = 2, 1
		s.payee = ev.PayeeID
		s.due = ev.TS + g.between(30*time.Second, 30*time.Minute)
		g.push(slot)
		return
	case honestSignup: // login, points_redeem, topup
		s.n = 1 + r.IntN(3)
	}
	g.honestStep(ev, slot)
}

// honestStep plays the next step of the honest script in slot, then
// queues its next step or frees the slot.
func (g *Generator) honestStep(ev *event.Event, slot int32) {
	s := &g.scripts[slot]
	r := g.rng
	step := s.step
	s.step++
	g.lastHonest = s.acct
	a := &g.accounts[s.acct]
	g.ownerContext(ev, a)
	switch s.honest {
	case honestPhone:
		d := &a.devices[0]
		ev.Device = event.Device{ID: d.id, OS: d.os, AppVersion: d.app, Rooted: d.rooted}
		switch {
		case step == s.n-1:
			ev.Type = event.TypeDeviceBind
		case step == 0 && s.n == 3:
			ev.Type = event.TypePasswordReset
		default:
			ev.Type = event.TypeLogin
		}
	case honestPayee:
		ev.Type = event.TypePayment
		ev.Channel = "transfer"
		ev.PayeeID = s.payee
		ev.Currency = a.home.currency
		// A first payment to someone new is often a larger one: a deposit,
		// a shared bill, a second-hand purchase.
		ev.Amount = g.amountAround(a.typical*3, 1.0)
	case honestSignup:
		d := &a.devices[0]
		ev.Device = event.Device{ID: d.id, OS: d.os, AppVersion: d.app, Rooted: d.rooted}
		switch step {
		case 0:
			ev.Type = event.TypeLogin
		case 1: // the welcome points, as much as a farm redeems per account
			ev.Type = event.TypePointsRedeem
			ev.Amount = 2000 + 500*int64(r.IntN(13))
			ev.Currency = a.home.currency
		default:
			ev.Type = event.TypeTopup
			ev.Amount = 1000 * int64(1+r.IntN(20))
			ev.Currency = a.home.currency
			ev.CardID = a.card
		}
	}
	if s.step < s.n {
		s.due = ev.TS + g.between(20*time.Second, 10*time.Minute)
		g.push(slot)
		return
	}
	g.free = append(g.free, slot)
}

func setAttr(m event.Attrs, k, v string) event.Attrs {
	if m == nil {
		m = make(event.Attrs, 2)
	}
	m[k] = v
	return m
}

func (g *Generator) normalPayment(ev *event.Event, a *account) {
	r := g.rng
	ev.Type = event.TypePayment
	ev.Currency = a.home.currency
	x := r.IntN(100)
	switch {
	case x < 30:
		ev.Channel = "qr"
		m := &g.merchants[a.merchants[r.IntN(len(a.merchants))]]
		ev.MerchantID, ev.MCC = m.id, m.mcc
		ev.Amount = g.amountAround(a.typical, 0.6)
	case x < 50:
		ev.Channel = "nfc"
		m := &g.merchants[a.merchants[r.IntN(len(a.merchants))]]
		ev.MerchantID, ev.MCC = m.id, m.mcc
		ev.CardID = a.card
		ev.Amount = g.amountAround(a.typical, 0.6)
	case x < 70:
		ev.Channel = "online"
		m := &g.merchants[g.online[r.IntN(len(g.online))]]
		ev.MerchantID, ev.MCC = m.id, m.mcc
		ev.CardID = a.card
		ev.Amount = g.amountAround(a.typical*1.5, 0.7)
	case x < 85:
		ev.Channel = "transfer"
		ev.PayeeID = a.payees[r.IntN(len(a.payees))]
		ev.Amount = g.amountAround(a.typical*2, 0.8)
	default:
		ev.Channel = "transit"
		ev.MerchantID, ev.MCC = g.transit.id, g.transit.mcc
		ev.Amount = 150 + 10*int64(r.IntN(26))
	}
}

// ---- fraud scenarios

// attackerID returns a fresh id like "dev-x-17".
func (g *Generator) attackerID(prefix string) string {
	g.serial++
	return prefix + strconv.FormatInt(g.serial, 10)
}

func (g *Generator) attackerIP() string {
	return fmt.Sprintf("185.%d.%d.%d", 200+g.rng.IntN(40), g.rng.IntN(256), 1+g.rng.IntN(254))
}

// meanScriptLen is the mean number of events of a scenario, over the
// uniform choice of scenario in start: brute_force 6-10, credential_stuffing
// 11-15, account_takeover 4 + 1-2 transfers, scam_payee 1 + 1-2 transfers,
// card_testing 7-12, device_farm 2 x 6-10, points_abuse 2 x 3-5,
// impossible_travel 3.
const meanScriptLen = (8 + 13 + 5.5 + 2.5 + 9.5 + 16 + 8 + 3) / 8.0

// Role says what an attack's event is to the attack; it is a set of flags,
// and an event of an attack with none of them is one of its other steps.
type Role uint8

const (
	// RoleFirst marks the attack's first event.
	RoleFirst Role = 1 << iota
	// RoleLoss marks an event that moves money out of the victim: the
	// transfers of account_takeover, scam_payee and impossible_travel, the
	// cash-out of card_testing (not its probes of a few cents), every
	// payment of device_farm (on a card stolen from a real owner) and every
	// redemption of points_abuse (the wallet's points).
	RoleLoss
	// RoleLast marks the attack's last event: an attack whose last event
	// was not generated was cut off by the end of the stream.
	RoleLast
)

// Has reports whether r holds every flag of f.
func (r Role) Has(f Role) bool { return r&f == f }

// start begins a new attack in a free slot and returns the slot. The
// victim (see the comment below) may have a long history, a short one or
// none, so rules cannot count on the account's profile being full.
func (g *Generator) start() int32 {
	r := g.rng
	slot := g.newScript()
	g.attacks++
	s := &g.scripts[slot]
	s.kind, s.id, s.acct = Scenarios[r.IntN(len(Scenarios))], g.attacks, r.IntN(len(g.accounts))
	// The victim's history before the attack varies: 2 in 5 attacks hit
	// the account of the latest honest event (busy accounts, long
	// histories), 1 in 4 a dormant account (no event in the stream yet,
	// if one is found in a few draws), the rest any opened account.
	switch x := r.IntN(20); {
	case x < 8:
		s.acct = g.lastHonest
	case x < 13:
		for try := 0; try < 16 && (g.accounts[s.acct].events > 0 || g.accounts[s.acct].joinAt > g.lastTS); try++ {
			s.acct = r.IntN(len(g.accounts))
		}
	default:
		// An account not opened yet cannot be attacked: draw again (a few
		// times; sign-ups are few).
		for try := 0; try < 8 && g.accounts[s.acct].joinAt > g.lastTS; try++ {
			s.acct = r.IntN(len(g.accounts))
		}
	}
	s.where = &foreign[r.IntN(len(foreign))]
	s.ip = g.attackerIP()
	s.dev = device{id: g.attackerID("dev-x-"), os: "android", app: appVersions[len(appVersions)-1]}
	switch s.kind {
	case BruteForce:
		s.n = 6 + r.IntN(5)
	case CredentialStuffing:
		s.n = 11 + r.IntN(5) // failures on distinct accounts, then one success
	case AccountTakeover:
		s.n = 4 + 1 + r.IntN(2) // reset, login, bind and payee in either order, 1-2 transfers
		s.swap = r.IntN(2) == 0
		s.payee = g.attackerID("payee-ato-")
	case ScamPayee:
		s.n = 1 + 1 + r.IntN(2) // payee_add, 1-2 transfers
		// Half the scammers use a payee others already reported, half a
		// mule account no list knows yet (see pickMule).
		s.payee = ScamPayees[r.IntN(len(ScamPayees))]
		if r.IntN(2) == 0 {
			s.payee = g.pickMule()
		}
	case CardTesting:
		s.n = 7 + r.IntN(6) // tiny charges, then one cash-out
		s.card = g.attackerID("card-x-")
	case DeviceFarm:
		s.n = 2 * (6 + r.IntN(5)) // login and payment per account
		s.dev.emulator = r.IntN(2) == 0
		s.dev.id = g.attackerID("dev-farm-")
		for i := 0; i < s.n/2; i++ {
			s.accts[i] = g.attackerID("acct-farm-")
		}
	case PointsAbuse:
		s.n = 2 * (3 + r.IntN(3)) // sign-up (login) and redeem per account
		s.farm = g.pickFarm()
		f := &g.farms[s.farm]
		s.where = f.where
		s.off = r.IntN(len(f.devs) * len(f.ips))
		s.swap = r.IntN(2) == 0 // every sign-up first, then every redemption
		for i := 0; i < s.n/2; i++ {
			s.accts[i] = g.attackerID("acct-points-")
		}
	case ImpossibleTravel:
		s.n = 3
	}
	return slot
}

// pickFarm returns the farm that runs the next points_abuse batch. A farm
// lives for 2 to 20 batches of fresh accounts, and a batch comes from a
// new farm one time in ten (or when none is live), so most batches come
// from phones and addresses that earlier batches used. Batches of one farm
// are as far apart as attacks are in the stream: hours apart at a dozen
// events per account a day, minutes apart in a short dense benchmark.
func (g *Generator) pickFarm() int32 {
	r := g.rng
	if i, ok := g.reuseRing(&g.liveFarms, func(i int32) *int { return &g.farms[i].batches }, 10); ok {
		return i
	}
	// A pool of 1 to 4 phones (each an emulator one time in four) behind 1
	// to 3 addresses of one proxy range, in one city the wallet serves.
	f := farm{where: &homes[r.IntN(len(homes))], batches: 1 + r.IntN(19)} // after this one
	f.devs = make([]device, 1+r.IntN(4))
	for d := range f.devs {
		f.devs[d] = device{id: g.attackerID("dev-points-"), os: "android", app: appVersions[len(appVersions)-1],
			emulator: r.IntN(4) == 0}
	}
	f.ips = make([]string, 1+r.IntN(3))
	base := g.attackerIP()
	for k := range f.ips {
		f.ips[k] = base[:strings.LastIndexByte(base, '.')+1] + strconv.Itoa(1+r.IntN(254))
	}
	g.farms = append(g.farms, f)
	i := int32(len(g.farms) - 1)
	g.liveFarms = append(g.liveFarms, i)
	return i
}

// pickMule returns the unlisted mule payee the next scam victim pays. A
// mule takes money from 1 to 10 unrelated victims before it is burned,
// and a victim is sent to a new mule one time in five (or when none is
// live), so most mules were paid by another victim before, hours or days
// earlier in a wallet's time.
func (g *Generator) pickMule() string {
	r := g.rng
	if i, ok := g.reuseRing(&g.liveMules, func(i int32) *int { return &g.mules[i].victims }, 5); ok {
		return g.mules[i].payee
	}
	m := mule{payee: g.attackerID("payee-mule-"), victims: r.IntN(10)}
	g.mules = append(g.mules, m)
	if m.victims > 0 {
		g.liveMules = append(g.liveMules, int32(len(g.mules)-1))
	}
	return m.payee
}

// reuseRing picks a live fraud ring (a farm or a mule, by index in live)
// for the next attack, unless a new ring is due: one time in newOneIn, or
// when none is live. uses points at a ring's attacks left; a ring whose
// last one this is leaves live.
func (g *Generator) reuseRing(live *[]int32, uses func(int32) *int, newOneIn int) (int32, bool) {
	r := g.rng
	if len(*live) == 0 || r.IntN(newOneIn) == 0 {
		return 0, false
	}
	k := r.IntN(len(*live))
	i := (*live)[k]
	if n := uses(i); *n > 1 {
		*n--
	} else {
		*n = 0
		(*live)[k] = (*live)[len(*live)-1]
		*live = (*live)[:len(*live)-1]
	}
	return i, true
}

// newScript takes a free slot, zeroed, and returns it.
func (g *Generator) newScript() int32 {
	var slot int32
	if n := len(g.free); n > 0 {
		slot = g.free[n-1]
		g.free = g.free[:n-1]
	} else {
		g.scripts = append(g.scripts, script{})
		slot = int32(len(g.scripts) - 1)
	}
	g.order++
	g.scripts[slot] = script{order: g.order}
	return slot
}

// between draws a delay in [lo, hi) milliseconds of event time.
func (g *Generator) between(lo, hi time.Duration) int64 {
	l, h := lo.Milliseconds(), hi.Milliseconds()
	return l + g.rng.Int64N(h-l)
}

// delay is the event time from step (just played) to the next step of s:
// each scenario's pace, drawn per step so no two attacks share a shape.
func (g *Generator) delay(s *script, step int) int64 {
	switch s.kind {
	case BruteForce:
		return g.between(time.Second, 15*time.Second)
	case CredentialStuffing:
		return g.between(500*time.Millisecond, 5*time.Second)
	case AccountTakeover:
		switch step {
		case 0: // reset mail read, new password set
			return g.between(20*time.Second, 5*time.Minute)
		case 1, 2:
			return g.between(5*time.Second, 3*time.Minute)
		case 3: // the first drain
			return g.between(10*time.Second, 8*time.Minute)
		}
		return g.between(30*time.Second, 5*time.Minute)
	case ScamPayee: // the victim on the phone with the scammer
		if step == 0 {
			return g.between(time.Minute, 20*time.Minute)
		}
		return g.between(time.Minute, 10*time.Minute)
	case CardTesting:
		if step == s.n-2 { // the card works: cash out
			return g.between(30*time.Second, 10*time.Minute)
		}
		return g.between(2*time.Second, 40*time.Second)
	case PointsAbuse:
		if s.swap { // a burst of sign-ups, then the redemptions
			return g.between(10*time.Second, 2*time.Minute)
		}
		if step%2 == 0 { // signed in, now redeem
			return g.between(5*time.Second, 90*time.Second)
		}
		return g.between(10*time.Second, 3*time.Minute)
	case DeviceFarm:
		if step%2 == 0 { // signed in, now pay
			return g.between(5*time.Second, 90*time.Second)
		}
		return g.between(10*time.Second, 3*time.Minute)
	case ImpossibleTravel:
		if step == 0 { // the owner at home, then the attacker abroad
			return g.between(10*time.Minute, 90*time.Minute)
		}
		return g.between(time.Minute, 15*time.Minute)
	}
	return 1000
}

// ---- the queue of attacks in progress: a binary min-heap of slots by
// (due, start order), so ties go to the older script.

func (g *Generator) before(a, b int32) bool {
	x, y := &g.scripts[a], &g.scripts[b]
	return x.due < y.due || x.due == y.due && x.order < y.order
}

func (g *Generator) push(slot int32) {
	q := append(g.queue, slot)
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !g.before(q[i], q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
	g.queue = q
}

func (g *Generator) popDue() int32 {
	q := g.queue
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && g.before(q[l], q[m]) {
			m = l
		}
		if l+1 < n && g.before(q[l+1], q[m]) {
			m = l + 1
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	g.queue = q
	return top
}

// fraud plays the next step of the attack in slot, then queues its next
// step or frees the slot.
func (g *Generator) fraud(ev *event.Event, slot int32) {
	s := &g.scripts[slot]
	r := g.rng
	step := s.step
	pos := step // step is renamed below where steps may come in either order
	s.step++
	ev.Label = s.kind
	g.lastAttack = s.id
	if pos == 0 {
		g.lastRole |= RoleFirst
	}
	if s.step == s.n {
		g.lastRole |= RoleLast
	}
	a := &g.accounts[s.acct]
	attacker := func(acct *account) {
		ev.AccountID = acct.id
		ev.Device = event.Device{ID: s.dev.id, OS: s.dev.os, AppVersion: s.dev.app, Emulator: s.dev.emulator}
		ev.IP = s.ip
		ev.Geo = event.Geo{Country: s.where.country, Lat: s.where.lat, Lon: s.where.lon, HasPoint: true}
	}
	transfer := func(payee string, amount int64) {
		ev.Type = event.TypePayment
		ev.Channel = "transfer"
		ev.PayeeID = payee
		ev.Amount = amount
		ev.Currency = a.home.currency
		g.lastRole |= RoleLoss
	}
	switch s.kind {
	case BruteForce:
		attacker(a)
		ev.Geo = event.Geo{Country: s.where.country} // from the IP; no GPS before sign-in
		ev.Type = event.TypeLoginFailed
	case CredentialStuffing:
		acct := &g.accounts[(s.acct+step*7919)%len(g.accounts)]
		attacker(acct)
		ev.Geo = event.Geo{Country: s.where.country}
		ev.Type = event.TypeLoginFailed
		ev.Attrs = setAttr(ev.Attrs, "proxy", "true")
		if step == s.n-1 {
			ev.Type = event.TypeLogin
		}
	case AccountTakeover:
		attacker(a)
		if s.swap && (step == 2 || step == 3) {
			step = 5 - step
		}
		switch step {
		case 0:
			ev.Type = event.TypePasswordReset
		case 1:
			ev.Type = event.TypeLogin
		case 2:
			ev.Type = event.TypeDeviceBind
		case 3:
			ev.Type = event.TypePayeeAdd
			ev.PayeeID = s.payee
		default:
			transfer(s.payee, 30000+1000*int64(r.IntN(220)))
		}
	case ScamPayee:
		// The owner, on their own phone at home, is talked into paying.
		g.ownerContext(ev, a)
		ev.PayeeID = s.payee
		if step == 0 {
			ev.Type = event.TypePayeeAdd
		} else {
			transfer(s.payee, 20000+1000*int64(r.IntN(180)))
		}
	case CardTesting:
		attacker(a)
		ev.Type = event.TypePayment
		ev.Channel = "online"
		ev.CardID = s.card
		ev.Currency = a.home.currency
		m := &g.merchants[g.online[r.IntN(len(g.online))]]
		ev.MerchantID, ev.MCC = m.id, m.mcc
		if step == s.n-1 {
			ev.Amount = 20000 + 500*int64(r.IntN(120))
			g.lastRole |= RoleLoss
		} else {
			ev.Amount = 50 + 10*int64(r.IntN(30))
		}
	case DeviceFarm:
		attacker(a)
		ev.AccountID = s.accts[step/2]
		if step%2 == 0 {
			ev.Type = event.TypeLogin
		} else {
			ev.Type = event.TypePayment
			ev.Channel = "online"
			m := &g.merchants[g.online[r.IntN(len(g.online))]]
			ev.MerchantID, ev.MCC = m.id, m.mcc
			ev.CardID = a.card // a card stolen from a real owner
			g.lastVictim = a.id
			ev.Amount = 500 + 100*int64(r.IntN(50))
			ev.Currency = a.home.currency
			g.lastRole |= RoleLoss
		}
	case PointsAbuse:
		// Fresh accounts sign up and redeem their welcome points on the
		// farm's phones, at home, either one after the other or all the
		// sign-ups first.
		attacker(a)
		k, redeem := step/2, step%2 == 1
		if s.swap {
			k, redeem = step%(s.n/2), step >= s.n/2
		}
		f := &g.farms[s.farm]
		d := &f.devs[(s.off+k)%len(f.devs)]
		ev.Device = event.Device{ID: d.id, OS: d.os, AppVersion: d.app, Emulator: d.emulator}
		ev.IP = f.ips[(s.off+k)%len(f.ips)]
		ev.AccountID = s.accts[k]
		if !redeem {
			ev.Type = event.TypeLogin
		} else {
			ev.Type = event.TypePointsRedeem
			ev.Amount = 2000 + 500*int64(r.IntN(13))
			ev.Currency = s.where.currency
			g.lastRole |= RoleLoss
		}
	case ImpossibleTravel:
		if step == 0 {
			g.ownerContext(ev, a) // the owner at home
			ev.Type = event.TypeLogin
			break
		}
		attacker(a)
		if step == 1 {
			ev.Type = event.TypeLogin
		} else {
			transfer(g.payees[r.IntN(len(g.payees))], 20000+1000*int64(r.IntN(100)))
		}
	}
	if s.step < s.n {
		s.due = ev.TS + g.delay(s, pos)
		g.push(slot)
		return
	}
	g.free = append(g.free, slot)
}
