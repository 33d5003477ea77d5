package streams

import (
	"slices"

	"github.com/segmentio/kafka-go"
)

// coPartitioned is the consumer group's balancer: it gives each member
// whole partition numbers, the same number of every input topic.
//
// Why: an account's payments and its account events are keyed by the
// account, so they land on the same partition number of both topics (same
// key, same partition count), and the account's state (profile, windows,
// locks) is whole only on the instance that reads both. kafka-go's range
// balancer hands out each topic's partitions in the order the broker lists
// them, which need not agree between topics; round robin mixes them on
// purpose. Partition numbers are dealt in ranges over the members sorted
// by id, so every member computes the same answer, and a topic with fewer
// partitions than another simply has no partition for the highest numbers.
//
// Its user data is the member's memberData (fleet.go): the other instances
// read it back from the broker to find an account's owner.
type coPartitioned struct {
	userData []byte
}

func (coPartitioned) ProtocolName() string { return "riskd-copartitioned" }

func (b coPartitioned) UserData() ([]byte, error) { return b.userData, nil }

func (coPartitioned) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	if len(members) == 0 {
		return out
	}
	ids := make([]string, 0, len(members))
	subscribed := map[string]map[string]bool{}
	for _, m := range members {
		ids = append(ids, m.ID)
		subscribed[m.ID] = map[string]bool{}
		for _, t := range m.Topics {
			subscribed[m.ID][t] = true
		}
		out[m.ID] = map[string][]int{}
	}
	slices.Sort(ids)
	var numbers []int
	for _, p := range partitions {
		if !slices.Contains(numbers, p.ID) {
			numbers = append(numbers, p.ID)
		}
	}
	slices.Sort(numbers)
	owner := map[int]string{}
	for i, n := range numbers { // ranges: members get consecutive numbers
		owner[n] = ids[i*len(ids)/len(numbers)]
	}
	for _, p := range partitions {
		id := owner[p.ID]
		if !subscribed[id][p.Topic] {
			// A member that does not read this topic (a rolling
			// upgrade with other inputs): the first one that does.
			for _, other := range ids {
				if subscribed[other][p.Topic] {
					id = other
					break
				}
			}
			if !subscribed[id][p.Topic] {
				continue
			}
		}
		out[id][p.Topic] = append(out[id][p.Topic], p.ID)
	}
	for _, byTopic := range out {
		for _, ps := range byTopic {
			slices.Sort(ps)
		}
	}
	return out
}
