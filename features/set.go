package features

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"riskd/event"
)

// Set is a compiled, immutable list of window features. It is safe for
// concurrent use; each shard makes its own Store from it.
type Set struct {
	cfg    Config
	defs   []Definition
	feats  []feature
	groups []group
	index  map[string]int
	// widths lists the distinct bucket widths (ms) of the features: the
	// Store works out an event's bucket once per width, not per feature.
	widths []int64
	// lanes and ops give, by feature index, the index in widths and the
	// aggregate, packed so the per-item loops read small arrays.
	lanes [MaxWindows]uint8
	ops   [MaxWindows]op
	// fields are the entity fields groups are keyed by and distinct
	// features count, each once, so an event hashes each at most once.
	fields []func(*event.Event) string
	// accField is the index of account_id in fields, -1 if unused.
	accField int
	// accGroup is the group keyed by account_id (-1 if none); its window
	// state lives next to the account profile, so an event looks the
	// account up once.
	accGroup int
	// since lists the time_since features: their value without an entity
	// (the event has no value in their By field) is NeverSecs, not 0.
	since []int
	// ids are the features' identities, by feature index: what a
	// snapshot records of each so that a Set with other definitions can
	// tell which stored state is its own (see featureID).
	ids []featureID
}

// featureID is everything that decides a window feature's state: two
// features with equal ids build the same state from the same events,
// whatever their names. A snapshot's feature is restored into the Set's
// feature with its id; a feature whose window, filter or anything else
// here changed is a new feature.
type featureID struct {
	kind     Kind
	of       string // the counted field of a distinct, canonical; the event type or numeric field otherwise
	by       string // the group's By field, canonical
	windowMs int64
	widthMs  int64  // bucket width
	where    string // the filter's text, trimmed
}

// feature is one compiled Definition.
type feature struct {
	kind   Kind
	group  int // index in Set.groups
	op     op
	width  int64 // bucket width, ms
	ofType string
	// typed: only events of type ofType match (count, time_since and
	// first_seen of a type other than "*").
	typed  bool
	num    func(*event.Event) float64
	of     int // distinct: index of the counted field in Set.fields
	filter filter
	seq    *seqSpec // sequence only (see sequence.go)
	q      float64  // percentile only: the quantile read
}

// group is the features sharing one By field; they share entity state.
type group struct {
	by    string
	field int // index of the By field in Set.fields
	feats []int
	// adds lists the features add updates: feats but the sequences, which
	// Store.sequences reads and updates (seq marks them).
	adds     []int
	seq      uint64
	maxWinMs int64
	// lanes lists the indexes in Set.widths the group's features use.
	lanes []uint8
	// final marks the group's features whose value fill works out after
	// the pass over the items (avg, stddev, last, time_since, first_seen,
	// percentile).
	final uint64
	// more marks the features of the kinds stddev, first_seen, last,
	// time_since and percentile.
	more uint64
	// special marks the features add does not bump as counters (stddev,
	// last, time_since, percentile), records those of them kept as
	// records of single events (last, time_since), quant the percentiles.
	special, records, quant uint64
}

// op is a Kind as a small integer for the per-item loops.
type op uint8

const (
	opCount op = iota
	opSum
	opAvg
	opMin
	opMax
	opDistinct
	opStddev
	opFirst
	opLast
	opSince
	opSeq
	opQuantile
)

var kindOps = map[Kind]op{KindCount: opCount, KindSum: opSum, KindAvg: opAvg,
	KindMin: opMin, KindMax: opMax, KindDistinct: opDistinct,
	KindStddev: opStddev, KindFirstSeen: opFirst, KindLast: opLast, KindTimeSince: opSince,
	KindSequence: opSeq, KindPercentile: opQuantile}

// record reports whether op keeps records of single events (last,
// time_since) rather than one state per bucket; see records.go.
func (o op) record() bool { return o == opLast || o == opSince }

// filter is a compiled where clause. A conjunction of simple terms
// (field == "x", field != "x", field in ["a", "b"], amount < N) runs as
// plain comparisons in preds, so the hot path neither runs a VM nor
// allocates; anything else runs as an expr program.
type filter struct {
	preds []pred
	prog  *vm.Program
}

// pred is one simple term of a where clause.
type pred struct {
	str  func(*event.Event) string // string term when non-nil
	vals []string
	neg  bool
	num  func(*event.Event) float64 // numeric term otherwise
	op   string
	x    float64
}

var (
	strTermRE = regexp.MustCompile(`^\s*([a-z_][a-z0-9_.]*)\s*(==|!=)\s*("[^"\\]*")\s*$`)
	inTermRE  = regexp.MustCompile(`^\s*([a-z_][a-z0-9_.]*)\s+in\s*\[\s*("[^"\\]*"(?:\s*,\s*"[^"\\]*")*)\s*,?\s*\]\s*$`)
	numTermRE = regexp.MustCompile(`^\s*([a-z_][a-z0-9_.]*)\s*(<=|>=|==|!=|<|>)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$`)
)

