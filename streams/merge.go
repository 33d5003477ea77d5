package streams

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/engine"
	"riskd/event"
)

// Merging the partitions in event-time order.
//
// An instance reads many partitions (of both input topics) at once, and
// their readers drift apart: after a restart or an outage one partition's
// backlog is read faster than another's. Handed to the engine as fetched,
// the events of a shared entity (a payee, a device) would reach its
// windows in an order set by reader speed, minutes of event time out of
// order, and the same stream would give other features on every run. So,
// as Kafka Streams does for the partitions of a task, every partition's
// reader fills a small buffer, and one merger hands the engine the
// buffered message with the smallest event time. When a partition has
// nothing buffered but the broker has records for it (its backlog is not
// read yet), the merger waits for them, up to Config.MergeWait; when it has
// nothing because it is caught up, the merger goes on without it after
// Config.MaxIdle (0 by default: live traffic is not held back by a quiet
// partition). A backlog is therefore decided in the same order however its
// readers are scheduled, and one slow reader holds the others back instead
// of making their events late.

// A partition's fetcher hands the merger its messages in batches of up to
// mergeBatch, as many as the reader has fetched already (one, on live
// traffic read as it comes); mergeBatches of them go round between the
// two, so the merger has up to mergeBatches-1 full ones buffered while
// the fetcher fills the last: enough to cover a fetch round trip, small
// next to the reader's own prefetch. Handed over one at a time, each
// message cost two channel operations, and, with a backlog, a wakeup of
// the fetcher blocked on the full buffer.
const (
	mergeBatch   = 32
	mergeBatches = 4
)

// mergeInput is one assigned partition as the merger sees it.
type mergeInput struct {
	topic     string
	partition int
	// recoverAtOutputs: the partition moved here this generation, so the
	// store's recovery window is restarted when its first message with
	// outputs is submitted (after the replay up to the committed offset),
	// as its previous owner may have stored decisions from there on.
	recoverAtOutputs bool
	offsets          *partitionOffsets
	reader           *partitionReader
	// buf is filled by the partition's fetcher, emptied by the merger,
	// which gives each batch back through free once it has taken its
	// messages.
	buf, free chan *fetchedBatch
	// behind reports records on the broker that are not in buf yet, as of
	// the last fetch (or the end offset asked for when the generation
	// started).
	behind atomic.Bool

	// next is the offset after the last message submitted (at first, where
	// reading starts; kafka.FirstOffset: the log start): where the
	// engine's state stands for this partition (see cutDue).
	next int64
	// replayUntil: messages below it are decided again only to rebuild the
	// restored state (see Config.Resume); -1 when there are none.
	replayUntil int64
	// owned marks a partition the group assigned to this instance; the
	// others are read for the shared entity windows only (shared.go).
	// accountFrom and sharedFrom are the offsets from which a message
	// updates the account state (math.MaxInt64: never, not owned) and the
	// shared entity windows; kafka.FirstOffset: from the first.
	owned                   bool
	accountFrom, sharedFrom int64
	// accountTo ends the account part (math.MaxInt64: no end): where a
	// standby stopped deciding the partition (standby.go). standby is the
	// log of a partition this instance decides as a standby, nil if none.
	accountTo int64
	standby   *standbyLog
	// progress mirrors next for Ready, which runs on other goroutines.
	progress *partitionProgress

	// The merger's own: the batch it takes heads from and how many of its
	// messages it took, the head message, its event time, and since when
	// the partition has had no head.
	taking     *fetchedBatch
	took       int
	head       kafka.Message
	headAt     time.Time // when the head was fetched (riskd_stage_seconds)
	hasHead    bool
	headTS     int64
	emptySince time.Time
	waitedOut  bool // MergeWait ran out for the current gap; said once
}

// fetch reads in's partition into its buffer until ctx ends.
func (p *Pipeline) fetch(ctx context.Context, in *mergeInput, arrived chan<- struct{}) {
	for {
		if p.beforeFetch != nil {
			p.beforeFetch(ctx, in.topic, in.partition)
		}
		var b *fetchedBatch
		select {
		case b = <-in.free:
		case <-ctx.Done():
			return
		}
		room := b.msgs[:0]
		if p.beforeFetch != nil {
			room = b.msgs[:0:1] // a test paces the fetches: one message each
		}
		msgs, err := in.reader.FetchMessages(ctx, room)
		if err != nil {
			in.free <- b // never blocks: free has room for every batch
			if ctx.Err() != nil {
				return
			}
			p.m.Errors.WithLabelValues("fetch").Inc()
			p.log.Warn("fetch failed; retrying", "topic", in.topic, "partition", in.partition, "err", err)
			sleepCtx(ctx, p.cfg.RetryMin)
			continue
		}
		// Raise behind before the messages are visible and lower it after,
		// so the merger never sees an empty buffer and a stale "caught up"
		// while more records are on their way.
		last := msgs[len(msgs)-1]
		more := last.HighWaterMark > last.Offset+1
		if more {
			in.behind.Store(true)
		}
		b.msgs, b.at = msgs, time.Now()
		for _, m := range msgs {
			if !m.Time.IsZero() {
				p.stages[stageFetch].Observe(b.at.Sub(m.Time).Seconds())
			}
		}
		in.buf <- b // never blocks: buf has room for every batch
		if !more {
			in.behind.Store(false)
		}
		select {
		case arrived <- struct{}{}:
		default:
		}
	}
}

