package chstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// RuleSetVersionRow is one published rule-set version.
type RuleSetVersionRow struct {
	// Seq is the version's sequence number, unique per publish.
	Seq uint64
	// Hash is the content hash of Files (rules.HashFiles).
	Hash string
	// Files maps slash path to content; nil in history listings, which
	// leave the files out.
	Files map[string]string
	// Author is the API token name of who published it.
	Author string
	// Message is the author's note, like a commit message.
	Message string
	// PublishedAt is when it was published (ms precision); zero means now.
	PublishedAt time.Time
	// RuleCount is the number of rules in the set, shadow rules included.
	RuleCount int
}

// AuditRow is one change made, or attempted, through the admin API.
type AuditRow struct {
	// At is when it happened (ms precision); zero means now.
	At time.Time
	// Actor is the API token name; Role its role.
	Actor, Role string
	// Action names the change: "rules.publish", "rules.publish_refused",
	// "rules.rollback", "lists.put", ...
	Action string
	// Object is what was changed: "ruleset", "list:scam_payees", ...
	Object string
	// OldVersion and NewVersion are "SEQ-HASH8" before and after; NewVersion
	// is empty when the change was refused.
	OldVersion, NewVersion string
	// Detail is free text: the message, the refusal, the entries changed.
	Detail string
}

const (
	versionColumns = "seq, hash, files, author, message, published_at, published_at_ms, rule_count"
	auditColumns   = "at, at_ms, actor, role, action, object, old_version, new_version, detail"
)

// WriteRuleSetVersion stores a published version, retrying like
// WriteDecisions; writing the same seq again replaces it.
func (s *Store) WriteRuleSetVersion(ctx context.Context, r RuleSetVersionRow) error {
	if r.Hash == "" {
		return errors.New("chstore: write ruleset version: empty hash")
	}
	files, err := json.Marshal(r.Files)
	if err != nil {
		return fmt.Errorf("chstore: write ruleset version %d: %w", r.Seq, err)
	}
	at := r.PublishedAt
	if at.IsZero() {
		at = time.Now()
	}
	in := insert{table: "ruleset_versions", columns: versionColumns,
		rows: [][]any{{r.Seq, r.Hash, string(files), r.Author, r.Message, dateTime(at), at.UnixMilli(), uint32(max(r.RuleCount, 0))}}}
	return s.retry(ctx, fmt.Sprintf("write ruleset version %d", r.Seq), func(ctx context.Context) error { return s.send(ctx, in) })
}

// RuleSetVersions lists published versions, newest first, at most limit
// (0 means 100), without their files.
func (s *Store) RuleSetVersions(ctx context.Context, limit int) ([]RuleSetVersionRow, error) {
	if limit <= 0 {
		limit = 100
	}
	q := "SELECT seq, hash, author, message, published_at_ms, rule_count FROM " + s.table("ruleset_versions") +
		" FINAL ORDER BY seq DESC LIMIT ?"
	rows, err := s.conn.Query(ctx, q, limit)
	if err != nil {
		return nil, fmt.Errorf("chstore: ruleset versions: %w", err)
	}
	defer rows.Close()
	var out []RuleSetVersionRow
	for rows.Next() {
		var (
			r     RuleSetVersionRow
			ms    int64
			count uint32
		)
		if err := rows.Scan(&r.Seq, &r.Hash, &r.Author, &r.Message, &ms, &count); err != nil {
			return nil, fmt.Errorf("chstore: ruleset versions: %w", err)
		}
		r.PublishedAt = time.UnixMilli(ms).UTC()
		r.RuleCount = int(count)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: ruleset versions: %w", err)
	}
	return out, nil
}

// RuleSetVersion reads one version with its files; false when there is none.
func (s *Store) RuleSetVersion(ctx context.Context, seq uint64) (RuleSetVersionRow, bool, error) {
	q := "SELECT seq, hash, files, author, message, published_at_ms, rule_count FROM " + s.table("ruleset_versions") +
		" FINAL WHERE seq = ? LIMIT 1"
	rows, err := s.conn.Query(ctx, q, seq)
	if err != nil {
		return RuleSetVersionRow{}, false, fmt.Errorf("chstore: ruleset version %d: %w", seq, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return RuleSetVersionRow{}, false, fmt.Errorf("chstore: ruleset version %d: %w", seq, err)
		}
		return RuleSetVersionRow{}, false, nil
	}
	var (
		r     RuleSetVersionRow
		files string
		ms    int64
		count uint32
	)
	if err := rows.Scan(&r.Seq, &r.Hash, &files, &r.Author, &r.Message, &ms, &count); err != nil {
		return RuleSetVersionRow{}, false, fmt.Errorf("chstore: ruleset version %d: %w", seq, err)
	}
	if err := json.Unmarshal([]byte(files), &r.Files); err != nil {
		return RuleSetVersionRow{}, false, fmt.Errorf("chstore: ruleset version %d: files: %w", seq, err)
	}
	r.PublishedAt = time.UnixMilli(ms).UTC()
	r.RuleCount = int(count)
	return r, true, nil
}

// WriteAudit stores one audit row, retrying like WriteDecisions.
func (s *Store) WriteAudit(ctx context.Context, r AuditRow) error {
	if r.Action == "" {
		return errors.New("chstore: write audit: empty action")
	}
	at := r.At
	if at.IsZero() {
		at = time.Now()
	}
	in := insert{table: "audit_log", columns: auditColumns,
		rows: [][]any{{dateTime(at), at.UnixMilli(), r.Actor, r.Role, r.Action, r.Object, r.OldVersion, r.NewVersion, r.Detail}}}
	return s.retry(ctx, "write audit "+r.Action, func(ctx context.Context) error { return s.send(ctx, in) })
}

// AuditLog reads audit rows at or after since, oldest first, at most limit
// (0 means 1000).
func (s *Store) AuditLog(ctx context.Context, since time.Time, limit int) ([]AuditRow, error) {
	if limit <= 0 {
		limit = 1000
	}
	q := "SELECT at_ms, actor, role, action, object, old_version, new_version, detail FROM " + s.table("audit_log") +
		" FINAL WHERE at >= toDateTime(?) AND at_ms >= ? ORDER BY at, at_ms LIMIT ?"
	rows, err := s.conn.Query(ctx, q, dateTime(since).Unix(), since.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("chstore: audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditRow
	for rows.Next() {
		var (
			r  AuditRow
			ms int64
		)
		if err := rows.Scan(&ms, &r.Actor, &r.Role, &r.Action, &r.Object, &r.OldVersion, &r.NewVersion, &r.Detail); err != nil {
			return nil, fmt.Errorf("chstore: audit log: %w", err)
		}
		r.At = time.UnixMilli(ms).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chstore: audit log: %w", err)
	}
	return out, nil
}
