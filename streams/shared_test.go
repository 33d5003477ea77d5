package streams

import (
	"maps"
	"testing"

	"github.com/segmentio/kafka-go"

	"riskd/engine"
)

// TestPartOfSplitsAPartitionsMessages: a partition read from where its
// accounts stand decides what the shared windows hold already with
// PartAccount, the rest with PartAll; one this instance does not decide
// adds everything to the shared windows only; and where the shared
// windows stand behind the accounts, the messages between are added to
// them only. A standby that stopped decides up to where it stopped.
func TestPartOfSplitsAPartitionsMessages(t *testing.T) {
	const never = int64(1<<63 - 1)
	for _, c := range []struct {
		name                    string
		accountFrom, sharedFrom int64
		want                    map[int64]engine.Part
	}{
		{"moved here, shared windows ahead", 10, 20, map[int64]engine.Part{10: engine.PartAccount, 19: engine.PartAccount, 20: engine.PartAll}},
		{"rebuilt from the log start", kafka.FirstOffset, 5, map[int64]engine.Part{0: engine.PartAccount, 5: engine.PartAll}},
		{"fresh", kafka.FirstOffset, kafka.FirstOffset, map[int64]engine.Part{0: engine.PartAll, 9: engine.PartAll}},
		{"another instance's", never, 7, map[int64]engine.Part{7: engine.PartShared, 1000: engine.PartShared}},
		{"shared windows behind", 30, 20, map[int64]engine.Part{20: engine.PartShared, 29: engine.PartShared, 30: engine.PartAll}},
	} {
		in := &mergeInput{accountFrom: c.accountFrom, sharedFrom: c.sharedFrom, accountTo: never}
		for off, want := range c.want {
			if got := in.partOf(off); got != want {
				t.Errorf("%s: offset %d: part %d, want %d", c.name, off, got, want)
			}
		}
	}
	// A standby that stopped at 50: the account part ends there.
	in := &mergeInput{accountFrom: 10, sharedFrom: 10, accountTo: 50}
	for off, want := range map[int64]engine.Part{10: engine.PartAll, 49: engine.PartAll, 50: engine.PartShared} {
		if got := in.partOf(off); got != want {
			t.Errorf("stopped standby: offset %d: part %d, want %d", off, got, want)
		}
	}
	if at := in.accountAt(); at != 10 {
		t.Errorf("stopped standby read nothing yet: account state at %d, want 10", at)
	}
	in.next = 70
	if at := in.accountAt(); at != 50 {
		t.Errorf("stopped standby: account state at %d, want 50", at)
	}
}

// TestSharedPositionsResume: a state saved before the shared windows had
// positions of their own resumes them where its accounts stand; a newer
// one where it says, for partitions it does not decide too.
func TestSharedPositionsResume(t *testing.T) {
	accounts := map[string]map[int]int64{"payments": {0: 40, 1: 50}}
	old := New(Config{Topics: Topics{Inputs: []string{"payments"}}, Resume: accounts}, nil, nil, nil)
	want := map[topicPartition]int64{{"payments", 0}: 40, {"payments", 1}: 50}
	if !maps.Equal(old.sharedAt, want) {
		t.Errorf("shared positions from an older state: %v, want %v", old.sharedAt, want)
	}
	shared := map[string]map[int]int64{"payments": {0: 40, 1: 55, 2: 61}}
	p := New(Config{Topics: Topics{Inputs: []string{"payments"}}, Resume: accounts, ResumeShared: shared}, nil, nil, nil)
	want = map[topicPartition]int64{{"payments", 0}: 40, {"payments", 1}: 55, {"payments", 2}: 61}
	if !maps.Equal(p.sharedAt, want) {
		t.Errorf("shared positions: %v, want %v", p.sharedAt, want)
	}
	if _, ok := p.stateAt[topicPartition{"payments", 2}]; ok {
		t.Error("a partition another instance decides has an account position")
	}
}
