package rulesapi

import "riskd/api"

// labelRoutes: POST /v1/labels (stub, being built).
func (s *Service) labelRoutes() []api.Route { return nil }
