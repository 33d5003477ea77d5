package streams

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// EnsureTopics creates the topics that do not exist yet, each with
// partitions partitions. Brokers that disable auto-creation (production
// Kafka usually does) would otherwise fail riskd's first write.
func EnsureTopics(ctx context.Context, brokers []string, partitions int, topics ...string) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: -1})
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("streams: create topics %v: %w", topics, err)
	}
	var errs []error
	for t, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("streams: create topic %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// All returns every topic the stream scorer reads or writes.
func (t Topics) All() []string {
	return append(append([]string(nil), t.Inputs...), t.Decisions, t.Alerts, t.Actions, t.DLQ)
}

// Embedded is a Kafka-protocol broker inside the process (franz-go's kfake),
// for the demo and fast tests. It speaks the real wire protocol, so
// kafka-go, kcat and any other client can use it; it is not Apache Kafka
// (no replication, simplified retention), and production points at real brokers.
type Embedded struct {
	cluster *kfake.Cluster
	addr    string
}

// StartEmbedded starts a one-broker cluster listening on addr
// ("127.0.0.1:9092"; port 0 picks a free one). With dataDir set the broker
// keeps its log there across restarts.
func StartEmbedded(addr, dataDir string) (*Embedded, error) {
	var bound string
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			l, err := net.Listen(network, addr)
			if err == nil {
				bound = l.Addr().String()
			}
			return l, err
		}),
		kfake.AllowAutoTopicCreation(),
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("streams: embedded broker on %s: %w", addr, err)
	}
	return &Embedded{cluster: c, addr: bound}, nil
}

// Addr is the address clients connect to.
func (e *Embedded) Addr() string { return e.addr }

// Close stops the broker.
func (e *Embedded) Close() { e.cluster.Close() }
