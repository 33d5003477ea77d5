package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"riskd/streams/chstore"
)

// OverviewStore is what the overview reads from ClickHouse.
type OverviewStore interface {
	DecisionsPerMinute(ctx context.Context, since time.Time) ([]chstore.MinuteActions, error)
	RecentTopRules(ctx context.Context, since time.Time, n int) ([]chstore.RuleCount, error)
	RecentAlerts(ctx context.Context, since time.Time) (uint64, error)
}

// OverviewResponse is GET /v1/overview's answer: the last minutes of
// decisions from the store, and the running pipeline's counters.
type OverviewResponse struct {
	Minutes int       `json:"minutes"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	// PerMinute counts decisions by minute (Unix ms of its start) and
	// action; minutes with none are absent.
	PerMinute []MinuteActions `json:"per_minute"`
	// Actions totals PerMinute by action.
	Actions map[string]uint64 `json:"actions"`
	// TopRules are the active rules that matched most decisions.
	TopRules []RuleHits `json:"top_rules"`
	// Alerts and LateEvents are counted over the same minutes.
	Alerts     uint64 `json:"alerts"`
	LateEvents uint64 `json:"late_events"`
	// Pipeline is this instance's counters since it started (DLQ) and
	// now (lag), from its metrics.
	Pipeline PipelineFigures `json:"pipeline"`
}

// MinuteActions is one minute's decisions of one action.
type MinuteActions struct {
	Minute    int64  `json:"minute"`
	Action    string `json:"action"`
	Decisions uint64 `json:"decisions"`
}

// RuleHits is a rule and how many decisions it matched.
type RuleHits struct {
	RuleID string `json:"rule_id"`
	Hits   uint64 `json:"hits"`
}

// PipelineFigures are read from the metrics of the running pipeline.
type PipelineFigures struct {
	// DLQ is riskd_dlq_total: messages sent to the dead-letter topic
	// since this instance started.
	DLQ float64 `json:"dlq"`
	// Lag is riskd_consumer_lag summed over the assigned partitions.
	Lag float64 `json:"lag"`
	// LateEvents is riskd_late_events_total (once per event and entity
	// group it was late for) since this instance started.
	LateEvents float64 `json:"late_events"`
	// ParkedOutputs is riskd_parked_outputs_total since start.
	ParkedOutputs float64 `json:"parked_outputs"`
}

// Overview bounds.
const (
	DefaultOverviewMinutes = 60
	MaxOverviewMinutes     = 24 * 60
	overviewTopRules       = 10
)

// OverviewRoute serves GET /v1/overview?minutes=N to viewers, analysts and
// support. metrics is the registry the pipeline's metrics are in.
func OverviewRoute(store OverviewStore, metrics prometheus.Gatherer, now func() time.Time) Route {
	h := func(w http.ResponseWriter, r *http.Request) {
		minutes := DefaultOverviewMinutes
		for k, v := range r.URL.Query() {
			if k != "minutes" || len(v) != 1 {
				WriteError(w, http.StatusBadRequest, "unknown or repeated parameter "+strconv.Quote(k)+": want minutes")
				return
			}
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 1 || n > MaxOverviewMinutes {
				WriteError(w, http.StatusBadRequest, "minutes: want 1 to "+strconv.Itoa(MaxOverviewMinutes))
				return
			}
			minutes = n
		}
		to := now()
		// From the start of the first minute, so that minute is whole.
		from := to.Add(-time.Duration(minutes-1) * time.Minute).Truncate(time.Minute)
		resp := OverviewResponse{Minutes: minutes, From: from, To: to, Actions: map[string]uint64{},
			PerMinute: []MinuteActions{}, TopRules: []RuleHits{}}
		per, err := store.DecisionsPerMinute(r.Context(), from)
		if err != nil {
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		for _, m := range per {
			resp.PerMinute = append(resp.PerMinute, MinuteActions{Minute: m.Minute, Action: m.Action, Decisions: m.Decisions})
			resp.Actions[m.Action] += m.Decisions
			resp.LateEvents += m.Late
		}
		top, err := store.RecentTopRules(r.Context(), from, overviewTopRules)
		if err != nil {
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		for _, rc := range top {
			resp.TopRules = append(resp.TopRules, RuleHits{RuleID: rc.RuleID, Hits: rc.Hits})
		}
		if resp.Alerts, err = store.RecentAlerts(r.Context(), from); err != nil {
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		resp.Pipeline = pipelineFigures(metrics)
		WriteJSON(w, http.StatusOK, resp)
	}
	return Route{Pattern: "GET /v1/overview", Roles: []Role{RoleViewer, RoleAnalyst, RoleSupport}, Handler: http.HandlerFunc(h)}
}

// pipelineFigures sums the series of the pipeline's metrics by name. A
// registry that cannot be gathered gives zeros: the overview still shows
// what the store knows.
func pipelineFigures(g prometheus.Gatherer) PipelineFigures {
	var f PipelineFigures
	if g == nil {
		return f
	}
	families, _ := g.Gather() // partial results are still useful
	sum := func(mf *dto.MetricFamily) float64 {
		var t float64
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				t += m.Counter.GetValue()
			case m.Gauge != nil:
				t += m.Gauge.GetValue()
			}
		}
		return t
	}
	for _, mf := range families {
		switch mf.GetName() {
		case "riskd_dlq_total":
			f.DLQ = sum(mf)
		case "riskd_consumer_lag":
			f.Lag = sum(mf)
		case "riskd_late_events_total":
			f.LateEvents = sum(mf)
		case "riskd_parked_outputs_total":
			f.ParkedOutputs = sum(mf)
		}
	}
	return f
}