// simpleTerms parses where as a conjunction of simple terms, or reports
// false so the caller compiles it with expr.
func simpleTerms(where string) ([]pred, bool) {
	var preds []pred
	for _, term := range strings.Split(where, "&&") {
		if m := strTermRE.FindStringSubmatch(term); m != nil {
			get, ok := event.FieldGetter(m[1])
			v, err := strconv.Unquote(m[3])
			if !ok || err != nil || strings.HasPrefix(m[1], "attrs.") {
				return nil, false
			}
			preds = append(preds, pred{str: get, vals: []string{v}, neg: m[2] == "!="})
			continue
		}
		if m := inTermRE.FindStringSubmatch(term); m != nil {
			get, ok := event.FieldGetter(m[1])
			if !ok || strings.HasPrefix(m[1], "attrs.") {
				return nil, false
			}
			p := pred{str: get}
			for _, q := range strings.Split(m[2], ",") {
				v, err := strconv.Unquote(strings.TrimSpace(q))
				if err != nil {
					return nil, false
				}
				p.vals = append(p.vals, v)
			}
			preds = append(preds, p)
			continue
		}
		if m := numTermRE.FindStringSubmatch(term); m != nil {
			get, ok := numericFields[m[1]]
			x, err := strconv.ParseFloat(m[3], 64)
			if !ok || err != nil {
				return nil, false
			}
			preds = append(preds, pred{num: get, op: m[2], x: x})
			continue
		}
		return nil, false
	}
	return preds, true
}

func (p *pred) eval(ev *event.Event) bool {
	if p.str != nil {
		s := p.str(ev)
		for _, v := range p.vals {
			if s == v {
				return !p.neg
			}
		}
		return p.neg
	}
	y := p.num(ev)
	switch p.op {
	case "<":
		return y < p.x
	case "<=":
		return y <= p.x
	case ">":
		return y > p.x
	case ">=":
		return y >= p.x
	case "==":
		return y == p.x
	}
	return y != p.x
}

func compileWhere(where string) (filter, error) {
	if strings.TrimSpace(where) == "" {
		return filter{}, nil
	}
	// Type-check with expr even for simple clauses, so a clause means the
	// same thing whichever way it runs.
	prog, err := expr.Compile(where, expr.Env(&event.Event{}), expr.AsBool())
	if err != nil {
		return filter{}, fmt.Errorf("where: %w", err)
	}
	if preds, ok := simpleTerms(where); ok {
		return filter{preds: preds}, nil
	}
	return filter{prog: prog}, nil
}

