// Package features computes the per-event feature values rules read:
// windowed aggregates declared in YAML and built-in account profiles.
//
// A Definition declares one window feature (count, sum, min, max, avg,
// distinct, stddev, last, time_since, first_seen or percentile, grouped by an entity
// field, over a window of event time, optionally filtered by a where
// clause; docs/FEATURES.md describes each), or one sequence feature: 1
// when the event completes a pattern of its entity's event types in order
// within a time, the steps optionally agreeing on a link field such as
// payee_id (see sequence.go). ParseDefinitions reads them,
// Compile checks them against a Config and returns an immutable Set, and
// each shard owns a Store made with Set.NewStore:
//
//	defs, err := features.ParseDefinitions([]byte(`
//	payments_1h: {count: payment, by: account, window: 1h}
//	amount_24h:  {sum: amount, by: account, window: 24h, where: 'type == "payment"'}
//	devices_24h: {distinct: device.id, by: account, window: 24h}
//	`))
//	set, err := features.Compile(defs, features.DefaultConfig())
//	store := set.NewStore()
//	var v features.Values
//	late := store.Observe(&ev, &v) // a LateMask; set.AppendGroupNames(nil, late) names the groups
//	i, _ := set.Index("payments_1h")
//	_ = v.Windows[i]
//
// Windows slide on event time (Event.TS), never on the wall clock, so a
// replay gives the same numbers. Each window of length W is cut into
// Config.Buckets buckets of W/Buckets; a bucket leaves the window once the
// entity's latest event time is W past the bucket's start, so a window
// covers between W-W/Buckets and W. Each event reads its windows as of
// its own time: buckets after its own do not count, so an event that
// arrives after later-dated ones does not count them (within its own
// bucket they do). Events up to Config.LateTolerance behind the latest
// event of an entity land in their own (older) bucket; older ones are
// late for that entity (its group is set in the LateMask Observe
// returns) and not added to its windows, but still to those of the
// event's other entities. last and time_since read at the millisecond,
// not the bucket: the latest matching event before this one in the
// stream and dated no later (see kinds.go); first_seen is exact at the
// millisecond too, and so are sequences (exact but for a bound on how many
// occurrences of each step an entity keeps; see sequence.go).
//
// State is compact: keys are 64-bit FNV-1a hashes (no strings kept) in
// open-addressing tables that hold each entity's state inline (an account's
// profile and its account-grouped windows share one entry, so an event
// looks each entity up once); counters are sparse items per non-empty
// bucket (two for stddev), distinct sets hold at most Config.MaxDistinct
// hashes (exact up to that, then saturating), last and time_since at most
// 16 records of single events, and first-seen sets at most Config.MaxSeen.
// Store.Expire drops idle entities; Store.Snapshot and Set.Restore carry
// the state across restarts, and across a change of the definitions:
// a snapshot records each window feature's definition (not just its
// name), so a Set with other features restores it, each feature whose
// definition is unchanged keeping its state and each new one starting
// empty, warming until its window has filled (Shared.Warming,
// Store.WarmingMask, Shared.Restored). A snapshot of another Config
// (buckets, max_distinct, max_seen) is refused.
//
// Shards: an engine shards events by account, so the events of one device
// or IP reach several shards. A Shared (Set.NewShared) holds the windows
// of every group not keyed by account for all the shards of an engine,
// under lock stripes by entity; each shard's Store, made with
// Shared.NewStore, keeps its accounts to itself and takes no lock for
// them. Windows by device or IP then count every shard's events. A Store
// made with Set.NewStore has a Shared of its own. Shared.Snapshot and
// Set.RestoreShared carry the shared part, written once for all shards;
// Shared.Restore restores each shard's Store into it.
package features
