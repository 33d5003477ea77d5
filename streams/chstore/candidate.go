package chstore

import (
	"context"
	"fmt"
	"time"
)

// MaxCandidateExamples is how many event ids CandidateReport gives per
// cell of the agreement matrix where the two sets disagree.
const MaxCandidateExamples = 10

// CandidateCell is one cell of the agreement matrix: the decisions the
// live set gave Live and the candidate gave Candidate.
type CandidateCell struct {
	Live      string
	Candidate string
	Count     uint64
	// Examples are up to MaxCandidateExamples event ids of the cell, only
	// where Live and Candidate differ.
	Examples []string
}

// CandidateRuleCount is how many compared decisions a candidate rule
// matched.
type CandidateRuleCount struct {
	RuleID string
	Count  uint64
}

// CandidateReport compares the live and the candidate set over stored
// decisions.
type CandidateReport struct {
	// Compared is the number of decisions that carry the candidate's outcome.
	Compared uint64
	// Agreed is how many of them got the same action from both.
	Agreed uint64
	// Cells are the non-empty cells of the matrix, by live then candidate action.
	Cells []CandidateCell
	// Rules are the candidate's active rules that matched, by rule id.
	Rules []CandidateRuleCount
}

// candidateFilter selects the decisions of one candidate version made at or
// after a time (decided_at, as sinceFilter).
const candidateFilter = " WHERE candidate_version = ? AND decided_at >= toDateTime(?) AND decided_at_ms >= ?"

// CandidateReport reads the decisions made since when candidate version
// (engine.CandidateOutcome.Version) ran beside the live set, and says how
// the two agreed: the matrix of live action by candidate action and how
// often each candidate rule matched.
func (s *Store) CandidateReport(ctx context.Context, version string, since time.Time) (CandidateReport, error) {
	var rep CandidateReport
	var err error
	if rep.Cells, err = s.candidateCells(ctx, version, since); err != nil {
		return CandidateReport{}, err
	}
	for i, c := range rep.Cells {
		rep.Compared += c.Count
		if c.Live == c.Candidate {
			rep.Agreed += c.Count
			rep.Cells[i].Examples = nil
		}
	}
	if rep.Rules, err = s.candidateRules(ctx, version, since); err != nil {
		return CandidateReport{}, err
	}
	return rep, nil
}

// candidateCells reads the agreement matrix, with examples in every cell.
func (s *Store) candidateCells(ctx context.Context, version string, since time.Time) ([]CandidateCell, error) {
	q := fmt.Sprintf("SELECT action, candidate_action, count(), groupArray(%d)(event_id) FROM %s FINAL%s "+
		"GROUP BY action, candidate_action ORDER BY action, candidate_action", MaxCandidateExamples, s.table("decisions"), candidateFilter)
	rows, err := s.conn.Query(ctx, q, append([]any{version}, sinceArgs(since)...)...)
	if err != nil {
		return nil, fmt.Errorf("chstore: candidate %s report: %w", version, err)
	}
	defer rows.Close()
	var cells []CandidateCell
	for rows.Next() {
		var c CandidateCell
		if err := rows.Scan(&c.Live, &c.Candidate, &c.Count, &c.Examples); err != nil {
			return nil, fmt.Errorf("chstore: candidate %s report: %w", version, err)
		}
		cells = append(cells, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: candidate %s report: %w", version, err)
	}
	return cells, nil
}

// candidateRules counts the candidate's matched active rules.
func (s *Store) candidateRules(ctx context.Context, version string, since time.Time) ([]CandidateRuleCount, error) {
	q := "SELECT rule, count() FROM " + s.table("decisions") + " FINAL ARRAY JOIN candidate_rules AS rule" + candidateFilter +
		" GROUP BY rule ORDER BY rule"
	rows, err := s.conn.Query(ctx, q, append([]any{version}, sinceArgs(since)...)...)
	if err != nil {
		return nil, fmt.Errorf("chstore: candidate %s rule counts: %w", version, err)
	}
	defer rows.Close()
	var out []CandidateRuleCount
	for rows.Next() {
		var r CandidateRuleCount
		if err := rows.Scan(&r.RuleID, &r.Count); err != nil {
			return nil, fmt.Errorf("chstore: candidate %s rule counts: %w", version, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: candidate %s rule counts: %w", version, err)
	}
	return out, nil
}
