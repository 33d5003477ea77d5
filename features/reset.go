package features

import "riskd/internal/keyhash"

// ByAccount reports whether name is a window feature grouped by account
// (by: account_id): the features whose state is the account's own, which
// an unlock may reset. Features of other groups (device, IP, payee) are
// shared with other accounts and are never reset for one of them.
func (s *Set) ByAccount(name string) bool {
	i, ok := s.index[name]
	return ok && s.accGroup >= 0 && s.feats[i].group == s.accGroup
}

// ResetAccount forgets the window state of the given features (slots in
// Values.Windows) for one account: their next read counts only events
// observed after the reset. It is what an unlock does to the counters
// that caused the lock, so that one more failed sign-in does not lock
// the account again at once. Only features grouped by account are reset;
// other slots in feats are ignored, since their entities (a device, an
// IP, a payee) are shared with other accounts. It returns how many items
// it dropped. The items kept stay in their order, so the state after a
// reset is a function of the events and the reset alone.
func (st *Store) ResetAccount(accountID string, feats []int) int {
	if accountID == "" {
		return 0
	}
	return st.ResetAccountKey(keyhash.String(accountID), feats)
}

// ResetAccountKey is ResetAccount for the account whose id hashes to h
// (keyhash.String).
func (st *Store) ResetAccountKey(h uint64, feats []int) int {
	s := st.set
	if s.accGroup < 0 {
		return 0
	}
	var mask uint64
	for _, i := range feats {
		if i >= 0 && i < len(s.feats) && s.feats[i].group == s.accGroup {
			mask |= 1 << i
		}
	}
	if mask == 0 {
		return 0
	}
	a := st.accounts.getForWrite(h)
	if a == nil || !a.hasWin {
		return 0
	}
	var w window
	w.open(&a.win, &st.accItems)
	n := len(w.items)
	k := 0
	for j := range w.items {
		if mask&(1<<(w.items[j].fn>>24)) != 0 {
			continue
		}
		if k != j {
			w.items[k] = w.items[j]
		}
		k++
	}
	w.truncate(k)
	return n - k
}
