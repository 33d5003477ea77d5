package event_test

import (
	"reflect"
	"testing"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
)

// sameAsFastjson decodes msg with Decode (fast path first) and with the
// fastjson path alone and fails unless both give the same event and the
// same error. It reports whether the fast path took the message.
func sameAsFastjson(t *testing.T, msg []byte) bool {
	t.Helper()
	var fast, full event.Decoder
	var a, b event.Event
	errA := fast.Decode(msg, &a)
	errB := event.DecodeFull(&full, msg, &b)
	if (errA == nil) != (errB == nil) || (errA != nil && errA.Error() != errB.Error()) {
		t.Fatalf("%s\nDecode: %v\nfastjson: %v", msg, errA, errB)
	}
	if errA != nil {
		return false
	}
	ca, cb := a.Clone(), b.Clone()
	if len(ca.Attrs) == 0 && len(cb.Attrs) == 0 {
		ca.Attrs, cb.Attrs = nil, nil // an empty map and no map are the same event
	}
	if !reflect.DeepEqual(ca, cb) {
		t.Fatalf("%s\nDecode:   %+v\nfastjson: %+v", msg, ca, cb)
	}
	var probe event.Decoder
	return event.FastDecode(&probe, msg, &a)
}

func TestFastPathMatchesFastjsonOnGeneratedTraffic(t *testing.T) {
	g := traffic.New(traffic.Config{Accounts: 500, Seed: 9, FraudRate: 0.3,
		Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	n := 50_000
	if testing.Short() {
		n = 5_000
	}
	slow := 0
	for range n {
		if !sameAsFastjson(t, g.AppendJSON(nil)) {
			slow++
		}
	}
	if slow > 0 {
		t.Errorf("%d of %d generated events missed the fast path", slow, n)
	}
}

func TestFastPathMatchesFastjsonOnOddMessages(t *testing.T) {
	const head = `"event_id":"e1","type":"payment","account_id":"a1","ts":1795538400000`
	for _, tc := range []struct {
		name string
		msg  string
		fast bool // whether the fast path should take it
	}{
		{"minimal", `{` + head + `}`, true},
		{"whitespace everywhere", " \t\n{ \"event_id\" : \"e1\" ,\r\"type\":\"login\",\"account_id\":\"a\", \"ts\" : 1795538400000 } \n", true},
		{"nulls", `{` + head + `,"amount":null,"currency":null,"device":null,"geo":null,"attrs":null}`, true},
		{"zero amount", `{` + head + `,"amount":0}`, true},
		{"numeric mcc and app version", `{` + head + `,"mcc":5411,"device":{"app_version":7}}`, true},
		{"unknown fields become attrs", `{` + head + `,"x":1.5e3,"y":true,"z":null,"w":"s","device":{"model":"p7","rooted":true},"geo":{"city":"Paris","acc":12}}`, true},
		{"attrs of every scalar", `{` + head + `,"attrs":{"a":"1","b":2,"c":false,"d":null}}`, true},
		{"duplicate keys: last wins", `{` + head + `,"amount":5,"amount":7,"device":{"id":"d1","os":"ios"},"device":{"id":"d2"}}`, true},
		{"geo twice, second without point", `{` + head + `,"geo":{"lat":1,"lon":2},"geo":{"country":"FR"}}`, true},
		{"empty object", `{}`, false},
		{"escaped string", `{` + head + `,"ip":"1.2.3.4\n"}`, false},
		{"escaped quote", `{` + head + `,"ip":"a\"b"}`, false},
		{"escaped key", `{` + head + `,"i\u0070":"x"}`, false},
		{"float amount", `{` + head + `,"amount":12.00}`, false},
		{"negative amount", `{` + head + `,"amount":-5}`, false},
		{"minus zero amount", `{` + head + `,"amount":-0}`, false},
		{"huge amount", `{` + head + `,"amount":99999999999999999999}`, false},
		{"string ts", `{"event_id":"e","type":"t","account_id":"a","ts":"2026-11-24T16:31:00Z"}`, false},
		{"seconds ts", `{"event_id":"e","type":"t","account_id":"a","ts":1795538400}`, false},
		{"ts far future", `{"event_id":"e","type":"t","account_id":"a","ts":100000000000000}`, false},
		{"ts exponent", `{"event_id":"e","type":"t","account_id":"a","ts":1.7e12}`, false},
		{"lat without lon", `{` + head + `,"geo":{"lat":1}}`, false},
		{"lat out of range", `{` + head + `,"geo":{"lat":91,"lon":0}}`, false},
		{"lat as string", `{` + head + `,"geo":{"lat":"1","lon":0}}`, false},
		{"nan", `{` + head + `,"x":nan}`, false},
		{"inf coordinate", `{` + head + `,"geo":{"lat":-inf,"lon":0}}`, false},
		{"odd number text", `{` + head + `,"x":1-2e+}`, true},
		{"nested object attr", `{` + head + `,"x":{"y":1}}`, false},
		{"array attr", `{` + head + `,"x":[1,2]}`, false},
		{"device not object", `{` + head + `,"device":"d1"}`, false},
		{"rooted as string", `{` + head + `,"device":{"rooted":"yes"}}`, false},
		{"type as number", `{"event_id":"e","type":5,"account_id":"a","ts":1795538400000}`, false},
		{"missing account", `{"event_id":"e","type":"t","ts":1795538400000}`, false},
		{"trailing garbage", `{` + head + `}x`, false},
		{"trailing comma", `{` + head + `,}`, false},
		{"unterminated", `{` + head, false},
		{"not an object", `[1]`, false},
		{"truncated literal", `{` + head + `,"x":tru}`, false},
		{"literal run-on", `{` + head + `,"x":truex}`, false},
		{"number run-on", `{` + head + `,"amount":5x}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameAsFastjson(t, []byte(tc.msg)); got != tc.fast {
				t.Errorf("fast path took it: %v, want %v", got, tc.fast)
			}
		})
	}
}

func TestFastPathBoundsAttrs(t *testing.T) {
	msg := []byte(`{"event_id":"e","type":"t","account_id":"a","ts":1795538400000`)
	for i := range 70 {
		msg = append(msg, `,"k`...)
		msg = append(msg, byte('A'+i/26), byte('a'+i%26))
		msg = append(msg, `":"v"`...)
	}
	msg = append(msg, '}')
	if sameAsFastjson(t, msg) {
		t.Error("fast path accepted more than the attrs limit")
	}
}

func TestDecodedStringsDoNotAliasTheMessage(t *testing.T) {
	msg := []byte(`{"event_id":"e1","type":"login","account_id":"a1","ts":1795538400000}`)
	var d event.Decoder
	var ev event.Event
	if err := d.Decode(msg, &ev); err != nil {
		t.Fatal(err)
	}
	for i := range msg {
		msg[i] = 'x' // the caller reuses its buffer before the next Decode
	}
	if ev.ID != "e1" || ev.AccountID != "a1" {
		t.Errorf("event changed with the caller's buffer: %+v", ev)
	}
}
