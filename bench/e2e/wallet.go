package main

import (
	"context"
	"fmt"

	"riskd/bench/detection"
	"riskd/bench/traffic"
	"riskd/event"
)

// walletDetection scores the saturation workload as a wallet counts it
// (bench/detection): the generator, deterministic for its configuration,
// makes the events again with their attack ids and roles, and each is
// matched with its decision read back from ClickHouse by sequence number.
// Events without a stored decision are left out and counted in missing.
func walletDetection(ctx context.Context, ch *chConn, s settings, prefix string, events int) (r detection.Report, missing int, err error) {
	actions, err := ch.actions(ctx, prefix, events)
	if err != nil {
		return r, 0, fmt.Errorf("wallet detection: %w", err)
	}
	g := traffic.New(saturationTraffic(s, prefix))
	tally := detection.NewTally()
	var ev event.Event
	for i := range events {
		g.Next(&ev)
		if actions[i] == "" {
			missing++
			continue
		}
		id, role := g.Attack()
		if err := tally.Add(detection.Event{ID: ev.ID, Account: ev.AccountID, Scenario: ev.Label, Attack: id,
			Role: role, Victim: g.Victim(), TS: ev.TS, Amount: ev.Amount, Action: actions[i]}); err != nil {
			return r, missing, fmt.Errorf("wallet detection: %w", err)
		}
	}
	return tally.Report(), missing, nil
}
