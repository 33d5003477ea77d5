package engine

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"riskd/event"
	"riskd/features"
	"riskd/internal/keyhash"
	"riskd/rules"
)

// A backtest decides every event twice: with the candidate rule set and
// with the set that was live, so that what changed is the candidate's doing
// and not the replay's. The feature state, the costly part, depends on the
// events alone as long as both worlds let the same events through their
// locks, so a twin Scorer keeps one feature state and two worlds (locks,
// alert throttle, decided ids), and evaluates both rule sets on each
// event's features. When the worlds first disagree on whether an event's
// account is locked, one world would observe the event and the other not:
// ScoreTwin then refuses the event with ErrTwinsDiverge, changing nothing,
// and the caller splits the Scorer in two (Split) and goes on with two.

// ErrTwinsDiverge is returned by ScoreTwin, before anything changed, when
// the event's account is locked in one world and not in the other.
var ErrTwinsDiverge = errors.New("the twin worlds disagree on a lock: split the scorer")

// NewTwinScorer returns a standalone Scorer that decides every event with
// holder's rule set and, through ScoreTwin, with twin's too.
func NewTwinScorer(cfg Config, set *features.Set, holder, twin *rules.Holder) *Scorer {
	cfg = cfg.withDefaults()
	s := newScorer(cfg, set, holder, nil)
	// The twin's own tables are made when the sets first differ.
	s.twin, s.mirrored = &world{rules: twin}, true
	return s
}

// unmirror gives the twin world a state of its own, a copy of the live
// world's, which it has shared so far.
func (s *Scorer) unmirror() {
	s.twin.locks = s.locks.clone()
	s.twin.throttle = s.throttle.clone()
	s.twin.dedupe = s.dedupe.clone()
	s.mirrored = false
}

// mirror makes d the twin of src, decided by a set of the same content
// (version): the same decision, in d's own slices.
func (d *Decision) mirror(src *Decision, version string) {
	m, sh, er, f, al, th, lf, w, cm := d.Matched[:0], d.Shadow[:0], d.Errored[:0], d.Features[:0], d.Alerts[:0],
		d.ThrottledAlerts[:0], d.LateFor[:0], d.Warming[:0], d.Candidate.Matched[:0]
	sup, ws := d.Suppressed[:0], d.WarmingSkipped[:0]
	*d = *src
	d.Matched = append(m, src.Matched...)
	d.Shadow = append(sh, src.Shadow...)
	d.Errored = append(er, src.Errored...)
	d.Features = append(f, src.Features...)
	d.Alerts = append(al, src.Alerts...)
	d.ThrottledAlerts = append(th, src.ThrottledAlerts...)
	d.LateFor = append(lf, src.LateFor...)
	d.Warming = append(w, src.Warming...)
	d.Suppressed = append(sup, src.Suppressed...)
	d.WarmingSkipped = append(ws, src.WarmingSkipped...)
	d.RuleSetVersion = version
	d.Candidate = CandidateOutcome{Matched: cm} // a draft beside the live set is the live world's alone
}

// ScoreTwin decides one raw event as Score does into d, and for the twin
// world into td, on one observation of the event's features. Errors are
// Score's, plus ErrTwinsDiverge; on every error d and td are to be ignored
// and nothing has changed.
func (s *Scorer) ScoreTwin(raw []byte, d, td *Decision) error {
	if s.twin == nil {
		return errors.New("ScoreTwin on a Scorer without a twin")
	}
	return s.score(raw, nil, Source{}, d, td)
}

// Decoded is an event decoded ahead of scoring, with what the Scorer
// computes from its bytes alone (key hashes, fingerprint): a caller with a
// core to spare (a backtest, whose scorer is its bottleneck) does that work
// on another goroutine and hands the result to ScoreDecoded. Its strings
// alias its own buffer until the next Decode.
type Decoded struct {
	Event        event.Event
	account, key uint64
	sum          uint32
	dec          event.Decoder
	fingerprint  fingerprinter
}

// NewDecoded returns a Decoded that decodes as a Scorer of c does.
func (c Config) NewDecoded() *Decoded {
	return &Decoded{dec: event.Decoder{MaxBytes: c.withDefaults().MaxEventBytes}}
}

// Decode decodes raw into d; the error is Score's for the same bytes.
func (d *Decoded) Decode(raw []byte) error {
	if err := d.dec.Decode(raw, &d.Event); err != nil {
		return err
	}
	ev := &d.Event
	d.account, d.key, d.sum = keyhash.String(ev.AccountID), keyhash.String(ev.ID), d.fingerprint.sum(ev)
	return nil
}

// ScoreDecoded is Score for an event decoded from raw already. pre must
// stay unchanged (no Decode) until the decision is no longer used.
func (s *Scorer) ScoreDecoded(pre *Decoded, raw []byte, d *Decision) error {
	return s.score(raw, pre, Source{}, d, nil)
}

// ScoreTwinDecoded is ScoreTwin for an event decoded already, as
// ScoreDecoded takes it.
func (s *Scorer) ScoreTwinDecoded(pre *Decoded, raw []byte, d, td *Decision) error {
	if s.twin == nil {
		return errors.New("ScoreTwin on a Scorer without a twin")
	}
	return s.score(raw, pre, Source{}, d, td)
}

// Split ends the twin: it returns a standalone Scorer holding the twin
// world and a copy of the feature state, on the clock now, and s goes on
// with its own world alone. Both then decide the next event as the twin
// Scorer would have, each in its world.
func (s *Scorer) Split(now func() time.Time) (*Scorer, error) {
	if s.twin == nil {
		return nil, errors.New("split of a Scorer without a twin")
	}
	if s.mirrored {
		s.unmirror()
	}
	var buf bytes.Buffer
	if err := s.store.Snapshot(&buf); err != nil {
		return nil, fmt.Errorf("split: copy the feature state: %w", err)
	}
	store, err := s.set.Restore(&buf)
	if err != nil {
		return nil, fmt.Errorf("split: copy the feature state: %w", err)
	}
	o := &Scorer{
		world:    *s.twin,
		store:    store,
		set:      s.set,
		eval:     rules.NewEvaluator(),
		dec:      event.Decoder{MaxBytes: s.dec.MaxBytes, MaxIDBytes: s.dec.MaxIDBytes, Vocabulary: s.dec.Vocabulary},
		now:      now,
		maxSkew:  s.maxSkew,
		observed: s.observed, // so both sweep idle state at the same events
		// Support's suppressions hold for both halves, as they did for
		// both worlds.
		suppressed: s.suppressed.clone(),
	}
	s.twin = nil
	return o, nil
}

// Holder returns the holder of the rule set the Scorer decides with.
func (s *Scorer) Holder() *rules.Holder { return s.rules }

// Reserve makes room in the feature state for n accounts (see
// features.Store.Reserve).
func (s *Scorer) Reserve(accounts int) { s.store.Reserve(accounts) }
