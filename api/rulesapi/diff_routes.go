package rulesapi

import (
	"fmt"
	"net/http"
	"strconv"

	"riskd/api"
	"riskd/rules"
	"riskd/streams/chstore"
)

// diffAnswer is the answer of GET /v1/rules/versions/{a}/diff/{b}: the
// two versions (without their files) and what changed from a to b.
type diffAnswer struct {
	From versionView    `json:"from"`
	To   versionView    `json:"to"`
	Diff *rules.SetDiff `json:"diff"`
}

// diffVersions shows the rules, lists and settings that changed from
// version a to version b of the history (rules.Diff).
func (s *Service) diffVersions(w http.ResponseWriter, r *http.Request) {
	var rows [2]chstore.RuleSetVersionRow
	for i, name := range []string{"a", "b"} {
		raw := r.PathValue(name)
		seq, err := strconv.ParseUint(raw, 10, 64)
		if err != nil || seq == 0 {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("version %q: want a version number from 1 up (see GET /v1/rules/versions)", raw))
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
		rows[i] = v
	}
	d, err := rules.Diff(toBytes(rows[0].Files), toBytes(rows[1].Files))
	if err != nil {
		api.WriteError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	from, to := s.view(rows[0]), s.view(rows[1])
	from.Files, to.Files = nil, nil
	api.WriteJSON(w, http.StatusOK, diffAnswer{From: from, To: to, Diff: d})
}
