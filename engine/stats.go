package engine

import "context"

// Stats is a point-in-time view of the engine's state, for metrics.
type Stats struct {
	// Accounts is the number of accounts with feature state (active within
	// the longest window); Entities counts every keyed entity (accounts,
	// devices, IPs, payees...).
	Accounts, Entities int
	// Queued is the number of messages waiting in shard queues.
	Queued int
}

// Stats asks every shard, between two events, for its state sizes. Each
// shard answers on its own channel: when ctx ends first, a question already
// handed to a shard may still run later, and must not write anything Stats
// has returned.
func (e *Engine) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	for _, sh := range e.shards {
		st.Queued += len(sh.queue)
		answer := make(chan [2]int, 1)
		err := sh.do(ctx, func(s *Scorer) { answer <- [2]int{s.store.Accounts(), s.store.Len()} })
		if err != nil {
			return st, err
		}
		a := <-answer
		st.Accounts += a[0]
		st.Entities += a[1]
	}
	return st, nil
}