// merge hands the engine the buffered message with the smallest event time
// of all inputs, waiting for inputs that are behind (see above), until ctx
// ends. Messages left in the buffers were never submitted, so they are not
// committed and are read again by whoever gets the partition next.
func (p *Pipeline) merge(ctx, outCtx context.Context, ins []*mergeInput, arrived <-chan struct{}) {
	var peek event.TSPeeker
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	consumed := make(map[string]prometheusCounter, len(ins))
	for _, in := range ins {
		if consumed[in.topic] == nil {
			consumed[in.topic] = p.m.Consumed.WithLabelValues(in.topic)
		}
	}
	gone := make(chan struct{})
	p.cmdMu.Lock()
	p.mergerGone = gone
	p.cmdMu.Unlock()
	defer func() {
		p.cmdMu.Lock()
		p.mergerGone = nil
		p.cmdMu.Unlock()
		close(gone)
	}()
	for {
		select { // a support command waits for no more than one message
		case req := <-p.commands:
			p.acceptCommand(outCtx, ins, req)
		default:
		}
		if len(p.placed) > 0 && !p.placeDue(outCtx, ins) {
			return
		}
		var pick *mergeInput
		var wake time.Time // the earliest deadline of an input waited for
		var now time.Time
		for _, in := range ins {
			if !in.hasHead && in.nextHead() {
				// A message the engine will refuse (undecodable, or dated
				// too far ahead) goes out at once: it changes no state,
				// and holding it would hold its partition.
				in.headTS = math.MinInt64
				if ts, ok := peek.TS(in.head.Value); ok && !p.eng.AheadOfClock(ts) {
					in.headTS = ts
				}
				in.emptySince, in.waitedOut = time.Time{}, false
			}
			if in.hasHead {
				if pick == nil || in.headTS < pick.headTS {
					pick = in
				}
				continue
			}
			limit := p.cfg.MaxIdle
			if in.behind.Load() {
				limit = p.cfg.MergeWait
			}
			if limit <= 0 {
				continue
			}
			if now.IsZero() {
				now = time.Now()
			}
			if in.emptySince.IsZero() {
				in.emptySince = now
			}
			until := in.emptySince.Add(limit)
			if !now.Before(until) {
				if !in.waitedOut && in.behind.Load() {
					in.waitedOut = true
					p.m.Errors.WithLabelValues("merge").Inc()
					p.log.Warn("a partition with unread records sent nothing in time; merging without it, so its events may come late",
						"topic", in.topic, "partition", in.partition, "waited", limit)
				}
				continue
			}
			if wake.IsZero() || until.Before(wake) {
				wake = until
			}
		}
		if !p.leaveAt.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			p.dropLeft(outCtx, now)
		}
		if pick == nil || !wake.IsZero() {
			// An idle merger wakes to drop what lingers too.
			if at := p.leaveAt; !at.IsZero() && (wake.IsZero() || at.Before(wake)) {
				timer.Reset(time.Until(at))
			} else if !wake.IsZero() {
				timer.Reset(time.Until(wake))
			}
			select {
			case <-arrived:
			case req := <-p.commands:
				p.acceptCommand(outCtx, ins, req)
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return
			}
			if !timer.Stop() {
				select { // drain a fire that raced with the arrival
				case <-timer.C:
				default:
				}
			}
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		p.cutDue(outCtx, ins, now)
		if !p.takeSlot(ctx, outCtx, ins) {
			return
		}
		m, fetchedAt := pick.head, pick.headAt
		if pick.owned && len(p.placed) > 0 && !p.placeBefore(outCtx, pick, m.Offset) {
			<-p.slots
			return
		}
		pick.hasHead, pick.head = false, kafka.Message{}
		if pick.owned { // the others count in riskd_shared_window_events_total or as a standby's
			consumed[pick.topic].Inc()
		}
		if pick.standby != nil {
			p.standbyDue(pick, m.Offset)
		}
		if !p.submit(outCtx, pick, m, fetchedAt) {
			return
		}
		pick.next = m.Offset + 1
		pick.progress.next.Store(pick.next)
	}
}

