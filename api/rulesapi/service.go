package rulesapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"riskd/api"
	"riskd/engine"
	"riskd/features"
	"riskd/rules"
	"riskd/streams/chstore"
	"riskd/streams/rulesync"
)

// DefaultMaxBody bounds the body of routes that carry rule files or lists.
const DefaultMaxBody = 2 << 20

// Config is what the service needs. Holder, Sync and Store are required.
type Config struct {
	// Holder is the engine's rule holder: Run installs into it and the
	// read routes read from it.
	Holder *rules.Holder
	// Features resolves window feature names when compiling (the daemon's
	// *features.Set); nil means no window features.
	Features rules.FeatureIndex
	// FeatureSet is the daemon's window features, for the routes that
	// compute features (test, backtest); nil means none.
	FeatureSet *features.Set
	// Dir is the rule directory riskd starts from. Start reads it and
	// publishes it as a version when the rule topic does not hold it yet;
	// it is never written. Empty means Start cannot be used.
	Dir string
	// Sync is the fleet's rule topic.
	Sync *rulesync.Sync
	// Store keeps version history and the audit log.
	Store *chstore.Store
	// Logger receives problems that do not fail a request (a history or
	// audit row that could not be written); nil means slog.Default().
	Logger *slog.Logger
	// InstallTimeout bounds how long a publish waits for this instance to
	// install the new version; zero means 15s.
	InstallTimeout time.Duration
	// MaxBody bounds request bodies with files or list entries; zero means
	// DefaultMaxBody.
	MaxBody int64
	// OnInstall, if set, is called by Run after each version is installed
	// (e.g. to record it with Store.WriteRuleSet and count reloads).
	OnInstall func(rs *rules.RuleSet, rec rulesync.Record)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Engine is the live engine's configuration, for the routes that run
	// rules through the engine path off the live state (test, backtest).
	Engine engine.Config
	// FeaturesFile is the daemon's feature definitions file (rules.features):
	// the versions published from the rule directory carry its content as
	// rules.FeaturesFile. Empty means they carry none.
	FeaturesFile string
	// SwapEngine changes the engine's window features to set and calls
	// install at the same place in the stream (engine.Engine.SwapFeatures),
	// when a version brings other feature definitions; nil, or before an
	// engine runs, it only calls install.
	SwapEngine func(set *features.Set, install func()) error
}

// Validate checks the config and names the offending key.
func (c Config) Validate() error {
	var errs []error
	if c.Holder == nil {
		errs = append(errs, errors.New("rulesapi: Holder is nil"))
	}
	if c.Sync == nil {
		errs = append(errs, errors.New("rulesapi: Sync is nil"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("rulesapi: Store is nil"))
	}
	if c.InstallTimeout < 0 {
		errs = append(errs, fmt.Errorf("rulesapi: InstallTimeout %v is negative", c.InstallTimeout))
	}
	if c.MaxBody < 0 {
		errs = append(errs, fmt.Errorf("rulesapi: MaxBody %d is negative", c.MaxBody))
	}
	return errors.Join(errs...)
}

// Service serves the rules and lists routes and installs published sets.
type Service struct {
	cfg Config
	log *slog.Logger

	// publish serialises this instance's changes, so two list edits made
	// here at once do not both start from the same base set.
	publish sync.Mutex

	mu sync.Mutex
	// current is the last record installed from the topic; its Files are
	// the running set's files while its hash matches the holder's.
	current *rulesync.Record
	// candidate is the candidate record installed beside the live set (a
	// shadow publish), nil when there is none.
	candidate *rulesync.Record
	// seen is the seq of the last record Run handled, and seenErr the
	// error if it was refused; changed is closed and replaced at each one.
	seen    uint64
	seenErr error
	changed chan struct{}

	// featMu guards the window features rule sets compile against, which
	// a version with other features replaces (swapFeatures): installs hold it for reading from compile to
	// install, so none compiles against features that are on their way out.
	featMu  sync.RWMutex
	feats   rules.FeatureIndex
	featSet *features.Set
}

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.InstallTimeout == 0 {
		cfg.InstallTimeout = 15 * time.Second
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, log: cfg.Logger, changed: make(chan struct{}), feats: cfg.Features, featSet: cfg.FeatureSet}, nil
}

