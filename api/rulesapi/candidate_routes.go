package rulesapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"riskd/api"
	"riskd/features"
	"riskd/rules"
	"riskd/streams/chstore"
	"riskd/streams/rulesync"
)

// The candidate: a rule set published with "shadow": true runs on every
// instance beside the live set, on the same events, features and state,
// and its decisions are recorded (engine.Decision.Candidate), never acted
// on. One at a time; it is promoted to a live version or dropped.

func (s *Service) candidateRoutes() []api.Route {
	read := []api.Role{api.RoleViewer, api.RoleAnalyst}
	write := []api.Role{api.RoleAnalyst}
	small := int64(64 << 10)
	return []api.Route{
		{Pattern: "GET /v1/rules/candidate", Roles: read, Handler: http.HandlerFunc(s.candidateReport)},
		{Pattern: "POST /v1/rules/candidate/promote", Roles: write, MaxBody: small, Handler: http.HandlerFunc(s.promoteCandidate)},
		{Pattern: "DELETE /v1/rules/candidate", Roles: write, MaxBody: small, Handler: http.HandlerFunc(s.dropCandidateRoute)},
	}
}

// applyCandidate installs a candidate record from the topic beside the
// live set, or drops the candidate for a record without files. A record
// that does not compile is refused and the previous candidate stays.
func (s *Service) applyCandidate(rec rulesync.Record) error {
	var err error
	if rec.Hash == "" {
		s.cfg.Holder.ClearCandidate()
	} else {
		err = s.installCandidate(rec)
	}
	s.mu.Lock()
	s.seen, s.seenErr = rec.Seq, err
	if err == nil {
		if rec.Hash == "" {
			s.candidate = nil
		} else {
			r := rec
			s.candidate = &r
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return err
}

func (s *Service) installCandidate(rec rulesync.Record) error {
	for name := range rec.Files {
		if err := checkFileName(name); err != nil {
			return fmt.Errorf("candidate %d: %w", rec.Seq, err)
		}
	}
	files := toBytes(rec.Files)
	if h := rules.HashFiles(files); h != rec.Hash {
		return fmt.Errorf("candidate %d: files hash to %s, the record says %s", rec.Seq, h, rec.Hash)
	}
	s.featMu.RLock()
	defer s.featMu.RUnlock()
	rs, err := rules.Compile(files, s.feats)
	if err != nil {
		return fmt.Errorf("candidate %d: %w", rec.Seq, err)
	}
	s.cfg.Holder.InstallCandidate(rs, rec.Seq)
	return nil
}

// installedCandidate returns the candidate record and set this instance
// runs, or false when there is none.
func (s *Service) installedCandidate() (rulesync.Record, *rules.RuleSet, bool) {
	cs := s.cfg.Holder.LoadCandidate()
	s.mu.Lock()
	rec := s.candidate
	s.mu.Unlock()
	if cs == nil || rec == nil || rec.Seq != cs.Version.Seq {
		return rulesync.Record{}, nil, false
	}
	return *rec, cs, true
}

// candidatePublished is the answer to a shadow publish.
type candidatePublished struct {
	Candidate string    `json:"candidate_version"`
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	Rules     int       `json:"rules"`
	Live      string    `json:"live_version,omitempty"`
	Replaced  string    `json:"replaced_candidate,omitempty"`
	Author    string    `json:"author"`
	Message   string    `json:"message"`
	Published time.Time `json:"published_at"`
}

// publishCandidate compiles files and publishes them as the candidate,
// replacing any previous one, then waits for this instance to install it.
// The caller holds s.publish.
func (s *Service) publishCandidate(w http.ResponseWriter, r *http.Request, files map[string][]byte, message string) {
	c := caller(r)
	live := ""
	if rs := s.cfg.Holder.Load(); rs != nil {
		live = rs.Version.String()
	}
	replaced := ""
	if _, cs, ok := s.installedCandidate(); ok {
		replaced = cs.Version.String()
	}
	audit := func(action, version, detail string) {
		s.audit(r.Context(), chstore.AuditRow{Actor: c.Name, Role: string(c.Role), Action: action, Object: "candidate",
			OldVersion: replaced, NewVersion: version, Detail: joinDetail("message: "+message, detail)})
	}
	rs, err := rules.Compile(files, s.featureIndex())
	if err == nil {
		// A candidate runs on the live engine's features: other ones
		// would have to be live first.
		var set *features.Set
		if set, err = s.featuresIn(files); err == nil && set != nil {
			err = fmt.Errorf("the candidate's %s differs from the running features: a candidate runs on them; publish the features first (PUT /v1/features)",
				rules.FeaturesFile)
		}
	}
	if err != nil {
		audit("rules.publish_shadow_refused", "", err.Error())
		writeCompileError(w, err)
		return
	}
	now := s.cfg.Now()
	rec := rulesync.Record{Hash: rs.Version.Hash, Files: toStrings(files), Author: c.Name, Message: message,
		PublishedAt: now, Source: rulesync.SourceAPI, Candidate: true}
	seq, err := s.cfg.Sync.Publish(r.Context(), rec)
	if err != nil {
		audit("rules.publish_shadow_failed", "", err.Error())
		status := http.StatusServiceUnavailable
		if errors.Is(err, rulesync.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		api.WriteError(w, status, "publishing the candidate to the rule topic failed; nothing changed: "+err.Error())
		return
	}
	version := rules.Version{Seq: seq, Hash: rs.Version.Hash}.String()
	out := candidatePublished{Candidate: version, Seq: seq, Hash: rs.Version.Hash, Rules: len(rs.Rules), Live: live,
		Replaced: replaced, Author: c.Name, Message: message, Published: now.UTC()}
	if err := s.waitInstalled(r.Context(), seq, s.cfg.InstallTimeout); err != nil {
		audit("rules.publish_shadow", version, "published; "+err.Error())
		api.WriteJSON(w, http.StatusGatewayTimeout, api.ErrorBody{
			Error: fmt.Sprintf("candidate %s was published to the fleet but %v", version, err), Details: out})
		return
	}
	audit("rules.publish_shadow", version, "")
	api.WriteJSON(w, http.StatusOK, out)
}

// errNoCandidate is returned when a candidate route finds none installed.
var errNoCandidate = errors.New(`no candidate rule set is installed: publish one with "shadow": true (riskctl rules push --shadow)`)

// dropCandidate publishes the drop of the candidate and waits for this
// instance to apply it.
func (s *Service) dropCandidate(ctx context.Context, author, message string) error {
	seq, err := s.cfg.Sync.Publish(ctx, rulesync.Record{Author: author, Message: message, PublishedAt: s.cfg.Now(),
		Source: rulesync.SourceAPI, Candidate: true})
	if err != nil {
		return fmt.Errorf("dropping the candidate: %w", err)
	}
	if err := s.waitInstalled(ctx, seq, s.cfg.InstallTimeout); err != nil {
		return fmt.Errorf("dropping the candidate: %w", err)
	}
	return nil
}

func (s *Service) dropCandidateRoute(w http.ResponseWriter, r *http.Request) {
	s.publish.Lock()
	defer s.publish.Unlock()
	c := caller(r)
	rec, cs, ok := s.installedCandidate()
	if !ok {
		api.WriteError(w, http.StatusNotFound, errNoCandidate.Error())
		return
	}
	version := cs.Version.String()
	err := s.dropCandidate(r.Context(), c.Name, "dropped")
	detail := fmt.Sprintf("candidate by %s: %s", rec.Author, rec.Message)
	if err != nil {
		s.audit(r.Context(), chstore.AuditRow{Actor: c.Name, Role: string(c.Role), Action: "rules.candidate_drop_failed",
			Object: "candidate", OldVersion: version, Detail: joinDetail(detail, err.Error())})
		api.WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.audit(r.Context(), chstore.AuditRow{Actor: c.Name, Role: string(c.Role), Action: "rules.candidate_drop",
		Object: "candidate", OldVersion: version, Detail: detail})
	api.WriteJSON(w, http.StatusOK, map[string]any{"dropped": version})
}

type promoteRequest struct {
	Message string `json:"message"`
}

// promoteCandidate publishes the candidate's files as a new live version
// through the normal publish path (409 when they change nothing), then
// drops the candidate.
func (s *Service) promoteCandidate(w http.ResponseWriter, r *http.Request) {
	var req promoteRequest
	if !api.DecodeJSON(w, r, &req) {
		return
	}
	if !hasMessage(w, req.Message, "why the candidate goes live") {
		return
	}
	s.publish.Lock()
	defer s.publish.Unlock()
	rec, cs, ok := s.installedCandidate()
	if !ok {
		api.WriteError(w, http.StatusNotFound, errNoCandidate.Error())
		return
	}
	c := caller(r)
	version := cs.Version.String()
	s.publishChange(w, r, change{caller: c, action: "rules.promote", object: "ruleset", files: toBytes(rec.Files),
		message: req.Message, detail: fmt.Sprintf("candidate %s by %s: %s", version, rec.Author, rec.Message),
		then: func(ctx context.Context) error {
			return s.dropCandidate(ctx, c.Name, "promoted to live")
		}})
}

// candidateReportView is the live report of GET /v1/rules/candidate.
type candidateReportView struct {
	Version        string          `json:"version"`
	Seq            uint64          `json:"seq"`
	Hash           string          `json:"hash"`
	Rules          int             `json:"rules"`
	Author         string          `json:"author"`
	Message        string          `json:"message"`
	InstalledSince time.Time       `json:"installed_since"`
	Live           string          `json:"live_version,omitempty"`
	Compared       uint64          `json:"compared"`
	Agreed         uint64          `json:"agreed"`
	Matrix         []candidateCell `json:"matrix"`
	RuleCounts     []ruleCount     `json:"rule_counts"`
}

type candidateCell struct {
	Live      string   `json:"live"`
	Candidate string   `json:"candidate"`
	Count     uint64   `json:"count"`
	Examples  []string `json:"examples,omitempty"`
}

type ruleCount struct {
	RuleID string `json:"rule_id"`
	Count  uint64 `json:"count"`
}

func (s *Service) candidateReport(w http.ResponseWriter, r *http.Request) {
	rec, cs, ok := s.installedCandidate()
	if !ok {
		api.WriteError(w, http.StatusNotFound, errNoCandidate.Error())
		return
	}
	version := cs.Version.String()
	rep, err := s.cfg.Store.CandidateReport(r.Context(), version, rec.PublishedAt)
	if err != nil {
		api.WriteError(w, http.StatusServiceUnavailable, "reading the decisions: "+err.Error())
		return
	}
	out := candidateReportView{Version: version, Seq: rec.Seq, Hash: rec.Hash, Rules: len(cs.Rules), Author: rec.Author,
		Message: rec.Message, InstalledSince: rec.PublishedAt.UTC(), Compared: rep.Compared, Agreed: rep.Agreed,
		Matrix: []candidateCell{}, RuleCounts: []ruleCount{}}
	if rs := s.cfg.Holder.Load(); rs != nil {
		out.Live = rs.Version.String()
	}
	for _, c := range rep.Cells {
		out.Matrix = append(out.Matrix, candidateCell{Live: c.Live, Candidate: c.Candidate, Count: c.Count, Examples: c.Examples})
	}
	for _, rc := range rep.Rules {
		out.RuleCounts = append(out.RuleCounts, ruleCount{RuleID: rc.RuleID, Count: rc.Count})
	}
	api.WriteJSON(w, http.StatusOK, out)
}
