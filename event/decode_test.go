package event

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	goccy "github.com/goccy/go-json"

	"riskd/internal/jsonyardstick"
)

// typicalEvent is a 340-byte transfer as the wallet's gateway sends it, with
// every field set; typicalSmallEvent is a 250-byte card payment, the size of
// a typical event in the issue (the traffic generator's average is ~290).
const typicalSmallEvent = `{"event_id":"e-7f3a9c2","type":"payment","ts":1795538400000,"account_id":"acct-04231","amount":4250,"currency":"EUR","channel":"nfc","mcc":"5411","device":{"id":"dev-004231","os":"ios"},"ip":"81.10.16.39","geo":{"country":"ES","lat":40.4,"lon":-3.7}}`

const typicalEvent = `{"event_id":"e-7f3a9c21","type":"payment","ts":1795538400000,"account_id":"acct-0042317","amount":125000,"currency":"TWD","channel":"transfer","payee_id":"payee-88123","device":{"id":"dev-a81f","os":"android","app_version":"7.3.1","rooted":false},"ip":"203.0.113.7","geo":{"country":"TW","lat":25.033,"lon":121.565},"attrs":{"note":"rent"}}`

func TestDecodeTypicalEvent(t *testing.T) {
	var d Decoder
	var ev Event
	if err := d.Decode([]byte(typicalEvent), &ev); err != nil {
		t.Fatal(err)
	}
	want := Event{
		ID: "e-7f3a9c21", Type: "payment", TS: 1795538400000, AccountID: "acct-0042317",
		Amount: 125000, Currency: "TWD", Channel: "transfer", PayeeID: "payee-88123",
		Device: Device{ID: "dev-a81f", OS: "android", AppVersion: "7.3.1"},
		IP:     "203.0.113.7",
		Geo:    Geo{Country: "TW", Lat: 25.033, Lon: 121.565, HasPoint: true},
	}
	got := ev.Clone()
	if got.Attrs["note"] != "rent" || len(got.Attrs) != 1 {
		t.Errorf("attrs = %v, want note=rent", got.Attrs)
	}
	got.Attrs = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n got %+v\nwant %+v", got, want)
	}
}

func TestDecodeKeepsUnknownFieldsInAttrs(t *testing.T) {
	var d Decoder
	var ev Event
	msg := `{"event_id":"e1","type":"login","ts":"2026-11-24T16:31:00Z","account_id":"a1","risk_hint":3,"vip":true,"device":{"id":"d1","model":"Pixel"},"attrs":{"campaign":"xmas"}}`
	if err := d.Decode([]byte(msg), &ev); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"risk_hint": "3", "vip": "true", "device.model": "Pixel", "campaign": "xmas"}
	for k, v := range want {
		if ev.Attrs[k] != v {
			t.Errorf("attrs[%q] = %q, want %q", k, ev.Attrs[k], v)
		}
	}
	if len(ev.Attrs) != len(want) {
		t.Errorf("attrs = %v, want exactly %v", ev.Attrs, want)
	}
	if ev.TS != 1795537860000 {
		t.Errorf("ts = %d, want 1795537860000 (RFC 3339 converted to ms)", ev.TS)
	}
}

func TestDecodeErrorsNameEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want string
	}{
		{"malformed JSON is reported as such", `{"event_id":`, "invalid event: malformed JSON: "},
		{"an array is not an event", `[1,2]`, "invalid event: message is not a JSON object"},
		{"all missing required fields are listed", `{"amount":5}`,
			"invalid event: event_id: required field is missing; type: required field is missing; account_id: required field is missing; ts: required field is missing"},
		{"a number where a string belongs names the field", `{"event_id":7,"type":"login","ts":1795538400000,"account_id":"a"}`,
			"invalid event: event_id: want a string, got number"},
		{"a bad timestamp is quoted", `{"event_id":"e","type":"login","ts":"yesterday","account_id":"a"}`,
			`invalid event: ts: bad timestamp "yesterday": want RFC 3339 (2026-11-24T16:31:00Z) or epoch milliseconds`},
		{"epoch seconds are caught", `{"event_id":"e","type":"login","ts":1795538400,"account_id":"a"}`,
			"invalid event: ts: 1795538400 looks like epoch seconds; send epoch milliseconds"},
		{"a timestamp before 1973 is refused", `{"event_id":"e","type":"login","ts":"0000-01-01T00:00:00Z","account_id":"a"}`,
			`invalid event: ts: "0000-01-01T00:00:00Z" is outside the accepted range 1973-03-03 to 5138-11-16`},
		{"a timestamp after 5138 is refused", `{"event_id":"e","type":"login","ts":100000000000000,"account_id":"a"}`,
			"invalid event: ts: 100000000000000 is outside the accepted range 1973-03-03 to 5138-11-16"},
		{"a fractional amount is refused", `{"event_id":"e","type":"payment","ts":1795538400000,"account_id":"a","amount":12.5}`,
			"invalid event: amount: want an integer number of minor units (cents), got 12.5"},
		{"a negative amount is refused", `{"event_id":"e","type":"payment","ts":1795538400000,"account_id":"a","amount":-1}`,
			"invalid event: amount: must not be negative; send refunds as type refund"},
		{"latitude out of range", `{"event_id":"e","type":"login","ts":1795538400000,"account_id":"a","geo":{"lat":91,"lon":0}}`,
			"invalid event: geo.lat: 91 is out of range ±90; geo: lat and lon must be sent together"},
		{"a non-boolean flag", `{"event_id":"e","type":"login","ts":1795538400000,"account_id":"a","device":{"id":"d","rooted":"yes"}}`,
			"invalid event: device.rooted: want true or false, got string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Decoder
			var ev Event
			err := d.Decode([]byte(tt.msg), &ev)
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) || (!strings.HasSuffix(tt.want, ": ") && err.Error() != tt.want) {
				t.Errorf("err = %q\nwant %q", err.Error(), tt.want)
			}
		})
	}
}

func TestDecodeRefusesOversizedMessage(t *testing.T) {
	d := Decoder{MaxBytes: 100}
	var ev Event
	err := d.Decode([]byte(typicalEvent), &ev)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if want := "invalid event: message is 340 bytes, limit is 100"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestDecodeBoundsAttrs(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"event_id":"e","type":"login","ts":1795538400000,"account_id":"a","attrs":{`)
	for i := 0; i < maxAttrs+1; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strings.Repeat("x", i) + `":1`)
	}
	b.WriteString("}}")
	var d Decoder
	var ev Event
	err := d.Decode([]byte(b.String()), &ev)
	if err == nil || !strings.Contains(err.Error(), "attrs: more than 64 attributes") {
		t.Fatalf("err = %v, want the attrs bound reported", err)
	}
}

func TestAppendJSONRoundTrips(t *testing.T) {
	in := Event{
		ID: "e\"1", Type: "payment", TS: 1795538400000, AccountID: "a\\1", Amount: 990,
		Channel: "qr", MerchantID: "m1", MCC: "5411", CardID: "c1",
		Device: Device{ID: "d1", OS: "ios", Rooted: true, Emulator: true},
		Geo:    Geo{Country: "JP", Lat: -33.5, Lon: 151.25, HasPoint: true},
		Attrs:  Attrs{"a": "1", "b": "x\ty"}, Label: "card_testing",
	}
	msg := in.AppendJSON(nil)
	if !json.Valid(msg) {
		t.Fatalf("AppendJSON wrote invalid JSON: %s", msg)
	}
	var d Decoder
	var out Event
	if err := d.Decode(msg, &out); err != nil {
		t.Fatalf("decode %s: %v", msg, err)
	}
	got := out.Clone()
	if got.Attrs["a"] != "1" || got.Attrs["b"] != "x\ty" {
		t.Errorf("attrs = %v", got.Attrs)
	}
	got.Attrs, in.Attrs = nil, nil
	if !reflect.DeepEqual(got, in) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, in)
	}
}

