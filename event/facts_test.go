package event

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// factsHead is a valid event that the tests below add one fact to.
const factsHead = `{"event_id":"e1","type":"payment","ts":1795538400000,"account_id":"a1"`

func TestFactsRoundTripThroughAppendJSON(t *testing.T) {
	in := Event{
		ID: "e1", Type: "payment", TS: 1795538400000, AccountID: "a1", Amount: 2500,
		BalanceBefore: 0, HasBalanceBefore: true, BalanceAfter: -2500, HasBalanceAfter: true,
		KYCLevel: 0, HasKYCLevel: true, MFAPassed: false, HasMFAPassed: true,
		AccountCreatedAt: 1795538400000 - 3*msPerDay - 1, HasAccountCreatedAt: true,
		TZ: "America/Argentina/ComodRivadavia",
	}
	in.SetDerived()
	if in.AccountAgeDays != 3 {
		t.Fatalf("AccountAgeDays = %d, want 3", in.AccountAgeDays)
	}
	msg := in.AppendJSON(nil)
	want := `,"balance_before":0,"balance_after":-2500,"kyc_level":0,"mfa_passed":false,"account_created_at":1795279199999,"tz":"America/Argentina/ComodRivadavia"}`
	if !strings.HasSuffix(string(msg), want) {
		t.Errorf("AppendJSON = %s\nwant it to end %s", msg, want)
	}
	var out Event
	if err := new(Decoder).Decode(msg, &out); err != nil {
		t.Fatalf("decode %s: %v", msg, err)
	}
	if got := out.Clone(); !reflect.DeepEqual(got, in) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, in)
	}
	for _, extreme := range []int64{MaxBalance, -MaxBalance} {
		in.BalanceBefore = extreme
		if err := new(Decoder).Decode(in.AppendJSON(nil), &out); err != nil || out.BalanceBefore != extreme {
			t.Errorf("balance %d: decoded %d, %v", extreme, out.BalanceBefore, err)
		}
	}
}

func TestFactsNotSentAreAbsentNotZero(t *testing.T) {
	for _, msg := range []string{
		factsHead + `}`,
		factsHead + `,"balance_before":null,"balance_after":null,"kyc_level":null,"mfa_passed":null,"account_created_at":null,"tz":null}`,
		factsHead + `,"tz":""}`,
	} {
		var ev Event
		if err := new(Decoder).Decode([]byte(msg), &ev); err != nil {
			t.Fatalf("%s: %v", msg, err)
		}
		if ev.HasBalanceBefore || ev.HasBalanceAfter || ev.HasKYCLevel || ev.HasMFAPassed || ev.HasAccountCreatedAt ||
			ev.AccountAgeDays != 0 || ev.TZ != "" {
			t.Errorf("%s: decoded facts %+v, want none", msg, ev)
		}
		if strings.Contains(string(ev.AppendJSON(nil)), "balance") {
			t.Errorf("AppendJSON writes a balance not sent: %s", ev.AppendJSON(nil))
		}
	}
}

func TestFactsDecode(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want func(*Event) bool
	}{
		{"a zero balance is present", `"balance_before":0`, func(e *Event) bool { return e.HasBalanceBefore && e.BalanceBefore == 0 }},
		{"an overdrawn balance is negative", `"balance_after":-120`, func(e *Event) bool { return e.HasBalanceAfter && e.BalanceAfter == -120 }},
		{"a balance written as 12.00 is 12", `"balance_after":12.00`, func(e *Event) bool { return e.BalanceAfter == 12 }},
		{"a balance in exponent form", `"balance_before":1e3`, func(e *Event) bool { return e.BalanceBefore == 1000 }},
		{"kyc level 0 is present", `"kyc_level":0`, func(e *Event) bool { return e.HasKYCLevel && e.KYCLevel == 0 }},
		{"kyc level 9", `"kyc_level":9`, func(e *Event) bool { return e.KYCLevel == 9 }},
		{"mfa passed", `"mfa_passed":true`, func(e *Event) bool { return e.HasMFAPassed && e.MFAPassed }},
		{"mfa not passed is present", `"mfa_passed":false`, func(e *Event) bool { return e.HasMFAPassed && !e.MFAPassed }},
		{"account created 10 days and 1 ms before ts", `"account_created_at":1794674399999`,
			func(e *Event) bool { return e.HasAccountCreatedAt && e.AccountAgeDays == 10 }},
		{"account created one ms short of a day before ts", `"account_created_at":1795452000001`,
			func(e *Event) bool { return e.AccountAgeDays == 0 }},
		{"account created as an RFC 3339 string", `"account_created_at":"2026-11-20T16:00:00Z"`,
			func(e *Event) bool { return e.AccountCreatedAt == 1795190400000 && e.AccountAgeDays == 4 }},
		{"account created after the event is 0 days old", `"account_created_at":1795538500000`,
			func(e *Event) bool { return e.HasAccountCreatedAt && e.AccountAgeDays == 0 }},
		{"account created before ts written after it", `"account_created_at":1794674400000,"ts":1795538400000`,
			func(e *Event) bool { return e.AccountAgeDays == 10 }},
		{"a time zone", `"tz":"Europe/Berlin"`, func(e *Event) bool { return e.TZ == "Europe/Berlin" }},
		{"UTC is a zone", `"tz":"UTC"`, func(e *Event) bool { return e.TZ == "UTC" }},
		{"duplicate facts: last wins", `"kyc_level":3,"kyc_level":null,"mfa_passed":true,"mfa_passed":false`,
			func(e *Event) bool { return !e.HasKYCLevel && e.HasMFAPassed && !e.MFAPassed }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev Event
			msg := factsHead + "," + tt.msg + "}"
			if err := new(Decoder).Decode([]byte(msg), &ev); err != nil {
				t.Fatalf("%s: %v", msg, err)
			}
			if !tt.want(&ev) {
				t.Errorf("%s: decoded %+v", msg, ev)
			}
		})
	}
}

