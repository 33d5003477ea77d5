package rulesync_test

import (
	"testing"

	"riskd/streams/rulesync"
)

// Candidates share the topic and its numbering with live versions but
// never pass for one: Latest steps over them, and a follower starting
// late gets the newest record of each key, the live one first.
func TestCandidateRecordsAreFollowedBesideTheLiveVersion(t *testing.T) {
	s, err := rulesync.New(rulesync.Config{Brokers: []string{startBroker(t)}, Topic: "rules-candidate"})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(rec rulesync.Record) uint64 {
		t.Helper()
		seq, err := s.Publish(t.Context(), rec)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	publish(rulesync.Record{Hash: "live1", Author: "riskd"})
	publish(rulesync.Record{Hash: "cand1", Author: "alice", Candidate: true})
	publish(rulesync.Record{Hash: "live2", Author: "bob"})
	publish(rulesync.Record{Hash: "cand2", Author: "alice", Candidate: true})
	if seq := publish(rulesync.Record{Hash: "cand3", Author: "carol", Candidate: true}); seq != 5 {
		t.Fatalf("fifth record has seq %d, want 5", seq)
	}

	latest, found, err := s.Latest(t.Context())
	if err != nil || !found || latest.Hash != "live2" || latest.Seq != 3 || latest.Candidate {
		t.Fatalf("Latest = %+v found=%v err=%v, want live2 at seq 3 behind two candidates", latest, found, err)
	}

	got := follow(t, s, "refuse-none").wait(t, 2)
	if len(got) != 2 || got[0].Hash != "live2" || got[0].Candidate || got[1].Hash != "cand3" || !got[1].Candidate || got[1].Seq != 5 {
		t.Fatalf("a late follower applied %+v, want live2 then candidate cand3 (seq 5)", got)
	}

	// Live: a drop (a candidate record without files) and a new version
	// each arrive as they are published.
	f := follow(t, s, "refuse-none")
	f.wait(t, 2)
	publish(rulesync.Record{Author: "alice", Candidate: true})
	publish(rulesync.Record{Hash: "live3", Author: "alice"})
	got = f.wait(t, 4)
	if !got[2].Candidate || got[2].Hash != "" || got[3].Candidate || got[3].Hash != "live3" {
		t.Fatalf("live records applied %+v, want the drop then live3", got[2:])
	}
}
