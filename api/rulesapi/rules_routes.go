package rulesapi

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"riskd/api"
	"riskd/features"
	"riskd/rules"
	"riskd/streams/chstore"
)

// setRequest is the body of validate, test and publish. The set is given
// either whole (Files) or as a patch of the running set (Patch and
// Delete); with neither, test uses the running set as it is.
type setRequest struct {
	// Files is the full set of files by slash path.
	Files map[string]string `json:"files,omitempty"`
	// Patch adds or replaces files of the running set.
	Patch map[string]string `json:"patch,omitempty"`
	// Delete removes files from the running set.
	Delete []string `json:"delete,omitempty"`
	// Message describes a publish (required for publish).
	Message string `json:"message,omitempty"`
	// Shadow publishes the set as the candidate, run beside the live set
	// and never acted on, instead of as a new live version.
	Shadow bool `json:"shadow,omitempty"`
	// Events are ad-hoc events for test.
	Events []rules.TestEvent `json:"events,omitempty"`
}

// files resolves the request to a full set of files. It writes the
// response and returns false when it cannot.
func (s *Service) resolveFiles(w http.ResponseWriter, req *setRequest, requireSome bool) (map[string][]byte, bool) {
	if req.Files != nil && (req.Patch != nil || req.Delete != nil) {
		api.WriteError(w, http.StatusBadRequest, "give either files (the whole set) or patch and delete (changes to the running set), not both")
		return nil, false
	}
	var files map[string][]byte
	if req.Files != nil {
		files = toBytes(req.Files)
	} else {
		if requireSome && req.Patch == nil && req.Delete == nil {
			api.WriteError(w, http.StatusBadRequest, "no files: give files (the whole set) or patch and delete")
			return nil, false
		}
		cur, _, err := s.currentFiles()
		if err != nil {
			api.WriteError(w, http.StatusConflict, err.Error())
			return nil, false
		}
		files = cloneFiles(cur)
		for name, content := range req.Patch {
			files[name] = []byte(content)
		}
		for _, name := range req.Delete {
			if _, ok := files[name]; !ok {
				api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("delete %q: no such file in the running set", name))
				return nil, false
			}
			delete(files, name)
		}
	}
	for name := range files {
		if err := checkFileName(name); err != nil {
			api.WriteError(w, http.StatusBadRequest, err.Error())
			return nil, false
		}
	}
	return files, true
}

// ruleView is a rule as the API shows it.
type ruleView struct {
	ID          string   `json:"id"`
	Action      string   `json:"action"`
	Score       int      `json:"score"`
	Mode        string   `json:"mode"`
	Description string   `json:"description,omitempty"`
	File        string   `json:"file"`
	Line        int      `json:"line"`
	When        string   `json:"when,omitempty"`
	LockFor     string   `json:"lock_for,omitempty"`
	Alert       string   `json:"alert,omitempty"`
	Features    []string `json:"features,omitempty"`
	Errors      uint64   `json:"runtime_errors"`
	// Wallet is what the decide answer tells the wallet when the rule
	// matches (declared, or its action's defaults).
	Wallet *walletView `json:"wallet,omitempty"`
}

// walletView is a rule's rules.Wallet as the API shows it.
type walletView struct {
	Code        string `json:"code"`
	Category    string `json:"category"`
	StepUp      string `json:"step_up,omitempty"`
	UserMessage string `json:"user_message,omitempty"`
}

func viewRule(r *rules.Rule, full bool) ruleView {
	v := ruleView{ID: r.ID, Action: r.Action.String(), Score: r.Score, Mode: r.Mode.String(),
		Description: r.Description, File: r.File, Line: r.Line, Errors: r.Errors()}
	if full {
		v.When, v.Alert, v.Features = r.When, r.Alert, r.Features
		w := r.Wallet
		v.Wallet = &walletView{Code: w.Code, Category: w.Category, StepUp: w.StepUp, UserMessage: w.UserMessage}
		if r.LockFor == rules.LockIndefinite {
			v.LockFor = "indefinite"
		} else if r.LockFor > 0 {
			v.LockFor = r.LockFor.String()
		}
	}
	return v
}

func (s *Service) running(w http.ResponseWriter) (*rules.RuleSet, bool) {
	rs := s.cfg.Holder.Load()
	if rs == nil {
		api.WriteError(w, http.StatusServiceUnavailable, "no rule set is loaded yet")
		return nil, false
	}
	return rs, true
}

func (s *Service) listRules(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.running(w)
	if !ok {
		return
	}
	views := make([]ruleView, len(rs.Rules))
	for i, rule := range rs.Rules {
		views[i] = viewRule(rule, false)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{
		"version": rs.Version.String(), "seq": rs.Version.Seq, "hash": rs.Version.Hash, "rules": views,
	})
}

func (s *Service) getRule(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.running(w)
	if !ok {
		return
	}
	rule := rs.Rule(r.PathValue("id"))
	if rule == nil {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("no rule %q in version %s", r.PathValue("id"), rs.Version))
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"version": rs.Version.String(), "rule": viewRule(rule, true)})
}

