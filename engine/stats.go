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

// Stats asks every shard, between two events, for its state sizes.
func (e *Engine) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	for _, sh := range e.shards {
		st.Queued += len(sh.queue)
		err := sh.do(ctx, func(s *Scorer) {
			st.Accounts += s.store.Accounts()
			st.Entities += s.store.Len()
		})
		if err != nil {
			return st, err
		}
	}
	return st, nil
}
