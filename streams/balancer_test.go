package streams

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestBalancerKeepsPartitionNumbersTogether checks that every member gets
// the same partition numbers of both input topics, whatever order the
// broker lists the partitions in, and that every partition is assigned
// exactly once.
func TestBalancerKeepsPartitionNumbersTogether(t *testing.T) {
	for _, tt := range []struct{ members, partitions int }{{1, 8}, {2, 8}, {3, 8}, {5, 4}, {2, 1}} {
		t.Run(fmt.Sprintf("%d members, %d partitions", tt.members, tt.partitions), func(t *testing.T) {
			var members []kafka.GroupMember
			for i := range tt.members {
				members = append(members, kafka.GroupMember{ID: fmt.Sprintf("m-%d", tt.members-i), Topics: []string{"payments", "account-events"}})
			}
			var parts []kafka.Partition
			for _, topic := range []string{"account-events", "payments"} {
				for i := range tt.partitions { // listed in another order per topic, as a broker may
					parts = append(parts, kafka.Partition{Topic: topic, ID: (i + len(topic)) % tt.partitions})
				}
			}
			got := coPartitioned{}.AssignGroups(members, parts)
			seen := map[string]int{}
			for id, byTopic := range got {
				if !slices.Equal(byTopic["payments"], byTopic["account-events"]) {
					t.Errorf("member %s has payments %v but account-events %v", id, byTopic["payments"], byTopic["account-events"])
				}
				for topic, ps := range byTopic {
					for _, p := range ps {
						seen[fmt.Sprint(topic, p)]++
					}
				}
			}
			if len(seen) != 2*tt.partitions {
				t.Errorf("assigned %d partitions, want %d: %v", len(seen), 2*tt.partitions, slices.Sorted(maps.Keys(seen)))
			}
			for k, n := range seen {
				if n != 1 {
					t.Errorf("%s assigned %d times", k, n)
				}
			}
		})
	}
}