// Started says what Start installed.
type Started struct {
	// Record is the installed version, files included.
	Record rulesync.Record
	// Set is the compiled set now in the Holder.
	Set *rules.RuleSet
	// DirHash is the hash of the rule directory's files as Start read
	// them: the watcher's Known hash.
	DirHash string
	// Published says Start published the directory as a new version
	// (the topic held none, or not this directory); Reason says why.
	Published bool
	Reason    string
}

// Start reconciles the rule directory with the rule topic and installs
// the version that must run, before anything decides:
//
//   - the topic holds no version: the directory's files are published as
//     the start-up version (author "riskd");
//   - the topic's newest version carries this directory's hash (DirHash)
//     or has the same files: that version is installed, so versions
//     published through the API survive a restart;
//   - otherwise the directory was edited while riskd was stopped (or the
//     newest version no longer compiles here): the directory is published
//     as a new version.
//
// Every publish goes through rulesync.PublishIfChanged, so instances that
// start together from the same directory publish it once. The installed
// version is recorded in the history (idempotently). A directory that
// does not compile is an error naming the rule and its position.
func (s *Service) Start(ctx context.Context) (Started, error) {
	if s.cfg.Dir == "" {
		return Started{}, errors.New("rulesapi: start: Config.Dir is empty")
	}
	files, dirSet, err := rules.LoadDir(s.cfg.Dir, s.featureIndex())
	if err != nil {
		return Started{}, err
	}
	st := Started{DirHash: dirSet.Version.Hash}
	if files, err = s.withFeaturesFile(files); err != nil {
		return Started{}, fmt.Errorf("rulesapi: start: %w", err)
	}
	source := rules.HashFiles(files)
	if source != st.DirHash {
		// The same rules, compiled with the features file among the files,
		// so that the set's hash is the version's.
		if dirSet, err = rules.Compile(files, s.featureIndex()); err != nil {
			return Started{}, err
		}
	}
	latest, found, err := s.cfg.Sync.Latest(ctx)
	if err != nil {
		return Started{}, fmt.Errorf("rulesapi: start: reading the rule topic %s: %w", s.cfg.Sync.Topic(), err)
	}
	if found && (latest.DirHash == source || latest.Hash == source) {
		rs, err := s.applyRecord(latest)
		if err == nil {
			st.Record, st.Set = latest, rs
			s.started(latest)
			s.recordVersion(ctx, latest, len(rs.Rules))
			return st, nil
		}
		st.Reason = fmt.Sprintf("the newest version %d does not compile here (%v), so the rule directory %s is published instead", latest.Seq, err, s.cfg.Dir)
	}
	switch {
	case !found:
		st.Reason = "start-up set from " + s.cfg.Dir
		// Seqs are the topic's offsets: a recreated topic numbers from 1
		// again, and its versions replace the old history rows by seq.
		if rows, err := s.cfg.Store.RuleSetVersions(ctx, 1); err == nil && len(rows) > 0 {
			s.log.Warn("the rule topic holds no version, but the history in ClickHouse goes up to an earlier one: the topic was recreated "+
				"(an embedded broker without kafka.data_dir?); versions are numbered from 1 again and replace the old history's",
				"topic", s.cfg.Sync.Topic(), "history_latest", rows[0].Seq)
		}
	case st.Reason == "":
		st.Reason = fmt.Sprintf("the rule directory %s changed while riskd was stopped", s.cfg.Dir)
	}
	rec := rulesync.Record{Hash: source, Files: toStrings(files), Author: StartAuthor, Message: st.Reason,
		PublishedAt: s.cfg.Now(), Source: rulesync.SourceDir, DirHash: source}
	got, published, err := s.cfg.Sync.PublishIfChanged(ctx, rec)
	if err != nil {
		return Started{}, fmt.Errorf("rulesapi: start: publishing the rule directory %s: %w", s.cfg.Dir, err)
	}
	st.Published = published
	s.cfg.Holder.Install(dirSet, got.Seq)
	st.Record, st.Set = got, dirSet
	s.started(got)
	s.recordVersion(ctx, got, len(dirSet.Rules))
	return st, nil
}

