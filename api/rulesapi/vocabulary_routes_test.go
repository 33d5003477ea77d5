package rulesapi_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestVocabularyNamesTheRunningListsAndFeatures(t *testing.T) {
	f := newFleet(t)
	featFile := filepath.Join(t.TempDir(), "features.yaml")
	if err := os.WriteFile(featFile, []byte(featuresV1), 0o644); err != nil {
		t.Fatal(err)
	}
	in, _ := f.startWithFeatures(t, writeDir(t, baseFiles), featFile)
	status, out := in.call(t, viewerToken, "GET", "/v1/rules/vocabulary", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /v1/rules/vocabulary as a viewer: %d %v", status, out)
	}
	if out["version"] != in.holder.Load().Version.String() {
		t.Errorf("version %v, want the running %s", out["version"], in.holder.Load().Version)
	}
	if got := stringList(out["lists"]); !slices.Equal(got, []string{"scam_payees"}) {
		t.Errorf("lists %v, want [scam_payees]", got)
	}
	fields, _ := out["fields"].(map[string]any)
	if f := stringList(fields["f"]); !slices.Contains(f, "payments_1h") || !slices.Contains(f, "new_device") {
		t.Errorf("fields.f %v, want the window feature payments_1h and the profile's new_device", f)
	}
	if e := stringList(fields["event"]); !slices.Contains(e, "payee_id") {
		t.Errorf("fields.event %v, want payee_id", e)
	}
	if fn := stringList(out["functions"]); !slices.Contains(fn, "in_list") {
		t.Errorf("functions %v, want in_list", fn)
	}

	// A list added by a publish is offered next.
	in.mustCall(t, "PUT", "/v1/lists/bad_ips", map[string]any{"entries": []string{"203.0.113.9"}, "message": "add bad_ips"})
	_, out = in.call(t, viewerToken, "GET", "/v1/rules/vocabulary", nil)
	if got := stringList(out["lists"]); !slices.Equal(got, []string{"bad_ips", "scam_payees"}) {
		t.Errorf("lists after adding bad_ips: %v", got)
	}
}

// stringList reads a JSON array of strings.
func stringList(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, x := range a {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
