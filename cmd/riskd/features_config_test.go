package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"riskd/features"
)

// TestFeaturesConfigKeys: the features section (features.Config) defaults
// to features.DefaultConfig, is read from the file and from
// RISKD_FEATURES_* (which win), and a bad value is refused naming the key
// (or its variable): one yaml or the environment cannot parse, or one
// features.Config.Validate refuses.
func TestFeaturesConfigKeys(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	set := file("set.yaml", "features:\n  buckets: 60\n  late_tolerance: 30s\n")
	cases := []struct {
		name, path string
		env        []string
		want       time.Duration
		buckets    int
		err        string
	}{
		{"the default", "", nil, 5 * time.Minute, 30, ""},
		{"the file", set, nil, 30 * time.Second, 60, ""},
		{"the environment over the file", set, []string{"RISKD_FEATURES_LATE_TOLERANCE=2m"}, 2 * time.Minute, 60, ""},
		{"zero: any event behind an entity's latest is late for it", "", []string{"RISKD_FEATURES_LATE_TOLERANCE=0s"}, 0, 30, ""},
		{"negative", "", []string{"RISKD_FEATURES_LATE_TOLERANCE=-1s"}, 0, 0, "late_tolerance -1s: must not be negative"},
		{"not a duration in the file", file("bad.yaml", "features:\n  late_tolerance: soon\n"), nil, 0, 0, "line 2 (features.late_tolerance)"},
		{"a number without a unit in the environment", "", []string{"RISKD_FEATURES_LATE_TOLERANCE=300"}, 0, 0, "RISKD_FEATURES_LATE_TOLERANCE"},
		{"a bucket count Validate refuses", file("buckets.yaml", "features:\n  buckets: 0\n"), nil, 0, 0, "buckets 0: want 1..1024"},
		{"a misspelt key", file("typo.yaml", "features:\n  late_tolerence: 1m\n"), nil, 0, 0, "late_tolerence"},
	}
	for _, c := range cases {
		cfg, err := LoadConfig(c.path, c.env)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want it to name %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case cfg.Features.LateTolerance != c.want || cfg.Features.Buckets != c.buckets:
			t.Errorf("%s: features.late_tolerance = %v, buckets = %d; want %v, %d", c.name,
				cfg.Features.LateTolerance, cfg.Features.Buckets, c.want, c.buckets)
		}
	}
	// The keys the file leaves out keep their defaults.
	cfg, err := LoadConfig(set, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := features.DefaultConfig()
	want.Buckets, want.LateTolerance = 60, 30*time.Second
	if cfg.Features != want {
		t.Errorf("features = %+v, want %+v", cfg.Features, want)
	}
}