// Compile checks the definitions against cfg and compiles them. At most
// MaxWindows features; slot order is definition order.
func Compile(defs []Definition, cfg Config) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(defs) > MaxWindows {
		return nil, fmt.Errorf("features: %d features declared, at most %d", len(defs), MaxWindows)
	}
	s := &Set{cfg: cfg, defs: cloneDefs(defs), index: make(map[string]int, len(defs)), accGroup: -1, accField: -1}
	fieldIdx := map[string]int{}
	field := func(name string) int {
		name = event.CanonicalField(name)
		if i, ok := fieldIdx[name]; ok {
			return i
		}
		get, _ := event.FieldGetter(name)
		s.fields = append(s.fields, get)
		fieldIdx[name] = len(s.fields) - 1
		if name == "account_id" {
			s.accField = len(s.fields) - 1
		}
		return len(s.fields) - 1
	}
	for i, d := range defs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("feature %s: %w", d.Name, err)
		}
		if _, dup := s.index[d.Name]; dup {
			return nil, fmt.Errorf("feature %s: declared twice", d.Name)
		}
		ms := d.Window.Milliseconds()
		keepMs := ms // how long the feature's state is kept: its window
		f := feature{kind: d.Kind, op: kindOps[d.Kind]}
		if d.Kind == KindSequence {
			sp, width, err := compileSequence(d, cfg)
			if err != nil {
				return nil, fmt.Errorf("feature %s: %w", d.Name, err)
			}
			f.seq, f.width, keepMs = sp, width, width*int64(cfg.Buckets)
			if d.Link != "" {
				sp.link = field(d.Link)
			}
		} else {
			if ms < int64(cfg.Buckets) || ms%int64(cfg.Buckets) != 0 {
				return nil, fmt.Errorf("feature %s: bad window %v: must be a whole number of milliseconds per bucket (%d buckets)", d.Name, d.Window, cfg.Buckets)
			}
			f.width = ms / int64(cfg.Buckets)
		}
		id := featureID{kind: d.Kind, of: d.Of, by: event.CanonicalField(d.By), windowMs: ms, widthMs: f.width,
			where: strings.TrimSpace(d.Where)}
		switch d.Kind {
		case KindSequence:
			id.of = sequenceID(d)
		case KindCount, KindTimeSince, KindFirstSeen:
			f.ofType, f.typed = d.Of, d.Of != "*"
		case KindDistinct:
			f.of = field(d.Of)
			id.of = event.CanonicalField(d.Of)
		case KindPercentile:
			f.num, f.q = numericFields[d.Of], d.Quantile
			// The quantile is read from the state, not kept in it: a
			// changed quantile keeps the state. The sketch's parameters
			// are what its items mean, so they are part of its identity.
			id.of = d.Of + quantSketchID
		default:
			f.num = numericFields[d.Of]
		}
		if d.Kind == KindTimeSince || d.Kind == KindFirstSeen {
			f.num = eventTime // their items hold event times
		}
		var err error
		if f.filter, err = compileWhere(d.Where); err != nil {
			return nil, fmt.Errorf("feature %s: %w", d.Name, err)
		}
		by := event.CanonicalField(d.By)
		g := -1
		for j := range s.groups {
			if s.groups[j].by == by {
				g = j
			}
		}
		if g < 0 {
			s.groups = append(s.groups, group{by: by, field: field(by)})
			g = len(s.groups) - 1
			if by == "account_id" {
				s.accGroup = g
			}
		}
		f.group = g
		lane := slices.Index(s.widths, f.width)
		if lane < 0 {
			s.widths = append(s.widths, f.width)
			lane = len(s.widths) - 1
		}
		if !slices.Contains(s.groups[g].lanes, uint8(lane)) {
			s.groups[g].lanes = append(s.groups[g].lanes, uint8(lane))
		}
		s.lanes[i], s.ops[i] = uint8(lane), f.op
		s.groups[g].feats = append(s.groups[g].feats, i)
		s.groups[g].maxWinMs = max(s.groups[g].maxWinMs, keepMs)
		if f.op == opSeq {
			s.groups[g].seq |= 1 << i
		} else {
			s.groups[g].adds = append(s.groups[g].adds, i)
		}
		if f.op == opAvg || f.op >= opStddev && f.op != opSeq {
			s.groups[g].final |= 1 << i
		}
		if f.op >= opStddev && f.op != opSeq {
			s.groups[g].more |= 1 << i
		}
		if f.op == opStddev || f.op == opQuantile || f.op.record() {
			s.groups[g].special |= 1 << i
		}
		if f.op == opQuantile {
			s.groups[g].quant |= 1 << i
		}
		if f.op.record() {
			s.groups[g].records |= 1 << i
		}
		if f.op == opSince {
			s.since = append(s.since, i)
		}
		s.feats = append(s.feats, f)
		s.index[d.Name] = i
		s.ids = append(s.ids, id)
	}
	return s, nil
}

// Index returns the slot of a window feature in Values.Windows.
func (s *Set) Index(name string) (int, bool) {
	i, ok := s.index[name]
	return i, ok
}

// Names lists the window features in slot order.
func (s *Set) Names() []string {
	out := make([]string, len(s.defs))
	for i, d := range s.defs {
		out[i] = d.Name
	}
	return out
}

// Name returns the name of window feature i (its slot in Values.Windows),
// or "" when there is none. The string is the Set's own: naming features
// by index allocates nothing.
func (s *Set) Name(i int) string {
	if i < 0 || i >= len(s.defs) {
		return ""
	}
	return s.defs[i].Name
}

// Definitions returns a copy of the definitions the Set was compiled from.
func (s *Set) Definitions() []Definition { return cloneDefs(s.defs) }

// cloneDefs copies defs and their sequences' steps, so that neither the
// Set nor its callers see the other change them.
func cloneDefs(defs []Definition) []Definition {
	out := append([]Definition(nil), defs...)
	for i := range out {
		out[i].Steps = slices.Clone(out[i].Steps)
	}
	return out
}

// Config returns the Config the Set was compiled with.
func (s *Set) Config() Config { return s.cfg }

// match reports whether ev feeds feature f (type and where clause).
func (f *feature) match(ev *event.Event, m *vm.VM) bool {
	if f.typed && ev.Type != f.ofType {
		return false
	}
	for i := range f.filter.preds {
		if !f.filter.preds[i].eval(ev) {
			return false
		}
	}
	if f.filter.prog != nil {
		out, err := m.Run(f.filter.prog, ev)
		if err != nil {
			return false
		}
		b, _ := out.(bool)
		return b
	}
	return true
}
