package rulesapi

import (
	"net/http"

	"riskd/api"
	"riskd/rules"
)

// vocabularyRoutes: GET /v1/rules/vocabulary, the names an editor offers
// to complete (rules.Vocabulary), for everyone who reads rules.
func (s *Service) vocabularyRoutes() []api.Route {
	return []api.Route{{Pattern: "GET /v1/rules/vocabulary", Roles: []api.Role{api.RoleViewer, api.RoleAnalyst, api.RoleSupport},
		Handler: http.HandlerFunc(s.vocabulary)}}
}

// vocabularyAnswer is the answer of GET /v1/rules/vocabulary.
type vocabularyAnswer struct {
	// Version is the running version, whose lists and window features
	// the vocabulary holds ("" when none runs yet).
	Version string `json:"version"`
	rules.Vocabulary
}

func (s *Service) vocabulary(w http.ResponseWriter, r *http.Request) {
	var out vocabularyAnswer
	var lists map[string]map[string]struct{}
	if rs := s.cfg.Holder.Load(); rs != nil {
		out.Version, lists = rs.Version.String(), rs.Lists
	}
	out.Vocabulary = rules.NewVocabulary(s.featureIndex(), lists)
	api.WriteJSON(w, http.StatusOK, out)
}
