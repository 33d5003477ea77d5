package rulesapi

import (
	"net/http"

	"riskd/api"
)

// test decides the request's events with the set it names, as the engine
// would, and runs the set's rule examples again (rules.RuleSet.RunTest).
func (s *Service) test(w http.ResponseWriter, r *http.Request) {
	req, _, rs, ok := s.compileRequest(w, r, false)
	if !ok {
		return
	}
	res, err := rs.RunTest(req.Events, s.cfg.Now())
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}
