package rulesapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"riskd/api"
	"riskd/engine"
	"riskd/rules"
	"riskd/streams/chstore"
)

// testRequest is the body of POST /v1/rules/test: the set as for
// validate, the events to decide, and optionally an account whose stored
// events are decided before them.
type testRequest struct {
	setRequest
	// Account, if set, decides the account's newest stored events (oldest
	// first) ahead of Events: what the set would have done to it.
	Account *accountEvents `json:"account_events,omitempty"`
}

// accountEvents names an account's recent stored events.
type accountEvents struct {
	AccountID string `json:"account_id"`
	// Limit is how many of the newest; zero means 50, at most
	// chstore.MaxRecentEvents.
	Limit int `json:"limit,omitempty"`
}

// test decides the request's events in order with the set it names
// through the engine path on a fresh state (engine.RunTrial: features
// computed from the earlier events of the list, live defaults where there
// are none, values given with an event overriding the computed ones), and
// decides the set's rule examples the same way. Without a feature set
// (Config.FeatureSet) features cannot be computed, and the events are
// decided with the values they give, the others 0 (rules.RuleSet.RunTest).
func (s *Service) test(w http.ResponseWriter, r *http.Request) {
	var req testRequest
	if !api.DecodeJSON(w, r, &req) {
		return
	}
	_, rs, set, ok := s.compileSet(w, &req.setRequest, false)
	if !ok {
		return
	}
	if req.Account != nil {
		stored, ok := s.accountEvents(w, r, *req.Account)
		if !ok {
			return
		}
		req.Events = append(stored, req.Events...)
	}
	if len(req.Events) > rules.MaxTestEvents {
		api.WriteError(w, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("%d events: %v", len(req.Events), rules.ErrTooManyTestEvents))
		return
	}
	if set == nil {
		res, err := rs.RunTest(req.Events, s.cfg.Now())
		if err != nil {
			api.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		api.WriteJSON(w, http.StatusOK, res)
		return
	}
	res, err := engine.RunTrial(s.cfg.Engine, set, rs, req.Events, s.cfg.Now())
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, rules.ErrTooManyTestEvents) {
			status = http.StatusRequestEntityTooLarge
		}
		api.WriteError(w, status, err.Error())
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

// accountEvents reads the stored events a test asks for as test events,
// or answers the problem and returns false.
func (s *Service) accountEvents(w http.ResponseWriter, r *http.Request, a accountEvents) ([]rules.TestEvent, bool) {
	switch {
	case a.AccountID == "":
		api.WriteError(w, http.StatusBadRequest, "account_events.account_id: name the account whose stored events to decide")
		return nil, false
	case a.Limit < 0 || a.Limit > chstore.MaxRecentEvents:
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("account_events.limit: want 1 to %d events", chstore.MaxRecentEvents))
		return nil, false
	case a.Limit == 0:
		a.Limit = 50
	}
	stored, err := s.cfg.Store.RecentEvents(r.Context(), a.AccountID, a.Limit)
	if err != nil {
		api.WriteError(w, http.StatusServiceUnavailable, "reading the account's events: "+err.Error())
		return nil, false
	}
	if len(stored) == 0 {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("no stored events of account %q", a.AccountID))
		return nil, false
	}
	out := make([]rules.TestEvent, 0, len(stored))
	for _, e := range stored {
		var ev map[string]any
		if err := json.Unmarshal(e.Raw, &ev); err != nil {
			api.WriteError(w, http.StatusUnprocessableEntity, fmt.Sprintf("stored event %s is not JSON: %v", e.EventID, err))
			return nil, false
		}
		out = append(out, rules.TestEvent{Event: ev})
	}
	return out, true
}
