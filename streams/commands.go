package streams

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"riskd/engine"
)

// Support's commands at their place in the stream.
//
// A support lock, unlock or suppression changes how the account's next
// events are decided, so where it falls among the stream's events is part
// of the state. Live, the merger submits it to the engine between two
// stream messages (Pipeline.Command) and notes where each input partition
// stood: its Position, published with the command on the actions topic.
// After a restart the commands published since the restored state was cut
// are handed back (Pipeline.Place) and the merger applies each one again
// right before the first message at or past its position, so the replay
// meets it where the first run did: the account's earlier events are
// decided without it, its later ones with it.

// Position is where the stream stood when a command was applied: for each
// input partition assigned then ("payments/3"), the offset of the first
// message submitted after the command (kafka.FirstOffset, -2, when none of
// the partition had been submitted yet).
type Position map[string]int64

func positionKey(topic string, partition int) string {
	return topic + "/" + strconv.Itoa(partition)
}

// CoveredBy reports whether a state that stands at resume (per topic and
// partition, the offset after the last message it reflects: a snapshot's
// offsets) already holds the command applied at pos: every partition of
// pos is at or behind the state's, and at least one strictly behind, so
// the state's cut came after the command. A command at exactly the cut's
// place may be on either side of it and is applied again: at the same
// place, doing it twice changes nothing. A command without a position is
// never covered.
func (pos Position) CoveredBy(resume map[string]map[int]int64) bool {
	if len(pos) == 0 {
		return false
	}
	behind := false
	for key, off := range pos {
		topic, part, ok := splitPositionKey(key)
		if !ok {
			return false
		}
		at, known := resume[topic][part]
		if !known || off > at {
			return false
		}
		behind = behind || off < at
	}
	return behind
}

func splitPositionKey(key string) (string, int, bool) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return "", 0, false
	}
	part, err := strconv.Atoi(key[i+1:])
	return key[:i], part, err == nil
}

// PlacedCommand is a support command to apply again at its place (see
// Pipeline.Place).
type PlacedCommand struct {
	AccountID string
	At        Position
	Apply     func(*engine.Scorer)
	// What names it in logs ("lock of acct-7").
	What string
}

type commandRequest struct {
	accountID string
	fn        func(*engine.Scorer)
	reply     chan commandReply // buffered: the engine's callback never waits
}

type commandReply struct {
	at  Position
	err error
}

// Command runs fn on accountID's shard at a place in the stream and
// returns that place. While a consumer group generation is running, the
// merger submits fn between two stream messages, behind every message it
// submitted before (engine.SubmitCommand), and the position says where;
// otherwise (no partition assigned, between generations, shutting down)
// fn runs between whichever events the shard is at, with no position, and
// a restart applies it before replaying anything. It waits until fn has
// run. fn may touch only accountID's own state.
func (p *Pipeline) Command(ctx context.Context, accountID string, fn func(*engine.Scorer)) (Position, error) {
	p.cmdMu.Lock()
	gone := p.mergerGone
	p.cmdMu.Unlock()
	if gone != nil {
		req := commandRequest{accountID: accountID, fn: fn, reply: make(chan commandReply, 1)}
		select {
		case p.commands <- req:
			select {
			case r := <-req.reply:
				return r.at, r.err
			case <-ctx.Done():
				return nil, fmt.Errorf("streams: command for %s: %w", accountID, ctx.Err())
			}
		case <-gone:
		case <-ctx.Done():
			return nil, fmt.Errorf("streams: command for %s: %w", accountID, ctx.Err())
		}
	}
	if err := p.eng.Do(ctx, accountID, fn); err != nil {
		return nil, fmt.Errorf("streams: command for %s: %w", accountID, err)
	}
	return nil, nil
}

// Place hands the pipeline support commands to apply again at their
// places (read back from the actions topic after a restart; those the
// restored state already holds left out, see Position.CoveredBy), in the
// order they were applied first. Call it before Run. The merger applies a
// command (after every earlier one of the same account) as soon as each of
// its partitions has reached its position or has nothing more to read,
// and in any case right before the first message of one of its
// partitions at or past its position; one none of whose partitions is
// assigned here is applied when the generation starts.
func (p *Pipeline) Place(cmds []PlacedCommand) {
	p.placed = append(p.placed, cmds...)
}

// acceptCommand serves one Command request: notes where every input stands
// and submits the function behind the messages submitted so far.
func (p *Pipeline) acceptCommand(outCtx context.Context, ins []*mergeInput, req commandRequest) {
	at := make(Position, len(ins))
	for _, in := range ins {
		if in.owned {
			at[positionKey(in.topic, in.partition)] = in.next
		}
	}
	err := p.eng.SubmitCommand(outCtx, req.accountID, req.fn, func(err error) { req.reply <- commandReply{at: at, err: err} })
	if err != nil {
		req.reply <- commandReply{err: err}
	}
}

// placeBefore applies the placed commands due before the message at offset
// of in's partition.
func (p *Pipeline) placeBefore(outCtx context.Context, in *mergeInput, offset int64) bool {
	key := positionKey(in.topic, in.partition)
	for i := 0; i < len(p.placed); i++ {
		if off, ok := p.placed[i].At[key]; ok && offset >= off {
			if !p.applyPlaced(outCtx, i) {
				return false
			}
			i = -1 // applyPlaced removed some: look again from the start
		}
	}
	return true
}

// placeDue applies the placed commands every one of whose assigned
// partitions has reached the command's position (everything before it is
// submitted) or has nothing more to read now: nothing that stood before
// the command is still to come.
func (p *Pipeline) placeDue(outCtx context.Context, ins []*mergeInput) bool {
	for i := 0; i < len(p.placed); i++ {
		due := true
		for _, in := range ins {
			if !in.owned {
				continue
			}
			off, ok := p.placed[i].At[positionKey(in.topic, in.partition)]
			if ok && in.next < off && (in.buffered() || in.behind.Load()) {
				due = false
				break
			}
		}
		if due {
			if !p.applyPlaced(outCtx, i) {
				return false
			}
			i = -1
		}
	}
	return true
}

// applyPlaced submits placed command i, after every earlier one of the same
// account, and removes them from the list.
func (p *Pipeline) applyPlaced(outCtx context.Context, i int) bool {
	account := p.placed[i].AccountID
	keep := p.placed[:0]
	var due []PlacedCommand
	for j, c := range p.placed {
		if j <= i && c.AccountID == account {
			due = append(due, c)
			continue
		}
		keep = append(keep, c)
	}
	p.placed = keep
	for _, c := range due {
		if err := p.eng.SubmitCommand(outCtx, c.AccountID, c.Apply, func(error) {}); err != nil {
			p.log.Warn("a support command could not be applied again at its place", "command", c.What, "err", err)
			return false
		}
		p.m.PlacedCommands.Inc()
	}
	return true
}
