package features

import (
	"math"
	"math/rand/v2"
	"testing"
)

type testVal struct {
	key uint64
	n   int
}

func (v *testVal) hkey() uint64 { return v.key }

// clustered are keys whose tags share their top 10 bits.
var clustered = func() []uint64 {
	var out []uint64
	for k := uint64(1); len(out) < 200; k++ {
		if tagOf(k)>>22 == 0 {
			out = append(out, k)
		}
	}
	return out
}()

// TestTableMatchesMap inserts, finds and deletes random keys, including
// keys that share a home slot, and checks the table against a map after
// every step.
func TestTableMatchesMap(t *testing.T) {
	tests := []struct {
		name string
		keys func(r *rand.Rand) uint64
	}{
		{"random keys", func(r *rand.Rand) uint64 { return r.Uint64() }},
		{"few distinct keys so most operations hit", func(r *rand.Rand) uint64 { return uint64(r.IntN(300)) }},
		{"keys that share a home slot until the table is large", func(r *rand.Rand) uint64 { return clustered[r.IntN(len(clustered))] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var tb table[testVal, *testVal]
			want := map[uint64]int{}
			for step := range 20000 {
				k := tt.keys(r)
				switch r.IntN(3) {
				case 0, 1:
					v, fresh := tb.upsert(k)
					if _, ok := want[k]; ok == fresh {
						t.Fatalf("step %d: upsert %x fresh %v, map has it %v", step, k, fresh, ok)
					}
					if fresh {
						v.key = k
					}
					v.n++
					want[k]++
				case 2:
					if p := tb.find(k); p >= 0 {
						tb.del(p)
						delete(want, k)
					} else if _, ok := want[k]; ok {
						t.Fatalf("step %d: %x not found", step, k)
					}
				}
				if tb.len() != len(want) {
					t.Fatalf("step %d: len %d, want %d", step, tb.len(), len(want))
				}
			}
			for k, n := range want {
				if v := tb.get(k); v == nil || v.n != n {
					t.Fatalf("key %x: got %+v, want n %d", k, v, n)
				}
			}
			for i := range tb.vals {
				if p := tb.find(tb.vals[i].key); p != i {
					t.Fatalf("value %d found at %d", i, p)
				}
			}
		})
	}
}

// TestBucketOf checks the cached bucket against floorDiv for event times
// around bucket edges, before the epoch and near the ends of int64, in an
// order that moves forward, back and across buckets.
func TestBucketOf(t *testing.T) {
	s := mustSet(t, `a: {count: "*", by: account, window: 90s}`, func(c *Config) { c.Buckets = 30 })
	st := s.NewStore()
	const w = 3000
	tests := []struct {
		name string
		ts   []int64
	}{
		{"times inside one bucket", []int64{t0, t0 + 1, t0 + w - 1}},
		{"the first instant of the next bucket", []int64{t0 + w - 1, t0 + w, t0 + w - 1}},
		{"times before the epoch", []int64{-1, -w, -w - 1, -w + 1, 0, 1, -1}},
		{"times near the ends of int64", []int64{math.MinInt64, math.MinInt64 + 1, math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 - w, math.MinInt64}},
		{"a jump back by a whole window", []int64{t0 + 10*w, t0 + 10*w + 5, t0 - 20*w, t0 + 10*w + 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, ts := range tt.ts {
				if got, want := st.bucketOf(0, ts), floorDiv(ts, w); got != want {
					t.Fatalf("bucketOf(%d) = %d, want %d", ts, got, want)
				}
			}
		})
	}
}