// compileRequest reads a set request, resolves its files against the
// running set and compiles them, against the window features they carry
// when those differ from the running ones; set is the features the rules
// were compiled against. ok is false when a response was written.
func (s *Service) compileRequest(w http.ResponseWriter, r *http.Request, requireSome bool) (setRequest, map[string][]byte, *rules.RuleSet, *features.Set, bool) {
	var req setRequest
	if !api.DecodeJSON(w, r, &req) {
		return req, nil, nil, nil, false
	}
	files, rs, set, ok := s.compileSet(w, &req, requireSome)
	return req, files, rs, set, ok
}

// compileSet is compileRequest for a request already read.
func (s *Service) compileSet(w http.ResponseWriter, req *setRequest, requireSome bool) (map[string][]byte, *rules.RuleSet, *features.Set, bool) {
	files, ok := s.resolveFiles(w, req, requireSome)
	if !ok {
		return nil, nil, nil, false
	}
	rs, set, err := s.compileVersion(files)
	if err != nil {
		writeCompileError(w, err)
		return nil, nil, nil, false
	}
	if set == nil {
		_, set = s.features()
	}
	return files, rs, set, true
}

func (s *Service) validate(w http.ResponseWriter, r *http.Request) {
	_, _, rs, _, ok := s.compileRequest(w, r, true)
	if !ok {
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"valid": true, "hash": rs.Version.Hash, "rules": len(rs.Rules)})
}

func (s *Service) publishRules(w http.ResponseWriter, r *http.Request) {
	var req setRequest
	if !api.DecodeJSON(w, r, &req) {
		return
	}
	if len(req.Events) > 0 {
		api.WriteError(w, http.StatusBadRequest, "events belong to /v1/rules/test, not publish")
		return
	}
	if !hasMessage(w, req.Message, "what the change does") {
		return
	}
	s.publish.Lock()
	defer s.publish.Unlock()
	files, ok := s.resolveFiles(w, &req, true)
	if !ok {
		return
	}
	if req.Shadow {
		s.publishCandidate(w, r, files, req.Message)
		return
	}
	s.publishChange(w, r, change{caller: caller(r), action: "rules.publish", object: "ruleset", files: files, message: req.Message})
}

type rollbackRequest struct {
	Seq     uint64 `json:"seq"`
	Message string `json:"message"`
}

func (s *Service) rollback(w http.ResponseWriter, r *http.Request) {
	var req rollbackRequest
	if !api.DecodeJSON(w, r, &req) {
		return
	}
	if req.Seq == 0 {
		api.WriteError(w, http.StatusBadRequest, "seq: give the version number to roll back to (see GET /v1/rules/versions)")
		return
	}
	s.publish.Lock()
	defer s.publish.Unlock()
	v, found, err := s.cfg.Store.RuleSetVersion(r.Context(), req.Seq)
	if err != nil {
		api.WriteError(w, http.StatusServiceUnavailable, "reading the version history: "+err.Error())
		return
	}
	if !found {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("no published version %d", req.Seq))
		return
	}
	msg := req.Message
	if msg == "" {
		msg = fmt.Sprintf("rollback to version %d", req.Seq)
	}
	s.publishChange(w, r, change{caller: caller(r), action: "rules.rollback", object: "ruleset", files: toBytes(v.Files),
		message: msg, detail: fmt.Sprintf("to version %d (%s)", v.Seq, v.Hash)})
}

// versionView is one history entry.
type versionView struct {
	Seq         uint64            `json:"seq"`
	Version     string            `json:"version"`
	Hash        string            `json:"hash"`
	Author      string            `json:"author"`
	Message     string            `json:"message"`
	PublishedAt time.Time         `json:"published_at"`
	Rules       int               `json:"rule_count"`
	Running     bool              `json:"running"`
	Files       map[string]string `json:"files,omitempty"`
}

func (s *Service) view(v chstore.RuleSetVersionRow) versionView {
	running := false
	if rs := s.cfg.Holder.Load(); rs != nil {
		running = rs.Version.Seq == v.Seq && rs.Version.Hash == v.Hash
	}
	return versionView{Seq: v.Seq, Version: rules.Version{Seq: v.Seq, Hash: v.Hash}.String(), Hash: v.Hash, Author: v.Author,
		Message: v.Message, PublishedAt: v.PublishedAt, Rules: v.RuleCount, Running: running, Files: v.Files}
}

func (s *Service) listVersions(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n <= 0 || n > 10000 {
			api.WriteError(w, http.StatusBadRequest, "limit: want a number from 1 to 10000")
			return
		}
		limit = n
	}
	rows, err := s.cfg.Store.RuleSetVersions(r.Context(), limit)
	if err != nil {
		api.WriteError(w, http.StatusServiceUnavailable, "reading the version history: "+err.Error())
		return
	}
	out := make([]versionView, len(rows))
	for i, v := range rows {
		out[i] = s.view(v)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"versions": out})
}

func (s *Service) getVersion(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("version %q: want a number", r.PathValue("seq")))
		return
	}
	v, found, err := s.cfg.Store.RuleSetVersion(r.Context(), seq)
	if err != nil {
		api.WriteError(w, http.StatusServiceUnavailable, "reading the version history: "+err.Error())
		return
	}
	if !found {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("no published version %d", seq))
		return
	}
	api.WriteJSON(w, http.StatusOK, s.view(v))
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
