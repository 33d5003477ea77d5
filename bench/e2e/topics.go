package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/streams"
)

// createTopics creates riskd's input and output topics before riskd
// starts. Output topics get max.message.bytes = outputMaxBytes when it is
// positive: riskd's output writer sends up to 16 MiB per partition request
// (streams.Pipeline, BatchBytes) while Kafka and kfake refuse record
// batches above 1 MiB by default, so at saturation riskd retries those
// writes forever and stops committing. Raising the topic limit, as an
// operator could, lets the benchmark measure the rest of the pipeline;
// -output-max-bytes 0 reproduces the failure.
func createTopics(ctx context.Context, brokers []string, partitions, outputMaxBytes int, t streams.Topics) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	for _, name := range t.Inputs {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: name, NumPartitions: partitions, ReplicationFactor: -1})
	}
	for _, name := range []string{t.Decisions, t.Alerts, t.Actions, t.DLQ} {
		tc := kafka.TopicConfig{Topic: name, NumPartitions: partitions, ReplicationFactor: -1}
		if outputMaxBytes > 0 {
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(outputMaxBytes)}}
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var errs []error
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
