package streams

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// partitionOffsets tracks the messages of one partition from fetch until
// everything they produced is durable, and says how far the partition may
// be committed: up to the first message that is not durable yet. Offsets
// are added in fetch order (increasing) but finish in any order, because
// a partition's accounts spread over several shards.
type partitionOffsets struct {
	mu sync.Mutex
	// pending holds fetched offsets in order from head; done marks the
	// finished ones. seq numbers are positions in this stream of adds, so
	// a message finds its slot without searching.
	pending []pendingOffset
	head    int    // index in pending of the oldest unfinished entry
	headSeq uint64 // seq of pending[head]
	nextSeq uint64
	// next is the offset to commit: one past the last offset whose
	// message and every earlier one are durable. -1 until one is.
	next int64
}

type pendingOffset struct {
	offset int64
	done   bool
}

func newPartitionOffsets() *partitionOffsets { return &partitionOffsets{next: -1} }

// add records a fetched offset and returns its ticket for finish.
func (p *partitionOffsets) add(offset int64) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head > 0 && p.head >= len(p.pending)/2 { // reclaim the finished front
		n := copy(p.pending, p.pending[p.head:])
		p.pending = p.pending[:n]
		p.head = 0
	}
	p.pending = append(p.pending, pendingOffset{offset: offset})
	seq := p.nextSeq
	p.nextSeq++
	return seq
}

// finish marks the message with ticket seq durable and advances the
// commit point over every finished message at the front.
func (p *partitionOffsets) finish(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.head + int(seq-p.headSeq)
	if seq < p.headSeq || i >= len(p.pending) {
		return // finished twice, or not ours: never move the commit point for it
	}
	p.pending[i].done = true
	for p.head < len(p.pending) && p.pending[p.head].done {
		p.next = p.pending[p.head].offset + 1
		p.head++
		p.headSeq++
	}
}

// committable returns the offset to commit (the next one to read) and
// how many messages are still in flight; next is -1 before any finished.
func (p *partitionOffsets) committable() (next int64, inFlight int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next, len(p.pending) - p.head
}

func itoa(i int) string { return strconv.Itoa(i) }

// lagTimeout bounds one round of lag questions to the broker, so an
// unreachable broker delays the next round instead of wedging the monitor.
const lagTimeout = 10 * time.Second

// runLag sets riskd_consumer_lag for every partition assigned to this
// instance, every LagInterval and at once when the assignment changes, from
// the broker's answers alone: the partition's end offset (ListOffsets,
// latest) less the group's committed offset (OffsetFetch). Neither comes
// from the readers, so the gauge keeps rising while intake is held back
// (ClickHouse away, outputs refused: nothing is fetched, nothing
// committed), which is when it matters. A partition with nothing committed
// counts from the start of its log, where the group starts. Series of
// partitions no longer assigned are removed. It returns when ctx ends.
func (p *Pipeline) runLag(ctx context.Context) {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(p.cfg.Brokers...), Transport: transport}
	tick := time.NewTicker(p.cfg.LagInterval)
	defer tick.Stop()
	shown := map[topicPartition]bool{}
	var warn warnEvery
	for {
		rctx, cancel := context.WithTimeout(ctx, lagTimeout)
		err := p.updateLag(rctx, client, p.health.assignment(), shown)
		cancel()
		if err != nil && ctx.Err() == nil {
			p.m.Errors.WithLabelValues("lag").Inc()
			if n, ok := warn.due(time.Now()); ok {
				p.log.Warn("asking the broker for the consumer lag failed; riskd_consumer_lag keeps its last values",
					"failures", n, "err", err)
			}
		}
		select {
		case <-tick.C:
		case <-p.health.assigned:
		case <-ctx.Done():
			return
		}
	}
}

type topicPartition struct {
	topic     string
	partition int
}

