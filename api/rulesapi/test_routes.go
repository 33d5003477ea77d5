package rulesapi

import (
	"errors"
	"fmt"
	"net/http"

	"riskd/api"
	"riskd/engine"
	"riskd/rules"
)

// test decides the request's events in order with the set it names
// through the engine path on a fresh state (engine.RunTrial: features
// computed from the earlier events of the list, live defaults where there
// are none, values given with an event overriding the computed ones), and
// decides the set's rule examples the same way. Without a feature set
// (Config.FeatureSet) features cannot be computed, and the events are
// decided with the values they give, the others 0 (rules.RuleSet.RunTest).
func (s *Service) test(w http.ResponseWriter, r *http.Request) {
	req, _, rs, set, ok := s.compileRequest(w, r, false)
	if !ok {
		return
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