func TestFactsRefusedSayWhy(t *testing.T) {
	tests := []struct {
		name, fact, want string
	}{
		{"a balance as a string", `"balance_before":"12"`,
			"balance_before: want an integer number of minor units (cents), got string"},
		{"a fractional balance", `"balance_after":12.5`,
			"balance_after: want an integer number of minor units (cents), got 12.5"},
		{"a balance past 2^53", `"balance_before":9007199254740992`,
			"balance_before: 9007199254740992 is out of range ±9007199254740991"},
		{"a negative balance past 2^53", `"balance_after":-9007199254740992`,
			"balance_after: -9007199254740992 is out of range ±9007199254740991"},
		{"a balance past int64", `"balance_after":99999999999999999999`,
			"balance_after: 99999999999999999999 is out of range ±9007199254740991"},
		{"a huge balance is quoted short", `"balance_after":` + strings.Repeat("9", 100) + `.5`,
			"balance_after: " + strings.Repeat("9", 40) + "... (102 bytes) is out of range ±9007199254740991"},
		{"kyc level 10", `"kyc_level":10`, "kyc_level: 10 is out of range 0 to 9"},
		{"kyc level -1", `"kyc_level":-1`, "kyc_level: -1 is out of range 0 to 9"},
		{"kyc level as text", `"kyc_level":"gold"`, "kyc_level: want an integer 0 to 9, got string"},
		{"kyc level 1.5", `"kyc_level":1.5`, "kyc_level: want an integer 0 to 9, got 1.5"},
		{"mfa as a string", `"mfa_passed":"yes"`, "mfa_passed: want true or false, got string"},
		{"mfa as a number", `"mfa_passed":1`, "mfa_passed: want true or false, got number"},
		{"account created in seconds", `"account_created_at":1700000000`,
			"account_created_at: 1700000000 looks like epoch seconds; send epoch milliseconds"},
		{"account created not a time", `"account_created_at":"last year"`,
			`account_created_at: bad timestamp "last year": want RFC 3339 (2026-11-24T16:31:00Z) or epoch milliseconds`},
		{"account created as a bool", `"account_created_at":true`,
			"account_created_at: want epoch milliseconds or an RFC 3339 string, got true"},
		{"account created after 5138", `"account_created_at":100000000000000`,
			"account_created_at: 100000000000000 is outside the accepted range 1973-03-03 to 5138-11-16"},
		{"an unknown zone is named", `"tz":"Mars/Olympus_Mons"`,
			`tz: unknown time zone "Mars/Olympus_Mons" (want an IANA name such as "Europe/Berlin", or leave tz out for UTC)`},
		{"the machine's zone is refused", `"tz":"Local"`,
			`tz: unknown time zone "Local" (want an IANA name such as "Europe/Berlin", or leave tz out for UTC)`},
		{"a path is not a zone", `"tz":"../../etc/passwd"`,
			`tz: unknown time zone "../../etc/passwd" (want an IANA name such as "Europe/Berlin", or leave tz out for UTC)`},
		{"a zone name of 65 bytes", `"tz":"` + strings.Repeat("Z", 65) + `"`, "tz: is 65 bytes, limit is 64"},
		{"a zone as a number", `"tz":1`, "tz: want a string, got number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev Event
			err := new(Decoder).Decode([]byte(factsHead+","+tt.fact+"}"), &ev)
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("Decode = %v, want an *Error", err)
			}
			if want := "invalid event: " + tt.want; err.Error() != want {
				t.Errorf("error\n got %s\nwant %s", err, want)
			}
		})
	}
}

