package traffic

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"riskd/event"
)

func testConfig(seed uint64, rate float64) Config {
	return Config{
		Accounts:        500,
		Seed:            seed,
		FraudRate:       rate,
		Start:           time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC),
		EventsPerSecond: 200,
	}
}

func TestSameSeedSameEvents(t *testing.T) {
	a, b := New(testConfig(7, 0.05)), New(testConfig(7, 0.05))
	var ba, bb []byte
	for i := 0; i < 5000; i++ {
		ba = a.AppendJSON(ba[:0])
		bb = b.AppendJSON(bb[:0])
		if !bytes.Equal(ba, bb) {
			t.Fatalf("event %d differs:\n%s\n%s", i, ba, bb)
		}
		ida, ra := a.Attack()
		idb, rb := b.Attack()
		if ida != idb || ra != rb {
			t.Fatalf("event %d: attack %d role %b, then attack %d role %b", i, ida, ra, idb, rb)
		}
	}
	c := New(testConfig(8, 0.05))
	a = New(testConfig(7, 0.05))
	same := 0
	for i := 0; i < 100; i++ {
		if bytes.Equal(a.AppendJSON(nil), c.AppendJSON(nil)) {
			same++
		}
	}
	if same == 100 {
		t.Error("different seeds gave the same stream")
	}
}

func TestFraudRate(t *testing.T) {
	for _, rate := range []float64{0, 0.01, 0.05, 0.2} {
		// Attacks last up to about 1h45 of event time, and those still
		// playing when the stream ends are cut short: at 5 events a second
		// the 300,000 events span over 16 hours, so the cut is small.
		cfg := testConfig(42, rate)
		cfg.EventsPerSecond = 5
		g := New(cfg)
		const n = 300000
		labelled := 0
		seen := map[string]int{}
		var ev event.Event
		for i := 0; i < n; i++ {
			g.Next(&ev)
			if ev.Label != "" {
				labelled++
				seen[ev.Label]++
			}
		}
		got := float64(labelled) / n
		if rate == 0 {
			if labelled != 0 {
				t.Errorf("rate 0: %d labelled events", labelled)
			}
			continue
		}
		// Scenarios come in bursts of about eight events, so the share
		// varies more than a coin flip per event would; 20% is over three
		// standard deviations at the lowest rate tested.
		if math.Abs(got-rate)/rate > 0.2 {
			t.Errorf("rate %v: labelled fraction %.4f", rate, got)
		}
		for _, s := range Scenarios {
			if seen[s] == 0 {
				t.Errorf("rate %v: scenario %s never appeared", rate, s)
			}
		}
		t.Logf("rate %v: labelled %.4f %v", rate, got, seen)
	}
}

