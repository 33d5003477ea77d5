package features

import (
	"fmt"
	"time"
)

// Config tunes how window state is kept. The zero value is not usable;
// start from DefaultConfig.
type Config struct {
	// Buckets is how many buckets each window is cut into. A window of W
	// covers between W-W/Buckets and W of event time, so more buckets
	// means sharper edges and more state. Each window must be a whole
	// number of milliseconds per bucket. The bucket is also the
	// resolution of reads as of an event (see Store.Observe): events dated
	// after an event but in its bucket count in its windows.
	Buckets int `yaml:"buckets"`
	// LateTolerance is how far behind the latest event time seen for an
	// entity (an account, device, IP, ...) an event may be and still be
	// added to that entity's windows (in its own, older bucket). An older
	// event is late for that entity: Store.Observe reports its group and
	// does not add it there, but still adds it to the windows of its
	// other entities.
	LateTolerance time.Duration `yaml:"late_tolerance"`
	// MaxDistinct bounds each distinct set (per feature per entity). Counts
	// are exact up to it and saturate at it; when full, the value seen
	// least recently is forgotten.
	MaxDistinct int `yaml:"max_distinct"`
	// ProfileTTL is how long an account profile is kept after its last
	// event before Store.Expire forgets it.
	ProfileTTL time.Duration `yaml:"profile_ttl"`
	// MaxSeen bounds each account's first-seen set (devices, payees,
	// countries and IPs together); the least recently seen is forgotten.
	MaxSeen int `yaml:"max_seen"`
}

// DefaultConfig returns 30 buckets, 5m late tolerance, 64 distinct values,
// profiles kept for 90 days and 64 first-seen values per account.
func DefaultConfig() Config {
	return Config{
		Buckets:       30,
		LateTolerance: 5 * time.Minute,
		MaxDistinct:   64,
		ProfileTTL:    90 * 24 * time.Hour,
		MaxSeen:       64,
	}
}

// Validate checks the whole Config; messages name the key.
func (c Config) Validate() error {
	switch {
	case c.Buckets < 1 || c.Buckets > 1024:
		return fmt.Errorf("features config: buckets %d: want 1..1024", c.Buckets)
	case c.LateTolerance < 0:
		return fmt.Errorf("features config: late_tolerance %v: must not be negative", c.LateTolerance)
	case c.MaxDistinct < 1 || c.MaxDistinct > 1<<16:
		return fmt.Errorf("features config: max_distinct %d: want 1..65536", c.MaxDistinct)
	case c.ProfileTTL <= 0:
		return fmt.Errorf("features config: profile_ttl %v: must be positive", c.ProfileTTL)
	case c.MaxSeen < 1 || c.MaxSeen > 1<<16:
		return fmt.Errorf("features config: max_seen %d: want 1..65536", c.MaxSeen)
	}
	return nil
}
