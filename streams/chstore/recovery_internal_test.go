package chstore

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestLookupChunksStayUnderTheQuerySize: every id once, each chunk's
// lists within lookupBytes as written (escapes included), its accounts and
// time range covering its ids.
func TestLookupChunksStayUnderTheQuerySize(t *testing.T) {
	var keys []rowKey
	for i := range 12000 {
		id := fmt.Sprintf("ev-%s-%05d", strings.Repeat(`'\`, i%40), i)
		keys = append(keys, rowKey{id: id, account: fmt.Sprintf("acct-%d", i%700), sec: int64(1000 + i%5000)})
		if i%3 == 0 { // an event with several rows (alerts)
			keys = append(keys, keys[len(keys)-1])
		}
	}
	chunks := lookupChunks(keys)
	if len(chunks) < 3 {
		t.Fatalf("%d chunks; want the ids split", len(chunks))
	}
	chunkOf := map[string]int{}
	for i, c := range chunks {
		size := 0
		for _, a := range c.accounts {
			lit, _ := literal(a)
			size += len(lit) + 2
		}
		for _, id := range c.ids {
			lit, _ := literal(id)
			size += len(lit) + 2
			if _, dup := chunkOf[id.(string)]; dup {
				t.Fatalf("id %s in two chunks", id)
			}
			chunkOf[id.(string)] = i
		}
		if size > lookupBytes {
			t.Errorf("chunk %d: lists of %d bytes, over %d", i, size, lookupBytes)
		}
	}
	for _, k := range keys {
		i, ok := chunkOf[k.id]
		if !ok {
			t.Fatalf("id %s in no chunk", k.id)
		}
		c := chunks[i]
		if !slices.Contains(c.accounts, any(k.account)) || k.sec < c.minSec || k.sec > c.maxSec {
			t.Fatalf("chunk %d holds %s but not its account %s or time %d (%d..%d)", i, k.id, k.account, k.sec, c.minSec, c.maxSec)
		}
	}
	if len(chunkOf) != 12000 {
		t.Fatalf("%d ids in the chunks, want 12000", len(chunkOf))
	}
}
