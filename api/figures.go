package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"riskd/streams"
	"riskd/streams/chstore"
)

// The lists behind the overview's figures that are not decisions: the
// alerts raised, the dead letters, and the input partitions with their lag.

// AlertLister reads the alerts raised since a time, newest first.
type AlertLister interface {
	AlertList(ctx context.Context, since time.Time, limit int) ([]chstore.RaisedAlert, error)
}

// DeadLetterReader reads the newest messages of the dead-letter topic.
type DeadLetterReader interface {
	DeadLetters(ctx context.Context, n int) ([]streams.DeadLetter, error)
}

// PartitionSource is the running pipeline's readiness, whose Partitions
// are the input partitions assigned to this instance.
type PartitionSource interface {
	Ready() streams.Readiness
}

// RaisedAlert is one alert of GET /v1/alerts.
type RaisedAlert struct {
	AccountID string    `json:"account_id"`
	EventID   string    `json:"event_id"`
	RuleID    string    `json:"rule_id"`
	Action    string    `json:"action"`
	Message   string    `json:"message"`
	Time      time.Time `json:"time"`
	DecidedAt time.Time `json:"decided_at"`
}

// AlertsResponse is GET /v1/alerts' answer.
type AlertsResponse struct {
	Since  time.Time     `json:"since"`
	Alerts []RaisedAlert `json:"alerts"`
}

// DeadLettersResponse is GET /v1/dlq's answer.
type DeadLettersResponse struct {
	DeadLetters []streams.DeadLetter `json:"dead_letters"`
}

// PartitionLag is one input partition of GET /v1/pipeline/partitions:
// where it stands (streams.PartitionStatus) and its lag, absent until the
// broker has been asked.
type PartitionLag struct {
	streams.PartitionStatus
	Lag *float64 `json:"lag,omitempty"`
}

// PartitionsResponse is GET /v1/pipeline/partitions' answer.
type PartitionsResponse struct {
	Ready      bool           `json:"ready"`
	Failing    []string       `json:"failing"`
	Partitions []PartitionLag `json:"partitions"`
}

// Bounds of the lists.
const (
	DefaultAlertList = 100
	DefaultDLQList   = 100
)

// FigureRoutes serve the lists behind the overview's figures to viewers,
// analysts and support (admin always): GET /v1/alerts?since=&limit=, GET
// /v1/dlq?limit= and GET /v1/pipeline/partitions. metrics is the registry
// riskd_consumer_lag is in.
func FigureRoutes(alerts AlertLister, dlq DeadLetterReader, parts PartitionSource, metrics prometheus.Gatherer, now func() time.Time) []Route {
	listAlerts := func(w http.ResponseWriter, r *http.Request) {
		qs := r.URL.Query()
		if err := onlyParams(qs, "since", "limit"); err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		since := now().Add(-time.Duration(DefaultOverviewMinutes) * time.Minute).UTC()
		if s := qs.Get("since"); s != "" {
			t, err := parseViewTime(s)
			if err != nil {
				WriteError(w, http.StatusBadRequest, "since: "+err.Error())
				return
			}
			since = t
		}
		limit, ok := listLimit(w, qs.Get("limit"), DefaultAlertList, chstore.MaxAlertList)
		if !ok {
			return
		}
		as, err := alerts.AlertList(r.Context(), since, limit)
		if writeStoreError(w, err) {
			return
		}
		resp := AlertsResponse{Since: since, Alerts: make([]RaisedAlert, 0, len(as))}
		for _, a := range as {
			resp.Alerts = append(resp.Alerts, RaisedAlert{AccountID: a.AccountID, EventID: a.EventID, RuleID: a.RuleID,
				Action: a.Action, Message: a.Message, Time: time.UnixMilli(a.EventTS).UTC(), DecidedAt: a.DecidedAt})
		}
		WriteJSON(w, http.StatusOK, resp)
	}
	listDLQ := func(w http.ResponseWriter, r *http.Request) {
		qs := r.URL.Query()
		if err := onlyParams(qs, "limit"); err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		limit, ok := listLimit(w, qs.Get("limit"), DefaultDLQList, streams.MaxDeadLetters)
		if !ok {
			return
		}
		dls, err := dlq.DeadLetters(r.Context(), limit)
		if errors.Is(err, streams.ErrBadDeadLetterLimit) {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err != nil {
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, DeadLettersResponse{DeadLetters: dls})
	}
	listParts := func(w http.ResponseWriter, r *http.Request) {
		if err := onlyParams(r.URL.Query()); err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		rd := parts.Ready()
		lags := partitionLags(metrics)
		resp := PartitionsResponse{Ready: rd.Ready, Failing: rd.Failing, Partitions: make([]PartitionLag, 0, len(rd.Partitions))}
		for _, ps := range rd.Partitions {
			pl := PartitionLag{PartitionStatus: ps}
			if v, ok := lags[ps.Topic+"/"+strconv.Itoa(ps.Partition)]; ok {
				pl.Lag = &v
			}
			resp.Partitions = append(resp.Partitions, pl)
		}
		WriteJSON(w, http.StatusOK, resp)
	}
	read := []Role{RoleViewer, RoleAnalyst, RoleSupport}
	return []Route{
		{Pattern: "GET /v1/alerts", Roles: read, Handler: http.HandlerFunc(listAlerts)},
		{Pattern: "GET /v1/dlq", Roles: read, Handler: http.HandlerFunc(listDLQ)},
		{Pattern: "GET /v1/pipeline/partitions", Roles: read, Handler: http.HandlerFunc(listParts)},
	}
}

// onlyParams refuses parameters not in known (a typo would otherwise be
// ignored) and repeated ones, as viewParams does.
func onlyParams(qs url.Values, known ...string) error {
	for k, v := range qs {
		if !slices.Contains(known, k) {
			if len(known) == 0 {
				return fmt.Errorf("unknown parameter %q: want none", k)
			}
			return fmt.Errorf("unknown parameter %q: want %s", k, strings.Join(known, ", "))
		}
		if len(v) > 1 {
			return fmt.Errorf("%s: given %d times", k, len(v))
		}
	}
	return nil
}

// listLimit reads a list's limit (def when absent), answering 400 and
// reporting false when it is not 1 to max.
func listLimit(w http.ResponseWriter, s string, def, max int) (int, bool) {
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		WriteError(w, http.StatusBadRequest, "limit "+strconv.Quote(s)+": want a number from 1 to "+strconv.Itoa(max))
		return 0, false
	}
	return n, true
}

// partitionLags reads riskd_consumer_lag by "topic/partition".
func partitionLags(g prometheus.Gatherer) map[string]float64 {
	out := map[string]float64{}
	if g == nil {
		return out
	}
	families, _ := g.Gather() // partial results are still useful
	for _, mf := range families {
		if mf.GetName() != "riskd_consumer_lag" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var topic, part string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "topic":
					topic = l.GetValue()
				case "partition":
					part = l.GetValue()
				}
			}
			out[topic+"/"+part] = m.GetGauge().GetValue()
		}
	}
	return out
}
