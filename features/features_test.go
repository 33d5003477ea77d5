package features

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"riskd/event"
)

const t0 = int64(1_700_000_400_000) // a multiple of every bucket width used below

func mustSet(t testing.TB, yml string, mod ...func(*Config)) *Set {
	t.Helper()
	defs, err := ParseDefinitions([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	for _, m := range mod {
		m(&cfg)
	}
	s, err := Compile(defs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func win(t testing.TB, s *Set, v *Values, name string) float64 {
	t.Helper()
	i, ok := s.Index(name)
	if !ok {
		t.Fatalf("no feature %s", name)
	}
	return v.Windows[i]
}

func pay(acct string, ts, amount int64) event.Event {
	return event.Event{Type: event.TypePayment, AccountID: acct, TS: ts, Amount: amount}
}

func TestParseDefinitions(t *testing.T) {
	defs, err := ParseDefinitions([]byte(`
payments_1h: {count: payment, by: account, window: 1h}
amount_24h: {sum: amount, by: account, window: 24h, where: 'type == "payment"'}
devices_24h: {distinct: device.id, by: account, window: 24h}
accounts_per_device_1h: {distinct: account_id, by: device.id, window: 1h}
any_7d: {count: "*", by: ip, window: 7d}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Definition{
		{Name: "payments_1h", Kind: KindCount, Of: "payment", By: "account", Window: time.Hour},
		{Name: "amount_24h", Kind: KindSum, Of: "amount", By: "account", Window: 24 * time.Hour, Where: `type == "payment"`},
		{Name: "devices_24h", Kind: KindDistinct, Of: "device.id", By: "account", Window: 24 * time.Hour},
		{Name: "accounts_per_device_1h", Kind: KindDistinct, Of: "account_id", By: "device.id", Window: time.Hour},
		{Name: "any_7d", Kind: KindCount, Of: "*", By: "ip", Window: 7 * 24 * time.Hour},
	}
	if fmt.Sprint(defs) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant %+v", defs, want)
	}
}

func TestParseDefinitionsErrors(t *testing.T) {
	tests := []struct {
		name, yml, want string
	}{
		{"an unknown kind is named", `x: {median: amount, by: account, window: 1h}`,
			`feature x (line 1): unknown key "median" (kinds: count, sum, min, max, avg, distinct, stddev, last, time_since, first_seen, sequence, percentile; keys: by, window, where; for sequence: by, within, link, where; for percentile: quantile too)`},
		{"a bad window is named", `x: {count: payment, by: account, window: 1 hour}`,
			`feature x (line 1): bad window "1 hour": want a duration like 15m, 1h or 7d`},
		{"an unknown by field is named", `x: {count: payment, by: wallet, window: 1h}`,
			`feature x (line 1): unknown field "wallet" in by`},
		{"an unknown numeric field is named", `x: {sum: fee, by: account, window: 1h}`,
			`feature x (line 1): unknown field "fee" in sum (numeric fields: amount, geo.lat, geo.lon)`},
		{"an unknown distinct field is named", `x: {distinct: phone, by: account, window: 1h}`,
			`feature x (line 1): unknown field "phone" in distinct`},
		{"a missing window is reported", `x: {count: payment, by: account}`,
			`feature x (line 1): no window`},
		{"two kinds are refused", `x: {count: payment, sum: amount, by: account, window: 1h}`,
			`feature x (line 1): two kinds (count and sum); declare one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDefinitions([]byte(tt.yml))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		def  Definition
		want string
	}{
		{"a where clause that does not compile is named", Definition{Name: "x", Kind: KindCount, Of: "*", By: "account", Window: time.Hour, Where: "amount >"},
			"feature x: where:"},
		{"a window that is not whole ms per bucket is refused", Definition{Name: "x", Kind: KindCount, Of: "*", By: "account", Window: time.Second + time.Millisecond},
			"feature x: bad window 1.001s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile([]Definition{tt.def}, DefaultConfig())
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, want prefix %s", err, tt.want)
			}
		})
	}
	if err := (Config{}).Validate(); err == nil || err.Error() != "features config: buckets 0: want 1..1024" {
		t.Fatalf("zero config: %v", err)
	}
}

const kindsYAML = `
n_1h: {count: payment, by: account, window: 1h}
any_1h: {count: "*", by: account, window: 1h}
sum_1h: {sum: amount, by: account, window: 1h, where: 'type == "payment"'}
min_1h: {min: amount, by: account, window: 1h, where: 'type in ["payment", "withdrawal"]'}
max_1h: {max: amount, by: account, window: 1h}
avg_1h: {avg: amount, by: account, window: 1h, where: 'type == "payment" && channel == "online" && amount < 10000'}
dev_1h: {distinct: device.id, by: account, window: 1h}
acc_per_dev_1h: {distinct: account_id, by: device.id, window: 1h}
`

func TestWindowKinds(t *testing.T) {
	type step struct {
		ev   event.Event
		want map[string]float64
		late bool
	}
	ev := func(typ, acct, dev, ch string, ts, amt int64) event.Event {
		return event.Event{Type: typ, AccountID: acct, Device: event.Device{ID: dev}, Channel: ch, TS: ts, Amount: amt}
	}
	min := int64(60_000)
	tests := []struct {
		name  string
		mod   func(*Config)
		steps []step
	}{
		{"every kind aggregates the events in its window", nil, []step{
			{ev: ev("payment", "a", "d1", "online", t0, 500), want: map[string]float64{"n_1h": 1, "any_1h": 1, "sum_1h": 500, "min_1h": 500, "max_1h": 500, "avg_1h": 500, "dev_1h": 1, "acc_per_dev_1h": 1}},
			{ev: ev("login", "a", "d2", "", t0+min, 0), want: map[string]float64{"n_1h": 1, "any_1h": 2, "sum_1h": 500, "min_1h": 500, "max_1h": 500, "avg_1h": 500, "dev_1h": 2, "acc_per_dev_1h": 1}},
			{ev: ev("payment", "a", "d1", "qr", t0+2*min, 300), want: map[string]float64{"n_1h": 2, "any_1h": 3, "sum_1h": 800, "min_1h": 300, "max_1h": 500, "avg_1h": 500, "dev_1h": 2, "acc_per_dev_1h": 1}},
			{ev: ev("withdrawal", "b", "d1", "", t0+3*min, 100), want: map[string]float64{"n_1h": 0, "any_1h": 1, "sum_1h": 0, "min_1h": 100, "max_1h": 100, "avg_1h": 0, "dev_1h": 1, "acc_per_dev_1h": 2}},
			{ev: ev("payment", "a", "", "online", t0+4*min, 700), want: map[string]float64{"n_1h": 3, "avg_1h": 600, "dev_1h": 2}},
		}},
		{"an event in the next bucket adds to the window, not replaces it", nil, []step{
			{ev: ev("payment", "a", "", "", t0+2*min-1, 1), want: map[string]float64{"n_1h": 1}},
			{ev: ev("payment", "a", "", "", t0+2*min, 1), want: map[string]float64{"n_1h": 2}},
		}},
		{"an event leaves the window exactly one window after its bucket start", nil, []step{
			{ev: ev("payment", "a", "", "", t0, 1), want: map[string]float64{"n_1h": 1}},
			{ev: ev("login", "a", "", "", t0+60*min-1, 0), want: map[string]float64{"n_1h": 1, "any_1h": 2}},
			{ev: ev("login", "a", "", "", t0+60*min, 0), want: map[string]float64{"n_1h": 0, "any_1h": 2}},
		}},
		{"a late event within tolerance lands in its own older bucket", nil, []step{
			{ev: ev("payment", "a", "", "", t0, 10), want: map[string]float64{"n_1h": 1}},
			{ev: ev("payment", "a", "", "", t0+10*min, 20), want: map[string]float64{"n_1h": 2}},
			// Read as of its own time: the later t0+10m is not counted.
			{ev: ev("payment", "a", "", "", t0+6*min, 30), want: map[string]float64{"n_1h": 2, "sum_1h": 40}},
			// t0 leaves first, then the late event's bucket at t0+6m+1h.
			{ev: ev("login", "a", "", "", t0+60*min, 0), want: map[string]float64{"n_1h": 2, "sum_1h": 50}},
			{ev: ev("login", "a", "", "", t0+66*min, 0), want: map[string]float64{"n_1h": 1, "sum_1h": 20}},
		}},
		{"an event beyond the tolerance is late and not added", nil, []step{
			{ev: ev("payment", "a", "", "", t0+10*min, 20), want: map[string]float64{"n_1h": 1}},
			// Read as of its own time, when the account had nothing yet.
			{ev: ev("payment", "a", "", "", t0+4*min, 30), want: map[string]float64{"n_1h": 0, "sum_1h": 0}, late: true},
			{ev: ev("payment", "a", "", "", t0+11*min, 5), want: map[string]float64{"n_1h": 2, "sum_1h": 25}},
		}},
		{"a distinct set saturates at its bound", func(c *Config) { c.MaxDistinct = 2 }, []step{
			{ev: ev("login", "a", "d1", "", t0, 0), want: map[string]float64{"dev_1h": 1}},
			{ev: ev("login", "a", "d2", "", t0+min, 0), want: map[string]float64{"dev_1h": 2}},
			{ev: ev("login", "a", "d3", "", t0+2*min, 0), want: map[string]float64{"dev_1h": 2}},
			{ev: ev("login", "a", "d3", "", t0+3*min, 0), want: map[string]float64{"dev_1h": 2}},
			// d1 was forgotten to make room for d3, so it counts as new.
			{ev: ev("login", "a", "d1", "", t0+4*min, 0), want: map[string]float64{"dev_1h": 2}},
		}},
		{"a distinct value seen again stays until one window after its last sighting", nil, []step{
			{ev: ev("login", "a", "d1", "", t0, 0), want: map[string]float64{"dev_1h": 1}},
			{ev: ev("login", "a", "d1", "", t0+30*min, 0), want: map[string]float64{"dev_1h": 1}},
			{ev: ev("login", "a", "d2", "", t0+80*min, 0), want: map[string]float64{"dev_1h": 2}},
			{ev: ev("login", "a", "d2", "", t0+90*min, 0), want: map[string]float64{"dev_1h": 1}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*Config)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			s := mustSet(t, kindsYAML, mods...)
			st := s.NewStore()
			var v Values
			for i, sp := range tt.steps {
				if late := st.Observe(&sp.ev, &v); (late != 0) != sp.late {
					t.Fatalf("step %d: late %v, want %v", i, late, sp.late)
				}
				for name, want := range sp.want {
					if got := win(t, s, &v, name); got != want {
						t.Errorf("step %d: %s = %v, want %v", i, name, got, want)
					}
				}
			}
		})
	}
}

func TestProfile(t *testing.T) {
	s := mustSet(t, kindsYAML)
	hour := int64(3_600_000)
	tests := []struct {
		name  string
		evs   []event.Event
		check func(p Profile) string
	}{
		{"a device is new the first time and not after",
			[]event.Event{{Type: "login", AccountID: "a", TS: t0, Device: event.Device{ID: "d1"}}, {Type: "login", AccountID: "a", TS: t0 + 1, Device: event.Device{ID: "d1"}}},
			func(p Profile) string {
				if p.NewDevice {
					return "second sighting is new"
				}
				return ""
			}},
		{"a device never seen by the account is new",
			[]event.Event{{Type: "login", AccountID: "a", TS: t0, Device: event.Device{ID: "d1"}}, {Type: "login", AccountID: "a", TS: t0 + 1, Device: event.Device{ID: "d2"}, IP: "1.2.3.4", Geo: event.Geo{Country: "KH"}}},
			func(p Profile) string {
				if !p.NewDevice || !p.NewIP || !p.NewCountry {
					return fmt.Sprintf("%+v", p)
				}
				return ""
			}},
		{"a payee is new on the first payment and not on the second",
			[]event.Event{{Type: "payment", AccountID: "a", TS: t0, PayeeID: "p"}, {Type: "payment", AccountID: "a", TS: t0 + 1, PayeeID: "p"}},
			func(p Profile) string {
				if p.NewPayee {
					return "payee still new"
				}
				return ""
			}},
		{"seconds since a password reset count event time",
			[]event.Event{{Type: "password_reset", AccountID: "a", TS: t0}, {Type: "payment", AccountID: "a", TS: t0 + 90_000}},
			func(p Profile) string {
				if p.SecsSincePasswordReset != 90 || p.SecsSinceLogin != NeverSecs {
					return fmt.Sprintf("reset %v login %v", p.SecsSincePasswordReset, p.SecsSinceLogin)
				}
				return ""
			}},
		{"travelling Phnom Penh to Paris in an hour is impossible travel",
			[]event.Event{
				{Type: "login", AccountID: "a", TS: t0, Geo: event.Geo{Lat: 11.5564, Lon: 104.9282, HasPoint: true}},
				{Type: "login", AccountID: "a", TS: t0 + hour, Geo: event.Geo{Lat: 48.8566, Lon: 2.3522, HasPoint: true}}},
			func(p Profile) string {
				if math.Abs(p.KmFromLast-9940) > 20 || math.Abs(p.KmhFromLast-p.KmFromLast) > 1e-6 {
					return fmt.Sprintf("km %v kmh %v", p.KmFromLast, p.KmhFromLast)
				}
				return ""
			}},
		{"a payment ten times the usual amount has ratio ten",
			[]event.Event{pay("a", t0, 1000), pay("a", t0+1, 1000), pay("a", t0+2*hour, 10000)},
			func(p Profile) string {
				if math.Abs(p.AvgAmount30d-1000) > 0.01 || math.Abs(p.AmountRatio-10) > 0.001 {
					return fmt.Sprintf("avg %v ratio %v", p.AvgAmount30d, p.AmountRatio)
				}
				return ""
			}},
		{"account age and events seen are as of before the event",
			[]event.Event{pay("a", t0, 1), pay("a", t0+36*hour, 1)},
			func(p Profile) string {
				if p.AccountAgeDays != 1.5 || p.EventsSeen != 1 {
					return fmt.Sprintf("age %v seen %v", p.AccountAgeDays, p.EventsSeen)
				}
				return ""
			}},
		{"a brand new account has no history",
			[]event.Event{{Type: "payment", AccountID: "a", TS: t0, Amount: 5, Device: event.Device{ID: "d"}}},
			func(p Profile) string {
				want := Profile{NewDevice: true, SecsSincePasswordReset: NeverSecs, SecsSinceProfileChange: NeverSecs,
					SecsSinceLogin: NeverSecs, SecsSinceDeviceBind: NeverSecs, SecsSincePayeeAdd: NeverSecs}
				if p != want {
					return fmt.Sprintf("%+v", p)
				}
				return ""
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := s.NewStore()
			var v Values
			for i := range tt.evs {
				st.Observe(&tt.evs[i], &v)
			}
			if msg := tt.check(v.Profile); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

func TestExpire(t *testing.T) {
	s := mustSet(t, kindsYAML)
	st := s.NewStore()
	var v Values
	ev := event.Event{Type: "login", AccountID: "a", TS: t0, Device: event.Device{ID: "d"}}
	st.Observe(&ev, &v)
	if st.Len() != 3 {
		t.Fatalf("len %d, want 3 (profile, account, device)", st.Len())
	}
	if n := st.Expire(t0 + int64(time.Hour/time.Millisecond)); n != 0 {
		t.Fatalf("expired %d within the window plus tolerance", n)
	}
	if n := st.Expire(t0 + int64((time.Hour+5*time.Minute)/time.Millisecond)); n != 2 {
		t.Fatalf("expired %d, want the 2 window entities", n)
	}
	if n := st.Expire(t0 + int64(DefaultConfig().ProfileTTL/time.Millisecond)); n != 1 || st.Len() != 0 {
		t.Fatalf("expired %d, len %d", n, st.Len())
	}
}

func genEvent(i int, accounts int) event.Event {
	a := i % accounts
	types := [...]string{"payment", "payment", "login", "payment", "payee_add", "topup", "login_failed", "payment"}
	return event.Event{
		Type:      types[(i/accounts+a)%len(types)],
		AccountID: fmt.Sprintf("acct-%06d", a),
		TS:        t0 + int64(i)*250,
		Amount:    int64(100 + (i*7919)%50000),
		Channel:   [...]string{"qr", "online", "nfc"}[i%3],
		PayeeID:   fmt.Sprintf("payee-%d", i%97),
		Device:    event.Device{ID: fmt.Sprintf("dev-%d", a*2+(i/accounts)%2)},
		IP:        fmt.Sprintf("10.0.%d.%d", a%250, i%3),
		Geo:       event.Geo{Country: "KH", Lat: 11.5 + float64(i%5)/100, Lon: 104.9, HasPoint: true},
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := mustSet(t, benchYAML)
	st := s.NewStore()
	var v Values
	evs := make([]event.Event, 4000)
	for i := range evs {
		evs[i] = genEvent(i, 50)
	}
	for i := range evs[:3000] {
		st.Observe(&evs[i], &v)
	}
	var buf bytes.Buffer
	if err := st.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	snap := buf.Bytes()
	st2, err := s.Restore(bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	var buf2 bytes.Buffer
	if err := st2.Snapshot(&buf2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap, buf2.Bytes()) {
		t.Fatal("snapshot of restored store differs")
	}
	var v2 Values
	for i := 3000; i < len(evs); i++ {
		l1 := st.Observe(&evs[i], &v)
		l2 := st2.Observe(&evs[i], &v2)
		if v != v2 || l1 != l2 {
			t.Fatalf("event %d: values differ after restore\n%+v\n%+v", i, v, v2)
		}
	}

	t.Run("a wrong magic is refused", func(t *testing.T) {
		_, err := s.Restore(strings.NewReader("NOPE\x01"))
		if !errors.Is(err, ErrSnapshot) || err.Error() != `features snapshot: bad magic "NOPE", not a features snapshot` {
			t.Fatal(err)
		}
	})
	t.Run("a newer version is refused", func(t *testing.T) {
		bad := append([]byte(snapMagic), 9)
		_, err := s.Restore(bytes.NewReader(bad))
		if err == nil || err.Error() != "features snapshot: version 9, this build reads versions 4 to 5" {
			t.Fatal(err)
		}
	})
	t.Run("an older version is refused", func(t *testing.T) {
		// Version 3 carried a fingerprint of the whole Set instead of
		// the layout: nothing to map its features by.
		old := append([]byte(snapMagic), 3, 0xAB, 0xCD)
		_, err := s.Restore(bytes.NewReader(old))
		if !errors.Is(err, ErrSnapshot) || err.Error() != "features snapshot: version 3, this build reads versions 4 to 5" {
			t.Fatal(err)
		}
	})
	t.Run("other definitions are restored", func(t *testing.T) {
		// What is kept and what starts empty: TestRestoreAcrossAFeatureChange.
		if _, err := mustSet(t, kindsYAML).Restore(bytes.NewReader(snap)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("another Config is refused, naming what differs", func(t *testing.T) {
		for _, c := range []struct {
			mod  func(*Config)
			want string
		}{
			{func(c *Config) { c.Buckets = 60 }, "taken with features.buckets 30, this configuration has 60"},
			{func(c *Config) { c.MaxDistinct = 32 }, "taken with features.max_distinct 64, this configuration has 32"},
			{func(c *Config) { c.MaxSeen = 16 }, "taken with features.max_seen 64, this configuration has 16"},
		} {
			_, err := mustSet(t, benchYAML, c.mod).Restore(bytes.NewReader(snap))
			if !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error saying %q", err, c.want)
			}
		}
		// The late tolerance and the profile TTL decide nothing the
		// state means: a change of them restores.
		relaxed := mustSet(t, benchYAML, func(c *Config) { c.LateTolerance, c.ProfileTTL = time.Minute, time.Hour })
		if _, err := relaxed.Restore(bytes.NewReader(snap)); err != nil {
			t.Errorf("a snapshot restored with another late_tolerance and profile_ttl: %v", err)
		}
	})
	t.Run("another profile layout is refused", func(t *testing.T) {
		// magic, version, buckets, max_distinct, max_seen, then the
		// profile layout: one byte each here.
		bad := bytes.Clone(snap)
		if bad[8] != profileLayout {
			t.Fatalf("byte 8 is %d, not the profile layout", bad[8])
		}
		bad[8] = profileLayout + 1
		_, err := s.Restore(bytes.NewReader(bad))
		if !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), "account profiles of layout 2") {
			t.Fatal(err)
		}
	})
	t.Run("a truncated snapshot is refused", func(t *testing.T) {
		_, err := s.Restore(bytes.NewReader(snap[:len(snap)/2]))
		if !errors.Is(err, ErrSnapshot) {
			t.Fatal(err)
		}
	})
}

// benchYAML is a realistic set of 20 window features.
const benchYAML = `
payments_1h: {count: payment, by: account, window: 1h}
payments_24h: {count: payment, by: account, window: 24h}
events_10m: {count: "*", by: account, window: 10m}
failed_logins_15m: {count: login_failed, by: account, window: 15m}
logins_1h: {count: login, by: account, window: 1h}
payee_adds_24h: {count: payee_add, by: account, window: 24h}
topups_24h: {count: topup, by: account, window: 24h}
amount_1h: {sum: amount, by: account, window: 1h, where: 'type == "payment"'}
amount_24h: {sum: amount, by: account, window: 24h, where: 'type == "payment"'}
online_amount_24h: {sum: amount, by: account, window: 24h, where: 'type == "payment" && channel == "online"'}
max_amount_24h: {max: amount, by: account, window: 24h, where: 'type == "payment"'}
min_amount_1h: {min: amount, by: account, window: 1h, where: 'type in ["payment", "withdrawal"]'}
avg_amount_24h: {avg: amount, by: account, window: 24h, where: 'type == "payment"'}
devices_24h: {distinct: device.id, by: account, window: 24h}
ips_1h: {distinct: ip, by: account, window: 1h}
payees_24h: {distinct: payee_id, by: account, window: 24h}
accounts_per_device_1h: {distinct: account_id, by: device.id, window: 1h}
accounts_per_ip_1h: {distinct: account_id, by: ip, window: 1h}
device_events_10m: {count: "*", by: device.id, window: 10m}
payee_payments_1h: {count: payment, by: payee_id, window: 1h}
`

func BenchmarkObserve(b *testing.B) {
	s := mustSet(b, benchYAML)
	st := s.NewStore()
	const accounts = 1000
	evs := make([]event.Event, 64*accounts)
	for i := range evs {
		evs[i] = genEvent(i, accounts)
	}
	var v Values
	for i := range evs {
		st.Observe(&evs[i], &v)
	}
	// Keep event time moving so windows slide during the run.
	span := evs[len(evs)-1].TS - evs[0].TS + 250
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := &evs[i%len(evs)]
		ev.TS += span
		st.Observe(ev, &v)
	}
	b.StopTimer()
	if v.Profile.EventsSeen == 0 {
		b.Fatal("no profile")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkMemoryPerAccount warms N accounts with a day of mixed traffic
// over the 20-feature set and reports the live heap per account.
func BenchmarkMemoryPerAccount(b *testing.B) {
	const accounts = 5000
	s := mustSet(b, benchYAML)
	evs := make([]event.Event, 20*accounts)
	for i := range evs {
		evs[i] = genEvent(i, accounts)
		evs[i].TS = t0 + int64(i)*(86_400_000/int64(len(evs)))
	}
	b.ReportAllocs()
	var perAccount float64
	for i := 0; i < b.N; i++ {
		var st *Store
		perAccount, st = heapPerAccount(s, evs)
		runtime.KeepAlive(st)
	}
	b.ReportMetric(perAccount, "B/account")
}

func TestObserveDoesNotAllocate(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	s := mustSet(t, benchYAML)
	st := s.NewStore()
	evs := make([]event.Event, 200)
	for i := range evs {
		evs[i] = genEvent(i, 10)
	}
	var v Values
	for _, ev := range evs {
		st.Observe(&ev, &v)
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		ev := &evs[i%len(evs)]
		ev.TS += 50_000
		st.Observe(ev, &v)
		i++
	})
	if allocs > 0.5 {
		t.Fatalf("%v allocs per Observe in steady state", allocs)
	}
}

func TestWhere(t *testing.T) {
	tests := []struct {
		name, where string
		ev          event.Event
		want        bool
		fast        bool
	}{
		{"a type equality runs without the VM", `type == "payment"`, event.Event{Type: "payment"}, true, true},
		{"a type list runs without the VM", `type in ["topup", "refund"]`, event.Event{Type: "payment"}, false, true},
		{"an amount bound runs without the VM", `type == "payment" && amount >= 1000 && channel != "qr"`, event.Event{Type: "payment", Amount: 1000, Channel: "nfc"}, true, true},
		{"a disjunction runs in the VM", `type == "login" || amount > 5`, event.Event{Type: "payment", Amount: 6}, true, false},
		{"a nested field runs in the VM when negated", `!(device.rooted)`, event.Event{Device: event.Device{Rooted: true}}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile([]Definition{{Name: "x", Kind: KindCount, Of: "*", By: "account", Window: time.Hour, Where: tt.where}}, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			f := &s.feats[0]
			if fast := f.filter.prog == nil; fast != tt.fast {
				t.Errorf("fast path %v, want %v", fast, tt.fast)
			}
			st := s.NewStore()
			if got := f.match(&tt.ev, &st.vm); got != tt.want {
				t.Errorf("match %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLoadFileNamesTheFileInEveryError(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("logins_1h: {count: login, by: account, window: forever}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing.yaml"), bad} {
		if _, err := LoadFile(path, DefaultConfig()); err == nil || !strings.Contains(err.Error(), filepath.Base(path)) {
			t.Errorf("LoadFile(%s) = %v, want an error naming the file", path, err)
		}
	}
	set, err := LoadFile("../bench/reference/features.yaml", DefaultConfig())
	if err != nil || len(set.Names()) == 0 {
		t.Fatalf("reference features: %v", err)
	}
}
