package event_test

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
)

func TestFastPathMatchesFastjsonOnFacts(t *testing.T) {
	const head = `{"event_id":"e1","type":"payment","account_id":"a1","ts":1795538400000`
	for _, tc := range []struct {
		name string
		msg  string
		fast bool // whether the fast path should take it
	}{
		{"every fact", `,"balance_before":100,"balance_after":-20,"kyc_level":2,"mfa_passed":true,"account_created_at":1700000000000,"tz":"Europe/Berlin"}`, true},
		{"facts as null", `,"balance_before":null,"balance_after":null,"kyc_level":null,"mfa_passed":null,"account_created_at":null,"tz":null}`, true},
		{"zero facts", `,"balance_before":0,"balance_after":-0,"kyc_level":0,"mfa_passed":false}`, true},
		{"balance at the bounds", `,"balance_before":9007199254740991,"balance_after":-9007199254740991}`, true},
		{"facts twice, last wins", `,"kyc_level":1,"kyc_level":null,"tz":"Asia/Tokyo","tz":"UTC"}`, true},
		{"account created after ts", `,"account_created_at":1795538400001}`, true},
		{"account created before ts written after it", `,"account_created_at":1600000000000,"ts":1795538400000}`, true},
		{"balance past the bound", `,"balance_before":9007199254740992}`, false},
		{"balance far past int64", `,"balance_before":-99999999999999999999}`, false},
		{"balance with a fraction of zero", `,"balance_before":12.00}`, false},
		{"balance with a fraction", `,"balance_before":12.5}`, false},
		{"balance as a string", `,"balance_before":"12"}`, false},
		{"balance with a plus", `,"balance_before":+12}`, false},
		{"kyc level 10", `,"kyc_level":10}`, false},
		{"kyc level -1", `,"kyc_level":-1}`, false},
		{"mfa as 1", `,"mfa_passed":1}`, false},
		{"mfa run-on", `,"mfa_passed":truex}`, false},
		{"account created in seconds", `,"account_created_at":1700000000}`, false},
		{"account created as text", `,"account_created_at":"2026-11-24T16:31:00Z"}`, false},
		{"account created at 0", `,"account_created_at":0}`, false},
		{"unknown zone", `,"tz":"Mars/Base"}`, false},
		{"local zone", `,"tz":"Local"}`, false},
		{"escaped zone", `,"tz":"Europe\/Berlin"}`, false},
		{"long zone", `,"tz":"` + string(make([]byte, 70)) + `"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameAsFastjson(t, []byte(head+tc.msg)); got != tc.fast {
				t.Errorf("fast path took it: %v, want %v", got, tc.fast)
			}
		})
	}
}

// TestFastPathMatchesFastjsonOnGeneratedFacts adds facts, valid and not,
// to generated wallet traffic and requires the fast path and fastjson to
// decode each message the same, and the valid ones to take the fast path.
func TestFastPathMatchesFastjsonOnGeneratedFacts(t *testing.T) {
	g := traffic.New(traffic.Config{Accounts: 500, Seed: 11, FraudRate: 0.3,
		Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	r := rand.New(rand.NewPCG(1, 2))
	zones := []string{"Europe/Berlin", "America/New_York", "Asia/Kathmandu", "UTC", "Australia/Lord_Howe"}
	n := 20_000
	if testing.Short() {
		n = 3_000
	}
	var d event.Decoder
	var ev event.Event
	fastValid, valid := 0, 0
	for range n {
		if err := d.Decode(g.AppendJSON(nil), &ev); err != nil {
			t.Fatal(err)
		}
		ev = ev.Clone()
		ev.HasBalanceBefore, ev.BalanceBefore = r.IntN(2) == 0, r.Int64N(2e6)-1e6
		ev.HasBalanceAfter, ev.BalanceAfter = r.IntN(2) == 0, r.Int64N(2e6)-1e6
		ev.HasKYCLevel, ev.KYCLevel = r.IntN(2) == 0, r.IntN(10)
		ev.HasMFAPassed, ev.MFAPassed = r.IntN(2) == 0, r.IntN(2) == 0
		ev.HasAccountCreatedAt, ev.AccountCreatedAt = r.IntN(2) == 0, ev.TS-r.Int64N(3*365*86400_000)
		ev.TZ = ""
		if r.IntN(2) == 0 {
			ev.TZ = zones[r.IntN(len(zones))]
		}
		msg := ev.AppendJSON(nil)
		bad := r.IntN(4) == 0
		if bad { // one fact out of range or of the wrong type
			facts := []string{`"balance_before":9007199254740992`, `"balance_after":1.5`, `"kyc_level":` + strconv.Itoa(10+r.IntN(5)),
				`"mfa_passed":"yes"`, `"account_created_at":1700000000`, `"tz":"Europe/Atlantis"`}
			msg = append(msg[:len(msg)-1], ","+facts[r.IntN(len(facts))]+"}"...)
		}
		fast := sameAsFastjson(t, msg)
		if !bad {
			valid++
			if fast {
				fastValid++
			}
		}
	}
	if fastValid != valid {
		t.Errorf("%d of %d valid events with facts missed the fast path", valid-fastValid, valid)
	}
}
