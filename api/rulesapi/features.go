package rulesapi

import (
	"fmt"
	"reflect"

	"riskd/features"
	"riskd/rules"
)

// Window features travel with the rules: a version's files may carry
// rules.FeaturesFile, the feature definitions its rules were written
// against. Installing a version whose definitions differ from the running
// ones changes the engine's features first (Config.SwapEngine: unchanged
// features keep their state, new ones start empty and warming, removed
// ones are dropped) and installs the version's rules at the same place
// in the stream. So an analyst's publish, a rollback and an edit of the
// daemon's features file all reach every instance through the rule
// topic, as one version with the rules. A version without the file
// leaves the features as they are; the API adds the running file to the
// versions it publishes, so each says what ran.

// features returns the window features rule sets compile against now, as
// the index rules.Compile takes and as the Set the engine runs.
func (s *Service) features() (rules.FeatureIndex, *features.Set) {
	s.featMu.RLock()
	defer s.featMu.RUnlock()
	return s.feats, s.featSet
}

func (s *Service) featureIndex() rules.FeatureIndex {
	idx, _ := s.features()
	return idx
}

// FeatureSet is the window features the installed rules compile against:
// the daemon's features file, or those of the version Start installed.
func (s *Service) FeatureSet() *features.Set {
	_, set := s.features()
	return set
}

// featuresIn compiles the feature definitions files carry, and returns nil
// when they carry none or the definitions run already. The running Set's
// Config (buckets, distinct bounds) applies.
func (s *Service) featuresIn(files map[string][]byte) (*features.Set, error) {
	b, ok := files[rules.FeaturesFile]
	if !ok {
		return nil, nil
	}
	defs, err := features.ParseDefinitions(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rules.FeaturesFile, err)
	}
	_, running := s.features()
	cfg := features.DefaultConfig()
	if running != nil {
		cfg = running.Config()
	}
	set, err := features.Compile(defs, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rules.FeaturesFile, err)
	}
	if running != nil && reflect.DeepEqual(running.Definitions(), set.Definitions()) {
		return nil, nil
	}
	return set, nil
}

// runningFeaturesFile is the features file of the running version, or nil
// when it carries none.
func (s *Service) runningFeaturesFile() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return nil
	}
	if text, ok := s.current.Files[rules.FeaturesFile]; ok {
		return []byte(text)
	}
	return nil
}

// withRunningFeatures returns files with the running version's features
// file added when files carry none, so a version published through the
// API says which features it ran with.
func (s *Service) withRunningFeatures(files map[string][]byte) map[string][]byte {
	if _, ok := files[rules.FeaturesFile]; ok {
		return files
	}
	b := s.runningFeaturesFile()
	if b == nil {
		return files
	}
	files = cloneFiles(files)
	files[rules.FeaturesFile] = b
	return files
}

// candidateAgainst compiles the installed candidate's files against set,
// or returns nil when no candidate is installed. A candidate that does not
// compile against set refuses set, naming the rule.
func (s *Service) candidateAgainst(set *features.Set) (*rules.RuleSet, error) {
	rec, cs, ok := s.installedCandidate()
	if !ok {
		if cand := s.cfg.Holder.LoadCandidate(); cand != nil {
			return nil, fmt.Errorf("the files of the candidate rule set %s are unknown; promote or drop it first", cand.Version)
		}
		return nil, nil
	}
	cand, err := rules.Compile(toBytes(rec.Files), set)
	if err != nil {
		return nil, fmt.Errorf("the candidate rule set %s does not compile against the new features (promote or drop it first): %w",
			cs.Version, err)
	}
	cand.Version.Seq = cs.Version.Seq
	return cand, nil
}

// swapFeatures makes set the window features of this instance: it
// recompiles the installed candidate against set and hands
// Config.SwapEngine an install function that puts live (compiled against
// set, to run as version seq) and the candidate in the holder, at the
// place in the stream where the engine's features change. The caller
// holds featMu for writing, so no version is compiled against features on
// their way out.
func (s *Service) swapFeatures(set *features.Set, live *rules.RuleSet, seq uint64) error {
	cand, err := s.candidateAgainst(set)
	if err != nil {
		return fmt.Errorf("swap features: %w", err)
	}
	install := func() {
		s.cfg.Holder.Install(live, seq)
		if cand != nil {
			s.cfg.Holder.InstallCandidate(cand, cand.Version.Seq)
		}
	}
	swap := s.cfg.SwapEngine
	if swap == nil {
		install()
	} else if err := swap(set, install); err != nil {
		return fmt.Errorf("swap features: %w", err)
	}
	s.feats, s.featSet = set, set
	return nil
}
