// Package detection scores decisions on generated traffic the way a wallet
// counts fraud: attacks stopped before money left, money kept, honest
// customers disturbed, and how long an attack ran before anything
// noticed it, with per-event precision and recall beside them.
//
// A Tally takes the events in the order they were generated, each with
// its attack id and role from traffic.Generator.Attack and the action
// decided for it, and Report sums them up per scenario. The definitions:
//
//   - A decision stops when its action is challenge, block or lock. Allow
//     and alert let the event through; review lets it through too and
//     opens a case the customer does not see, so it neither stops nor
//     disturbs (it is counted apart, as reviews of honest accounts).
//   - An attack is the events of one attack id. It is counted once its
//     RoleLast event is seen; attacks cut off by the end of the stream
//     are counted as Incomplete and left out of the attack figures (their
//     events still count per event).
//   - An attack is stopped before loss when a decision on one of its
//     events up to and including its first loss event (RoleLoss, in stream
//     order) stops. An attack without loss events (brute_force,
//     credential_stuffing: the harm is the sign-in itself) is stopped
//     before loss when any of its decisions stops. An attack stopped only
//     after its first loss event is stopped late; one never stopped is
//     missed.
//   - Fraudulent amount stopped is the sum of the amounts of loss events
//     whose own decision stops, over the sum of all loss events' amounts.
//     A review does not count: the money moved.
//   - An honest account is active when it has an honest event in the
//     tally and no attack acted on it, disturbed when one of its honest
//     events got a stopping decision; it counts once however often.
//     Disturbed per 10,000 is disturbed / active × 10,000. The accounts
//     an attack acted on or took money from (victims: the event's account,
//     and Event.Victim, the owner of a card a device farm pays with) are
//     counted apart, with how many of
//     their owners got a stopping decision: the owner stepped up after a
//     takeover's password reset, or refused while the account is locked
//     because of the attack, is the engine protecting them, not a false
//     alarm. (An owner disturbed before the attack began is counted there
//     too: the tally does not split an account's history.)
//   - Time to flag is the event time from an attack's first event to its
//     first decision other than allow (alert and review count: someone was
//     told), over the attacks that got one; median and p90 by nearest rank.
//   - Per event, an event is flagged when its action is not allow; precision
//     is the fraud share of flagged events, recall the flagged share of
//     fraud events.
//
// Memory grows with attacks and honest accounts; both are bounded
// (MaxAttacks, MaxAccounts) and Add says which event went past a bound.
//
//	t := detection.NewTally()
//	for ... {
//		gen.Next(&ev)
//		id, role := gen.Attack()
//		action := decide(&ev)
//		if err := t.Add(detection.Event{ID: ev.ID, Account: ev.AccountID, Scenario: ev.Label,
//			Attack: id, Role: role, TS: ev.TS, Amount: ev.Amount, Action: action}); err != nil {
//			return err
//		}
//	}
//	t.Report().WriteTable(os.Stdout)
package detection
