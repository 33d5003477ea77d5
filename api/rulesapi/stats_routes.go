package rulesapi

import "riskd/api"

// statsRoutes: GET /v1/rules/stats (stub, being built).
func (s *Service) statsRoutes() []api.Route { return nil }
