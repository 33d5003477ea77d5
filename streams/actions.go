package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/internal/backoff"
)

// ReadActions returns the lock and unlock commands, support's suppress and
// unsuppress commands, and the placements of commands one instance took
// from another (ActionPlaced), on the actions topic since a time (by the
// records' Kafka timestamps), in each account's order.
//
// Why: support's locks and unlocks are made on the owning shard and
// published here at once, but reach the engine's saved state only with the
// next snapshot. After a crash the stream's own locks come back by replay;
// support's do not, since they are not in the input topics. So a restart
// applies the commands published since the snapshot was cut (see
// cmd/riskd), and a lock made a moment before a kill -9 is still enforced
// after it. Locks run on the wall clock, so a command applied again ends
// when it always would have.
//
// A failed read is tried again a few times: it runs once, at start, and a
// broker that has only just (re)started can answer a time query with a
// transient error (an embedded one was seen answering UNKNOWN_SERVER_ERROR).
// The offsets it read up to, per partition, are where FollowActions goes on
// from, so no command falls between the two.
func ReadActions(ctx context.Context, brokers []string, topic string, since time.Time) ([]ActionRecord, map[int]int64, error) {
	const attempts = 5
	for attempt := 1; ; attempt++ {
		recs, ends, err := readActionsOnce(ctx, brokers, topic, since)
		switch {
		case err == nil || attempt == attempts:
			return recs, ends, err
		case ctx.Err() != nil:
			// Stopped while retrying: say so first, so callers tell a
			// shutdown from a broker that would not answer.
			return nil, nil, fmt.Errorf("%w (while retrying: %w)", ctx.Err(), err)
		}
		select {
		case <-time.After(backoff.Delay(200*time.Millisecond, 2*time.Second, attempt)):
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w (while retrying: %w)", ctx.Err(), err)
		}
	}
}

func readActionsOnce(ctx context.Context, brokers []string, topic string, since time.Time) ([]ActionRecord, map[int]int64, error) {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	parts, ends, err := actionPartitions(ctx, client, topic)
	if err != nil || len(parts) == 0 {
		return nil, nil, err
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, ps := range parts {
		req[topic] = append(req[topic], kafka.TimeOffsetOf(ps.partition, since))
	}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, nil, fmt.Errorf("actions topic %s: offsets since %s: %w", topic, since.Format(time.RFC3339), err)
	}
	var out []ActionRecord
	for _, po := range res.Topics[topic] {
		end := ends[topicPartition{topic, po.Partition}]
		// A query by time is answered in Offsets (kafka-go leaves First and
		// LastOffset at -1): the first offset at or after since.
		from := int64(-1)
		for off := range po.Offsets {
			if from < 0 || off < from {
				from = off
			}
		}
		if po.Error != nil {
			// A broker that cannot answer the time query (the embedded one
			// was seen answering UNKNOWN_SERVER_ERROR on every retry): read
			// the partition from its start and keep the records since then.
			// The topic holds commands only, so this stays small.
			recs, err := readAllSince(ctx, brokers, client, topic, po.Partition, end, since)
			if err != nil {
				return nil, nil, fmt.Errorf("%w (after the time query failed: %w)", err, po.Error)
			}
			out = append(out, recs...)
			continue
		}
		if from < 0 || from >= end {
			continue // nothing since then
		}
		recs, err := readRange(ctx, brokers, topic, po.Partition, from, end, time.Time{}) // from is since's: keep all
		if err != nil {
			return nil, nil, err
		}
		out = append(out, recs...)
	}
	at := make(map[int]int64, len(ends))
	for tp, end := range ends {
		at[tp.partition] = end
	}
	return out, at, nil
}

// readAllSince reads a whole partition up to end and keeps the records
// whose Kafka timestamp is since or later: the time query's answer, found
// the long way.
func readAllSince(ctx context.Context, brokers []string, client *kafka.Client, topic string, partition int, end int64, since time.Time) ([]ActionRecord, error) {
	starts, err := listOffsets(ctx, client, []partitionState{{topic: topic, partition: partition}}, kafka.FirstOffsetOf)
	if err != nil {
		return nil, fmt.Errorf("actions topic %s/%d: start: %w", topic, partition, err)
	}
	from := starts[topicPartition{topic, partition}]
	if from < 0 || from >= end {
		return nil, nil
	}
	return readRange(ctx, brokers, topic, partition, from, end, since)
}