// StartAuthor is the author of the versions riskd publishes from its rule
// directory.
const StartAuthor = "riskd"

// withFeaturesFile returns the rule directory's files with the content of
// the features file (Config.FeaturesFile) added as rules.FeaturesFile: the
// files of a version published from the directory, whose hash is the
// version's DirHash. A rule directory holding a file of that name is an
// error: the features come from one place.
func (s *Service) withFeaturesFile(files map[string][]byte) (map[string][]byte, error) {
	if s.cfg.FeaturesFile == "" {
		return files, nil
	}
	if _, ok := files[rules.FeaturesFile]; ok {
		return nil, fmt.Errorf("the rule directory %s holds %s; window features come from the features file %s only",
			s.cfg.Dir, rules.FeaturesFile, s.cfg.FeaturesFile)
	}
	b, err := os.ReadFile(s.cfg.FeaturesFile)
	if err != nil {
		return nil, fmt.Errorf("features file: %w", err)
	}
	files = cloneFiles(files)
	files[rules.FeaturesFile] = b
	return files, nil
}

// started marks rec as handled and running, as Apply does.
func (s *Service) started(rec rulesync.Record) {
	s.mu.Lock()
	r := rec
	s.current = &r
	s.seen, s.seenErr = rec.Seq, nil
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// PublishDir publishes the files of the rule directory, changed while
// riskd runs, as a new version through the rule topic, unless the topic's
// newest version has the same files; the follower (Run) installs it. It
// is the watcher's Publish (rules.Watcher) and returns the version's seq.
func (s *Service) PublishDir(ctx context.Context, files map[string][]byte, rs *rules.RuleSet) (uint64, error) {
	if h := rules.HashFiles(files); h != rs.Version.Hash {
		return 0, fmt.Errorf("rulesapi: publish %s: the files hash to %s, the set to %s", s.cfg.Dir, h, rs.Version.Hash)
	}
	s.publish.Lock()
	defer s.publish.Unlock()
	source, err := s.withFeaturesFile(files)
	if err != nil {
		return 0, fmt.Errorf("rulesapi: publish %s: %w", s.cfg.Dir, err)
	}
	// The directory's rules run with the features running now (an
	// analyst's publish of features stays); the features file's own
	// changes are published by PublishFeaturesFile.
	files = s.withRunningFeatures(files)
	rec := rulesync.Record{Hash: rules.HashFiles(files), Files: toStrings(files), Author: StartAuthor,
		Message: "the rule directory " + s.cfg.Dir + " changed", PublishedAt: s.cfg.Now(),
		Source: rulesync.SourceDir, DirHash: rules.HashFiles(source)}
	got, _, err := s.cfg.Sync.PublishIfChanged(ctx, rec)
	if err != nil {
		return 0, err
	}
	s.recordVersion(ctx, got, len(rs.Rules))
	return got.Seq, nil
}

// recordVersion writes rec into the version history. Writing a seq again
// replaces its row with the same content, so every instance records what
// it installs and the versions no API call made (riskd's own) are in the
// history too. A failure is logged: the version runs all the same.
func (s *Service) recordVersion(ctx context.Context, rec rulesync.Record, ruleCount int) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.cfg.Store.WriteRuleSetVersion(wctx, chstore.RuleSetVersionRow{Seq: rec.Seq, Hash: rec.Hash, Files: rec.Files,
		Author: rec.Author, Message: rec.Message, PublishedAt: rec.PublishedAt, RuleCount: ruleCount}); err != nil {
		s.log.Error("rulesapi: recording the version in the history failed", "seq", rec.Seq, "hash", rec.Hash, "err", err)
	}
}