// updateLag asks the broker about parts and sets their lag gauges; shown
// is the set of partitions with a gauge, kept across calls.
func (p *Pipeline) updateLag(ctx context.Context, client *kafka.Client, parts []partitionState, shown map[topicPartition]bool) error {
	assigned := map[topicPartition]bool{}
	for _, ps := range parts {
		assigned[topicPartition{ps.topic, ps.partition}] = true
	}
	for tp := range shown {
		if !assigned[tp] {
			p.m.Lag.DeleteLabelValues(tp.topic, itoa(tp.partition))
			delete(shown, tp)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	ends, err := listOffsets(ctx, client, parts, kafka.LastOffsetOf)
	if err != nil {
		return err
	}
	byTopic := map[string][]int{}
	for _, ps := range parts {
		byTopic[ps.topic] = append(byTopic[ps.topic], ps.partition)
	}
	res, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: p.cfg.Group, Topics: byTopic})
	if err != nil {
		return fmt.Errorf("committed offsets of group %q: %w", p.cfg.Group, err)
	}
	if res.Error != nil {
		return fmt.Errorf("committed offsets of group %q: %w", p.cfg.Group, res.Error)
	}
	var errs []error
	committed := map[topicPartition]int64{}
	var uncommitted []partitionState
	for topic, ps := range res.Topics {
		for _, c := range ps {
			tp := topicPartition{topic, c.Partition}
			switch {
			case !assigned[tp]:
			case c.Error != nil:
				errs = append(errs, fmt.Errorf("committed offset of %s/%d: %w", topic, c.Partition, c.Error))
			case c.CommittedOffset < 0:
				uncommitted = append(uncommitted, partitionState{topic: topic, partition: c.Partition})
			default:
				committed[tp] = c.CommittedOffset
			}
		}
	}
	if len(uncommitted) > 0 {
		starts, err := listOffsets(ctx, client, uncommitted, kafka.FirstOffsetOf)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		maps.Copy(committed, starts)
	}
	for tp, end := range ends {
		from, ok := committed[tp]
		if !ok {
			continue // an error above says why
		}
		p.m.Lag.WithLabelValues(tp.topic, itoa(tp.partition)).Set(float64(max(end-from, 0)))
		shown[tp] = true
	}
	return errors.Join(errs...)
}

// listOffsets asks the broker for one offset of each partition (which one:
// kafka.LastOffsetOf or kafka.FirstOffsetOf). One request asks one kind
// only: brokers refuse a partition listed twice, and kafka-go files both
// answers under PartitionOffsets.LastOffset anyway, since brokers answer
// either with timestamp -1 (the value of kafka.LastOffset); answered reads
// whichever field the answer landed in.
func listOffsets(ctx context.Context, client *kafka.Client, parts []partitionState, which func(int) kafka.OffsetRequest) (map[topicPartition]int64, error) {
	req := map[string][]kafka.OffsetRequest{}
	for _, ps := range parts {
		req[ps.topic] = append(req[ps.topic], which(ps.partition))
	}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, fmt.Errorf("partition offsets: %w", err)
	}
	out := map[topicPartition]int64{}
	var errs []error
	for topic, pos := range res.Topics {
		for _, po := range pos {
			if po.Error != nil {
				errs = append(errs, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error))
				continue
			}
			out[topicPartition{topic, po.Partition}] = answered(po)
		}
	}
	return out, errors.Join(errs...)
}

// answered is the one offset a single-kind ListOffsets answer carries.
func answered(po kafka.PartitionOffsets) int64 {
	if po.LastOffset >= 0 {
		return po.LastOffset
	}
	return po.FirstOffset
}

// warnEvery lets a loop that fails repeatedly log once per warnInterval,
// with the number of failures since its last line.
type warnEvery struct {
	mu   sync.Mutex
	last time.Time
	n    int
}

const warnInterval = 10 * time.Second

// due counts one failure and reports whether to log now, and how many
// failures the line stands for.
func (w *warnEvery) due(now time.Time) (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	if now.Sub(w.last) < warnInterval {
		return 0, false
	}
	n := w.n
	w.last, w.n = now, 0
	return n, true
}
