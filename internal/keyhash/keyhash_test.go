package keyhash

import (
	"hash/fnv"
	"testing"
)

// TestMatchesStandardFNV1a pins the hash to FNV-1a 64: snapshots and
// checkpoints store these values, so the function may never change.
func TestMatchesStandardFNV1a(t *testing.T) {
	for _, s := range []string{"", "a", "acct-42", "device:9f3c", "\x00\xff"} {
		ref := fnv.New64a()
		ref.Write([]byte(s))
		if got := String(s); got != ref.Sum64() {
			t.Errorf("String(%q) = %x, want %x", s, got, ref.Sum64())
		}
		if got := String([]byte(s)); got != ref.Sum64() {
			t.Errorf("String([]byte(%q)) = %x, want %x", s, got, ref.Sum64())
		}
		h := New()
		for i := 0; i < len(s); i++ {
			h.AddByte(s[i])
		}
		if h.Sum() != ref.Sum64() {
			t.Errorf("AddByte over %q = %x, want %x", s, h.Sum(), ref.Sum64())
		}
	}
	h := New()
	h.Add("acct")
	h.Add("-42")
	if h.Sum() != String("acct-42") {
		t.Error("Add in parts differs from String of the whole")
	}
}