func TestDecodeReusesNothingFromThePreviousEvent(t *testing.T) {
	var d Decoder
	var ev Event
	if err := d.Decode([]byte(typicalEvent), &ev); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode([]byte(`{"event_id":"e2","type":"login","ts":1795538400000,"account_id":"b"}`), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Amount != 0 || ev.Device.ID != "" || len(ev.Attrs) != 0 || ev.Geo.HasPoint {
		t.Errorf("fields leaked from the previous event: %+v", ev)
	}
}

// BenchmarkDecode compares the riskd decoder with goccy/go-json (the fastest
// drop-in for encoding/json) and encoding/json on the same event, for a
// typical 250-byte payment and a 340-byte transfer with every field set;
// read the ratios from one run.
func BenchmarkDecode(b *testing.B) {
	for _, size := range []struct {
		name string
		msg  string
	}{
		{"250B", typicalSmallEvent},
		{"340B", typicalEvent},
	} {
		msg := []byte(size.msg)
		var want Event
		if err := new(Decoder).Decode(msg, &want); err != nil {
			b.Fatal(err)
		}
		b.Run(size.name+"/riskd", func(b *testing.B) {
			var d Decoder
			var ev Event
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if err := d.Decode(msg, &ev); err != nil {
					b.Fatal(err)
				}
			}
			if ev.Amount != want.Amount {
				b.Fatal("wrong amount")
			}
		})
		b.Run(size.name+"/goccy_go_json", func(b *testing.B) {
			var ev jsonyardstick.Event
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				ev = jsonyardstick.Event{}
				if err := goccy.Unmarshal(msg, &ev); err != nil {
					b.Fatal(err)
				}
			}
			if ev.Amount != want.Amount {
				b.Fatal("wrong amount")
			}
		})
		b.Run(size.name+"/encoding_json", func(b *testing.B) {
			var ev jsonyardstick.Event
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				ev = jsonyardstick.Event{}
				if err := json.Unmarshal(msg, &ev); err != nil {
					b.Fatal(err)
				}
			}
			if ev.Amount != want.Amount {
				b.Fatal("wrong amount")
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(typicalEvent))
	f.Add([]byte(`{"event_id":"e","type":"login","ts":"2026-11-24T16:31:00Z","account_id":"a","x":[1,{"y":null}]}`))
	f.Add([]byte(`{"geo":{"lat":1},"device":null}`))
	f.Add([]byte(`{"event_id":"e","type":"payment","ts":1795538400000,"account_id":"a","balance_before":0,"balance_after":-12,"kyc_level":9,"mfa_passed":false,"account_created_at":1700000000000,"tz":"Asia/Kathmandu"}`))
	f.Add([]byte(`{"event_id":"e","type":"payment","ts":1795538400000,"account_id":"a","balance_before":9007199254740992,"kyc_level":10,"mfa_passed":1,"account_created_at":null,"tz":"Local"}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var d, full Decoder
		var ev, ref Event
		err := d.Decode(msg, &ev)
		// The fast path must agree with fastjson on every input.
		ferr := full.decodeFull(msg, &ref)
		if (err == nil) != (ferr == nil) || (err != nil && err.Error() != ferr.Error()) {
			t.Fatalf("Decode: %v, fastjson: %v", err, ferr)
		}
		if err == nil {
			a, b := ev.Clone(), ref.Clone()
			if len(a.Attrs) == 0 && len(b.Attrs) == 0 {
				a.Attrs, b.Attrs = nil, nil
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("Decode: %+v\nfastjson: %+v", a, b)
			}
		}
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || len(de.Problems) == 0 {
				t.Fatalf("error %v is not an *Error with problems", err)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" || ev.AccountID == "" {
			t.Fatalf("accepted an event without required fields: %+v", ev)
		}
		// A decoded event must survive a round trip through AppendJSON.
		var again Event
		if err := new(Decoder).Decode(ev.AppendJSON(nil), &again); err != nil {
			t.Fatalf("re-decode of %s: %v", ev.AppendJSON(nil), err)
		}
	})
}