// TestScenarioScripts checks each attack plays its whole script, in an
// order its scenario allows, with Attack marking its first, last and loss
// events, and that timings and step orders vary between attacks.
func TestScenarioScripts(t *testing.T) {
	cfg := testConfig(4, 0.05)
	cfg.EventsPerSecond = 10 // 200,000 events over 5.5 hours: most attacks complete
	g := New(cfg)
	type attack struct {
		label string
		types []string
		roles []Role
		ts    []int64
	}
	attacks := map[uint64]*attack{}
	var ev event.Event
	for i := 0; i < 200000; i++ {
		g.Next(&ev)
		id, role := g.Attack()
		if (id == 0) != (ev.Label == "") || (id == 0) != (role == 0) && role != 0 {
			t.Fatalf("event %s: label %q with attack %d role %b", ev.ID, ev.Label, id, role)
		}
		if id == 0 {
			continue
		}
		a := attacks[id]
		if a == nil {
			if !role.Has(RoleFirst) {
				t.Fatalf("attack %d starts at %s without RoleFirst", id, ev.ID)
			}
			a = &attack{label: ev.Label}
			attacks[id] = a
		} else if role.Has(RoleFirst) || a.label != ev.Label {
			t.Fatalf("attack %d: event %s marked first again or relabelled %q", id, ev.ID, ev.Label)
		}
		a.types = append(a.types, ev.Type)
		a.roles = append(a.roles, role)
		a.ts = append(a.ts, ev.TS)
		loss := ev.Type == event.TypePayment && (ev.Channel == "transfer" || ev.Label == DeviceFarm ||
			ev.Label == CardTesting && ev.Amount >= 20000) || ev.Type == event.TypePointsRedeem
		if role.Has(RoleLoss) != loss {
			t.Fatalf("attack %d event %s (%s %s %d): RoleLoss %v", id, ev.ID, ev.Type, ev.Channel, ev.Amount, role.Has(RoleLoss))
		}
	}
	complete := map[string]int{}
	atoOrders := map[string]bool{}
	gaps := map[int64]bool{}
	for id, a := range attacks {
		n := len(a.types)
		if !a.roles[n-1].Has(RoleLast) {
			continue // cut off by the end of the stream
		}
		complete[a.label]++
		for i := 1; i < n; i++ {
			gaps[a.ts[i]-a.ts[i-1]] = true
			if a.roles[i-1].Has(RoleLast) {
				t.Fatalf("attack %d goes on after its last event", id)
			}
		}
		switch a.label {
		case AccountTakeover:
			got := strings.Join(a.types, " ")
			if !strings.HasPrefix(got, "password_reset login ") || n < 5 || n > 6 ||
				!strings.HasSuffix(got, " payment") || a.types[2] == a.types[3] {
				t.Fatalf("account_takeover script %v", a.types)
			}
			atoOrders[a.types[2]] = true
		case BruteForce:
			if n < 6 || n > 10 {
				t.Fatalf("brute_force attack of %d login_failed", n)
			}
		case ScamPayee:
			if a.types[0] != event.TypePayeeAdd || n < 2 || n > 3 {
				t.Fatalf("scam_payee script %v", a.types)
			}
		}
	}
	for _, s := range Scenarios {
		if complete[s] < 5 {
			t.Errorf("only %d complete %s attacks", complete[s], s)
		}
	}
	if !atoOrders[event.TypeDeviceBind] || !atoOrders[event.TypePayeeAdd] {
		t.Errorf("account_takeover always plays device_bind and payee_add in one order: %v", atoOrders)
	}
	if len(gaps) < 1000 {
		t.Errorf("only %d distinct gaps between an attack's steps: timings do not vary", len(gaps))
	}
}

func TestEventsDecodeAndOrder(t *testing.T) {
	g := New(testConfig(1, 0.1))
	var dec event.Decoder
	var got event.Event
	var buf []byte
	ids := map[string]bool{}
	var lastTS int64
	types := map[string]int{}
	for i := 0; i < 20000; i++ {
		buf = g.AppendJSON(buf[:0])
		if err := dec.Decode(buf, &got); err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, buf)
		}
		want := &g.jsonEv
		if got.ID != want.ID || got.Type != want.Type || got.TS != want.TS ||
			got.AccountID != want.AccountID || got.Amount != want.Amount ||
			got.Label != want.Label || got.Device != want.Device || got.Geo != want.Geo {
			t.Fatalf("event %d does not round-trip:\n%+v\n%+v", i, got, *want)
		}
		if ids[got.ID] {
			t.Fatalf("duplicate id %s", got.ID)
		}
		ids[strings.Clone(got.ID)] = true
		if got.TS <= lastTS {
			t.Fatalf("event %d: ts %d not after %d", i, got.TS, lastTS)
		}
		lastTS = got.TS
		types[strings.Clone(got.Type)]++
	}
	for _, typ := range event.KnownTypes {
		if types[typ] == 0 {
			t.Errorf("type %s never generated", typ)
		}
	}
	if types[event.TypePayment] < 10000 {
		t.Errorf("only %d payments in 20000 events", types[event.TypePayment])
	}
}

func TestEventRate(t *testing.T) {
	cfg := testConfig(3, 0.01)
	cfg.FlatRate = true
	g := New(cfg)
	var ev event.Event
	const n = 20000
	for i := 0; i < n; i++ {
		g.Next(&ev)
	}
	secs := float64(ev.TS-cfg.Start.UnixMilli()) / 1000
	if rate := n / secs; rate < 0.9*cfg.EventsPerSecond || rate > 1.1*cfg.EventsPerSecond {
		t.Errorf("event-time rate %.1f/s, want about %v", rate, cfg.EventsPerSecond)
	}
}

// TestStringsOutliveNext checks events may be kept without Clone.
func TestStringsOutliveNext(t *testing.T) {
	g := New(testConfig(5, 0.1))
	kept := make([]event.Event, 100)
	var enc [][]byte
	for i := range kept {
		g.Next(&kept[i])
		enc = append(enc, kept[i].AppendJSON(nil))
	}
	for i := 0; i < 1000; i++ {
		g.AppendJSON(nil)
	}
	for i := range kept {
		if b := kept[i].AppendJSON(nil); !bytes.Equal(b, enc[i]) {
			t.Fatalf("event %d changed after later calls", i)
		}
	}
}