// takeSlot waits for an in-flight slot, serving support commands
// meanwhile: while the output stage holds intake back (ClickHouse away),
// a lock still takes effect at once. It reports false when ctx ended.
func (p *Pipeline) takeSlot(ctx, outCtx context.Context, ins []*mergeInput) bool {
	// Most of the time a slot is free. Two checks that wait for nothing
	// cost a fraction of the select below, which locks all of its
	// channels for every message (0.15 µs per decision in the profile).
	// Commands are not starved: merge serves them before every message.
	select {
	case <-ctx.Done():
		return false
	default:
	}
	select {
	case p.slots <- struct{}{}:
		return true
	default:
	}
	for { // full: wait, serving commands meanwhile
		select {
		case p.slots <- struct{}{}:
			return true
		case req := <-p.commands:
			p.acceptCommand(outCtx, ins, req)
		case <-ctx.Done():
			return false
		}
	}
}

// prometheusCounter is the one method of a prometheus.Counter merge uses.
type prometheusCounter interface{ Inc() }

// submit hands m to the engine; its decision goes to the output stage, or,
// for a replayed message (decided again to rebuild the restored state; its
// outputs are durable from the first time), nowhere. It reports false when
// the engine refused it (shutting down).
func (p *Pipeline) submit(outCtx context.Context, in *mergeInput, m kafka.Message, fetchedAt time.Time) bool {
	part, replay, offsets := in.partOf(m.Offset), m.Offset < in.replayUntil, in.offsets
	if in.recoverAtOutputs && !replay && in.owned {
		in.recoverAtOutputs = false
		p.recoverStore()
	}
	p.m.InFlight.Inc()
	ticket := offsets.add(m.Offset)
	submitted := time.Now()
	p.stages[stageMerge].Observe(submitted.Sub(fetchedAt).Seconds())
	var done func(*engine.Decision, error) // a decision for the output stage when left nil
	switch {
	case part != engine.PartShared && !in.owned:
		// Decided as a standby: kept until the owner commits past it.
		done = p.standbyDone(in.standby, m, part == engine.PartAccount, offsets, ticket)
	case part == engine.PartAccount && !replay:
		p.m.DecidedAhead.Inc()
	case part == engine.PartShared:
		// Another instance decides it (or decided it: a partition that
		// moved here); errors are its to report.
		produced := m.Time
		done = func(*engine.Decision, error) {
			p.settle(offsets, ticket)
			p.m.SharedOnly.Inc()
			if !produced.IsZero() && !replay {
				p.m.SharedDelay.Observe(time.Since(produced).Seconds())
			}
		}
	case replay:
		done = func(*engine.Decision, error) {
			p.settle(offsets, ticket)
			p.m.Replayed.Inc()
		}
	}
	var sub *submission
	if done == nil {
		sub = p.submissions.Get().(*submission)
		sub.p, sub.msg, sub.offsets, sub.ticket, sub.submitted = p, m, offsets, ticket, submitted
		done = sub.done
	}
	// Submit with the output stage's context: a message already fetched
	// is handed over even while intake is stopping, so the drain covers it.
	err := p.eng.Submit(outCtx, engine.Message{
		Value:  m.Value,
		Key:    m.Key,
		Source: engine.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset},
		Part:   part,
		Done:   done,
	})
	if err != nil {
		// Not accepted: never finished, so never committed past; the
		// message is read again after a restart.
		if sub != nil {
			sub.release() // Done is never called for a message not accepted
		}
		p.log.Warn("engine refused a message; it stays uncommitted", "err", err)
		return false
	}
	return true
}

// standbyDone is Done for a message decided as a standby (standby.go).
// It is a function of its own so that only this rare path copies m to the
// heap: a closure in submit that captured m moved it there for every
// message.
func (p *Pipeline) standbyDone(log *standbyLog, m kafka.Message, ahead bool, offsets *partitionOffsets, ticket uint64) func(*engine.Decision, error) {
	return func(d *engine.Decision, err error) {
		log.add(result{d: d, err: err, msg: m, ahead: ahead})
		p.settle(offsets, ticket)
		p.m.StandbyDecided.Inc()
	}
}

// submission is what a stream message's result needs besides its
// decision, from submit to the shard's Done. A closure per message
// carried it before: 200 bytes (the kafka.Message by value) allocated for
// every decision in the harness's in-process profile. A submission is
// pooled instead, and its Done bound once: the engine calls Done exactly
// once per accepted message, after which nothing refers to the submission.
type submission struct {
	p         *Pipeline
	msg       kafka.Message
	offsets   *partitionOffsets
	ticket    uint64
	submitted time.Time
	done      func(*engine.Decision, error) // decided, bound to this submission
}