// Run follows the rule topic until ctx ends, installing each version it
// reads (Apply), and returns ctx's error. Every instance runs it; a
// publish through this instance's API waits for it.
func (s *Service) Run(ctx context.Context) error {
	return s.cfg.Sync.Follow(ctx, s.Apply)
}

// Apply compiles a published record, installs it with the record's seq
// and records it in the version history. A record that does not compile
// is refused and the running set stays; the version the Holder runs
// already (installed by Start) is not installed again. Run calls it; it
// is exported for callers that follow the topic themselves.
func (s *Service) Apply(rec rulesync.Record) error {
	if rec.Candidate {
		return s.applyCandidate(rec)
	}
	if rs := s.cfg.Holder.Load(); rs != nil && rs.Version.Seq == rec.Seq && rs.Version.Hash == rec.Hash {
		s.started(rec)
		return nil
	}
	rs, err := s.applyRecord(rec)
	s.mu.Lock()
	s.seen, s.seenErr = rec.Seq, err
	if err == nil {
		r := rec
		s.current = &r
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.recordVersion(context.Background(), rec, len(rs.Rules))
	if s.cfg.OnInstall != nil {
		s.cfg.OnInstall(rs, rec)
	}
	return nil
}

func (s *Service) applyRecord(rec rulesync.Record) (*rules.RuleSet, error) {
	for name := range rec.Files {
		if err := checkFileName(name); err != nil {
			return nil, fmt.Errorf("rule set %d: %w", rec.Seq, err)
		}
	}
	files := toBytes(rec.Files)
	if h := rules.HashFiles(files); h != rec.Hash {
		return nil, fmt.Errorf("rule set %d: files hash to %s, the record says %s", rec.Seq, h, rec.Hash)
	}
	set, err := s.featuresIn(files)
	if err != nil {
		return nil, fmt.Errorf("rule set %d: %w", rec.Seq, err)
	}
	if set != nil {
		// Other window features: the engine changes them where the rules
		// change. Only Run and Start install, one at a time, so the
		// features compared above are still the running ones.
		s.featMu.Lock()
		defer s.featMu.Unlock()
		rs, err := rules.Compile(files, set)
		if err != nil {
			return nil, fmt.Errorf("rule set %d: %w", rec.Seq, err)
		}
		if err := s.swapFeatures(set, rs, rec.Seq); err != nil {
			return nil, fmt.Errorf("rule set %d: %w", rec.Seq, err)
		}
		return rs, nil
	}
	s.featMu.RLock()
	defer s.featMu.RUnlock()
	rs, err := rules.Compile(files, s.feats)
	if err != nil {
		return nil, fmt.Errorf("rule set %d: %w", rec.Seq, err)
	}
	s.cfg.Holder.Install(rs, rec.Seq)
	return rs, nil
}

// errNotInstalled is returned by waitInstalled when the version was
// refused by this instance or did not arrive in time.
var errNotInstalled = errors.New("not installed on this instance")

// featureInstallTimeout is the least a publish that changes the window
// features waits for this instance to install it: the engine carries its
// state over to the new features first (about 16 s for a million
// accounts, bench/RESULTS.md).
const featureInstallTimeout = 2 * time.Minute

// compileVersion compiles the files of a version to publish, against the
// features they carry when those differ from the running ones (returned
// as newFeatures; the installed candidate must compile against them too),
// or else against the running features (newFeatures nil).
func (s *Service) compileVersion(files map[string][]byte) (rs *rules.RuleSet, newFeatures *features.Set, err error) {
	set, err := s.featuresIn(files)
	if err != nil {
		return nil, nil, err
	}
	if set == nil {
		rs, err = rules.Compile(files, s.featureIndex())
		return rs, nil, err
	}
	if rs, err = rules.Compile(files, set); err != nil {
		return nil, nil, err
	}
	if _, err := s.candidateAgainst(set); err != nil {
		return nil, nil, err
	}
	return rs, set, nil
}

// waitInstalled waits up to wait until Run has handled seq or a later
// record.
func (s *Service) waitInstalled(ctx context.Context, seq uint64, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		s.mu.Lock()
		seen, seenErr, ch := s.seen, s.seenErr, s.changed
		s.mu.Unlock()
		switch {
		case seen == seq && seenErr != nil:
			return fmt.Errorf("%w: %w", errNotInstalled, seenErr)
		case seen >= seq:
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w within %v (is the rule-topic follower running?)", errNotInstalled, wait)
		}
	}
}

