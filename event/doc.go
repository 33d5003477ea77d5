// Package event is the wallet event model of riskd and its wire format: the
// Event struct that features and rules read, a Decoder that turns a JSON
// message into an Event without allocating and explains every problem with a
// message that cannot, and AppendJSON for producers and tests.
//
//	var d event.Decoder
//	var ev event.Event
//	if err := d.Decode(msg, &ev); err != nil {
//		// send msg to the dead-letter topic with err.Error() as the reason
//	}
//
// Every field, its bounds and the optional facts wallets may send
// (balances, kyc_level, mfa_passed, account_created_at, tz) are described
// in docs/EVENTS.md.
//
// It has no dependencies on the rest of riskd, so features, rules and engine
// can all import it.
package event
