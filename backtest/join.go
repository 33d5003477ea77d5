package backtest

import (
	"context"
	"fmt"
	"sync"

	"riskd/streams/chstore"
)

// A cursor joins a stream of rows sorted by (event time, event id) to the
// events, which come sorted by event time but, within one millisecond, in
// Kafka order: it holds the rows of the current millisecond in a map, so
// memory is bounded by the rows of one millisecond (MaxRowsPerMs), not by
// the period.

// span is a slice of the replay, [from, to) of event time in Unix ms.
type span struct{ from, to int64 }

// split cuts [from, to) into spans (after counts, the stored rows per
// step) for ClickHouse to read and sort one at a time while the replay
// works through the span before: the first of about firstSliceRows
// stored rows, so the replay starts soon, each next one twice as large,
// up to sliceRows.
func split(from, to int64, counts []chstore.EventCount) []span {
	var out []span
	start, rows, limit := from, uint64(0), uint64(firstSliceRows)
	for _, c := range counts {
		if rows > 0 && rows+c.Rows > limit && c.StartMs > start {
			out = append(out, span{start, c.StartMs})
			start, rows, limit = c.StartMs, 0, min(2*limit, sliceRows)
		}
		rows += c.Rows
	}
	return append(out, span{start, to})
}

// feed runs read over each span, two spans at a time on goroutines of its
// own (ClickHouse sorts the next span while the replay works through the
// current one), and hands the rows over in span order, in batches. The
// channel closes when every span is read or one failed; *errp then holds
// the first error. ctx's end stops it.
func feed[T any](ctx context.Context, spans []span, read func(span, func(T) error) error, errp *error) <-chan []T {
	const batchSize = 1024
	out := make(chan []T, 16) // some batches ahead of the replay; full: the span's reader waits
	type part struct {
		ch  chan []T
		err error // set before ch closes
	}
	parts := make(chan *part, 1) // the span being handed over, and one ahead
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(parts)
		for _, sp := range spans {
			p := &part{ch: make(chan []T, 16)}
			select {
			case parts <- p:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				defer close(p.ch)
				batch := make([]T, 0, batchSize)
				send := func() error {
					select {
					case p.ch <- batch:
						batch = make([]T, 0, batchSize)
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				p.err = read(sp, func(r T) error {
					if batch = append(batch, r); len(batch) == batchSize {
						return send()
					}
					return nil
				})
				if p.err == nil && len(batch) > 0 {
					p.err = send()
				}
			})
		}
	})
	go func() {
		defer close(out)
		defer wg.Wait() // every reader has ended before out closes
		for p := range parts {
			for b := range p.ch {
				select {
				case out <- b:
				case <-ctx.Done():
				}
			}
			if p.err != nil {
				*errp = p.err
				for p := range parts { // the readers ahead end with ctx, which Run cancels
					for range p.ch {
					}
				}
				return
			}
		}
	}()
	return out
}

// arena copies raw events into shared chunks: one allocation per chunk,
// not per event. A chunk is freed once no event in it is referenced.
type arena struct{ buf []byte }

func (a *arena) copy(b []byte) []byte {
	if len(b) > cap(a.buf)-len(a.buf) {
		a.buf = make([]byte, 0, max(256<<10, len(b)))
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[start:len(a.buf):len(a.buf)]
}

type cursor[T any] struct {
	ch     <-chan []T
	batch  []T
	i      int
	key    func(*T) (int64, string)
	ts     int64
	loaded bool
	cur    map[string]T
	// orphan is called for each row no event took.
	orphan func(*T)
	what   string // "decisions", "labels": for the bound's error
}

func newCursor[T any](ch <-chan []T, what string, key func(*T) (int64, string), orphan func(*T)) *cursor[T] {
	return &cursor[T]{ch: ch, key: key, orphan: orphan, what: what, cur: make(map[string]T)}
}

// peek returns the next row without taking it; false at the end.
func (c *cursor[T]) peek() (*T, bool) {
	for c.i == len(c.batch) {
		b, ok := <-c.ch
		if !ok {
			return nil, false
		}
		c.batch, c.i = b, 0
	}
	return &c.batch[c.i], true
}

// take returns the row of event id at event time ts, if any. Calls must
// come in non-decreasing ts.
func (c *cursor[T]) take(ts int64, id string) (T, bool, error) {
	if !c.loaded || ts != c.ts {
		c.flush()
		c.ts, c.loaded = ts, true
		for {
			r, ok := c.peek()
			if !ok {
				break
			}
			rts, rid := c.key(r)
			if rts > ts {
				break
			}
			c.i++
			if rts < ts {
				c.orphan(r)
				continue
			}
			if len(c.cur) >= MaxRowsPerMs {
				var zero T
				return zero, false, fmt.Errorf("more than %d %s dated the same millisecond (%d)", MaxRowsPerMs, c.what, ts)
			}
			c.cur[rid] = *r
		}
	}
	r, ok := c.cur[id]
	if ok {
		delete(c.cur, id)
	}
	return r, ok, nil
}

// flush hands the rows of the current millisecond no event took to orphan.
func (c *cursor[T]) flush() {
	for _, r := range c.cur {
		c.orphan(&r)
	}
	clear(c.cur)
}

// finish hands every row left to orphan.
func (c *cursor[T]) finish() {
	c.flush()
	for {
		r, ok := c.peek()
		if !ok {
			return
		}
		c.i++
		c.orphan(r)
	}
}
