package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"riskd/bench/traffic"
	"riskd/event"
)

// decideBodies is how many distinct events the decide load cycles
// through. Later rounds repeat event ids, which riskd answers from its
// duplicate check; the first rounds are fresh.
const decideBodies = 200_000

// decidePhase loads POST /v1/decide when riskd serves it. A 404 (or riskd
// refusing the auth config) records null and a note: the endpoint is being
// built alongside this harness.
func decidePhase(ctx context.Context, r *results, proc *riskdProc, s settings, token, stamp string) error {
	if !r.Saturation.DecideEnabled {
		r.DecideNote = "riskd rejected the auth.tokens config key: no decide API in this build"
		logf("decide: skipped (%s)", r.DecideNote)
		return nil
	}
	bodies := decideRequests(s, s.Seed+2, "dec-"+stamp+"-", decideBodies)
	url := proc.httpURL + "/v1/decide"
	status, answer, err := probe(ctx, url, token, bodies[0])
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		r.DecideNote = fmt.Sprintf("POST /v1/decide answered %d (%s); decide_* recorded as null", status, answer)
		logf("decide: %s", r.DecideNote)
		return nil
	}
	logf("HTTP load on POST /v1/decide (first answer: %s)", answer)
	res, err := ramp(ctx, decideRates, s.LoadStep, postReq(url, token, bodies[1:]))
	if err != nil {
		return err
	}
	r.Decide = &res
	r.DecideRPS, r.DecideP99MS = &res.MaxHeldRPS, &res.P99MS
	return nil
}

// decideRequests generates n decide request bodies, events of the
// generator with its own seed and id prefix, stamped with the wall clock.
func decideRequests(s settings, seed uint64, prefix string, n int) [][]byte {
	gen := traffic.New(traffic.Config{Accounts: s.Accounts, Seed: seed, FraudRate: s.FraudRate,
		Start: time.Now(), IDPrefix: prefix})
	bodies := make([][]byte, n)
	var ev event.Event
	for i := range bodies {
		gen.Next(&ev)
		ev.TS = time.Now().UnixMilli()
		bodies[i] = ev.AppendJSON(nil)
	}
	return bodies
}

// probe sends one decide request and returns its status and the start of
// its body.
func probe(ctx context.Context, url, token string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", fmt.Errorf("decide probe: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("decide probe: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return resp.StatusCode, string(bytes.TrimSpace(b)), nil
}
