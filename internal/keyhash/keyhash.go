// Package keyhash is the one hash riskd uses for account, event and entity
// keys: 64-bit FNV-1a. It is stable across processes and versions, so a key
// hashed into a checkpoint or snapshot means the same after a restart, and
// it is cheap on the short ids events carry.
package keyhash

const (
	offset = 14695981039346656037
	prime  = 1099511628211
)

// String returns the hash of s.
func String[T string | []byte](s T) uint64 {
	h := New()
	for i := 0; i < len(s); i++ {
		h = Hasher((uint64(h) ^ uint64(s[i])) * prime)
	}
	return h.Sum()
}

// Hasher hashes a key made of several parts without joining them first.
type Hasher uint64

// New returns a Hasher with nothing written.
func New() Hasher { return offset }

// Add writes s.
func (h *Hasher) Add(s string) {
	x := uint64(*h)
	for i := 0; i < len(s); i++ {
		x ^= uint64(s[i])
		x *= prime
	}
	*h = Hasher(x)
}

// AddByte writes one byte, for example a separator between parts.
func (h *Hasher) AddByte(b byte) { *h = Hasher((uint64(*h) ^ uint64(b)) * prime) }

// Sum returns the hash of what was written.
func (h Hasher) Sum() uint64 { return uint64(h) }
