package backtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"riskd/rules"
	"riskd/streams/chstore"
)

// The baseline replay runs, beside the candidate, the rule sets that were
// live: each event with the version its recorded decision names. Both
// scorers see the same events in the same order on the same simulated
// clock, so what separates their decisions is the rule change alone, and
// what separates the baseline's from the recorded ones is the replay
// itself (see Reproduction).

// baseSet is one recorded rule-set version, compiled for the baseline.
type baseSet struct {
	version string // as recorded: "SEQ-HASH8"
	seq     uint64
	// rs is the compiled set; nil when the version cannot be replayed,
	// and then missing says why.
	rs      *rules.RuleSet
	missing string
}

// versions looks recorded versions up in the version history and compiles
// each once. It runs on the replay's reader goroutine only.
type versions struct {
	store *chstore.Store
	feats rules.FeatureIndex
	known []known // Config.KnownFiles
	byStr map[string]*baseSet
	order []*baseSet // in order of first use, for the report
}

// known is one set of Config.KnownFiles and its content hash.
type known struct {
	hash  string
	files map[string][]byte
}

func newVersions(store *chstore.Store, feats rules.FeatureIndex, files []map[string][]byte) *versions {
	vs := &versions{store: store, feats: feats, byStr: map[string]*baseSet{}}
	for _, f := range files {
		if f != nil {
			vs.known = append(vs.known, known{hash: rules.HashFiles(f), files: f})
		}
	}
	return vs
}

// get returns the set of version v ("SEQ-HASH8"), reading and compiling
// it the first time. A version that cannot be replayed is a baseSet with
// rs nil, not an error; errors are ClickHouse's.
func (vs *versions) get(ctx context.Context, v string) (*baseSet, error) {
	if b, ok := vs.byStr[v]; ok {
		return b, nil
	}
	b := &baseSet{version: strings.Clone(v)}
	if err := vs.load(ctx, b); err != nil {
		return nil, err
	}
	vs.byStr[b.version] = b
	vs.order = append(vs.order, b)
	return b, nil
}

func (vs *versions) load(ctx context.Context, b *baseSet) error {
	seqStr, h8, ok := strings.Cut(b.version, "-")
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if !ok || err != nil || h8 == "" {
		b.missing = "not a rule-set version (SEQ-HASH8)"
		return nil
	}
	b.seq = seq
	// Files the caller has (the running set's, the candidate's) need no
	// history: the start-up set, say, is in none.
	for _, k := range vs.known {
		if strings.HasPrefix(k.hash, h8) {
			vs.compile(b, k.files, h8)
			return nil
		}
	}
	row, found, err := vs.store.RuleSetVersion(ctx, seq)
	if err != nil {
		return fmt.Errorf("baseline rule set %s: %w", b.version, err)
	}
	if !found {
		b.missing = "not in the version history"
		return nil
	}
	if !strings.HasPrefix(row.Hash, h8) {
		b.missing = fmt.Sprintf("the history's version %d has hash %s", seq, hash8(row.Hash))
		return nil
	}
	files := make(map[string][]byte, len(row.Files))
	for name, content := range row.Files {
		files[name] = []byte(content)
	}
	vs.compile(b, files, h8)
	return nil
}

// compile compiles files into b, or says in b.missing why they cannot be
// replayed as the version of hash prefix h8.
func (vs *versions) compile(b *baseSet, files map[string][]byte, h8 string) {
	rs, err := rules.Compile(files, vs.feats)
	if err != nil {
		b.missing = fmt.Sprintf("no longer compiles with today's features: %v", err)
		return
	}
	// What compiled must be what was live, not just what the row says.
	if !strings.HasPrefix(rs.Version.Hash, h8) {
		b.missing = fmt.Sprintf("its files hash to %s", hash8(rs.Version.Hash))
		return
	}
	b.rs = rs
}
