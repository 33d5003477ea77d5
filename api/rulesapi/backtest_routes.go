package rulesapi

import "riskd/api"

// backtestRoutes: POST /v1/rules/backtest (stub, being built).
func (s *Service) backtestRoutes() []api.Route { return nil }
