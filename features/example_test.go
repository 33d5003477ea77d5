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