func TestScamPayeesInReferenceList(t *testing.T) {
	f, err := os.Open("../reference/rules/lists/scam_payees.txt")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	list := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			list[line] = true
		}
	}
	for _, id := range ScamPayees {
		if !list[id] {
			t.Errorf("%s is not in the reference scam_payees list", id)
		}
	}
}

func TestNextAllocations(t *testing.T) {
	g := New(testConfig(9, 0.02))
	var ev event.Event
	allocs := testing.AllocsPerRun(10000, func() { g.Next(&ev) })
	if allocs > 1.5 {
		t.Errorf("Next allocates %.2f times per event, want about 1 (the id)", allocs)
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	g := New(Config{Accounts: 100000, Seed: 1, FraudRate: 0.01, EventsPerSecond: 1000})
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = g.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

// TestDailyRhythm: over whole days the mean rate is the configured one, and
// night hours see far fewer events than the busy hours of the day.
func TestDailyRhythm(t *testing.T) {
	cfg := testConfig(5, 0.01)
	cfg.Start = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	cfg.EventsPerSecond = 0.5 // 43,200 a day
	g := New(cfg)
	var ev event.Event
	var byHour [24]int
	const days = 3
	end := cfg.Start.Add(days * 24 * time.Hour).UnixMilli()
	n := 0
	for g.Next(&ev); ev.TS < end; g.Next(&ev) {
		byHour[hourOfDay(ev.TS)]++
		n++
	}
	if perSec := float64(n) / (days * 86400); perSec < 0.45 || perSec > 0.55 {
		t.Errorf("mean rate over %d days %.3f/s, want about 0.5", days, perSec)
	}
	if night, lunch := byHour[3], byHour[12]; night*5 > lunch {
		t.Errorf("events at 03h %d, at 12h %d: want the night far quieter", night, lunch)
	}
}

// TestVictimHistoryVaries: accounts differ in how busy they are and
// attacks pick busy, dormant and any accounts, so the honest history an
// attacked account has before the attack ranges from none to dozens of
// events, and rules cannot count on either.
func TestVictimHistoryVaries(t *testing.T) {
	g := New(Config{Accounts: 2000, Seed: 5, FraudRate: 0.03, ActivitySpread: 0.9, Start: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)})
	seen := map[string]int{} // honest events so far per account
	var history []int        // per attack on an account of the table
	var ev event.Event
	for i := 0; i < 100000; i++ {
		g.Next(&ev)
		id, role := g.Attack()
		switch {
		case id == 0:
			seen[ev.AccountID]++
		case role.Has(RoleFirst) && ev.Label != DeviceFarm && ev.Label != PointsAbuse && ev.Label != CredentialStuffing:
			history = append(history, seen[ev.AccountID])
		}
	}
	var none, few, many int
	for _, h := range history {
		switch {
		case h == 0:
			none++
		case h <= 5:
			few++
		case h >= 50:
			many++
		}
	}
	t.Logf("%d attacks: %d on accounts with no history, %d with 1-5 events, %d with 50 or more", len(history), none, few, many)
	n := len(history)
	if none*20 < n || few*10 < n || many*10 < n {
		t.Errorf("history before attacks does not vary enough: %d none, %d 1-5, %d 50+ of %d", none, few, many, n)
	}
}

// TestHonestOwnersLiveTheirLives: owners travel (never faster than an
// airliner between two of their own events), get new phones (sometimes
// resetting the password on them), sign up during the stream, and pay a
// payee minutes after adding it.
func TestHonestOwnersLiveTheirLives(t *testing.T) {
	g := New(Config{Accounts: 2000, Seed: 8, Start: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)})
	type last struct {
		ts       int64
		lat, lon float64
		country  string
		payee    string
		payeeTS  int64
	}
	home := map[string]string{}
	prev := map[string]*last{}
	var abroad, newPhones, resetsOnNewPhone, signups, welcome, paidNewPayee int
	var ev event.Event
	for i := 0; i < 300000; i++ {
		g.Next(&ev)
		if id, _ := g.Attack(); id != 0 {
			t.Fatalf("attack %d with FraudRate 0", id)
		}
		p := prev[ev.AccountID]
		if p == nil {
			p = &last{}
			prev[ev.AccountID] = p
			home[ev.AccountID] = ev.Geo.Country
			if ev.Type == event.TypeLogin && g.accounts[g.lastHonest].joinAt > g.startMS {
				signups++
			}
		} else {
			hours := float64(ev.TS-p.ts) / 3.6e6
			if km := haversineKm(p.lat, p.lon, ev.Geo.Lat, ev.Geo.Lon); km > 500 && km/hours > 900 {
				t.Fatalf("event %s: %s moved %.0f km in %.2f h", ev.ID, ev.AccountID, km, hours)
			}
		}
		if ev.Geo.Country != home[ev.AccountID] && p.country == home[ev.AccountID] {
			abroad++
		}
		if ev.Type == event.TypePasswordReset && strings.Contains(ev.Device.ID, "-n") {
			resetsOnNewPhone++
		}
		if ev.Type == event.TypeDeviceBind && strings.Contains(ev.Device.ID, "-n") {
			newPhones++
		}
		if ev.Type == event.TypePointsRedeem && ev.Amount >= 2000 {
			welcome++
		}
		if ev.Type == event.TypePayeeAdd {
			p.payee, p.payeeTS = ev.PayeeID, ev.TS
		}
		if ev.Type == event.TypePayment && ev.PayeeID != "" && ev.PayeeID == p.payee && ev.TS-p.payeeTS <= 30*60*1000 {
			paidNewPayee++
		}
		p.ts, p.lat, p.lon, p.country = ev.TS, ev.Geo.Lat, ev.Geo.Lon, ev.Geo.Country
	}
	t.Logf("trips abroad %d, new phones bound %d (%d password resets on them), sign-ups %d, welcome redemptions %d, new payees paid within 30m %d",
		abroad, newPhones, resetsOnNewPhone, signups, welcome, paidNewPayee)
	if abroad < 20 || newPhones < 20 || resetsOnNewPhone < 3 || signups < 20 || welcome < 10 || paidNewPayee < 100 {
		t.Error("honest owners do too little of what real ones do")
	}
}

