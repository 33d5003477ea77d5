package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// bareResult is the yardstick: how fast kafka-go alone drains the inputs.
type bareResult struct {
	Messages     int64         `json:"messages"`
	Duration     time.Duration `json:"duration_ns"`
	EventsPerSec float64       `json:"events_per_sec"`
	Load1        float64       `json:"load1"`
}

// endOffsets returns the next offset to be written (the high watermark)
// of each partition of each topic.
func endOffsets(ctx context.Context, brokers []string, topics []string, partitions int) (map[string][]int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range topics {
		for p := 0; p < partitions; p++ {
			req.Topics[t] = append(req.Topics[t], kafka.LastOffsetOf(p))
		}
	}
	resp, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	out := map[string][]int64{}
	for t, parts := range resp.Topics {
		out[t] = make([]int64, partitions)
		for _, po := range parts {
			if po.Error != nil {
				return nil, fmt.Errorf("list offsets %s/%d: %w", t, po.Partition, po.Error)
			}
			out[t][po.Partition] = po.LastOffset
		}
	}
	return out, nil
}

// bareConsume reads every partition from the start to ends with one
// kafka-go Reader each, configured like riskd's readers (MinBytes 1,
// MaxBytes 8 MiB, MaxWait 100 ms) and doing nothing with the messages: the
// ceiling riskd's intake can reach on this broker and machine.
func bareConsume(ctx context.Context, brokers []string, ends map[string][]int64) (bareResult, error) {
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	start := time.Now()
	for topic, parts := range ends {
		for p, end := range parts {
			if end <= 0 {
				continue
			}
			wg.Go(func() {
				r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p,
					MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
				defer r.Close()
				for {
					m, err := r.FetchMessage(ctx)
					if err != nil {
						errs <- fmt.Errorf("bare consumer %s/%d: %w", topic, p, err)
						return
					}
					total.Add(1)
					if m.Offset+1 >= end {
						return
					}
				}
			})
		}
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return bareResult{}, err
	}
	n := total.Load()
	return bareResult{Messages: n, Duration: d, EventsPerSec: float64(n) / d.Seconds(), Load1: load1()}, nil
}
