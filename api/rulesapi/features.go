package rulesapi

import (
	"fmt"

	"riskd/features"
	"riskd/rules"
)

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

// SwapFeatures makes set the window features of this instance's rule
// sets: it compiles the running set's files, and the candidate's when one
// is installed, against set and hands swap an install function that puts
// them in the holder. swap changes the engine's features and calls install
// at the same place in the stream (engine.Engine.SwapFeatures); no version
// from the rule topic is installed in between. A running or candidate set
// that does not compile against set (a rule reads a feature set drops)
// refuses the change, naming the rule and its position, and nothing
// changes.
func (s *Service) SwapFeatures(set *features.Set, swap func(install func()) error) error {
	s.featMu.Lock()
	defer s.featMu.Unlock()
	var live, cand *rules.RuleSet
	if cur := s.cfg.Holder.Load(); cur != nil {
		files, _, err := s.currentFiles()
		if err != nil {
			return fmt.Errorf("rulesapi: swap features: %w", err)
		}
		if live, err = rules.Compile(files, set); err != nil {
			return fmt.Errorf("rulesapi: swap features: the running rule set %s does not compile against them: %w", cur.Version, err)
		}
		live.Version.Seq = cur.Version.Seq
	}
	rec, cs, ok := s.installedCandidate()
	if !ok && s.cfg.Holder.LoadCandidate() != nil {
		return fmt.Errorf("rulesapi: swap features: the files of the candidate rule set %s are unknown; promote or drop it first",
			s.cfg.Holder.LoadCandidate().Version)
	}
	if ok {
		var err error
		if cand, err = rules.Compile(toBytes(rec.Files), set); err != nil {
			return fmt.Errorf("rulesapi: swap features: the candidate rule set %s does not compile against them: %w", cs.Version, err)
		}
		cand.Version.Seq = cs.Version.Seq
	}
	err := swap(func() {
		if live != nil {
			s.cfg.Holder.Install(live, live.Version.Seq)
		}
		if cand != nil {
			s.cfg.Holder.InstallCandidate(cand, cand.Version.Seq)
		}
	})
	if err != nil {
		return err
	}
	s.feats, s.featSet = set, set
	return nil
}
