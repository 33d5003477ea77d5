package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"riskd/api"
	"riskd/event"
)

// Bounds of riskctl decide's input: each event is one decide call, so a
// file is read whole only up to decideMaxInput, and an event is no larger
// than riskd accepts by default.
const (
	decideMaxInput  = 64 << 20
	decideMaxEvents = 100000
	decideMaxEvent  = event.DefaultMaxBytes
)

const decideUsage = `usage: riskctl decide [--json] FILE|-

Decides events as the wallet's payment hook does (POST /v1/decide) and prints
one line per event: event id, action, category, code(s), message; --json
prints riskd's answers instead, one per line. FILE holds a JSON object, an
array of them, or one object per line; - reads stdin. Events are really
decided: riskd records them, updates its features and may lock accounts, and
an event id already decided is answered as a duplicate. Uses RISKCTL_URL and
RISKCTL_TOKEN (a token with the hook role). Exits 1 when an event is refused.

flags:
`

func runDecide(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("riskctl decide", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print riskd's answers as JSON lines")
	fs.Usage = func() { fmt.Fprint(fs.Output(), decideUsage); fs.PrintDefaults() }
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return &exitError{Code: 2, Err: errors.New("decide: give one FILE (or - for stdin)")}
	}
	client, err := apiClientFromEnv()
	if err != nil {
		return &exitError{Code: 2, Err: err}
	}
	name := pos[0]
	in := io.Reader(os.Stdin)
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return &exitError{Code: 2, Err: fmt.Errorf("decide: %w", err)}
		}
		defer f.Close()
		in = f
	} else {
		name = "stdin"
	}
	events, err := readDecideEvents(in, name)
	if err != nil {
		return &exitError{Code: 2, Err: err}
	}
	refused := 0
	for _, ev := range events {
		var raw json.RawMessage
		if err := client.do(ctx, "POST", "/v1/decide", []byte(ev.raw), &raw); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status >= 500 || ae.Status == 401 || ae.Status == 403 {
				return fmt.Errorf("decide %s: %w", ev.where, err) // riskd, the network or the token: the rest would fail alike
			}
			refused++
			fmt.Fprintf(stderr, "%s: %s\n", ev.where, ae.Msg)
			continue
		}
		if *asJSON {
			fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(raw))
			continue
		}
		var resp api.DecideResponse
		if err := json.Unmarshal(raw, &resp); err != nil {
			return fmt.Errorf("decide %s: reading the answer: %w", ev.where, err)
		}
		fmt.Fprintln(stdout, decideLine(resp))
	}
	if refused > 0 {
		return &exitError{Code: 1, Err: fmt.Errorf("decide: riskd refused %d of %d events (see above)", refused, len(events))}
	}
	return nil
}

// decideLine is one answer as a line: event id, action (with the step-up
// of a challenge and "fallback" or "duplicate" when so), category, the
// decision's code and the other matched rules' codes, and the message.
func decideLine(r api.DecideResponse) string {
	action := r.Action.String()
	if r.StepUp != "" {
		action += "/" + r.StepUp
	}
	switch {
	case r.Fallback:
		action += " (fallback)"
	case r.Duplicate:
		action += " (duplicate)"
	}
	codes := []string{r.Code}
	for _, rs := range r.Reasons {
		if !slices.Contains(codes, rs.Code) {
			codes = append(codes, rs.Code)
		}
	}
	line := fmt.Sprintf("%s\t%s\t%s\t%s", r.EventID, action, r.Category, strings.Join(codes, ","))
	if r.LockUntil != nil {
		line += "\tuntil " + r.LockUntil.UTC().Format("2006-01-02T15:04:05Z")
	}
	if r.Message != "" {
		line += "\t" + r.Message
	}
	return line
}

// decideEvent is one event to decide and where it was read.
type decideEvent struct {
	raw   string
	where string // FILE:LINE, or FILE[i] in an array
}

// readDecideEvents reads a JSON object, an array of objects, or JSON
// lines, within the bounds above; a problem names the file and the line
// or array index.
func readDecideEvents(r io.Reader, name string) ([]decideEvent, error) {
	data, err := io.ReadAll(io.LimitReader(r, decideMaxInput+1))
	if err != nil {
		return nil, fmt.Errorf("decide: reading %s: %w", name, err)
	}
	if len(data) > decideMaxInput {
		return nil, fmt.Errorf("decide: %s is larger than %d MiB; split it", name, decideMaxInput>>20)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("decide: %s holds no event", name)
	}
	var out []decideEvent
	add := func(raw []byte, where string) error {
		if len(out) == decideMaxEvents {
			return fmt.Errorf("decide: %s holds more than %d events; split it", name, decideMaxEvents)
		}
		if len(raw) > decideMaxEvent {
			return fmt.Errorf("decide: %s: the event has %d bytes, riskd takes at most %d", where, len(raw), decideMaxEvent)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return fmt.Errorf("decide: %s: not a JSON object: %v", where, err)
		}
		out = append(out, decideEvent{raw: string(raw), where: where})
		return nil
	}
	if trimmed[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, fmt.Errorf("decide: %s: not a JSON array of events: %v", name, err)
		}
		for i, it := range items {
			if err := add(bytes.TrimSpace(it), fmt.Sprintf("%s[%d]", name, i)); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	// One object, pretty-printed over several lines, or JSON lines.
	if json.Valid(trimmed) {
		return out, add(trimmed, name+":1")
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, decideMaxEvent+1)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := add(bytes.Clone(b), fmt.Sprintf("%s:%d", name, line)); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("decide: reading %s: a line is longer than %d bytes, riskd takes at most that", name, decideMaxEvent)
	}
	return out, nil
}
