package engine

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/cespare/xxhash/v2"

	"riskd/event"
)

// ErrEventIDConflict is wrapped by Score's error when an event arrives with
// the id of an event decided recently but with a different body: a
// producer bug (ids reused) or a forgery. Repeating the earlier answer
// would hide it, and deciding it would count the id twice, so it is
// refused: the stream sends it to the dead-letter topic with this reason,
// the decide API answers 409.
type ErrEventIDConflict struct {
	// EventID is the reused id.
	EventID string
}

func (e *ErrEventIDConflict) Error() string {
	return "event_id " + strconv.Quote(e.EventID) + " was decided before with a different body"
}

// fingerprinter hashes an event's content, not its bytes: the hook's JSON
// and the Kafka producer's JSON for one event may order keys differently,
// and both must read as the same event. It reuses one buffer; one Scorer
// owns it.
type fingerprinter struct{ buf []byte }

// sum returns the event's fingerprint, never 0 (0 marks "unknown" in the
// dedupe table, for ids restored from a checkpoint that had none).
func (f *fingerprinter) sum(ev *event.Event) uint32 {
	b := f.buf[:0]
	for _, s := range [...]string{ev.ID, ev.Type, ev.AccountID, ev.Currency, ev.Channel, ev.MerchantID,
		ev.MCC, ev.PayeeID, ev.CardID, ev.Device.ID, ev.Device.OS, ev.Device.AppVersion, ev.IP, ev.Geo.Country, ev.Label} {
		b = append(b, s...)
		b = append(b, 0)
	}
	// Numbers as their fixed-width bits: no formatting on the hot path.
	b = binary.LittleEndian.AppendUint64(b, uint64(ev.TS))
	b = binary.LittleEndian.AppendUint64(b, uint64(ev.Amount))
	if ev.Geo.HasPoint {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(ev.Geo.Lat))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(ev.Geo.Lon))
	}
	b = append(b, flag(ev.Device.Rooted), flag(ev.Device.Emulator), flag(ev.Geo.HasPoint))
	h := xxhash.Sum64(b)
	// Attrs are a map: combine each pair's hash by addition, which does
	// not depend on the order the map yields them in.
	for k, v := range ev.Attrs {
		b = append(append(append(b[:0], k...), 0), v...)
		h += xxhash.Sum64(b) * 0x9e3779b97f4a7c15
	}
	f.buf = b
	if s := uint32(h ^ h>>32); s != 0 {
		return s
	}
	return 1
}

func flag(b bool) byte {
	if b {
		return 1
	}
	return 0
}
