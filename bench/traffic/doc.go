// Package traffic generates a deterministic stream of mobile-wallet events
// with labelled fraud mixed in, for benchmarks, demos and detection scoring.
//
// A Generator owns a table of synthetic accounts, each with a home city,
// one or two usual phones, a card, a few usual payees and merchants, a
// typical spend and, with Config.ActivitySpread, an activity level
// (log-normal: some owners use the wallet a few times a week, some forty
// times a day). Normal traffic is
// what those owners do: QR, NFC, online, transfer and transit payments,
// sign-ins, top-ups, withdrawals, point redemptions and the occasional
// password reset or mistyped password; and, as real owners do, they
// travel (to another home city by train or abroad by air, silent on the
// way, so never faster than an airliner, for one to ten days, on roaming
// or hotel Wi-Fi), get new phones (signing in, sometimes after a password
// reset, then binding the phone), pay a payee minutes after adding it
// (often more than usual), and 3% of accounts open during the first three
// days of the stream (a sign-up, often redeeming the welcome points at
// once, as a points farm does). These multi-step habits run as unlabelled
// scripts through the same queue as attacks. Families share phones: 3% of
// owners also use another owner's phone (a partner's phone, a family
// tablet; a quarter of those phones serve three owners) and a fifth of the
// sign-ups open the account on a family member's phone, so an honest phone
// can carry two or three accounts and an honest sign-up can come from a
// phone another account uses. One payee addition in twenty is of a payee
// many owners add (a landlord, a club's treasurer, a seller taking
// transfers: the first Accounts/2000 payees, at least 10), so honest
// payees have fan-in too. At Config.FraudRate the next
// event instead starts a scripted fraud scenario (brute_force,
// credential_stuffing, account_takeover, scam_payee, card_testing,
// device_farm, points_abuse, impossible_travel); its events carry the
// scenario name in Event.Label, normal events carry "". Scenarios that
// need many accounts (device_farm, points_abuse) use fresh fraudster-owned
// accounts (acct-farm-N, acct-points-N); the others hit accounts of the
// table. Half of scam_payee attacks pay a payee of ScamPayees (already
// reported), half a mule payee no list knows.
//
// Fraud rings outlive one attack, as they do in real wallets, where a
// phone that already opened several accounts is the strongest farm signal
// and a payee paid by unrelated victims the strongest mule signal:
//
//   - A points_abuse attack is one batch of 3-5 fresh accounts of a points
//     farm. A farm owns a pool of 1-4 phones (each an emulator one time in
//     four) behind 1-3 addresses of one proxy range in one home city, and
//     runs 2-20 batches; a batch comes from a new farm one time in ten (or
//     when no farm is live), else from a live one, on its pool's phones in
//     turn from a random one. Half the batches sign up and redeem account
//     by account, half sign every account up first (a burst of sign-ups)
//     and then redeem. So the first batch of a new farm on real phones
//     redeems before anything links it to a farm, and it cannot be
//     stopped honestly; later batches come from phones that redeemed
//     welcome points for other fresh accounts before.
//   - An unlisted scam_payee attack pays a mule. A mule takes money from
//     1-10 unrelated victims, each of whom adds it as a new payee; a
//     victim is sent to a new mule one time in five (or when none is
//     live), else to a live one. So a mule's first victims show no fan-in.
//
// Farms and mules are chosen per attack, not per hour: how far apart one
// ring's attacks fall in event time follows the attack rate, hours at the
// detection test's density, minutes in the benchmark's dense two hours.
//
// One scenario instance is an attack. Its steps are spread over event
// time by delays drawn per step within the scenario's pace (seconds apart
// for a brute force, up to 20 minutes between a scam payee's addition and
// the transfer, up to 90 minutes between the owner's sign-in and the
// impossible one), so attacks overlap each other and honest traffic comes
// between their steps. What else varies per attack, from the seed: step
// counts (1-2 drains in a takeover or a scam), the order of steps where
// the attack allows it (a takeover binds its device and adds its payee in
// either order), amounts, and the victim's history: 2 in 5 attacks hit
// the account of the latest honest event (busy accounts, long histories),
// 1 in 4 a dormant account (no event yet, while draws still find one),
// the rest any account, so the profile a rule sees for the victim ranges
// from empty to full.
//
// Attack reports, after each Next, the attack id of the event just made
// (1, 2, ... in the order attacks start; 0 for honest traffic) and its
// Role: RoleFirst on the attack's first event, RoleLast on its last,
// RoleLoss on an event that moves money out of the victim (see RoleLoss
// for which those are; brute_force and credential_stuffing have none), no
// flag on its other steps. Harnesses record it beside the event id;
// Event.Label stays the scenario name. Attacks still playing when the
// stream ends are cut short: they have no RoleLast event.
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
