package rulesync_test

import (
	"testing"

	"riskd/streams/rulesync"
)

func TestLatestIsTheNewestRecordAndPublishIfChangedSkipsTheSameFiles(t *testing.T) {
	s, err := rulesync.New(rulesync.Config{Brokers: []string{startBroker(t)}, Topic: "rules-latest"})
	if err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Latest(t.Context()); err != nil || found {
		t.Fatalf("Latest of an empty topic: found=%v err=%v, want none", found, err)
	}
	one := rulesync.Record{Hash: "h1", Files: map[string]string{"a.yaml": "[]"}, Author: "riskd",
		Source: rulesync.SourceDir, DirHash: "h1"}
	got, published, err := s.PublishIfChanged(t.Context(), one)
	if err != nil || !published || got.Seq != 1 {
		t.Fatalf("first PublishIfChanged: %+v published=%v err=%v, want seq 1 published", got, published, err)
	}
	// A second instance starting from the same files publishes nothing.
	again, published, err := s.PublishIfChanged(t.Context(), one)
	if err != nil || published || again.Seq != 1 || again.Author != "riskd" || again.DirHash != "h1" {
		t.Fatalf("same files again: %+v published=%v err=%v, want version 1 back, not published", again, published, err)
	}
	if _, err := s.Publish(t.Context(), rulesync.Record{Hash: "h2", Author: "alice", Source: rulesync.SourceAPI, DirHash: "h1"}); err != nil {
		t.Fatal(err)
	}
	latest, found, err := s.Latest(t.Context())
	if err != nil || !found || latest.Seq != 2 || latest.Hash != "h2" || latest.Author != "alice" || latest.DirHash != "h1" ||
		latest.Source != rulesync.SourceAPI {
		t.Fatalf("Latest = %+v found=%v err=%v, want alice's version 2 carrying dir hash h1", latest, found, err)
	}
}
