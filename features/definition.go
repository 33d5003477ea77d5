package features

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"riskd/event"
)

// Kind is the aggregate a window feature computes.
type Kind string

// The aggregates a window feature may compute.
const (
	// KindCount counts events whose type is Of ("*" for any type).
	KindCount Kind = "count"
	// KindSum, KindMin, KindMax and KindAvg aggregate the numeric field Of
	// (amount, in minor units).
	KindSum Kind = "sum"
	KindMin Kind = "min"
	KindMax Kind = "max"
	KindAvg Kind = "avg"
	// KindDistinct counts distinct values of the entity field Of (device.id,
	// account_id, ...), exactly up to Config.MaxDistinct.
	KindDistinct Kind = "distinct"
	// KindStddev is the population standard deviation of the numeric
	// field Of over the window's matching events; 0 with fewer than two.
	KindStddev Kind = "stddev"
	// KindLast is the numeric field Of of the entity's previous matching
	// event in the window (before this one); 0 when there is none.
	KindLast Kind = "last"
	// KindTimeSince is the event-time seconds since the entity's previous
	// matching event of type Of ("*" for any) in the window (before this
	// one); NeverSecs when there is none.
	KindTimeSince Kind = "time_since"
	// KindFirstSeen is the event-time seconds since the entity's first
	// matching event of type Of ("*" for any) in the window, this one
	// included: 0 for the first.
	KindFirstSeen Kind = "first_seen"
	// KindSequence is 1 when the event completes the sequence of event
	// types Steps of its entity within Window, 0 otherwise (see
	// sequence.go).
	KindSequence Kind = "sequence"
	// KindPercentile estimates the Quantile of the numeric field Of over
	// the window's matching events, from a log-scale histogram with a
	// bounded relative error (see quantile.go); 0 when there is none.
	KindPercentile Kind = "percentile"
)

var kinds = []Kind{KindCount, KindSum, KindMin, KindMax, KindDistinct, KindAvg,
	KindStddev, KindLast, KindTimeSince, KindFirstSeen, KindSequence, KindPercentile}

// kindList names the kinds for error messages.
const kindList = "count, sum, min, max, avg, distinct, stddev, last, time_since, first_seen, sequence, percentile"

// Definition declares one window feature.
type Definition struct {
	// Name is how rules read the value: f.<Name>.
	Name string
	// Kind is the aggregate.
	Kind Kind
	// Of is the event type for count, time_since and first_seen ("*" for
	// any), the numeric field for sum/min/max/avg/stddev/last ("amount"),
	// or the entity field for distinct.
	Of string
	// By is the entity field the feature is grouped by ("account",
	// "device.id", "ip", ...), as accepted by event.FieldGetter.
	By string
	// Window is how far back the aggregate looks, on event time; for a
	// sequence, its within: the longest time from the first step's event
	// to the last's.
	Window time.Duration
	// Where optionally filters events with an expr expression over the
	// event (type == "payment" && amount > 1000). Empty means all events;
	// a sequence applies it to every step's event.
	Where string
	// Steps are a sequence's event types in order ("*" for any), from
	// MinSteps to MaxSteps of them; empty for the other kinds.
	Steps []string
	// Link is a sequence's optional entity field ("payee_id") on which
	// the steps' events that carry it must agree.
	Link string
	// Quantile is a percentile's q, 0 < q < 1 (0.95 for the 95th
	// percentile); zero for the other kinds.
	Quantile float64
}

// The bounds of a sequence's steps, and of each step's type name and of
// its link field's name, in bytes.
const (
	MinSteps    = 2
	MaxSteps    = 4
	maxStepName = 100
)

