package rules

import (
	"maps"
	"slices"
)

// Vocabulary is every name a rule file may use, for an editor's
// completion: the keys of a rule, the actions, the fields under each chain
// a when expression reads, the functions it may call and the lists of the
// set. It is the same table Lint checks names against, so what an editor
// offers compiles.
type Vocabulary struct {
	// Keys are the keys of a rule (id, when, action, ...).
	Keys []string `json:"keys"`
	// Actions are the actions, least severe first.
	Actions []string `json:"actions"`
	// Fields maps each chain ("event", "event.device", "event.geo", "f",
	// "account") to the names under it, sorted. "f" holds the profile
	// features and the window features of the index.
	Fields map[string][]string `json:"fields"`
	// Functions are riskd's helpers (in_list, haversine, ...) first, then
	// expr's builtins, each sorted.
	Functions []string `json:"functions"`
	// Lists are the list names, sorted.
	Lists []string `json:"lists"`
}

// NewVocabulary returns the names rules compiled against feats (nil: no
// window features) may use, with lists as the set's lists.
func NewVocabulary(feats FeatureIndex, lists map[string]map[string]struct{}) Vocabulary {
	if feats == nil {
		feats = noFeatures{}
	}
	k := knownNames(feats, lists)
	v := Vocabulary{Keys: slices.Clone(ruleKeys), Actions: slices.Clone(actionNames[:]),
		Fields: make(map[string][]string, len(k.fields)), Lists: slices.Sorted(maps.Keys(lists))}
	for chain, names := range k.fields {
		v.Fields[chain] = slices.Sorted(maps.Keys(names))
	}
	own := []string{}
	rest := []string{}
	for _, name := range k.names {
		switch {
		case name == "event" || name == "f" || name == "account" || hiddenName(name):
		case name == "in_list" || name == "haversine" || name == "hour" || slices.Contains(helperNames, name):
			own = append(own, name)
		default:
			rest = append(rest, name)
		}
	}
	slices.Sort(own)
	slices.Sort(rest)
	v.Functions = append(own, rest...)
	if v.Lists == nil {
		v.Lists = []string{}
	}
	return v
}
