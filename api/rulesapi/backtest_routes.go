package rulesapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"riskd/api"
	"riskd/backtest"
	"riskd/rules"
)

// Bounds of POST /v1/rules/backtest. A backtest holds one CPU of the
// instance for its length (about 100,000 events a second on the 2-core
// benchmark machine), so the API allows less than riskctl does by default.
const (
	// BacktestMaxPeriod bounds to - from.
	BacktestMaxPeriod = backtest.DefaultMaxPeriod
	// BacktestMaxEvents bounds the stored events replayed, warm-up
	// included: a few minutes of one core.
	BacktestMaxEvents = 20_000_000
)

// backtestRequest is the body of POST /v1/rules/backtest: the candidate
// set as for test (files, or patch and delete of the running set; neither
// means the running set), the period and the warm-up.
type backtestRequest struct {
	setRequest
	// From and To are RFC 3339 or dates (UTC); To defaults to now and
	// From to 24h before To.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Warmup is a Go duration ("72h"); empty means all stored history.
	Warmup string `json:"warmup,omitempty"`
}

// backtestBusy marks the services running a backtest: one at a time per
// Service, since each takes a core for minutes.
var backtestBusy sync.Map // *Service -> *atomic.Bool

func (s *Service) backtestRoutes() []api.Route {
	return []api.Route{{Pattern: "POST /v1/rules/backtest", Roles: []api.Role{api.RoleAnalyst}, MaxBody: s.cfg.MaxBody,
		Handler: http.HandlerFunc(s.backtest)}}
}

// backtest replays the stored events of the period through the candidate
// set, off the live engine (a Scorer of its own), and answers the report.
// It stops when the client goes away.
func (s *Service) backtest(w http.ResponseWriter, r *http.Request) {
	var req backtestRequest
	if !api.DecodeJSON(w, r, &req) {
		return
	}
	cfg, ok := s.backtestConfig(w, &req)
	if !ok {
		return
	}
	busy, _ := backtestBusy.LoadOrStore(s, new(atomic.Bool))
	if !busy.(*atomic.Bool).CompareAndSwap(false, true) {
		api.WriteError(w, http.StatusTooManyRequests, "a backtest is already running on this instance; try again when it has finished")
		return
	}
	defer busy.(*atomic.Bool).Store(false)
	rep, err := backtest.Run(r.Context(), cfg)
	switch {
	case err == nil:
		api.WriteJSON(w, http.StatusOK, rep)
	case r.Context().Err() != nil:
		// The client went away: nobody to answer.
	case errors.Is(err, backtest.ErrBadRequest):
		api.WriteError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, backtest.ErrTooManyEvents):
		api.WriteError(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		api.WriteError(w, http.StatusGatewayTimeout, err.Error())
	default:
		s.log.Error("rulesapi: backtest failed", "err", err)
		api.WriteError(w, http.StatusInternalServerError, err.Error())
	}
}

// backtestConfig turns the request into a backtest.Config, or answers the
// problem and returns false.
func (s *Service) backtestConfig(w http.ResponseWriter, req *backtestRequest) (backtest.Config, bool) {
	idx, set := s.features()
	if set == nil {
		api.WriteError(w, http.StatusServiceUnavailable, "backtest: this instance has no feature set configured")
		return backtest.Config{}, false
	}
	to := s.cfg.Now()
	var err error
	if req.To != "" {
		if to, err = backtest.ParseTime(req.To); err != nil {
			api.WriteError(w, http.StatusBadRequest, "to: "+err.Error())
			return backtest.Config{}, false
		}
	}
	from := to.Add(-24 * time.Hour)
	if req.From != "" {
		if from, err = backtest.ParseTime(req.From); err != nil {
			api.WriteError(w, http.StatusBadRequest, "from: "+err.Error())
			return backtest.Config{}, false
		}
	}
	var warmup time.Duration
	if req.Warmup != "" {
		if warmup, err = time.ParseDuration(req.Warmup); err != nil {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("warmup: %q is not a duration like 72h", req.Warmup))
			return backtest.Config{}, false
		}
	}
	files, ok := s.resolveFiles(w, &req.setRequest, false)
	if !ok {
		return backtest.Config{}, false
	}
	rs, err := rules.Compile(files, idx)
	if err != nil {
		writeCompileError(w, err)
		return backtest.Config{}, false
	}
	if cur := s.cfg.Holder.Load(); cur != nil && cur.Version.Hash == rs.Version.Hash {
		rs.Version.Seq = cur.Version.Seq // the running set: show its version
	}
	// The running set's files and the candidate's replay the recorded
	// decisions of those versions even when the version history lacks
	// them (the set riskd started with is in none). Without the running
	// files the backtest still runs, against the history alone.
	known := []map[string][]byte{files}
	if cur, _, err := s.currentFiles(); err == nil && len(cur) > 0 {
		known = append(known, cur)
	}
	return backtest.Config{Store: s.cfg.Store, Features: set, Rules: rs, KnownFiles: known, Engine: s.cfg.Engine,
		From: from, To: to, Warmup: warmup,
		Limits: backtest.Limits{MaxPeriod: BacktestMaxPeriod, MaxEvents: BacktestMaxEvents}}, true
}