func TestLocalHourFollowsTheZoneAcrossDSTChanges(t *testing.T) {
	at := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMilli()
	}
	tests := []struct {
		utc, tz string
		want    int
	}{
		{"2026-11-24T16:31:00Z", "", 16},
		{"2026-11-24T16:31:00Z", "UTC", 16},
		{"2026-11-24T23:30:00Z", "Asia/Tokyo", 8},
		{"2026-11-24T16:31:00Z", "Asia/Kathmandu", 22},     // +05:45
		{"2026-11-24T18:14:59Z", "Asia/Kathmandu", 23},     // 23:59:59 local
		{"2026-11-24T18:15:00Z", "Asia/Kathmandu", 0},      // midnight local
		{"2026-03-29T00:59:59Z", "Europe/Berlin", 1},       // 01:59:59 CET
		{"2026-03-29T01:00:00Z", "Europe/Berlin", 3},       // 03:00 CEST: 02:xx never happens
		{"2026-10-25T00:59:59Z", "Europe/Berlin", 2},       // 02:59:59 CEST
		{"2026-10-25T01:00:00Z", "Europe/Berlin", 2},       // 02:00 CET: the hour happens twice
		{"2026-03-08T06:59:59Z", "America/New_York", 1},    // 01:59:59 EST
		{"2026-03-08T07:00:00Z", "America/New_York", 3},    // 03:00 EDT
		{"2026-11-01T05:30:00Z", "America/New_York", 1},    // 01:30 EDT
		{"2026-11-01T06:30:00Z", "America/New_York", 1},    // 01:30 EST, again
		{"2026-10-03T15:29:59Z", "Australia/Lord_Howe", 1}, // 01:59:59 +10:30
		{"2026-10-03T15:30:00Z", "Australia/Lord_Howe", 2}, // 02:30 +11: a half-hour shift
		{"2026-11-24T16:31:00Z", "Mars/Olympus_Mons", 16},  // unknown (only by hand): UTC
	}
	for _, tt := range tests {
		ev := Event{TS: at(tt.utc), TZ: tt.tz}
		if got := ev.LocalHour(); got != tt.want {
			t.Errorf("%s in %q: local hour %d, want %d", tt.utc, tt.tz, got, tt.want)
		}
	}
}

func TestZoneCacheIsBounded(t *testing.T) {
	for _, name := range []string{"Europe/Paris", "Europe/Rome", "Europe/Madrid"} {
		if _, err := loadZone(name, 0); err != nil {
			t.Fatal(err)
		}
	}
	before := len(*zones.m.Load())
	if _, err := loadZone("Pacific/Chatham", before); err != nil {
		t.Fatal(err)
	}
	if after := len(*zones.m.Load()); after != before {
		t.Errorf("cache grew past its bound: %d zones, bound %d", after, before)
	}
	if _, err := loadZone("Pacific/Chatham", before+1); err != nil {
		t.Fatal(err)
	}
	if _, ok := (*zones.m.Load())["Pacific/Chatham"]; !ok {
		t.Error("a zone under the bound was not cached")
	}
}

func TestCachedZoneNameDoesNotAliasTheMessage(t *testing.T) {
	msg := []byte(factsHead + `,"tz":"America/Punta_Arenas"}`)
	var d Decoder
	var ev Event
	if err := d.Decode(msg, &ev); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode([]byte(factsHead+`,"tz":"XXXXXXX/XXXXXXXXXXXX"}`), &ev); err == nil {
		t.Fatal("a made-up zone was accepted")
	}
	if _, ok := (*zones.m.Load())["America/Punta_Arenas"]; !ok {
		t.Error("the cached zone's name changed with the decoder's buffer")
	}
}

func TestDecodingFactsAllocatesNothing(t *testing.T) {
	msg := []byte(factsHead + `,"balance_before":100,"balance_after":-20,"kyc_level":2,"mfa_passed":true,"account_created_at":1700000000000,"tz":"Europe/Berlin"}`)
	var d Decoder
	var ev Event
	if err := d.Decode(msg, &ev); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = d.Decode(msg, &ev) }); n != 0 {
		t.Errorf("Decode allocates %.0f times per event with facts", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = ev.LocalHour() }); n != 0 {
		t.Errorf("LocalHour allocates %.0f times", n)
	}
}
