package engine

import (
	"bytes"
	"errors"
	"testing"

	"riskd/event"
	"riskd/internal/alone"
)

func TestAReusedEventIDWithAnotherBodyIsAConflict(t *testing.T) {
	set, holder := loadTestdata(t)
	e := New(Config{Shards: 2, Now: fixedClock()}, set, holder)
	ctx := startEngine(t, e)

	first := []byte(`{"event_id":"e-1","type":"payment","account_id":"a1","ts":1795538400000,"amount":500,"payee_id":"p1","attrs":{"x":"1","y":"2"}}`)
	mustDecide(t, ctx, e, first)

	// The same event as another producer writes it: keys in another order,
	// spaces, attrs reordered. It is the same event, so a duplicate.
	same := []byte(`{ "ts": 1795538400000, "attrs": {"y":"2","x":"1"}, "account_id": "a1", "payee_id": "p1", "amount": 500, "type": "payment", "event_id": "e-1" }`)
	if d := mustDecide(t, ctx, e, same); !d.Duplicate || d.Reason != ReasonDuplicate {
		t.Fatalf("the same event re-sent: duplicate=%v reason=%q, want a duplicate", d.Duplicate, d.Reason)
	}

	for name, body := range map[string][]byte{
		"another amount": bytes.Replace(first, []byte(`"amount":500`), []byte(`"amount":501`), 1),
		"another payee":  bytes.Replace(first, []byte(`"payee_id":"p1"`), []byte(`"payee_id":"p2"`), 1),
		"another attr":   bytes.Replace(first, []byte(`"y":"2"`), []byte(`"y":"3"`), 1),
		"another time":   bytes.Replace(first, []byte(`1795538400000`), []byte(`1795538400001`), 1),
	} {
		_, err := e.Decide(ctx, Message{Value: body})
		var conflict *ErrEventIDConflict
		if !errors.As(err, &conflict) || conflict.EventID != "e-1" {
			t.Errorf("%s under a decided id: err = %v, want an ErrEventIDConflict for e-1", name, err)
			continue
		}
		if got, want := err.Error(), `event_id "e-1" was decided before with a different body`; got != want {
			t.Errorf("%s: error %q, want %q", name, got, want)
		}
	}
	// A conflict changes nothing: the original is still remembered as it was.
	if d := mustDecide(t, ctx, e, same); !d.Duplicate {
		t.Error("after the conflicts the original event is no longer a duplicate")
	}
}

func TestFingerprintsSurviveACheckpoint(t *testing.T) {
	set, holder := loadTestdata(t)
	cfg := Config{Shards: 2, Now: fixedClock()}
	e := New(cfg, set, holder)
	ctx := startEngine(t, e)
	first := payment("e-9", "a9", 1795538400000, 700, "p9")
	mustDecide(t, ctx, e, first)
	var ckpt bytes.Buffer
	if err := e.Checkpoint(ctx, &ckpt); err != nil {
		t.Fatal(err)
	}
	restored, err := Restore(cfg, set, holder, &ckpt)
	if err != nil {
		t.Fatal(err)
	}
	ctx2 := startEngine(t, restored)
	if d := mustDecide(t, ctx2, restored, first); !d.Duplicate {
		t.Error("the checkpointed event is not a duplicate after restore")
	}
	var conflict *ErrEventIDConflict
	if _, err := restored.Decide(ctx2, Message{Value: payment("e-9", "a9", 1795538400000, 701, "p9")}); !errors.As(err, &conflict) {
		t.Errorf("a changed body after restore: err = %v, want a conflict", err)
	}
}

func TestFingerprintReadsEveryField(t *testing.T) {
	if !alone.Process(t) { // it counts allocations
		return
	}
	base := event.Event{ID: "e", Type: "payment", TS: 1, AccountID: "a", Amount: 2, Currency: "USD", Channel: "qr",
		MerchantID: "m", MCC: "5411", PayeeID: "p", CardID: "c", IP: "1.2.3.4", Label: "l",
		Device: event.Device{ID: "d", OS: "ios", AppVersion: "1", Rooted: true},
		Geo:    event.Geo{Country: "KH", Lat: 1.5, Lon: 2.5, HasPoint: true}, Attrs: event.Attrs{"k": "v"}}
	var f fingerprinter
	want := f.sum(&base)
	changes := map[string]func(*event.Event){
		"type": func(e *event.Event) { e.Type = "refund" }, "ts": func(e *event.Event) { e.TS++ },
		"account": func(e *event.Event) { e.AccountID = "b" }, "amount": func(e *event.Event) { e.Amount++ },
		"currency": func(e *event.Event) { e.Currency = "EUR" }, "channel": func(e *event.Event) { e.Channel = "nfc" },
		"merchant": func(e *event.Event) { e.MerchantID = "n" }, "mcc": func(e *event.Event) { e.MCC = "5999" },
		"payee": func(e *event.Event) { e.PayeeID = "q" }, "card": func(e *event.Event) { e.CardID = "x" },
		"ip": func(e *event.Event) { e.IP = "1.2.3.5" }, "device": func(e *event.Event) { e.Device.ID = "e" },
		"os": func(e *event.Event) { e.Device.OS = "android" }, "rooted": func(e *event.Event) { e.Device.Rooted = false },
		"emulator": func(e *event.Event) { e.Device.Emulator = true }, "country": func(e *event.Event) { e.Geo.Country = "TH" },
		"lat": func(e *event.Event) { e.Geo.Lat = 1.25 }, "point": func(e *event.Event) { e.Geo.HasPoint = false },
		"attr value": func(e *event.Event) { e.Attrs = event.Attrs{"k": "w"} },
		"attr key":   func(e *event.Event) { e.Attrs = event.Attrs{"j": "v"} },
		"attr added": func(e *event.Event) { e.Attrs = event.Attrs{"k": "v", "z": ""} },
		// Fields glued together must not read as other fields.
		"shifted ids": func(e *event.Event) { e.MerchantID, e.MCC = "m5", "411" },
	}
	for name, change := range changes {
		ev := base.Clone()
		change(&ev)
		if f.sum(&ev) == want {
			t.Errorf("changing %s leaves the fingerprint unchanged", name)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { f.sum(&base) }); n != 0 {
		t.Errorf("fingerprint allocates %v times per event, want 0", n)
	}
}
