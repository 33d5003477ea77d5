package reference

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"riskd/features"
	"riskd/rules"
)

func loadFeatures(t *testing.T) *features.Set {
	t.Helper()
	b, err := os.ReadFile("features.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defs, err := features.ParseDefinitions(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != 20 {
		t.Fatalf("features.yaml declares %d features, want 20", len(defs))
	}
	set, err := features.Compile(defs, features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestFeaturesLoad(t *testing.T) { loadFeatures(t) }

func TestRulesLoad(t *testing.T) {
	set := loadFeatures(t)
	rs, err := rules.Load("rules", set)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) != 50 {
		t.Errorf("%d rules, want 50", len(rs.Rules))
	}
	shadow := 0
	for _, r := range rs.Rules {
		if r.Mode == rules.Shadow {
			shadow++
		}
	}
	if shadow < 3 || shadow > 5 {
		t.Errorf("%d shadow rules, want 3 to 5", shadow)
	}
	if len(rs.Thresholds) == 0 {
		t.Error("settings.yaml thresholds not loaded")
	}
	for _, name := range []string{"scam_payees", "high_risk_mccs", "blocked_devices"} {
		if len(rs.Lists[name]) == 0 {
			t.Errorf("list %s is empty or missing", name)
		}
	}
}

// TestEveryRuleHasDescription keeps the pack readable for analysts.
func TestEveryRuleHasDescription(t *testing.T) {
	files, _ := filepath.Glob("rules/*.yaml")
	for _, f := range files {
		if filepath.Base(f) == rules.SettingsFile {
			continue
		}
		b, _ := os.ReadFile(f)
		ids := strings.Count(string(b), "\n- id: ")
		descs := strings.Count(string(b), "\n  description: ")
		if ids != descs {
			t.Errorf("%s: %d rules but %d descriptions", f, ids, descs)
		}
	}
}