// numericFields are the fields sum/min/max/avg/stddev/last/percentile
// accept.
var numericFields = map[string]func(*event.Event) float64{
	"amount":  func(e *event.Event) float64 { return float64(e.Amount) },
	"geo.lat": func(e *event.Event) float64 { return e.Geo.Lat },
	"geo.lon": func(e *event.Event) float64 { return e.Geo.Lon },
}

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ParseDefinitions reads feature definitions from YAML, one mapping entry
// per feature, in file order:
//
//	payments_1h: {count: payment, by: account, window: 1h}
//	amount_24h:  {sum: amount, by: account, window: 24h, where: 'type == "payment"'}
//
// Windows accept Go durations plus a "d" suffix for days (7d). Errors name
// the feature and what is wrong with it.
func ParseDefinitions(data []byte) ([]Definition, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("features: line %d: want a mapping of feature name to definition", root.Line)
	}
	defs := make([]Definition, 0, len(root.Content)/2)
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		name, body := root.Content[i].Value, root.Content[i+1]
		if seen[name] {
			return nil, fmt.Errorf("feature %s (line %d): declared twice", name, root.Content[i].Line)
		}
		seen[name] = true
		d, err := parseOne(name, body)
		if err != nil {
			return nil, fmt.Errorf("feature %s (line %d): %w", name, root.Content[i].Line, err)
		}
		defs = append(defs, d)
	}
	return defs, nil
}

func parseOne(name string, body *yaml.Node) (Definition, error) {
	d := Definition{Name: name}
	if body.Kind != yaml.MappingNode {
		return d, fmt.Errorf("want a mapping like {count: payment, by: account, window: 1h}")
	}
	var window, within string
	var hasWindow, hasWithin, hasLink, hasQuantile bool
	for i := 0; i+1 < len(body.Content); i += 2 {
		k, v := body.Content[i].Value, body.Content[i+1]
		if k == string(KindSequence) {
			if d.Kind != "" {
				return d, fmt.Errorf("two kinds (%s and %s); declare one", d.Kind, k)
			}
			steps, err := parseSteps(v)
			if err != nil {
				return d, err
			}
			d.Kind, d.Steps = KindSequence, steps
			continue
		}
		if v.Kind != yaml.ScalarNode {
			return d, fmt.Errorf("%s: want a plain value", k)
		}
		switch k {
		case "by":
			d.By = v.Value
		case "window":
			window, hasWindow = v.Value, true
		case "within":
			within, hasWithin = v.Value, true
		case "link":
			d.Link, hasLink = v.Value, true
		case "where":
			d.Where = v.Value
		case "quantile":
			q, err := strconv.ParseFloat(v.Value, 64)
			if err != nil || !validQuantile(q) {
				return d, fmt.Errorf("bad quantile %q: want a number between 0 and 1, both excluded, like 0.95", v.Value)
			}
			d.Quantile, hasQuantile = q, true
		default:
			if !isKind(Kind(k)) {
				return d, fmt.Errorf("unknown key %q (kinds: %s; keys: by, window, where; for sequence: by, within, link, where; for percentile: quantile too)", k, kindList)
			}
			if d.Kind != "" {
				return d, fmt.Errorf("two kinds (%s and %s); declare one", d.Kind, k)
			}
			d.Kind, d.Of = Kind(k), v.Value
		}
	}
	if d.Kind == "" {
		return d, fmt.Errorf("no kind (one of %s)", kindList)
	}
	if d.Kind == KindSequence {
		if hasWindow {
			return d, fmt.Errorf("a sequence takes within (from the first step to the last), not window")
		}
		if !hasWithin || within == "" {
			return d, fmt.Errorf("no within (the longest time from the first step to the last, like 30m)")
		}
		if hasLink && d.Link == "" {
			return d, fmt.Errorf("empty link: name an entity field like payee_id, or leave link out")
		}
		w, err := parseWindow(within)
		if err != nil {
			return d, fmt.Errorf("within: %w", err)
		}
		d.Window = w
		return d, d.Validate()
	}
	if hasWithin || hasLink {
		return d, fmt.Errorf("within and link are for sequence features; a %s takes a window", d.Kind)
	}
	switch {
	case hasQuantile && d.Kind != KindPercentile:
		return d, fmt.Errorf("quantile is for percentile features, not %s", d.Kind)
	case !hasQuantile && d.Kind == KindPercentile:
		return d, fmt.Errorf("no quantile (the q of the percentile, between 0 and 1, like 0.95)")
	}
	if window == "" {
		return d, fmt.Errorf("no window")
	}
	w, err := parseWindow(window)
	if err != nil {
		return d, err
	}
	d.Window = w
	return d, d.Validate()
}

