package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// Who owns an account: the fleet as the consumer group describes it.
//
// Every instance puts its name and the address of its API in its group
// membership (the balancer's user data, memberData). Run asks the broker
// for the group's members and their assignments every FleetInterval
// (DescribeGroups), so Owner can say which instance reads an account's
// partition and where its API answers: the decide API forwards a call to
// that instance, whose state has the account (api.DecideConfig.Router).

// memberData is what an instance says of itself in the group.
type memberData struct {
	Instance string `json:"instance"`
	API      string `json:"api,omitempty"`
}

// maxMemberData bounds the user data read back from the group: anything
// longer is not riskd's and is ignored.
const maxMemberData = 4 << 10

// Member is one riskd instance of the group: its name, where its API
// answers ("http://host:port", empty when it did not say), and the
// partition numbers it reads.
type Member struct {
	Instance   string
	API        string
	Partitions []int
}

// fleetView is the group as last described: the owner of each partition
// number and the inputs' partition count.
type fleetView struct {
	owners map[int]Member
	// numbers are the partition numbers 0..n-1 of the inputs, as a
	// partitioner takes them.
	numbers []int
	// peers is whether another instance owns a partition.
	peers bool
}

// Partitioners name how producers map an account key to a partition:
// "fnv1a" is kafka-go's Hash and Sarama's default (riskctl gen and the
// demo produce with it), "murmur2" the Java client's and librdkafka's
// consistent default.
const (
	PartitionerFNV1a   = "fnv1a"
	PartitionerMurmur2 = "murmur2"
)

// partitionOf returns which of numbers (0..n-1) a producer with the
// partitioner sends key to.
func partitionOf(partitioner, key string, numbers []int) int {
	msg := kafka.Message{Key: []byte(key)}
	if partitioner == PartitionerMurmur2 {
		return kafka.Murmur2Balancer{Consistent: true}.Balance(msg, numbers...)
	}
	return (&kafka.Hash{}).Balance(msg, numbers...)
}

// SetAPI says where this instance's API answers ("http://host:port"), for
// the other instances to forward decide calls to. Call it before Run.
func (p *Pipeline) SetAPI(url string) { p.apiURL = url }

// Owner returns the member that reads accountID's partition, by the
// group's last description; ok is false while none is known (before the
// first description, or a partition between owners).
func (p *Pipeline) Owner(accountID string) (m Member, ok bool) {
	v := p.fleet.Load()
	if v == nil || len(v.numbers) == 0 {
		return Member{}, false
	}
	m, ok = v.owners[partitionOf(p.cfg.Partitioner, accountID, v.numbers)]
	return m, ok
}

// HasPeers reports whether, by the group's last description, another
// instance reads some partition of the inputs.
func (p *Pipeline) HasPeers() bool {
	v := p.fleet.Load()
	return v != nil && v.peers
}

// runFleet describes the group every FleetInterval until ctx ends.
func (p *Pipeline) runFleet(ctx context.Context) {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(p.cfg.Brokers...), Transport: transport}
	tick := time.NewTicker(p.cfg.FleetInterval)
	defer tick.Stop()
	var warn warnEvery
	for {
		rctx, cancel := context.WithTimeout(ctx, lagTimeout)
		v, err := p.describeFleet(rctx, client)
		cancel()
		switch {
		case err == nil:
			p.fleet.Store(v)
		case ctx.Err() == nil:
			p.m.Errors.WithLabelValues("fleet").Inc()
			if n, ok := warn.due(time.Now()); ok {
				p.log.Warn("describing the consumer group failed; the decide API forwards by the last description",
					"failures", n, "err", err)
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// describeFleet asks the broker for the group's members, what they say of
// themselves and what they read, and for the inputs' partition count.
func (p *Pipeline) describeFleet(ctx context.Context, client *kafka.Client) (*fleetView, error) {
	res, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{p.cfg.Group}})
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", p.cfg.Group, err)
	}
	v := &fleetView{owners: map[int]Member{}}
	for _, g := range res.Groups {
		if g.Error != nil {
			return nil, fmt.Errorf("describe group %s: %w", p.cfg.Group, g.Error)
		}
		for _, gm := range g.Members {
			var md memberData
			if ud := gm.MemberMetadata.UserData; len(ud) == 0 || len(ud) > maxMemberData || json.Unmarshal(ud, &md) != nil || md.Instance == "" {
				continue // not a riskd that says who it is (an older one)
			}
			m := Member{Instance: md.Instance, API: md.API}
			for _, t := range gm.MemberAssignments.Topics {
				for _, n := range t.Partitions {
					if !slices.Contains(m.Partitions, n) {
						m.Partitions = append(m.Partitions, n)
					}
				}
			}
			slices.Sort(m.Partitions)
			for _, n := range m.Partitions {
				v.owners[n] = m
			}
			v.peers = v.peers || (md.Instance != p.cfg.Instance && len(m.Partitions) > 0)
		}
	}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: p.cfg.Topics.Inputs[:1]})
	if err != nil {
		return nil, fmt.Errorf("inputs' partitions: %w", err)
	}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("inputs' partitions: %s: %w", t.Name, t.Error)
		}
		v.numbers = make([]int, len(t.Partitions))
		for i := range v.numbers {
			v.numbers[i] = i
		}
	}
	return v, nil
}

// memberUserData is this instance's group user data.
func (p *Pipeline) memberUserData() []byte {
	b, _ := json.Marshal(memberData{Instance: p.cfg.Instance, API: p.apiURL})
	return b
}