// readRange reads the action records at offsets [from, end) of one
// partition, keeping those whose Kafka timestamp is not before after.
func readRange(ctx context.Context, brokers []string, topic string, partition int, from, end int64, after time.Time) ([]ActionRecord, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return nil, fmt.Errorf("actions topic %s/%d: %w", topic, partition, err)
	}
	var out []ActionRecord
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("actions topic %s/%d at %d: %w", topic, partition, from, err)
		}
		if a, ok := actionOf(m); ok && !m.Time.Before(after) {
			out = append(out, a)
		}
		if m.Offset+1 >= end {
			return out, nil
		}
	}
}

// Types of support's suppression commands on the actions topic.
const (
	ActionSuppress   = "suppress"
	ActionUnsuppress = "unsuppress"
)

// PublishSuppression publishes support's suppress or unsuppress command
// (a.Type ActionSuppress or ActionUnsuppress, a.RuleID set) on the actions
// topic, keyed by account like every command there, with id as its
// de-duplication key. Unlike PublishAction it notifies no webhook
// subscriber: a suppression changes what riskd decides, not the account's
// state, and subscribers take alerts, locks and unlocks only. It is on the
// topic so that a restart applies it again (ReadActions), like a lock.
func (p *Pipeline) PublishSuppression(ctx context.Context, a ActionRecord, id string) error {
	if (a.Type != ActionSuppress && a.Type != ActionUnsuppress) || a.RuleID == "" || a.AccountID == "" {
		return fmt.Errorf("streams: publish suppression: type %q, account %q, rule %q: want suppress or unsuppress of a rule for an account",
			a.Type, a.AccountID, a.RuleID)
	}
	if a.Instance == "" {
		a.Instance = p.cfg.Instance
	}
	msg, err := p.cfg.Topics.actionMessage(a, id)
	if err != nil {
		return err
	}
	return p.publish(ctx, []kafka.Message{msg})
}

// PublishPlacement records on the actions topic that this instance applied
// another instance's support command cmd at pos in its own stream (a
// record of type ActionPlaced, keyed by the account like the command), so
// that a restart of this instance applies it again there; or, superseded,
// that it did not apply it at all (OwnCommandAfter). Subscribers are
// not told: the command itself was announced by the instance that took it.
func (p *Pipeline) PublishPlacement(ctx context.Context, cmd ActionRecord, pos Position, superseded bool) error {
	if cmd.ID == "" || cmd.AccountID == "" {
		return fmt.Errorf("streams: publish placement: command %q of account %q: want an id and an account", cmd.ID, cmd.AccountID)
	}
	rec := ActionRecord{Type: ActionPlaced, AccountID: cmd.AccountID, Ref: cmd.ID, Instance: p.cfg.Instance,
		Position: pos, Superseded: superseded, At: time.Now().UTC()}
	msg, err := p.cfg.Topics.actionMessage(rec, ActionPlaced+"-"+p.cfg.Instance+"-"+cmd.ID)
	if err != nil {
		return err
	}
	return p.publish(ctx, []kafka.Message{msg})
}

// ownCommandMemory is how long the pipeline remembers when this instance
// applied its own support command to an account (NoteOwnCommand), and
// ownCommandsMax how many such notes it keeps at most. Another instance's
// command reaches this one within a second or so (FollowActions); older
// notes only matter when the topic was unreadable for that long.
const (
	ownCommandMemory = 10 * time.Minute
	ownCommandsMax   = 100_000
)

// NoteOwnCommand remembers that this instance's API applies support's
// command a (its type, account, rule and At are read) now. Another
// instance's command on the same aspect (CommandAspect) made before a.At,
// read from the topic later, is then skipped (OwnCommandAfter): both
// instances end with the later command, whichever order the topic brought
// them in.
func (p *Pipeline) NoteOwnCommand(a ActionRecord) {
	accountID, aspect, at := a.AccountID, CommandAspect(a), a.At
	p.ownMu.Lock()
	defer p.ownMu.Unlock()
	if p.own == nil {
		p.own = map[string]time.Time{}
	}
	if len(p.own) >= ownCommandsMax {
		for k, t := range p.own {
			if at.Sub(t) > ownCommandMemory {
				delete(p.own, k)
			}
		}
		for k := range p.own { // still full: forget arbitrary ones
			if len(p.own) < ownCommandsMax {
				break
			}
			delete(p.own, k)
		}
	}
	p.own[accountID+"\x00"+aspect] = at
}

// OwnCommandAfter reports whether this instance's API applied its own
// support command on the aspect of another instance's command a after a
// was made (see NoteOwnCommand).
func (p *Pipeline) OwnCommandAfter(a ActionRecord) bool {
	p.ownMu.Lock()
	defer p.ownMu.Unlock()
	t, ok := p.own[a.AccountID+"\x00"+CommandAspect(a)]
	return ok && t.After(a.At) && t.Sub(a.At) <= ownCommandMemory
}

