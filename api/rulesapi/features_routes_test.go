package rulesapi_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"riskd/api/rulesapi"
	"riskd/features"
	"riskd/rules"
)

const featuresV1 = "payments_1h: {count: payment, by: account, window: 1h}\n"

const featuresV2 = featuresV1 + "amount_24h: {sum: amount, by: account, window: 24h}\n"

// engineSwaps records the feature changes an instance's engine was asked
// for (Config.SwapEngine), as the names of the new features.
type engineSwaps struct {
	mu  sync.Mutex
	got [][]string
}

func (e *engineSwaps) swap(set *features.Set, install func()) error {
	install()
	e.mu.Lock()
	e.got = append(e.got, set.Names())
	e.mu.Unlock()
	return nil
}

func (e *engineSwaps) last() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.got) == 0 {
		return nil
	}
	return e.got[len(e.got)-1]
}

// startWithFeatures starts an instance from dir with the window features
// of the file featFile, as the daemon does.
func (f *fleet) startWithFeatures(t *testing.T, dir, featFile string) (*instance, *engineSwaps) {
	t.Helper()
	set, err := features.LoadFile(featFile, features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	sw := &engineSwaps{}
	in := f.startInstanceWith(t, dir, func(c *rulesapi.Config) {
		c.Features, c.FeatureSet, c.FeaturesFile, c.SwapEngine = set, set, featFile, sw.swap
	})
	return in, sw
}

// TestFeaturesPublishedThroughTheAPIReachEveryInstance: window features
// travel with the rules as one version. A PUT /v1/features on one
// instance changes the features of every instance following the topic,
// at the version's install; a rule reading the new feature can then be
// published; features that drop what a running rule reads are refused
// with the rule's id; a restart from the unchanged directory keeps the
// published features; a rollback brings the old features back.
func TestFeaturesPublishedThroughTheAPIReachEveryInstance(t *testing.T) {
	f := newFleet(t)
	dir := writeDir(t, baseFiles)
	featFile := filepath.Join(t.TempDir(), "features.yaml")
	if err := os.WriteFile(featFile, []byte(featuresV1), 0o644); err != nil {
		t.Fatal(err)
	}
	a, swapsA := f.startWithFeatures(t, dir, featFile)
	b, swapsB := f.startWithFeatures(t, dir, featFile)

	got := b.mustCall(t, "GET", "/v1/features", nil)
	if got["file"] != featuresV1 || len(got["features"].([]any)) != 1 {
		t.Fatalf("GET /v1/features at start = %v, want the features file", got)
	}
	v1 := a.holder.Load().Version

	pub := a.mustCall(t, "PUT", "/v1/features", map[string]any{"features": featuresV2, "message": "24h spend"})
	waitFor(t, "instance b installs the features version", func() bool { return b.holder.Load().Version.Hash == pub["hash"] })
	for name, sw := range map[string]*engineSwaps{"a": swapsA, "b": swapsB} {
		if last := sw.last(); !slices.Equal(last, []string{"payments_1h", "amount_24h"}) {
			t.Errorf("instance %s: the engine was last given features %v, want payments_1h and amount_24h", name, last)
		}
	}
	got = b.mustCall(t, "GET", "/v1/features", nil)
	if got["file"] != featuresV2 || got["version"] != pub["version"] {
		t.Errorf("GET /v1/features on b = %v, want version %v with the new file", got, pub["version"])
	}

	// A rule reading the new feature compiles now, on every instance.
	rule := withFile("spend.yaml", "- id: big-day\n  when: f.amount_24h > 100000\n  action: review\n")
	rule[rules.FeaturesFile] = featuresV2
	ruled := a.mustCall(t, "POST", "/v1/rules/publish", map[string]any{"files": rule, "message": "big day"})
	waitFor(t, "instance b installs the rule", func() bool { return b.holder.Load().Version.Hash == ruled["hash"] })

	// Dropping the feature that rule reads is refused, naming the rule.
	status, refused := a.call(t, analystToken, "PUT", "/v1/features", map[string]any{"features": featuresV1, "message": "drop it"})
	if status != http.StatusUnprocessableEntity || !strings.Contains(refused["error"].(string), "amount_24h") ||
		refused["details"].(map[string]any)["rule_id"] != "big-day" {
		t.Fatalf("dropping a feature a rule reads: %d %v, want 422 naming big-day", status, refused)
	}
	status, refused = a.call(t, analystToken, "PUT", "/v1/features", map[string]any{"features": "x: {count: [", "message": "bad"})
	if status != http.StatusUnprocessableEntity || !strings.Contains(refused["error"].(string), rules.FeaturesFile) {
		t.Fatalf("features that do not parse: %d %v, want 422 naming %s", status, refused, rules.FeaturesFile)
	}
	if v := a.holder.Load().Version.Hash; v != ruled["hash"] {
		t.Fatalf("after refusals a runs %s, want %v", v, ruled["hash"])
	}

	// A restart from the same directory and features file keeps the
	// published features.
	c, swapsC := f.startWithFeatures(t, dir, featFile)
	if c.holder.Load().Version.Hash != ruled["hash"] || !slices.Equal(swapsC.last(), []string{"payments_1h", "amount_24h"}) {
		t.Fatalf("restarted instance runs %v with features %v, want %v with amount_24h", c.holder.Load().Version, swapsC.last(), ruled["version"])
	}
	if _, ok := c.svc.FeatureSet().Index("amount_24h"); !ok {
		t.Fatal("restarted instance's FeatureSet lacks amount_24h")
	}

	// A rollback to the first version brings its features back.
	back := a.mustCall(t, "POST", "/v1/rules/rollback", map[string]any{"seq": v1.Seq, "message": "undo"})
	waitFor(t, "instance b installs the rollback", func() bool { return b.holder.Load().Version.Hash == back["hash"] })
	if last := swapsB.last(); !slices.Equal(last, []string{"payments_1h"}) {
		t.Errorf("after the rollback b's engine was given %v, want payments_1h only", last)
	}
}

// TestAnEditedFeaturesFileIsPublishedAsAVersion: the daemon's features
// file, edited while riskd runs, is published with the running rules
// (PublishFeaturesFile) and installed from the topic; the same
// definitions again publish nothing.
func TestAnEditedFeaturesFileIsPublishedAsAVersion(t *testing.T) {
	f := newFleet(t)
	dir := writeDir(t, baseFiles)
	featFile := filepath.Join(t.TempDir(), "features.yaml")
	if err := os.WriteFile(featFile, []byte(featuresV1), 0o644); err != nil {
		t.Fatal(err)
	}
	a, swaps := f.startWithFeatures(t, dir, featFile)
	seq, published, err := a.svc.PublishFeaturesFile(t.Context(), []byte(featuresV2))
	if err != nil || !published {
		t.Fatalf("PublishFeaturesFile = %d, %v, %v", seq, published, err)
	}
	waitFor(t, "the features version is installed", func() bool { return a.holder.Load().Version.Seq == seq })
	if !slices.Equal(swaps.last(), []string{"payments_1h", "amount_24h"}) {
		t.Errorf("the engine was given %v", swaps.last())
	}
	if _, published, err := a.svc.PublishFeaturesFile(t.Context(), []byte("# a comment\n"+featuresV2)); err != nil || published {
		t.Errorf("the same definitions again: published %v, %v; want nothing published", published, err)
	}
	// Features that drop what a running rule reads are refused.
	if _, _, err := a.svc.PublishFeaturesFile(t.Context(), []byte("amount_24h: {sum: amount, by: account, window: 24h}\n")); err == nil ||
		!strings.Contains(err.Error(), "payments_1h") {
		t.Errorf("dropping payments_1h, which the velocity rule reads: %v", err)
	}
}
