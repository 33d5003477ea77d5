package event

import (
	"time"

	"github.com/valyala/fastjson"
)

// TSPeeker reads the event time of messages without decoding the rest of
// them, for ordering messages before they are decided (the stream merges
// its partitions by it). It reuses its parser's memory, so one goroutine
// owns each TSPeeker.
type TSPeeker struct {
	p fastjson.Parser
}

// TS returns raw's event time in Unix milliseconds. ok is false when the
// message has no ts the Decoder would accept; the Decoder then says what
// is wrong.
func (pk *TSPeeker) TS(raw []byte) (ms int64, ok bool) {
	v, err := pk.p.ParseBytes(raw)
	if err != nil {
		return 0, false
	}
	ts := v.Get("ts")
	if ts == nil {
		return 0, false
	}
	switch ts.Type() {
	case fastjson.TypeNumber:
		n, err := ts.Int64()
		if err != nil {
			return 0, false
		}
		ms = n
	case fastjson.TypeString:
		b, _ := ts.StringBytes()
		t, err := time.Parse(time.RFC3339Nano, b2s(b))
		if err != nil {
			return 0, false
		}
		ms = t.UnixMilli()
	default:
		return 0, false
	}
	if ms < minTSMillis || ms >= maxTSMillis {
		return 0, false
	}
	return ms, true
}
