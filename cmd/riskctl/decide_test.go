package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"riskd/api"
	"riskd/engine"
	"riskd/features"
	"riskd/rules"
)

// engineDecider decides on a real engine directly: the decide route as
// riskd serves it, without the stream pipeline that records decisions
// (Kafka, ClickHouse), which riskctl decide cannot tell apart.
type engineDecider struct{ eng *engine.Engine }

func (d engineDecider) Decide(ctx context.Context, raw []byte) (*engine.Decision, error) {
	return d.eng.Decide(ctx, engine.Message{Value: raw, Source: engine.Source{Topic: "api", Partition: -1, Offset: -1}})
}

// decideTestRiskd serves POST /v1/decide with a real engine running the
// reference rules and points RISKCTL_URL and RISKCTL_TOKEN (hook role) at it.
func decideTestRiskd(t *testing.T) {
	t.Helper()
	set, err := features.LoadFile("../../bench/reference/features.yaml", features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load("../../bench/reference/rules", set)
	if err != nil {
		t.Fatal(err)
	}
	holder := &rules.Holder{}
	holder.Install(rs, 1)
	eng := engine.New(engine.Config{Shards: 2}, set, holder)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); eng.Run(ctx) }()
	t.Cleanup(func() { stop(); wg.Wait() })

	tokens, err := api.ParseTokens([]string{"pay:hook:hook-secret-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(tokens, slog.New(slog.NewTextHandler(t.Output(), nil)), nil)
	srv.Handle(api.DecideRoute(engineDecider{eng}, api.DecideConfig{Rules: holder}, nil))
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	t.Setenv(envURL, hs.URL)
	t.Setenv(envToken, "hook-secret-0123456789")
}

const decideTS = 1795478400000

func decidePayment(id, account, extra string) string {
	return fmt.Sprintf(`{"event_id":%q,"type":"payment","ts":%d,"account_id":%q,"currency":"EUR"%s}`, id, decideTS, account, extra)
}

// TestDecidePrintsALinePerEvent: JSON lines in, one line per event out,
// with the action (and step-up), category, codes and message.
func TestDecidePrintsALinePerEvent(t *testing.T) {
	decideTestRiskd(t)
	in := decidePayment("d-ok", "acct-1", `,"amount":1500,"channel":"nfc"`) + "\n\n" +
		decidePayment("d-scam", "acct-2", `,"amount":25000,"channel":"transfer","payee_id":"payee-scam-0003"`) + "\n" +
		decidePayment("d-rooted", "acct-3", `,"amount":25000,"channel":"qr","device":{"id":"d-r","rooted":true}`) + "\n"
	path := writeLabelsFile(t, "events.jsonl", in)
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"decide", path}, &out, &errOut); err != nil {
		t.Fatalf("decide: %v\n%s", err, errOut.String())
	}
	want := "d-ok\tallow\tallowed\tclear\n" +
		"d-scam\tblock\tsuspected_scam\tscam.payee_reported\tThis payee was reported for scams. Our staff will never ask you to move money. The payment was not sent.\n" +
		"d-rooted\tchallenge/mfa\tverify_identity\tdevice.rooted\tPlease confirm it's you to continue.\n"
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestDecideJSONPrintsTheAnswers: an array on stdin, --json after the
// positional argument; a duplicate is answered and printed as one.
func TestDecideJSONPrintsTheAnswers(t *testing.T) {
	decideTestRiskd(t)
	scam := decidePayment("j-scam", "acct-j", `,"amount":25000,"channel":"transfer","payee_id":"payee-scam-0003"`)
	in := "[" + scam + ",\n " + scam + "]"
	var out, errOut bytes.Buffer
	if err := runDecideWithStdin(t, []string{"decide", "-", "--json"}, in, &out, &errOut); err != nil {
		t.Fatalf("decide: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want two answers, got %q", out.String())
	}
	var first, second api.DecideResponse
	if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[1]), &second) != nil {
		t.Fatalf("not JSON lines: %q", out.String())
	}
	if first.Code != "scam.payee_reported" || first.SchemaVersion != 1 || !second.Duplicate || second.Code != "duplicate" {
		t.Fatalf("answers: %+v / %+v", first, second)
	}
}

// TestDecideNamesWhereAnEventIsWrong: a bad line is named before anything
// is sent; an event riskd refuses is named and the rest still decided,
// with exit code 1.
func TestDecideNamesWhereAnEventIsWrong(t *testing.T) {
	decideTestRiskd(t)
	path := writeLabelsFile(t, "bad.jsonl", decidePayment("b-1", "acct-b", `,"amount":1`)+"\n{not json\n")
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"decide", path}, &out, &errOut)
	if want := path + ":2: not a JSON object: invalid character 'n' looking for beginning of object key string"; err == nil ||
		err.Error() != "decide: "+want || exitCode(err) != 2 || out.Len() != 0 {
		t.Fatalf("a bad line: %v (exit %d), out %q", err, exitCode(err), out.String())
	}

	path = writeLabelsFile(t, "refused.jsonl", `{"event_id":"r-1","type":"payment"}`+"\n"+decidePayment("r-2", "acct-r", `,"amount":1`)+"\n")
	out.Reset()
	errOut.Reset()
	err = run(t.Context(), []string{"decide", path}, &out, &errOut)
	if err == nil || exitCode(err) != 1 || !strings.HasPrefix(errOut.String(), path+":1: invalid event: ") ||
		out.String() != "r-2\tallow\tallowed\tclear\n" {
		t.Fatalf("a refused event: %v (exit %d), out %q, stderr %q", err, exitCode(err), out.String(), errOut.String())
	}
}

// TestDecideInputIsBounded: an event over riskd's size bound is refused
// by name before anything is sent; one at the bound is read.
func TestDecideInputIsBounded(t *testing.T) {
	pad := func(n int) string { // an object of exactly n bytes
		head := `{"event_id":"big","pad":"`
		return head + strings.Repeat("x", n-len(head)-2) + `"}`
	}
	if evs, err := readDecideEvents(strings.NewReader(pad(decideMaxEvent)), "f"); err != nil || len(evs) != 1 {
		t.Fatalf("an event at the bound: %v", err)
	}
	_, err := readDecideEvents(strings.NewReader(pad(decideMaxEvent+1)), "f")
	if want := fmt.Sprintf("decide: f:1: the event has %d bytes, riskd takes at most %d", decideMaxEvent+1, decideMaxEvent); err == nil || err.Error() != want {
		t.Fatalf("an event over the bound: %v, want %s", err, want)
	}
	many := strings.Repeat(`{"event_id":"e"}`+"\n", decideMaxEvents+1)
	if _, err := readDecideEvents(strings.NewReader(many), "f"); err == nil ||
		err.Error() != fmt.Sprintf("decide: f holds more than %d events; split it", decideMaxEvents) {
		t.Fatalf("too many events: %v", err)
	}
	if _, err := readDecideEvents(strings.NewReader(strings.Repeat(" ", decideMaxInput+1)), "f"); err == nil ||
		err.Error() != "decide: f is larger than 64 MiB; split it" {
		t.Fatalf("too large an input: %v", err)
	}
}

// runDecideWithStdin runs riskctl with in as its standard input.
func runDecideWithStdin(t *testing.T, args []string, in string, stdout, stderr *bytes.Buffer) error {
	t.Helper()
	f, err := os.Open(writeLabelsFile(t, "stdin", in))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = saved }()
	return run(t.Context(), args, stdout, stderr)
}
