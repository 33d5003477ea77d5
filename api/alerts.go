package api

import "net/http"

// AlertStreamRoute is GET /v1/alerts/stream, served by h (the notifier's
// live stream), for the roles that watch alerts: viewer, support and
// analyst.
func AlertStreamRoute(h http.Handler) Route {
	return Route{Pattern: "GET /v1/alerts/stream", Roles: []Role{RoleViewer, RoleSupport, RoleAnalyst}, Handler: h}
}