// CommandAspect is what a support command sets: the account's lock
// ("lock", for locks and unlocks) or its suppression of one rule (the rule
// id). Two commands on one aspect replace each other; on two they do not.
func CommandAspect(a ActionRecord) string {
	if a.Type == ActionSuppress || a.Type == ActionUnsuppress {
		return "rule:" + a.RuleID
	}
	return "lock"
}

// actionOf decodes an actions topic message into a record of one of the
// kinds riskd acts on (a lock, an unlock, a suppression or its lifting, a
// placement), with its id from the header; ok is false for anything else.
func actionOf(m kafka.Message) (a ActionRecord, ok bool) {
	if json.Unmarshal(m.Value, &a) != nil || a.AccountID == "" {
		return ActionRecord{}, false
	}
	for _, h := range m.Headers {
		if h.Key == HeaderEventID {
			a.ID = string(h.Value)
		}
	}
	switch a.Type {
	case "lock", "unlock":
		return a, true
	case ActionSuppress, ActionUnsuppress:
		return a, a.RuleID != ""
	case ActionPlaced:
		return a, a.Ref != "" && a.Instance != ""
	}
	return ActionRecord{}, false
}

// FollowActions reads the actions topic from from (per partition, the
// offsets ReadActions stopped at; a partition missing there starts at its
// end as of now) until ctx ends, and calls fn with every record actionOf
// accepts, in each partition's order: every command of one account, which
// is the record's key, comes in the order it was published. fn runs on
// the partition's reader goroutine. Until the topic's partitions are
// known it retries with backoff, telling onRetry (may be nil) why. It
// returns ctx's error when ctx ends and every reader has stopped.
//
// Why: a support command taken by one instance's API is applied there at
// once, but the owner of the account's partition, and every instance whose
// decide API may be asked about the account, learn it here (cmd/riskd).
func FollowActions(ctx context.Context, brokers []string, topic string, from map[int]int64, fn func(ActionRecord), onRetry func(error)) error {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	var parts []partitionState
	var ends map[topicPartition]int64
	for attempt := 1; ; attempt++ {
		var err error
		parts, ends, err = actionPartitions(ctx, client, topic)
		if err == nil && len(parts) == 0 {
			err = fmt.Errorf("actions topic %s: no partitions", topic)
		}
		if err == nil {
			break
		}
		if onRetry != nil {
			onRetry(err)
		}
		select {
		case <-time.After(backoff.Delay(200*time.Millisecond, 5*time.Second, attempt)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var wg sync.WaitGroup
	for _, ps := range parts {
		start, ok := from[ps.partition]
		if !ok {
			start = ends[topicPartition{topic, ps.partition}]
		}
		wg.Go(func() { followPartition(ctx, brokers, topic, ps.partition, start, fn) })
	}
	wg.Wait()
	return ctx.Err()
}

// followPartition is FollowActions' reader of one partition. A failed
// fetch is retried by kafka-go's reader itself; FetchMessage returns an
// error only when ctx ends or the reader is closed.
func followPartition(ctx context.Context, brokers []string, topic string, partition int, from int64, fn func(ActionRecord)) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return // only a group's reader refuses an offset
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return
		}
		if a, ok := actionOf(m); ok {
			fn(a)
		}
	}
}

// ActionEnds returns where each partition of the actions topic ends now:
// FollowActions started from there misses nothing published after this
// call.
func ActionEnds(ctx context.Context, brokers []string, topic string) (map[int]int64, error) {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	_, ends, err := actionPartitions(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	at := make(map[int]int64, len(ends))
	for tp, end := range ends {
		at[tp.partition] = end
	}
	return at, nil
}

// actionPartitions lists the actions topic's partitions and their end
// offsets (none when the topic has no partitions).
func actionPartitions(ctx context.Context, client *kafka.Client, topic string) ([]partitionState, map[topicPartition]int64, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, nil, fmt.Errorf("actions topic %s: %w", topic, err)
	}
	var parts []partitionState
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, nil, fmt.Errorf("actions topic %s: %w", topic, t.Error)
		}
		for _, p := range t.Partitions {
			parts = append(parts, partitionState{topic: topic, partition: p.ID})
		}
	}
	if len(parts) == 0 {
		return nil, nil, nil
	}
	ends, err := listOffsets(ctx, client, parts, kafka.LastOffsetOf)
	if err != nil {
		return nil, nil, err
	}
	return parts, ends, nil
}