// newSubmission is the New of a Pipeline's pool of submissions.
func newSubmission() any {
	s := new(submission)
	s.done = s.decided
	return s
}

// decided puts the message's result on the output stage's queue and the
// submission back in the pool.
func (s *submission) decided(d *engine.Decision, err error) {
	r := result{d: d, err: err, msg: s.msg, part: s.offsets, ticket: s.ticket}
	if err == nil {
		// The shard's wait is what the engine took less its scoring.
		// The output stage observes it (observeDecided).
		r.queued, r.timed = max(0, time.Since(s.submitted)-d.Latency), true
	}
	p := s.p
	s.release()
	p.results.put(r)
}

// release empties s, so the pool holds no message, and pools it.
func (s *submission) release() {
	p := s.p
	*s = submission{done: s.done}
	p.submissions.Put(s)
}

// settle frees a message whose decision goes to no output: its offset is
// done and its slot free as soon as the engine has taken it in.
func (p *Pipeline) settle(offsets *partitionOffsets, ticket uint64) {
	offsets.finish(ticket)
	<-p.slots
	p.m.InFlight.Dec()
}

// markBehind asks the broker where each input's log starts and ends, so
// the merger knows from the first message which partitions have a backlog
// to wait for (a partition with nothing to read never returns a fetch, so
// only the broker can say it is caught up). If the broker does not answer
// after a few tries, every partition counts as caught up: the generation
// starts in arrival order rather than not at all, and says so.
func (p *Pipeline) markBehind(ctx context.Context, ins []*mergeInput) {
	if len(ins) == 0 {
		return
	}
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(p.cfg.Brokers...), Transport: transport}
	starts := map[topicPartition]int64{}
	var fromFirst, all []partitionState
	for _, in := range ins {
		ps := partitionState{topic: in.topic, partition: in.partition}
		all = append(all, ps)
		if in.next < 0 {
			fromFirst = append(fromFirst, ps)
		} else {
			starts[topicPartition{in.topic, in.partition}] = in.next
		}
	}
	var err error
	for try := 0; try < 3 && ctx.Err() == nil; try++ {
		if try > 0 {
			sleepCtx(ctx, p.cfg.RetryMin<<try)
		}
		rctx, cancel := context.WithTimeout(ctx, lagTimeout)
		var ends, firsts map[topicPartition]int64
		ends, err = listOffsets(rctx, client, all, kafka.LastOffsetOf)
		if err == nil && len(fromFirst) > 0 {
			firsts, err = listOffsets(rctx, client, fromFirst, kafka.FirstOffsetOf)
		}
		cancel()
		if err != nil {
			continue
		}
		for _, in := range ins {
			tp := topicPartition{in.topic, in.partition}
			start, ok := starts[tp]
			if !ok {
				start = firsts[tp]
			}
			in.behind.Store(ends[tp] > start)
		}
		return
	}
	if ctx.Err() == nil {
		p.m.Errors.WithLabelValues("merge").Inc()
		p.log.Warn("could not ask the broker where the input partitions end; reading them in arrival order until each is fetched",
			"err", err)
	}
}

// fetchedBatch is a run of messages in a partition's merge buffer, with
// when they were fetched (riskd_stage_seconds).
type fetchedBatch struct {
	msgs []kafka.Message
	at   time.Time
}

// newMergeBuffer returns a partition's merge buffer and its free batches.
func newMergeBuffer() (buf, free chan *fetchedBatch) {
	buf, free = make(chan *fetchedBatch, mergeBatches), make(chan *fetchedBatch, mergeBatches)
	for range mergeBatches {
		free <- &fetchedBatch{msgs: make([]kafka.Message, 0, mergeBatch)}
	}
	return buf, free
}

// nextHead makes the next buffered message the head, giving back a batch
// it has taken every message of, and reports whether there was one.
func (in *mergeInput) nextHead() bool {
	if in.taking != nil && in.took == len(in.taking.msgs) {
		clear(in.taking.msgs) // so that a free batch holds no fetch's records
		in.free <- in.taking  // never blocks: free has room for every batch
		in.taking = nil
	}
	if in.taking == nil {
		select {
		case in.taking = <-in.buf:
			in.took = 0
		default:
			return false
		}
	}
	in.head, in.headAt, in.hasHead = in.taking.msgs[in.took], in.taking.at, true
	in.took++
	return true
}

// buffered reports whether the merger has a message of in's, or more
// fetched to come: its head, or messages in its buffer.
func (in *mergeInput) buffered() bool {
	return in.hasHead || (in.taking != nil && in.took < len(in.taking.msgs)) || len(in.buf) > 0
}