// errUnknownFiles is returned by currentFiles when the running set's files
// cannot be found.
var errUnknownFiles = errors.New("the files of the running rule set are unknown")

// currentFiles returns the files of the running set: those of the last
// installed record, or else the rule directory's when they hash to the
// running set's hash, or no files when no set runs.
func (s *Service) currentFiles() (map[string][]byte, *rules.RuleSet, error) {
	rs := s.cfg.Holder.Load()
	if rs == nil {
		return map[string][]byte{}, nil, nil
	}
	s.mu.Lock()
	cur := s.current
	s.mu.Unlock()
	if cur != nil && cur.Hash == rs.Version.Hash {
		return toBytes(cur.Files), rs, nil
	}
	if s.cfg.Dir != "" {
		files, err := rules.ReadFiles(os.DirFS(s.cfg.Dir))
		if err == nil && rules.HashFiles(files) == rs.Version.Hash {
			return files, rs, nil
		}
	}
	return nil, rs, fmt.Errorf("%w (version %s); publish a full set of files first", errUnknownFiles, rs.Version)
}

// change is one publish request, however it was made.
type change struct {
	caller  api.Caller
	action  string // audit action: rules.publish, rules.rollback, lists.put, ...
	object  string // audit object: ruleset, list:NAME
	files   map[string][]byte
	message string
	detail  string // audit detail beyond the message
	// then, if set, runs once the version is installed here, before the
	// answer; an error becomes a warning of the answer (the version is
	// live whatever it says).
	then func(ctx context.Context) error
}

// published is the answer to a successful change.
type published struct {
	Version   string    `json:"version"`
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	Rules     int       `json:"rules"`
	Previous  string    `json:"previous_version,omitempty"`
	Author    string    `json:"author"`
	Message   string    `json:"message"`
	Published time.Time `json:"published_at"`
	Warnings  []string  `json:"warnings,omitempty"`
}

