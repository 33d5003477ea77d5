package features_test

import (
	"fmt"

	"riskd/event"
	"riskd/features"
)

func Example() {
	defs, err := features.ParseDefinitions([]byte(`
payments_1h: {count: payment, by: account, window: 1h}
amount_24h:  {sum: amount, by: account, window: 24h, where: 'type == "payment"'}
devices_24h: {distinct: device.id, by: account, window: 24h}
`))
	if err != nil {
		panic(err)
	}
	set, err := features.Compile(defs, features.DefaultConfig())
	if err != nil {
		panic(err)
	}
	store := set.NewStore()
	var v features.Values
	base := int64(1_700_000_000_000)
	for i, dev := range []string{"phone-1", "phone-1", "phone-2"} {
		ev := event.Event{Type: "payment", AccountID: "acct-1", TS: base + int64(i)*60_000,
			Amount: 1500, Device: event.Device{ID: dev}}
		store.Observe(&ev, &v)
	}
	for _, name := range set.Names() {
		i, _ := set.Index(name)
		fmt.Printf("%s=%v\n", name, v.Windows[i])
	}
	fmt.Println("new_device:", v.Profile.NewDevice)
	// Output:
	// payments_1h=3
	// amount_24h=4500
	// devices_24h=2
	// new_device: true
}

// The kinds that look at single events: the previous payment's amount,
// the time since the device's previous event, when the device was first
// seen, and the spread of the account's payments.
func Example_previousEvents() {
	defs, err := features.ParseDefinitions([]byte(`
last_payment_24h:   {last: amount, by: account, window: 24h, where: 'type == "payment"'}
since_device_1h:    {time_since: "*", by: device.id, window: 1h}
device_seen_24h:    {first_seen: "*", by: device.id, window: 24h}
amount_sd_24h:      {stddev: amount, by: account, window: 24h, where: 'type == "payment"'}
`))
	if err != nil {
		panic(err)
	}
	set, err := features.Compile(defs, features.DefaultConfig())
	if err != nil {
		panic(err)
	}
	store := set.NewStore()
	base := int64(1_700_000_000_000)
	for i, amount := range []int64{1000, 3000, 2000} {
		ev := event.Event{Type: "payment", AccountID: "acct-1", TS: base + int64(i)*90_000,
			Amount: amount, Device: event.Device{ID: "phone-1"}}
		var v features.Values
		store.Observe(&ev, &v)
		fmt.Println(v.Windows[0], v.Windows[1], v.Windows[2], v.Windows[3])
	}
	// Output:
	// 0 1e+09 0 0
	// 1000 90 90 1000
	// 3000 90 180 816.496580927726
}

// A sequence: a password reset, then a payee added, then a transfer to
// that same payee, within 30 minutes: an account takeover draining the
// wallet. The transfer to another payee does not complete it, the one to
// the new payee does, and one 31 minutes after the reset is too late.
func Example_sequence() {
	defs, err := features.ParseDefinitions([]byte(`
reset_payee_transfer_30m:
  sequence: [password_reset, payee_add, payment]
  by: account
  within: 30m
  link: payee_id
  where: 'type != "payment" || channel == "transfer"'
`))
	if err != nil {
		panic(err)
	}
	set, err := features.Compile(defs, features.DefaultConfig())
	if err != nil {
		panic(err)
	}
	store := set.NewStore()
	base := int64(1_700_000_000_000)
	steps := []struct {
		typ, payee string
		min        int64
	}{
		{"password_reset", "", 0},
		{"payee_add", "payee-9", 3},
		{"payment", "payee-1", 4},
		{"payment", "payee-9", 5},
		{"payment", "payee-9", 31},
	}
	for _, s := range steps {
		ev := event.Event{Type: s.typ, AccountID: "acct-1", TS: base + s.min*60_000,
			PayeeID: s.payee, Channel: "transfer", Amount: 50_000}
		var v features.Values
		store.Observe(&ev, &v)
		fmt.Printf("%s %s at %2dm: %v\n", s.typ, s.payee, s.min, v.Windows[0])
	}
	// Output:
	// password_reset  at  0m: 0
	// payee_add payee-9 at  3m: 0
	// payment payee-1 at  4m: 0
	// payment payee-9 at  5m: 1
	// payment payee-9 at 31m: 0
}
