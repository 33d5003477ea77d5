package event

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeRefusesWhatIsNotAWalletEvent(t *testing.T) {
	base := `"event_id":"e1","account_id":"a1","ts":1795538400000`
	long := strings.Repeat("x", 10<<10)
	tests := []struct {
		name string
		msg  string
		want string
	}{
		{"an invented type", `{` + base + `,"type":"teleport"}`,
			`invalid event: type: unknown event type "teleport" (want one of payment, login, login_failed, password_reset, mfa, device_bind, payee_add, profile_change, topup, withdrawal, refund, points_redeem)`},
		{"an unknown channel", `{` + base + `,"type":"payment","channel":"wire"}`,
			`invalid event: channel: unknown channel "wire" (want one of qr, nfc, online, transfer, transit)`},
		{"a NUL in the account id", `{"event_id":"e1","type":"login","ts":1795538400000,"account_id":"a\u00001"}`,
			`invalid event: account_id: contains U+0000 at byte 1; ids must be printable text`},
		{"a right-to-left override in the payee id", `{` + base + `,"type":"payment","payee_id":"pay` + "\u202e" + `eep"}`,
			`invalid event: payee_id: contains U+202E at byte 3; ids must be printable text`},
		{"a zero-width joiner in the device id", `{` + base + `,"type":"login","device":{"id":"d` + "\u200d" + `1"}}`,
			`invalid event: device.id: contains U+200D at byte 1; ids must be printable text`},
		{"a 10 KB account id", `{"event_id":"e1","type":"login","ts":1795538400000,"account_id":"` + long + `"}`,
			`invalid event: account_id: is 10240 bytes, limit is 128`},
		{"bytes that are not UTF-8 in the event id", `{"event_id":"e` + "\xff" + `","type":"login","account_id":"a","ts":1795538400000}`,
			`invalid event: event_id: is not valid UTF-8 (byte 1)`},
		{"a long invented type is quoted short", `{` + base + `,"type":"` + strings.Repeat("t", 100) + `"}`,
			`invalid event: type: unknown event type "` + strings.Repeat("t", 40) + `"... (100 bytes) (want one of payment, login, login_failed, password_reset, mfa, device_bind, payee_add, profile_change, topup, withdrawal, refund, points_redeem)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Decoder
			var ev Event
			err := d.Decode([]byte(tt.msg), &ev)
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("Decode = %v, want an *Error", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestDecodeAcceptsWhatTheVocabularyDeclares(t *testing.T) {
	msg := []byte(`{"event_id":"e1","account_id":"a1","ts":1795538400000,"type":"card_token","channel":"wire","payee_id":"Zoë Café 7"}`)
	var ev Event
	if err := (&Decoder{}).Decode(msg, &ev); err == nil {
		t.Fatal("an undeclared type and channel were accepted")
	}
	d := Decoder{Vocabulary: &Vocabulary{ExtraTypes: []string{"card_token"}, ExtraChannels: []string{"wire"}}}
	if err := d.Decode(msg, &ev); err != nil {
		t.Fatalf("declared type and channel refused: %v", err)
	}
	if ev.Type != "card_token" || ev.Channel != "wire" || ev.PayeeID != "Zoë Café 7" {
		t.Errorf("decoded %+v", ev)
	}
}

func TestMaxIDBytesIsConfigurable(t *testing.T) {
	msg := []byte(`{"event_id":"e1","account_id":"acct-123456","ts":1795538400000,"type":"login"}`)
	var ev Event
	err := (&Decoder{MaxIDBytes: 8}).Decode(msg, &ev)
	if err == nil || err.Error() != "invalid event: account_id: is 11 bytes, limit is 8" {
		t.Errorf("Decode with MaxIDBytes 8 = %v", err)
	}
}

func TestDeeplyNestedJSONSaysWhyInFewWords(t *testing.T) {
	msg := `{"event_id":"e1","type":"login","account_id":"a","ts":1795538400000,"x":` +
		strings.Repeat("[", 400) + strings.Repeat("]", 400) + `}`
	err := (&Decoder{}).Decode([]byte(msg), &Event{})
	if err == nil {
		t.Fatal("400 nested arrays were accepted")
	}
	if !strings.Contains(err.Error(), "too big depth for the nested JSON") || len(err.Error()) > 400 {
		t.Errorf("error (%d bytes) does not state the depth problem briefly: %.500s", len(err.Error()), err)
	}
	if !strings.HasPrefix(err.Error(), "invalid event: malformed JSON: too big depth") {
		t.Errorf("error does not start with the cause: %.200s", err)
	}
}