// TestRingsOutliveAttacks: points farms run later batches on phones earlier
// batches used, in both orders of steps; unlisted scam payees are mules paid
// by several victims; and honest phones shared by two or three owners
// exist, so a shared phone alone is no farm.
func TestRingsOutliveAttacks(t *testing.T) {
	cfg := testConfig(5, 0.05)
	cfg.EventsPerSecond = 10
	g := New(cfg)
	phoneAttacks := map[string]map[uint64]bool{} // points farm phone: its batches
	firstTypes := map[uint64]string{}            // points batch: its steps so far
	burst := 0                                   // batches whose first two steps are sign-ups
	muleVictims := map[string]map[string]bool{}
	honestPhone := map[string]map[string]bool{}
	var ev event.Event
	for i := 0; i < 200000; i++ {
		g.Next(&ev)
		id, _ := g.Attack()
		switch {
		case ev.Label == PointsAbuse:
			if phoneAttacks[ev.Device.ID] == nil {
				phoneAttacks[ev.Device.ID] = map[uint64]bool{}
			}
			phoneAttacks[ev.Device.ID][id] = true
			if len(firstTypes[id]) < len("login login") {
				if firstTypes[id] = strings.TrimSpace(firstTypes[id] + " " + ev.Type); firstTypes[id] == "login login" {
					burst++
				}
			}
		case ev.Label == ScamPayee && strings.HasPrefix(ev.PayeeID, "payee-mule-"):
			if muleVictims[ev.PayeeID] == nil {
				muleVictims[ev.PayeeID] = map[string]bool{}
			}
			muleVictims[ev.PayeeID][ev.AccountID] = true
		case ev.Label == "":
			if honestPhone[ev.Device.ID] == nil {
				honestPhone[ev.Device.ID] = map[string]bool{}
			}
			honestPhone[ev.Device.ID][ev.AccountID] = true
		}
	}
	reused, shared, repeatMules := 0, 0, 0
	for _, batches := range phoneAttacks {
		if len(batches) >= 2 {
			reused++
		}
	}
	for _, accts := range honestPhone {
		if len(accts) >= 2 {
			shared++
		}
	}
	for _, victims := range muleVictims {
		if len(victims) >= 2 {
			repeatMules++
		}
	}
	t.Logf("farm phones %d (%d used by several batches), batches with a sign-up burst %d, mules %d (%d paid by several victims), honest phones shared %d",
		len(phoneAttacks), reused, burst, len(muleVictims), repeatMules, shared)
	if reused*2 < len(phoneAttacks) || burst < 10 || repeatMules*3 < len(muleVictims) || shared < 10 {
		t.Error("farms, mules or families do not outlive one attack as real ones do")
	}
}
