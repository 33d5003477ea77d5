// Package traffic generates a deterministic stream of mobile-wallet events
// with labelled fraud mixed in, for benchmarks, demos and detection scoring.
//
// A Generator owns a table of synthetic accounts, each with a home city,
// one or two usual phones, a card, a few usual payees and merchants and a
// typical spend. Normal traffic is what those owners do: QR, NFC, online,
// transfer and transit payments, sign-ins, top-ups, withdrawals and the
// occasional password reset or mistyped password. At Config.FraudRate the
// next event instead comes from a scripted fraud scenario (brute_force,
// credential_stuffing, account_takeover, scam_payee, card_testing,
// device_farm, points_abuse, impossible_travel); its events carry the
// scenario name in Event.Label, normal events carry "". A scenario starts
// at random and plays its short script (for example password_reset, login
// from a new phone abroad, device_bind, payee_add, large transfer) on
// successive Next calls, so an attack arrives as the burst it is in a real
// stream whatever the fraud rate. Scenarios that need many accounts
// (device_farm, points_abuse) use fresh fraudster-owned accounts
// (acct-farm-N, acct-points-N); the others hit accounts of the table.
//
// The same Config (including Seed) always yields the same events, byte for
// byte, so a benchmark or a backtest can be replayed. Event time starts at
// Config.Start and advances by exponential gaps averaging
// 1/EventsPerSecond, strictly increasing; ids are "e-1", "e-2", ...
//
// Scam payee ids (ScamPayees) match bench/reference/rules/lists/scam_payees.txt
// and device ids of the reference blocked_devices list are never produced
// by normal traffic.
package traffic
