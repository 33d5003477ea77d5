package features

import (
	"fmt"
	"io"
	"math"
)

// Partitions.
//
// An account's events all come from one partition number of the
// co-partitioned input topics, so an instance of a fleet can hand the
// state of one partition's accounts to another: the Store tags each
// account with the partition of the events that touch it (SetPartition),
// the snapshot keeps the tags, and DropPartitions and AdoptPartitions
// remove and take over the accounts of some partitions. The shared
// entities (devices, IPs, payees) belong to no partition: every instance
// keeps them whole.

// MaxPartition is the highest partition number an account is tagged with;
// the accounts of higher ones stay untagged (they never move with their
// partition, and are rebuilt by replay instead).
const MaxPartition = math.MaxUint16 - 1

// SetPartition tags the accounts the following observations touch with
// partition p, until the next call; a negative p (an event of no
// partition, such as one decided through the API) leaves their tags as
// they are.
func (st *Store) SetPartition(p int) {
	if p < 0 || p > MaxPartition {
		st.part = 0
		return
	}
	st.part = uint16(p + 1)
}

// PartitionOf returns the partition the account whose id hashes to h
// (keyhash.String) is tagged
// with, or -1 when the Store holds no tag for it.
func (st *Store) PartitionOf(h uint64) int {
	if a := st.accounts.get(h); a != nil {
		return int(a.part) - 1
	}
	return -1
}

// DropPartitions removes the accounts tagged with a partition in parts
// and returns how many it removed.
func (st *Store) DropPartitions(parts func(p int) bool) int {
	n := 0
	t := &st.accounts
	for j := 0; j < len(t.vals); {
		a := &t.vals[j]
		if a.part == 0 || !parts(int(a.part)-1) {
			j++
			continue
		}
		t.willWrite(j)
		st.forget(a)
		t.del(j) // the last account moved into j: look at j again
		n++
	}
	return n
}

// forget uncounts a's profile and window state, about to be removed or
// replaced, and frees their lists.
func (st *Store) forget(a *account) {
	if a.hasProfile {
		st.nProf--
	}
	if a.hasWin {
		st.nAccWin--
	}
	st.accItems.release(&a.win.items)
	st.accSeen.release(&a.p.seen)
}

// AdoptPartitions moves the accounts of from tagged with a partition in
// parts into st, in place of st's own state of those accounts, and
// returns how many it moved. from must be of st's Set and is not to be
// used afterwards.
func (st *Store) AdoptPartitions(from *Store, parts func(p int) bool) (int, error) {
	if from.set != st.set {
		return 0, fmt.Errorf("%w: the accounts to adopt are of another feature set", ErrSnapshot)
	}
	n := 0
	for j := range from.accounts.vals {
		src := &from.accounts.vals[j]
		if src.part == 0 || !parts(int(src.part)-1) {
			continue
		}
		a, fresh := st.accounts.upsert(src.win.key)
		if !fresh {
			st.forget(a)
		}
		*a = *src
		a.win.items = cloneList(&st.accItems, &from.accItems, src.win.items)
		a.p.seen = cloneList(&st.accSeen, &from.accSeen, src.p.seen)
		if a.hasProfile {
			st.nProf++
		}
		if a.hasWin {
			st.nAccWin++
		}
		n++
	}
	return n, nil
}

// RestoreAccounts reads a shard's snapshot (Store.Snapshot of a Store of
// a Shared) into a Store of its own, for AdoptPartitions: the Shared it
// belongs to is a fresh one, so the running engine's entities and their
// warming are not touched. A snapshot of other window features than s's
// is refused: its accounts would lack the state of the new features
// without the engine marking them warming.
func (s *Set) RestoreAccounts(r io.Reader) (*Store, error) {
	sh := s.NewShared()
	st, err := s.restore(r, sh)
	if err != nil {
		return nil, err
	}
	if m := sh.restored.m; m == nil || !m.same || m.lay.hasWarming() {
		return nil, fmt.Errorf("%w: the snapshot's window features are not this engine's (or are still warming); its accounts cannot join the running state", ErrSnapshot)
	}
	return st, nil
}

// hasWarming reports whether a feature of the layout was still warming.
func (a *snapLayout) hasWarming() bool {
	for _, f := range a.feats {
		if f.until != never {
			return true
		}
	}
	return false
}
