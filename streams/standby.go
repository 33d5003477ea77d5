package streams

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// Standby partitions (Config.Standby).
//
// An instance reads every partition of the inputs anyway, for its shared
// entity windows (shared.go). As a standby it also decides the partitions
// it does not own, without outputs, so it holds their accounts' state as
// their owner does, and keeps each decision until the owner has committed
// past it (the group's committed offsets, asked every CommitInterval).
// When such a partition moves here, nothing is rebuilt: the decisions kept
// between the owner's last commit and where this instance stands are
// output as this instance's own, and deciding goes on from there, so the
// move costs no replay and no event is decided with shared windows that
// hold later events (unless the standby itself had rebuilt the partition's
// accounts behind its shared windows, with engine.PartAccount: such kept
// decisions count in riskd_decided_with_windows_ahead_total when output).
// A partition whose accounts' history this instance cannot rebuild
// (Config.RebuildUnknown off and no state of it) gets no standby. The
// cost is CPU: every instance decides every event,
// so a fleet of standbys does not spread the scoring work, only the
// outputs and the ClickHouse writes; it suits a few instances kept for
// availability. A standby whose owner falls more than Config.StandbyLimit
// decisions behind stops deciding that partition (it goes on adding it to
// the shared windows), so memory stays bounded; the partition's accounts
// are then brought up to date from the log when it moves here, as without
// a standby.

// DefaultStandbyLimit is Config.StandbyLimit's default.
const DefaultStandbyLimit = 50_000

// standbyLog is what this instance decided, as a standby, of one
// partition another instance owns, past that owner's last known commit.
type standbyLog struct {
	// from is the first offset this log was to hold: the standby's
	// decisions cover every offset from there, less those trimmed.
	from int64
	// committed is the group's committed offset of the partition, as last
	// asked (-1: not known yet); n is len(results), for the merger.
	committed atomic.Int64
	n         atomic.Int64
	mu        sync.Mutex
	results   []result // in offset order; part and ticket unset
}

func newStandbyLog(from int64) *standbyLog {
	l := &standbyLog{from: from}
	l.committed.Store(-1)
	return l
}

// add keeps r unless its owner has committed past it already.
func (l *standbyLog) add(r result) {
	if r.msg.Offset < l.committed.Load() {
		return
	}
	l.mu.Lock()
	l.results = append(l.results, r)
	l.n.Store(int64(len(l.results)))
	l.mu.Unlock()
}

// trim notes that the owner committed up to committed and drops what is
// below it.
func (l *standbyLog) trim(committed int64) {
	if committed <= l.committed.Load() {
		return
	}
	l.committed.Store(committed)
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	for i < len(l.results) && l.results[i].msg.Offset < committed {
		i++
	}
	if i > 0 {
		n := copy(l.results, l.results[i:])
		clear(l.results[n:])
		l.results = l.results[:n]
		l.n.Store(int64(n))
	}
}

// handOver returns the decisions kept for offsets from committed up to
// (not including) until, and whether they cover that whole range.
func (l *standbyLog) handOver(committed, until int64) ([]result, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.from > committed {
		return nil, false
	}
	var out []result
	for _, r := range l.results {
		if r.msg.Offset >= committed && r.msg.Offset < until {
			out = append(out, r)
		}
	}
	return out, true
}

// takeOver outputs the decisions rs, which this instance made as a standby
// of in's partition past the group's committed offset (standbyLog.handOver),
// as its own, now that the partition is assigned here.
func (p *Pipeline) takeOver(ctx context.Context, in *mergeInput, rs []result) {
	for _, r := range rs {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return // never output, never committed: read again after a restart
		}
		r.part, r.ticket = in.offsets, in.offsets.add(r.msg.Offset)
		p.m.InFlight.Inc()
		p.results.put(r)
	}
	p.m.StandbyHandedOver.Add(float64(len(rs)))
	for _, r := range rs {
		if r.ahead {
			p.m.DecidedAhead.Inc()
		}
	}
}

// standbyDue stops deciding in's partition as a standby from offset on
// when its owner has left Config.StandbyLimit decisions uncommitted.
func (p *Pipeline) standbyDue(in *mergeInput, offset int64) {
	if in.accountTo != math.MaxInt64 || offset < in.accountFrom || in.standby.n.Load() < int64(p.cfg.StandbyLimit) {
		return
	}
	in.accountTo = offset
	p.log.Warn("standby stopped: the partition's owner has not committed the standby's last decisions; its accounts will be brought up to date from the log if it moves here",
		"topic", in.topic, "partition", in.partition, "at", offset, "kept", in.standby.n.Load(), "owner_committed", in.standby.committed.Load())
}

// pollStandbyCommits asks the broker every CommitInterval where the group
// has committed the standby partitions, trims their logs and notes the
// offsets for the state snapshots, until ctx ends.
func (p *Pipeline) pollStandbyCommits(ctx context.Context, ins []*mergeInput) {
	logs := map[topicPartition]*standbyLog{}
	topics := map[string][]int{}
	for _, in := range ins {
		if in.standby != nil {
			logs[topicPartition{in.topic, in.partition}] = in.standby
			topics[in.topic] = append(topics[in.topic], in.partition)
		}
	}
	if len(logs) == 0 {
		return
	}
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(p.cfg.Brokers...), Transport: transport}
	tick := time.NewTicker(p.cfg.CommitInterval)
	defer tick.Stop()
	var warn warnEvery
	for {
		err := p.standbyCommits(ctx, client, topics, logs)
		var kept int64
		for _, l := range logs {
			kept += l.n.Load()
		}
		p.m.StandbyKept.Set(float64(kept))
		if err != nil && ctx.Err() == nil {
			p.m.Errors.WithLabelValues("fleet").Inc()
			if n, ok := warn.due(time.Now()); ok {
				p.log.Warn("asking the broker where the group committed the standby partitions failed; their decisions are kept meanwhile",
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

func (p *Pipeline) standbyCommits(ctx context.Context, client *kafka.Client, topics map[string][]int, logs map[topicPartition]*standbyLog) error {
	rctx, cancel := context.WithTimeout(ctx, lagTimeout)
	defer cancel()
	res, err := client.OffsetFetch(rctx, &kafka.OffsetFetchRequest{GroupID: p.cfg.Group, Topics: topics})
	if err != nil {
		return fmt.Errorf("committed offsets of group %q: %w", p.cfg.Group, err)
	}
	if res.Error != nil {
		return fmt.Errorf("committed offsets of group %q: %w", p.cfg.Group, res.Error)
	}
	noted := map[string]map[int]int64{}
	for topic, ps := range res.Topics {
		for _, c := range ps {
			l := logs[topicPartition{topic, c.Partition}]
			if l == nil || c.Error != nil || c.CommittedOffset < 0 {
				continue
			}
			l.trim(c.CommittedOffset)
			if noted[topic] == nil {
				noted[topic] = map[int]int64{}
			}
			noted[topic][c.Partition] = c.CommittedOffset
		}
	}
	p.noteCommitted(noted)
	return nil
}