// parseSteps reads a sequence's steps: a YAML list of event types.
func parseSteps(v *yaml.Node) ([]string, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("sequence: want a list of event types like [password_reset, payee_add, payment]")
	}
	if n := len(v.Content); n < MinSteps || n > MaxSteps {
		return nil, fmt.Errorf("sequence: %d steps, want %d to %d", n, MinSteps, MaxSteps)
	}
	steps := make([]string, len(v.Content))
	for k, x := range v.Content {
		if x.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("sequence: step %d: want an event type", k+1)
		}
		steps[k] = x.Value
	}
	return steps, nil
}

func isKind(k Kind) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

func parseWindow(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("bad window %q: want a duration like 15m, 1h or 7d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	w, err := time.ParseDuration(s)
	if err != nil || w <= 0 {
		return 0, fmt.Errorf("bad window %q: want a duration like 15m, 1h or 7d", s)
	}
	return w, nil
}

// Validate checks one definition on its own; Compile also checks it
// against the Config.
func (d Definition) Validate() error {
	if !nameRE.MatchString(d.Name) {
		return fmt.Errorf("bad name %q: use lower case letters, digits and _", d.Name)
	}
	if !isKind(d.Kind) {
		return fmt.Errorf("unknown kind %q (want one of %s)", d.Kind, kindList)
	}
	if d.Window <= 0 {
		return fmt.Errorf("bad window %v: must be positive", d.Window)
	}
	if d.By == "" {
		return fmt.Errorf("no by field")
	}
	if _, ok := event.FieldGetter(d.By); !ok {
		return fmt.Errorf("unknown field %q in by", d.By)
	}
	switch {
	case d.Kind == KindPercentile && !validQuantile(d.Quantile):
		return fmt.Errorf("bad quantile %v: want a number between 0 and 1, both excluded, like 0.95", d.Quantile)
	case d.Kind != KindPercentile && d.Quantile != 0:
		return fmt.Errorf("quantile is for percentile features, not %s", d.Kind)
	}
	if d.Kind == KindSequence {
		return d.validateSequence()
	}
	if len(d.Steps) > 0 || d.Link != "" {
		return fmt.Errorf("steps and link are for sequence features, not %s", d.Kind)
	}
	switch d.Kind {
	case KindCount, KindTimeSince, KindFirstSeen:
		if d.Of == "" {
			return fmt.Errorf("%s needs an event type or \"*\"", d.Kind)
		}
	case KindDistinct:
		if _, ok := event.FieldGetter(d.Of); !ok {
			return fmt.Errorf("unknown field %q in distinct", d.Of)
		}
	default:
		if _, ok := numericFields[d.Of]; !ok {
			return fmt.Errorf("unknown field %q in %s (numeric fields: amount, geo.lat, geo.lon)", d.Of, d.Kind)
		}
	}
	return nil
}

// validateSequence checks a sequence's steps and link. Step types are
// open, as for count: any non-empty name, or "*".
func (d Definition) validateSequence() error {
	if n := len(d.Steps); n < MinSteps || n > MaxSteps {
		return fmt.Errorf("sequence: %d steps, want %d to %d", n, MinSteps, MaxSteps)
	}
	for k, t := range d.Steps {
		switch {
		case t == "":
			return fmt.Errorf("sequence: step %d: empty event type (name one, or \"*\" for any)", k+1)
		case len(t) > maxStepName:
			return fmt.Errorf("sequence: step %d: event type of %d bytes, at most %d", k+1, len(t), maxStepName)
		}
	}
	if d.Of != "" {
		return fmt.Errorf("a sequence takes its event types in Steps, not Of")
	}
	if d.Link != "" {
		if len(d.Link) > maxStepName {
			return fmt.Errorf("link field name of %d bytes, at most %d", len(d.Link), maxStepName)
		}
		if _, ok := event.FieldGetter(d.Link); !ok {
			return fmt.Errorf("unknown field %q in link (an entity field like payee_id, device.id, ip)", d.Link)
		}
	}
	return nil
}

// LoadFile reads, parses and compiles a feature definitions file: what
// the daemon, tools and tests all need from a features.yaml.
func LoadFile(path string, cfg Config) (*Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	defs, err := ParseDefinitions(b)
	if err != nil {
		return nil, fmt.Errorf("features %s: %w", path, err)
	}
	set, err := Compile(defs, cfg)
	if err != nil {
		return nil, fmt.Errorf("features %s: %w", path, err)
	}
	return set, nil
}
