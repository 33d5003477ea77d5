package event

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	// The zone database inside the binary, so that tz decodes the same on
	// a machine without /usr/share/zoneinfo (a distroless container).
	// time.LoadLocation still prefers the system's copy when there is one.
	_ "time/tzdata"
)

// MaxTZBytes bounds the tz field. The longest IANA zone name is 32 bytes
// ("America/Argentina/ComodRivadavia"); anything much longer is not one.
const MaxTZBytes = 64

// maxCachedZones bounds the zone cache. The IANA database has about 600
// names, so every real zone fits; past the bound a zone is loaded again
// on each lookup instead of growing the cache.
const maxCachedZones = 1024

// ErrUnknownZone is wrapped by LoadZone's error for a name that is not an
// IANA time zone.
var ErrUnknownZone = errors.New("unknown time zone")

// zones caches loaded zones, copy on write: readers load the map without
// a lock (every shard reads it per event with a tz), writers (the first
// event of each zone) copy it under mu.
var zones struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]*time.Location]
}

// LoadZone returns the time zone of an IANA name, loaded once and cached.
// It refuses "" and "Local" (the machine's zone, which would make a
// decision depend on where riskd runs), and names over MaxTZBytes.
func LoadZone(name string) (*time.Location, error) { return loadZone(name, maxCachedZones) }

// loadZone is LoadZone with the cache bound as a parameter, for its test.
func loadZone(name string, bound int) (*time.Location, error) {
	if m := zones.m.Load(); m != nil {
		if loc, ok := (*m)[name]; ok {
			return loc, nil
		}
	}
	if name == "" || name == "Local" || len(name) > MaxTZBytes {
		return nil, fmt.Errorf("%w %s", ErrUnknownZone, quote(name))
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%w %s", ErrUnknownZone, quote(name))
	}
	zones.mu.Lock()
	defer zones.mu.Unlock()
	old := zones.m.Load()
	if old != nil && len(*old) >= bound {
		return loc, nil
	}
	m := make(map[string]*time.Location, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[strings.Clone(name)] = loc // name may alias a Decoder's buffer
	zones.m.Store(&m)
	return loc, nil
}

func lenOf(m *map[string]*time.Location) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// zoneOK is the fast path's test of a tz: a cache hit, or a load.
func zoneOK(name string) bool {
	_, err := LoadZone(name)
	return err == nil
}

// LocalHour is the hour of day (0..23) of the Unix millisecond time ms in
// the zone named tz, or in UTC when tz is empty or unknown. The Decoder
// refuses unknown zones, so the fallback only meets events built by hand.
func LocalHour(ms int64, tz string) int {
	t := time.UnixMilli(ms)
	if tz == "" {
		return t.UTC().Hour()
	}
	loc, err := LoadZone(tz)
	if err != nil {
		return t.UTC().Hour()
	}
	return t.In(loc).Hour()
}
