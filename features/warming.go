package features

import (
	"fmt"
	"math"
	"sync"
)

// A window feature that a restore could not fill from its snapshot (the
// snapshot's Set had no feature of its definition) starts empty: until
// event time has passed the latest event time in the restored state (the
// watermark) plus its window, it counts only the events since the
// restore, fewer than its window holds. It is warming until then;
// Store.WarmingMask and Shared.Warming say which are, and snapshots carry
// the end, so a feature still warming at the next snapshot is warming
// after the next restore too.

// restoreInfo is what a Shared keeps of the snapshot it was restored from.
type restoreInfo struct {
	mu sync.Mutex
	m  *layoutMap // nil: not restored
	// watermark is the latest event time in the restored state, over
	// the Shared's entities and the profiles and windows of every Store
	// restored into it; never when it held none.
	watermark int64
}

// noteRestore records that state of layout m, with watermark wm, was
// restored into sh (the Shared's entities, or one Store's accounts), and
// works out which features are warming until when.
func (sh *Shared) noteRestore(m *layoutMap, wm int64) error {
	ri := &sh.restored
	ri.mu.Lock()
	defer ri.mu.Unlock()
	switch {
	case ri.m == nil:
		ri.m, ri.watermark = m, never
	case !ri.m.lay.sameFeatures(m.lay):
		return fmt.Errorf("%w: the shard's snapshot has other window features than the shared entities restored before it", ErrSnapshot)
	}
	ri.watermark = max(ri.watermark, wm)
	s := sh.set
	sh.warmEnd = never
	for i := range s.feats {
		u := int64(never)
		if k := ri.m.src[i]; k < 0 {
			if ri.watermark != never {
				u = satAdd(ri.watermark, s.ids[i].windowMs)
			}
		} else if ku := ri.m.lay.feats[k].until; ku > ri.watermark {
			u = ku // still warming from an earlier restore
		}
		sh.warmUntil[i] = u
		sh.warmEnd = max(sh.warmEnd, u)
	}
	return nil
}

func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// WarmingMask returns the window features warming at event time ts, bit
// i for feature i: it costs one comparison when none is.
func (st *Store) WarmingMask(ts int64) uint64 {
	sh := st.shared
	if ts >= sh.warmEnd {
		return 0
	}
	var m uint64
	for i := range st.set.feats {
		if ts < sh.warmUntil[i] {
			m |= 1 << i
		}
	}
	return m
}

// WarmingFeature is a window feature that is warming: it started empty at
// a restore and its window has not filled yet.
type WarmingFeature struct {
	Name string
	// Until is the event time (Unix ms) from which it is no longer
	// warming.
	Until int64
}

// Warming lists the window features warming at event time nowMs, in
// feature order; none when the Shared was not restored from a snapshot.
func (sh *Shared) Warming(nowMs int64) []WarmingFeature {
	if nowMs >= sh.warmEnd {
		return nil
	}
	var out []WarmingFeature
	for i := range sh.set.feats {
		if nowMs < sh.warmUntil[i] {
			out = append(out, WarmingFeature{Name: sh.set.Name(i), Until: sh.warmUntil[i]})
		}
	}
	return out
}

// Warming lists the window features warming at event time nowMs (see
// Shared.Warming).
func (st *Store) Warming(nowMs int64) []WarmingFeature { return st.shared.Warming(nowMs) }

// KeptFeature is a window feature whose state a restore kept.
type KeptFeature struct {
	Name string
	// Was is its name in the snapshot (another for a renamed feature).
	Was string
	// WarmingUntil is the event time (Unix ms) until which it is still
	// warming from an earlier restore; 0 when it is not.
	WarmingUntil int64
}

// RestoreReport says what a restore did with the window features of a
// snapshot taken with other definitions (Shared.Restored).
type RestoreReport struct {
	// Restored is false for a Shared that was not restored.
	Restored bool
	// Watermark is the latest event time (Unix ms) in the restored state;
	// 0 when it held none.
	Watermark int64
	// Kept are the Set's features that kept the state of the snapshot's
	// feature of the same definition; Fresh are those that started empty
	// (warming until Until: the watermark plus their window; 0 when the
	// state held no event).
	Kept  []KeptFeature
	Fresh []WarmingFeature
	// Dropped names the snapshot's features whose state was dropped (no
	// feature of their definition in the Set), DroppedGroups the groups
	// whose entities were ("account", "device.id", ...).
	Dropped       []string
	DroppedGroups []string
}

// Changed reports whether the Set's window features differ from the
// snapshot's: one started empty, was dropped or renamed, or a group was
// dropped.
func (r *RestoreReport) Changed() bool {
	if len(r.Fresh) > 0 || len(r.Dropped) > 0 || len(r.DroppedGroups) > 0 {
		return true
	}
	for _, k := range r.Kept {
		if k.Name != k.Was {
			return true
		}
	}
	return false
}

// Restored reports what the restore of the Store's snapshot (and of its
// Shared's) did with the window features: see Shared.Restored.
func (st *Store) Restored() RestoreReport { return st.shared.Restored() }

// Restored reports how the window features of the snapshot sh was
// restored from map onto its Set; call it once every Store is restored.
func (sh *Shared) Restored() RestoreReport {
	ri := &sh.restored
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.m == nil {
		return RestoreReport{}
	}
	r := RestoreReport{Restored: true}
	if ri.watermark != never {
		r.Watermark = ri.watermark
	}
	s, lay := sh.set, ri.m.lay
	for i := range s.feats {
		until := sh.warmUntil[i]
		if until == never {
			until = 0
		}
		if k := ri.m.src[i]; k >= 0 {
			r.Kept = append(r.Kept, KeptFeature{Name: s.Name(i), Was: lay.feats[k].name, WarmingUntil: until})
		} else {
			r.Fresh = append(r.Fresh, WarmingFeature{Name: s.Name(i), Until: until})
		}
	}
	for k := range lay.feats {
		if ri.m.feat[k] < 0 {
			r.Dropped = append(r.Dropped, lay.feats[k].name)
		}
	}
	for g, by := range lay.groups {
		if ri.m.group[g] < 0 {
			if by == "account_id" {
				by = "account"
			}
			r.DroppedGroups = append(r.DroppedGroups, by)
		}
	}
	return r
}