// publishChange compiles c.files and, when they compile, publishes them to
// the fleet, records the version and waits for this instance to install
// it. It writes the response and audits the outcome either way.
func (s *Service) publishChange(w http.ResponseWriter, r *http.Request, c change) {
	old := ""
	if rs := s.cfg.Holder.Load(); rs != nil {
		old = rs.Version.String()
	}
	audit := func(action, newVersion, detail string) {
		if c.message != "" {
			detail = joinDetail("message: "+c.message, detail)
		}
		s.audit(r.Context(), chstore.AuditRow{Actor: c.caller.Name, Role: string(c.caller.Role), Action: action,
			Object: c.object, OldVersion: old, NewVersion: newVersion, Detail: joinDetail(c.detail, detail)})
	}
	// If-Match names the version the analyst started from: refuse the
	// change when another one landed since, instead of silently undoing it.
	if want := r.Header.Get("If-Match"); want != "" && strings.Trim(want, `"`) != old {
		audit(c.action+"_conflict", "", "If-Match "+want)
		api.WriteError(w, http.StatusPreconditionFailed,
			fmt.Sprintf("the running version is %s, not %s: reload and apply your change to it", old, want))
		return
	}
	for name := range c.files {
		if err := checkFileName(name); err != nil {
			audit(c.action+"_refused", "", err.Error())
			api.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	c.files = s.withRunningFeatures(c.files)
	rs, newFeatures, err := s.compileVersion(c.files)
	if err != nil {
		audit(c.action+"_refused", "", err.Error())
		writeCompileError(w, err)
		return
	}
	// A version that changes nothing would only bury the real ones in
	// the history (and a rollback to the running set would claim an undo
	// that did not happen): refuse it, naming the running version.
	if running := s.cfg.Holder.Load(); running != nil && running.Version.Hash == rs.Version.Hash {
		msg := fmt.Sprintf("nothing changed: the files hash to %s, the running version %s; it keeps running", rs.Version.Hash, running.Version)
		audit(c.action+"_unchanged", "", msg)
		api.WriteJSON(w, http.StatusConflict, api.ErrorBody{Error: msg,
			Details: map[string]any{"running_version": running.Version.String(), "seq": running.Version.Seq, "hash": running.Version.Hash}})
		return
	}
	now := s.cfg.Now()
	dirHash := ""
	s.mu.Lock()
	if s.current != nil {
		dirHash = s.current.DirHash
	}
	s.mu.Unlock()
	rec := rulesync.Record{Hash: rs.Version.Hash, Files: toStrings(c.files), Author: c.caller.Name, Message: c.message, PublishedAt: now,
		Source: rulesync.SourceAPI, DirHash: dirHash}
	seq, err := s.cfg.Sync.Publish(r.Context(), rec)
	if err != nil {
		audit(c.action+"_failed", "", err.Error())
		status := http.StatusServiceUnavailable
		if errors.Is(err, rulesync.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		api.WriteError(w, status, "publishing to the rule topic failed; the running rules are unchanged: "+err.Error())
		return
	}
	version := rules.Version{Seq: seq, Hash: rs.Version.Hash}.String()
	out := published{Version: version, Seq: seq, Hash: rs.Version.Hash, Rules: len(rs.Rules), Previous: old,
		Author: c.caller.Name, Message: c.message, Published: now.UTC()}
	// The version is on the topic now, so the fleet will install it even if
	// this client goes away: finish the records regardless.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
	defer cancel()
	if err := s.cfg.Store.WriteRuleSetVersion(wctx, chstore.RuleSetVersionRow{Seq: seq, Hash: rs.Version.Hash,
		Files: rec.Files, Author: rec.Author, Message: rec.Message, PublishedAt: now, RuleCount: len(rs.Rules)}); err != nil {
		s.log.Error("rulesapi: recording the published version failed", "version", version, "err", err)
		out.Warnings = append(out.Warnings, "the version is live but was not recorded in the history: "+err.Error())
	}
	wait := s.cfg.InstallTimeout
	if newFeatures != nil {
		wait = max(wait, featureInstallTimeout) // the engine is held while it carries its state over
	}
	if err := s.waitInstalled(r.Context(), seq, wait); err != nil {
		audit(c.action, version, "published; "+err.Error())
		api.WriteJSON(w, http.StatusGatewayTimeout, api.ErrorBody{
			Error:   fmt.Sprintf("version %s was published to the fleet but %v", version, err),
			Details: out,
		})
		return
	}
	if c.then != nil {
		if err := c.then(wctx); err != nil {
			out.Warnings = append(out.Warnings, err.Error())
		}
	}
	audit(c.action, version, "")
	api.WriteJSON(w, http.StatusOK, out)
}

// hasMessage answers 400 unless a change request says asks ("what the
// change does"): the message goes into the version history and the audit
// log.
func hasMessage(w http.ResponseWriter, message, asks string) bool {
	if message == "" {
		api.WriteError(w, http.StatusBadRequest, "message: say "+asks+" (it goes into the history and audit log)")
		return false
	}
	return true
}

func joinDetail(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// audit writes an audit row; a failure is logged, not returned, because
// the change it describes has happened (or been refused) already.
func (s *Service) audit(ctx context.Context, row chstore.AuditRow) {
	row.At = s.cfg.Now()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.cfg.Store.WriteAudit(wctx, row); err != nil {
		s.log.Error("rulesapi: audit row not written", "action", row.Action, "actor", row.Actor, "err", err)
	}
}

// compileDetails is the details object of a refused rule set.
type compileDetails struct {
	RuleID  string `json:"rule_id,omitempty"`
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

// writeCompileError answers 422 with the position of a compile error.
func writeCompileError(w http.ResponseWriter, err error) {
	body := api.ErrorBody{Error: "the rule set does not compile: " + err.Error()}
	var ce *rules.CompileError
	if errors.As(err, &ce) {
		body.Details = compileDetails{RuleID: ce.RuleID, File: ce.File, Line: ce.Line, Column: ce.Col, Message: ce.Msg}
	} else {
		body.Details = compileDetails{Message: err.Error()}
	}
	api.WriteJSON(w, http.StatusUnprocessableEntity, body)
}

// Routes returns the routes to register on the API server.
func (s *Service) Routes() []api.Route {
	read := []api.Role{api.RoleViewer, api.RoleAnalyst}
	// Support reads the rules too: the rule that locked an account, its
	// versions and what changed (issue 14). Lists stay the analysts'.
	readRules := []api.Role{api.RoleViewer, api.RoleAnalyst, api.RoleSupport}
	write := []api.Role{api.RoleAnalyst}
	big := s.cfg.MaxBody
	small := int64(64 << 10)
	routes := []api.Route{
		{Pattern: "GET /v1/rules", Roles: readRules, Handler: http.HandlerFunc(s.listRules)},
		{Pattern: "GET /v1/rules/{id}", Roles: readRules, Handler: http.HandlerFunc(s.getRule)},
		{Pattern: "GET /v1/rules/versions", Roles: readRules, Handler: http.HandlerFunc(s.listVersions)},
		{Pattern: "GET /v1/rules/versions/{seq}", Roles: readRules, Handler: http.HandlerFunc(s.getVersion)},
		{Pattern: "GET /v1/rules/versions/{a}/diff/{b}", Roles: readRules, Handler: http.HandlerFunc(s.diffVersions)},
		{Pattern: "POST /v1/rules/validate", Roles: write, MaxBody: big, Handler: http.HandlerFunc(s.validate)},
		{Pattern: "POST /v1/rules/test", Roles: write, MaxBody: big, Handler: http.HandlerFunc(s.test)},
		{Pattern: "POST /v1/rules/publish", Roles: write, MaxBody: big, Handler: http.HandlerFunc(s.publishRules)},
		{Pattern: "POST /v1/rules/rollback", Roles: write, MaxBody: small, Handler: http.HandlerFunc(s.rollback)},
		{Pattern: "GET /v1/lists", Roles: read, Handler: http.HandlerFunc(s.listLists)},
		{Pattern: "GET /v1/lists/{name}", Roles: read, Handler: http.HandlerFunc(s.getList)},
		{Pattern: "PUT /v1/lists/{name}", Roles: write, MaxBody: big, Handler: http.HandlerFunc(s.putList)},
		{Pattern: "POST /v1/lists/{name}/entries", Roles: write, MaxBody: big, Handler: http.HandlerFunc(s.addEntries)},
		{Pattern: "DELETE /v1/lists/{name}/entries/{entry}", Roles: write, MaxBody: small, Handler: http.HandlerFunc(s.deleteEntry)},
		{Pattern: "DELETE /v1/lists/{name}", Roles: write, MaxBody: small, Handler: http.HandlerFunc(s.deleteList)},
	}
	routes = append(routes, s.featureRoutes()...)
	routes = append(routes, s.candidateRoutes()...)
	routes = append(routes, s.backtestRoutes()...)
	routes = append(routes, s.labelRoutes()...)
	routes = append(routes, s.statsRoutes()...)
	routes = append(routes, s.vocabularyRoutes()...)
	return routes
}

// caller returns the authenticated caller; the api.Server guarantees one.
func caller(r *http.Request) api.Caller {
	c, _ := api.CallerFrom(r.Context())
	return c
}

func cloneFiles(files map[string][]byte) map[string][]byte { return maps.Clone(files) }
