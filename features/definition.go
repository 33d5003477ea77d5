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
)

var kinds = []Kind{KindCount, KindSum, KindMin, KindMax, KindDistinct, KindAvg,
	KindStddev, KindLast, KindTimeSince, KindFirstSeen}

// kindList names the kinds for error messages.
const kindList = "count, sum, min, max, avg, distinct, stddev, last, time_since, first_seen"

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
	// Window is how far back the aggregate looks, on event time.
	Window time.Duration
	// Where optionally filters events with an expr expression over the
	// event (type == "payment" && amount > 1000). Empty means all events.
	Where string
}

// numericFields are the fields sum/min/max/avg/stddev/last accept.
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
	var window string
	for i := 0; i+1 < len(body.Content); i += 2 {
		k, v := body.Content[i].Value, body.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return d, fmt.Errorf("%s: want a plain value", k)
		}
		switch k {
		case "by":
			d.By = v.Value
		case "window":
			window = v.Value
		case "where":
			d.Where = v.Value
		default:
			if !isKind(Kind(k)) {
				return d, fmt.Errorf("unknown key %q (kinds: %s; keys: by, window, where)", k, kindList)
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
