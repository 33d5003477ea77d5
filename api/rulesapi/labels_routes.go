package rulesapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"riskd/api"
	"riskd/streams/chstore"
)

// LabelsMaxBody bounds a POST /v1/labels body: room for
// chstore.MaxLabelItems items with ids and a short note each. riskctl
// sends smaller batches.
const LabelsMaxBody = 8 << 20

// LabelsRequest is the body of POST /v1/labels.
type LabelsRequest struct {
	// Labels are at most chstore.MaxLabelItems items, of which at most
	// chstore.MaxLabelRanges are account ranges.
	Labels []LabelItem `json:"labels"`
}

// LabelItem labels one stored event (EventID) or every stored event of an
// account with From <= event time < To. Label is "fraud", "not_fraud" or a
// fraud scenario's name; Source (required) says where the verdict came
// from: "chargeback", "support", "analyst", ...
type LabelItem struct {
	EventID   string    `json:"event_id,omitempty"`
	AccountID string    `json:"account_id,omitempty"`
	From      LabelTime `json:"from,omitzero"`
	To        LabelTime `json:"to,omitzero"`
	Label     string    `json:"label"`
	Source    string    `json:"source"`
	Note      string    `json:"note,omitempty"`
}

// LabelTime is a time in a label item: an RFC 3339 string or a number of
// Unix milliseconds. It encodes as RFC 3339 in UTC.
type LabelTime struct{ time.Time }

// UnmarshalJSON reads an RFC 3339 string or Unix milliseconds.
func (t *LabelTime) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseLabelTime(s)
		if err != nil {
			return err
		}
		t.Time = v
		return nil
	}
	ms, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("%s is neither an RFC 3339 time string nor an integer of Unix milliseconds", b)
	}
	t.Time = time.UnixMilli(ms).UTC()
	return nil
}

// MarshalJSON writes RFC 3339 with milliseconds when there are any.
func (t LabelTime) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.UTC().Format(time.RFC3339Nano))
}

// ParseLabelTime reads an RFC 3339 time ("2026-03-01T10:00:00Z", with an
// offset or fractions), a date ("2026-03-01", midnight UTC) or Unix
// milliseconds.
func ParseLabelTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: want RFC 3339 (2026-03-01T10:00:00Z), a date (2026-03-01) or Unix milliseconds", s)
}

// LabelsResponse is the answer of POST /v1/labels.
type LabelsResponse struct {
	// Items is how many items the request had.
	Items int `json:"items"`
	// Labelled counts the events labelled (an event named twice counts
	// once); Fraud and NotFraud split it.
	Labelled int `json:"labelled"`
	Fraud    int `json:"fraud"`
	NotFraud int `json:"not_fraud"`
	// UnknownEventIDs are the event_id items with no stored event: nothing
	// was recorded for them.
	UnknownEventIDs []string `json:"unknown_event_ids"`
	// EmptyRanges are the range items with no stored event in the range.
	EmptyRanges []EmptyRange `json:"empty_ranges"`
}

// EmptyRange is a range item that named no stored event.
type EmptyRange struct {
	Index     int       `json:"index"`
	AccountID string    `json:"account_id"`
	From      LabelTime `json:"from"`
	To        LabelTime `json:"to"`
}

// LabelError is the details of a refused item: its index in the request
// and the field at fault.
type LabelError struct {
	Index int    `json:"index"`
	Field string `json:"field,omitempty"`
}

// labelRoutes: POST /v1/labels, for analysts and support (who hear of
// chargebacks and confirmed false positives).
func (s *Service) labelRoutes() []api.Route {
	return []api.Route{{Pattern: "POST /v1/labels", Roles: []api.Role{api.RoleAnalyst, api.RoleSupport},
		MaxBody: LabelsMaxBody, Handler: http.HandlerFunc(s.postLabels)}}
}

// postLabels records labels and audits the request once, whatever its
// outcome past decoding.
func (s *Service) postLabels(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	audit := func(action, detail string) {
		s.audit(r.Context(), chstore.AuditRow{Actor: c.Name, Role: string(c.Role), Action: action, Object: "labels", Detail: detail})
	}
	items, err := decodeLabels(w, r)
	if err != nil {
		if !errors.Is(err, errResponded) {
			audit("labels.import_refused", err.Error())
		}
		return
	}
	res, err := s.cfg.Store.WriteLabels(r.Context(), items, c.Name, s.cfg.Now())
	var fe *chstore.LabelFieldError
	switch {
	case errors.As(err, &fe):
		audit("labels.import_refused", err.Error())
		status := http.StatusBadRequest
		if errors.Is(err, chstore.ErrTooManyLabelled) {
			status = http.StatusUnprocessableEntity
		}
		body := api.ErrorBody{Error: err.Error()}
		if fe.Index >= 0 {
			body.Details = LabelError{Index: fe.Index, Field: fe.Field}
		}
		api.WriteJSON(w, status, body)
		return
	case err != nil:
		audit("labels.import_failed", err.Error())
		api.WriteError(w, http.StatusServiceUnavailable, "recording the labels failed; nothing or part of it may be stored, and sending it again is safe: "+err.Error())
		return
	}
	out := LabelsResponse{Items: len(items), Labelled: res.Labelled, Fraud: res.Fraud, NotFraud: res.NotFraud,
		UnknownEventIDs: res.UnknownEventIDs, EmptyRanges: []EmptyRange{}}
	if out.UnknownEventIDs == nil {
		out.UnknownEventIDs = []string{}
	}
	for _, i := range res.EmptyRanges {
		it := items[i]
		out.EmptyRanges = append(out.EmptyRanges, EmptyRange{Index: i, AccountID: it.AccountID, From: LabelTime{it.From}, To: LabelTime{it.To}})
	}
	audit("labels.import", labelsAuditDetail(items, out))
	api.WriteJSON(w, http.StatusOK, out)
}

// errResponded says decodeLabels already answered (a body over the limit,
// unreadable JSON): nothing to audit, the request never named labels.
var errResponded = errors.New("responded")

// decodeLabels reads the body item by item, so a bad item is named by its
// index; it answers 400 itself and returns the error to audit.
func decodeLabels(w http.ResponseWriter, r *http.Request) ([]chstore.LabelItem, error) {
	var req struct {
		Labels []json.RawMessage `json:"labels"`
	}
	if !api.DecodeJSON(w, r, &req) {
		return nil, errResponded
	}
	refuse := func(status int, err error, details any) ([]chstore.LabelItem, error) {
		api.WriteJSON(w, status, api.ErrorBody{Error: err.Error(), Details: details})
		return nil, err
	}
	switch {
	case len(req.Labels) == 0:
		return refuse(http.StatusBadRequest, errors.New(`no labels given: send {"labels": [{"event_id": ..., "label": "fraud", "source": ...}]}`), nil)
	case len(req.Labels) > chstore.MaxLabelItems:
		return refuse(http.StatusBadRequest, fmt.Errorf("%d labels, over the %d-per-request limit: send them in batches",
			len(req.Labels), chstore.MaxLabelItems), nil)
	}
	items := make([]chstore.LabelItem, len(req.Labels))
	for i, raw := range req.Labels {
		var it LabelItem
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&it); err != nil {
			return refuse(http.StatusBadRequest, fmt.Errorf("labels[%d]: %w", i, err), LabelError{Index: i})
		}
		items[i] = chstore.LabelItem{EventID: it.EventID, AccountID: it.AccountID, From: it.From.Time, To: it.To.Time,
			Label: it.Label, Source: it.Source, Note: it.Note}
	}
	return items, nil
}

// labelsAuditDetail summarises a request for the audit log: counts, the
// labels and sources used, and the first unknown ids.
func labelsAuditDetail(items []chstore.LabelItem, out LabelsResponse) string {
	var labels, sources []string
	for _, it := range items {
		if !slices.Contains(labels, it.Label) {
			labels = append(labels, it.Label)
		}
		if !slices.Contains(sources, it.Source) {
			sources = append(sources, it.Source)
		}
	}
	const show = 10
	detail := fmt.Sprintf("%d items: %d events labelled (fraud %d, not_fraud %d); labels %s; sources %s; %d unknown event ids; %d empty ranges",
		out.Items, out.Labelled, out.Fraud, out.NotFraud, firstN(labels, show), firstN(sources, show),
		len(out.UnknownEventIDs), len(out.EmptyRanges))
	if len(out.UnknownEventIDs) > 0 {
		detail += " (" + firstN(out.UnknownEventIDs, show) + ")"
	}
	return detail
}

func firstN(ss []string, n int) string {
	if len(ss) <= n {
		return strings.Join(ss, ", ")
	}
	return strings.Join(ss[:n], ", ") + fmt.Sprintf(" and %d more", len(ss)-n)
}
