package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"gopkg.in/yaml.v3"

	"riskd/api"
	"riskd/internal/apitest"
	"riskd/internal/kafkatest"
)

// hostileCase is one entry of testdata/hostile/cases.yaml: the raw bytes
// of File and what riskd must do with them on each path.
type hostileCase struct {
	Name string `yaml:"name"`
	File string `yaml:"file"`
	What string `yaml:"what"`
	// EventID is the riskd-event-id riskd can read from the bytes, "" if none.
	EventID string `yaml:"event_id"`
	Stream  struct {
		Decided bool `yaml:"decided"`
		// DeadLetter is a substring of the dead letter's riskd-error.
		DeadLetter string `yaml:"dead_letter"`
		// Truncated: the dead letter is cut to output.max_output_bytes.
		Truncated bool `yaml:"truncated"`
		// KnownFailure is what the reason should also say and does not
		// yet; it is logged, not failed.
		KnownFailure *struct {
			Want string `yaml:"want"`
			Why  string `yaml:"why"`
		} `yaml:"known_failure"`
	} `yaml:"stream"`
	Decide struct {
		Status int `yaml:"status"`
		// Body is a substring of the answer (of its "error" for an error).
		Body string `yaml:"body"`
	} `yaml:"decide"`

	raw []byte
}

const (
	hostileDir = "testdata/hostile"
	// hostileKey is the Kafka key of every case: the account id of the
	// well-formed ones, so both paths decide them on the same shard.
	hostileKey = "acct-hostile"
	// brokerMaxMessageBytes is Kafka's default message.max.bytes, which
	// the embedded broker enforces too; a truncated case must fit under
	// it with its record framing.
	brokerMaxMessageBytes = 1_048_588
	// defaultMaxOutputBytes is output.max_output_bytes as this test runs riskd
	// (the default).
	defaultMaxOutputBytes = 900_000
	// peakRSSBound is a memory bound, not a measure of speed: riskd holds
	// tens of MiB with the reference rules, while the unbounded parse this
	// corpus guards against grew past 1 GB before a fatal stack overflow.
	peakRSSBound = 1 << 30
)

// TestHostileInputsAreRefusedWithReasonsAndMemoryStaysBounded runs the
// riskd binary and sends it every case of testdata/hostile on the payments
// topic and to POST /v1/decide, then rules built to exhaust the compiler to
// POST /v1/rules/validate. Each hostile case must come out on risk.dlq
// with its reason (and a 413, 400, 409 or 422 saying the same on the API), the
// well-formed ones decided, the stream never stalled, riskd alive and
// still deciding, and its peak resident memory under peakRSSBound.
func TestHostileInputsAreRefusedWithReasonsAndMemoryStaysBounded(t *testing.T) {
	cases := loadHostileCases(t)
	r := startHostileRiskd(t)
	t.Logf("riskd peak RSS at start: %d MiB", r.peakRSS(t)>>20)

	// 1. The stream: every case, in order, on one partition.
	offsets := r.produce(t, cases)
	var wantDLQ, wantDecided int
	for _, c := range cases {
		if c.Stream.Decided {
			wantDecided++
		} else {
			wantDLQ++
		}
	}
	dlq := kafkatest.ReadAll(t, r.broker, "risk.dlq", wantDLQ, waitLong)
	decisions := kafkatest.ReadAll(t, r.broker, "risk.decisions", wantDecided, waitLong)
	checkHostileStream(t, cases, offsets, dlq, decisions)

	// 2. The decide API: every case, in the same order.
	hook := hostileClient{base: "http://" + r.http, secret: apitest.Secrets[api.RoleHook]}
	for _, c := range cases {
		t.Run("decide/"+c.Name, func(t *testing.T) {
			code, body := hook.post(t, "/v1/decide", c.raw)
			t.Logf("%d %.200q", code, answerText(body))
			if code != c.Decide.Status || !strings.Contains(answerText(body), c.Decide.Body) {
				t.Errorf("%s (%s): POST /v1/decide answered %d %.400q, want %d containing %q",
					c.Name, c.What, code, body, c.Decide.Status, c.Decide.Body)
			}
			if code == 200 && !strings.Contains(string(body), `"fallback":false`) {
				t.Errorf("%s: POST /v1/decide answered the fallback %s, want a decision", c.Name, body)
			}
		})
	}

	// 3. Rules that would exhaust the compiler's stack, memory or time.
	analyst := hostileClient{base: "http://" + r.http, secret: apitest.Secrets[api.RoleAnalyst]}
	for _, c := range hostileRules() {
		t.Run("rules/"+c.name, func(t *testing.T) {
			file := fmt.Sprintf("- id: hostile\n  when: '%s'\n  action: block\n  score: 100\n", c.when)
			req, err := json.Marshal(map[string]any{"patch": map[string]string{"hostile.yaml": file}})
			if err != nil {
				t.Fatal(err)
			}
			code, body := analyst.post(t, "/v1/rules/validate", req)
			t.Logf("%d %.200q", code, answerText(body))
			if code != c.status || !strings.Contains(answerText(body), c.want) {
				t.Errorf("POST /v1/rules/validate with %s (%d bytes) answered %d %.400q, want %d containing %q",
					c.name, len(req), code, body, c.status, c.want)
			}
		})
	}

	// Still alive and deciding after all of it.
	if code, body := hook.get(t, "/healthz"); code != 200 {
		t.Fatalf("GET /healthz after the corpus: %d %q", code, body)
	}
	after := fmt.Appendf(nil, `{"event_id":"h-after","type":"payment","ts":%d,"account_id":%q,"amount":900,"currency":"EUR","channel":"qr"}`,
		baseTS+60_000, hostileKey)
	code, body := hook.post(t, "/v1/decide", after)
	var resp api.DecideResponse
	if err := json.Unmarshal(body, &resp); code != 200 || err != nil || resp.EventID != "h-after" || resp.Duplicate {
		t.Fatalf("POST /v1/decide of a new event after the corpus: %d %q, want 200 with a decision of h-after", code, body)
	}

	// 4. Memory.
	peak := r.peakRSS(t)
	t.Logf("riskd peak RSS after the hostile corpus: %d MiB", peak>>20)
	if peak > peakRSSBound {
		t.Errorf("riskd peak RSS %d MiB, want at most %d MiB", peak>>20, peakRSSBound>>20)
	}
	r.stop(t)
}

// loadHostileCases reads the index and every file it names, and checks
// the index says one thing per path and that the sizes still make the
// cases they describe.
func loadHostileCases(t *testing.T) []*hostileCase {
	t.Helper()
	f, err := os.Open(filepath.Join(hostileDir, "cases.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var cases []*hostileCase
	if err := dec.Decode(&cases); err != nil {
		t.Fatalf("%s/cases.yaml: %v", hostileDir, err)
	}
	names := map[string]bool{}
	for _, c := range cases {
		if c.Name == "" || names[c.Name] {
			t.Fatalf("cases.yaml: case %q: names must be given and unique", c.Name)
		}
		names[c.Name] = true
		if c.Stream.Decided == (c.Stream.DeadLetter != "") || c.Decide.Status == 0 || c.Decide.Body == "" {
			t.Fatalf("cases.yaml: case %s: give stream.decided or stream.dead_letter, and decide.status and decide.body", c.Name)
		}
		if c.raw, err = os.ReadFile(filepath.Join(hostileDir, c.File)); err != nil {
			t.Fatalf("cases.yaml: case %s: %v", c.Name, err)
		}
		// A truncated case must be too big to forward whole and small
		// enough for the broker to take (record framing is under 100 bytes).
		if c.Stream.Truncated && (len(c.raw) <= defaultMaxOutputBytes || len(c.raw)+len(hostileKey)+100 > brokerMaxMessageBytes) {
			t.Fatalf("cases.yaml: case %s is %d bytes; a truncated case must be over %d and fit the broker's %d",
				c.Name, len(c.raw), defaultMaxOutputBytes, brokerMaxMessageBytes)
		}
	}
	return cases
}

// checkHostileStream matches each dead letter to its case by source offset
// and each decision by event id: every case must come out exactly once,
// the way the index says, and nothing else may come out.
func checkHostileStream(t *testing.T, cases []*hostileCase, offsets []int64, dlq, decisions []kafka.Message) {
	t.Helper()
	byOffset := map[int64][]kafka.Message{}
	for _, m := range dlq {
		h := kafkatest.Headers(m)
		off, err := strconv.ParseInt(h["riskd-source-offset"], 10, 64)
		if err != nil || h["riskd-source-topic"] != "payments" || h["riskd-source-partition"] != "0" {
			t.Errorf("dead letter from elsewhere: headers %q", h)
			continue
		}
		byOffset[off] = append(byOffset[off], m)
	}
	byID := map[string]int{}
	for _, m := range decisions {
		byID[kafkatest.Headers(m)["riskd-event-id"]]++
	}
	for i, c := range cases {
		t.Run("stream/"+c.Name, func(t *testing.T) {
			got := byOffset[offsets[i]]
			delete(byOffset, offsets[i])
			if c.Stream.Decided {
				t.Logf("%d decision(s) of %s", byID[c.EventID], c.EventID)
				if len(got) != 0 || byID[c.EventID] != 1 {
					t.Errorf("%s (%s) at offset %d: %d decisions and %d dead letters (%q), want it decided once",
						c.Name, c.What, offsets[i], byID[c.EventID], len(got), dlqReasons(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%s (%s) at offset %d: %d dead letters (%q), want 1", c.Name, c.What, offsets[i], len(got), dlqReasons(got))
			}
			checkDeadLetter(t, c, got[0])
		})
	}
	for off, ms := range byOffset {
		t.Errorf("dead letters for offset %d, which no case was produced at: %q", off, dlqReasons(ms))
	}
	var decided int
	for _, c := range cases {
		if c.Stream.Decided {
			decided++
		}
	}
	if len(decisions) != decided {
		t.Errorf("%d decisions on risk.decisions, want %d (one per well-formed case): %v", len(decisions), decided, byID)
	}
}

// checkDeadLetter checks a dead letter against its case: the reason, the
// event id when one is readable, the key, and the raw bytes, whole or cut
// with the original's size and checksum.
func checkDeadLetter(t *testing.T, c *hostileCase, m kafka.Message) {
	t.Helper()
	h := kafkatest.Headers(m)
	t.Logf("dead letter of %d bytes: %.200q", len(m.Value), h["riskd-error"])
	if !strings.Contains(h["riskd-error"], c.Stream.DeadLetter) {
		t.Errorf("%s (%s): riskd-error %q, want it to contain %q", c.Name, c.What, h["riskd-error"], c.Stream.DeadLetter)
	}
	if kf := c.Stream.KnownFailure; kf != nil {
		if strings.Contains(h["riskd-error"], kf.Want) {
			t.Logf("known failure of %s did not show this time: riskd-error says %q", c.Name, kf.Want)
		} else {
			t.Logf("known failure of %s: riskd-error %.200q does not say %q: %s", c.Name, h["riskd-error"], kf.Want, kf.Why)
		}
	}
	if id, ok := h["riskd-event-id"]; id != c.EventID || ok != (c.EventID != "") {
		t.Errorf("%s: riskd-event-id %q (present: %v), want %q", c.Name, id, ok, c.EventID)
	}
	if string(m.Key) != hostileKey {
		t.Errorf("%s: dead letter key %q, want %q", c.Name, m.Key, hostileKey)
	}
	if !c.Stream.Truncated {
		if !bytes.Equal(m.Value, c.raw) || h["riskd-truncated"] != "" {
			t.Errorf("%s: dead letter of %d bytes (riskd-truncated %q), want the %d raw bytes untouched",
				c.Name, len(m.Value), h["riskd-truncated"], len(c.raw))
		}
		return
	}
	sum := sha256.Sum256(c.raw)
	switch {
	case h["riskd-truncated"] != "true":
		t.Errorf("%s: riskd-truncated %q, want true", c.Name, h["riskd-truncated"])
	case h["riskd-original-bytes"] != strconv.Itoa(len(c.raw)):
		t.Errorf("%s: riskd-original-bytes %q, want %d", c.Name, h["riskd-original-bytes"], len(c.raw))
	case h["riskd-original-sha256"] != hex.EncodeToString(sum[:]):
		t.Errorf("%s: riskd-original-sha256 %q, want %x", c.Name, h["riskd-original-sha256"], sum)
	case len(m.Value) == 0 || len(m.Value) > defaultMaxOutputBytes || !bytes.HasPrefix(c.raw, m.Value):
		t.Errorf("%s: dead letter value of %d bytes, want a non-empty prefix of the original of at most %d",
			c.Name, len(m.Value), defaultMaxOutputBytes)
	}
}

func dlqReasons(ms []kafka.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, kafkatest.Headers(m)["riskd-error"])
	}
	return out
}

// hostileRule is a rule expression built to exhaust the compiler, and the
// answer POST /v1/rules/validate must give: the limit named, or the body
// limit.
type hostileRule struct {
	name, when string
	status     int
	want       string
}

func hostileRules() []hostileRule {
	const n = 500_000
	return []hostileRule{
		{"500k-nested-parentheses", strings.Repeat("(", n) + "true" + strings.Repeat(")", n),
			422, "expression nests 500000 deep, limit is 64"},
		{"500k-negations", strings.Repeat("!", n) + "true",
			422, "expression nests 500000 deep, limit is 64"},
		{"1mb-string-literal", `event.payee_id == "` + strings.Repeat("x", 1<<20) + `"`,
			422, fmt.Sprintf("expression is %d bytes long, limit is 4096", len(`event.payee_id == ""`)+1<<20)},
		{"300-byte-string-literal", `event.payee_id == "` + strings.Repeat("x", 300) + `"`,
			422, "string literal is 300 bytes long, limit is 256"},
		{"3mb-string-literal", `event.payee_id == "` + strings.Repeat("x", 3<<20) + `"`,
			413, "request body over 2097152 bytes"},
		{"900k-element-range", "all(1..900000, # >= 0)",
			422, "range 1..900000 has 900000 elements, limit is 1000"},
	}
}

// hostileRiskd is a riskd binary running on the embedded broker.
type hostileRiskd struct {
	cmd    *exec.Cmd
	broker string
	http   string
	logs   *lockedBuffer
	exited chan error
}

// startHostileRiskd builds riskd and runs it as main_test.go does: the
// embedded broker and the HTTP listener on free ports, a fresh ClickHouse
// database, the reference rules, a token per role. It returns once
// /readyz answers. The decide deadline is generous: this test checks what
// riskd answers to each input, not how fast.
func startHostileRiskd(t *testing.T) *hostileRiskd {
	t.Helper()
	r := &hostileRiskd{
		cmd:    riskdCommand(t, "decide:\n  deadline: 30s\n", "RISKD_AUTH_TOKENS="+strings.Join(apitest.TokenEntries(), ",")),
		logs:   &lockedBuffer{},
		exited: make(chan error, 1),
	}
	// Logs go to a buffer, not a pipe read line by line: a hostile value in
	// a log line must not stop the reader and so block riskd.
	r.cmd.Stderr = r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- r.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("riskd log:\n%s", r.logs.String())
		}
	})
	r.broker = r.waitLog(t, regexp.MustCompile(`broker listening" addr=(\S+)`))[1]
	r.http = r.waitLog(t, regexp.MustCompile(`http listening" addr=(\S+)`))[1]
	deadline := time.Now().Add(waitLong)
	for {
		resp, err := http.Get("http://" + r.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("riskd not ready after %s (last: %v)", waitLong, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLog waits for a log line matching re and returns its submatches.
func (r *hostileRiskd) waitLog(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		if m := re.FindStringSubmatch(r.logs.String()); m != nil {
			return m
		}
		select {
		case err := <-r.exited:
			r.exited <- err
			t.Fatalf("riskd exited (%v) before logging %s", err, re)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line matching %s after %s", re, waitLong)
		}
	}
}

// produce writes every case to partition 0 of payments, one at a time so
// their order is theirs, and returns the offset each was written at.
func (r *hostileRiskd) produce(t *testing.T, cases []*hostileCase) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", r.broker, "payments", 0)
	if err != nil {
		t.Fatalf("dial the leader of payments/0: %v", err)
	}
	defer conn.Close()
	offsets := make([]int64, len(cases))
	for i, c := range cases {
		conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, part, off, _, err := conn.WriteCompressedMessagesAt(nil, kafka.Message{Key: []byte(hostileKey), Value: c.raw})
		if err != nil || part != 0 {
			t.Fatalf("produce %s (%d bytes): partition %d: %v", c.Name, len(c.raw), part, err)
		}
		offsets[i] = off
	}
	return offsets
}

// peakRSS is riskd's peak resident set size in bytes (VmHWM).
func (r *hostileRiskd) peakRSS(t *testing.T) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("riskd's memory: %v", err)
	}
	m := regexp.MustCompile(`(?m)^VmHWM:\s+(\d+) kB$`).FindSubmatch(status)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status:\n%s", r.cmd.Process.Pid, status)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// stop sends SIGTERM and expects riskd to drain and exit with status 0.
func (r *hostileRiskd) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.exited:
		r.exited <- err
		if err != nil {
			t.Fatalf("riskd exited with %v after SIGTERM", err)
		}
	case <-time.After(2 * waitLong):
		t.Fatalf("riskd still running %s after SIGTERM", 2*waitLong)
	}
}

// hostileClient sends requests with one bearer token and, unlike
// apitest.Client, a bound on how long each may take.
type hostileClient struct {
	base, secret string
}

var hostileHTTP = &http.Client{Timeout: waitLong}

func (c hostileClient) post(t *testing.T, path string, body []byte) (int, []byte) {
	t.Helper()
	return c.do(t, "POST", path, body)
}

func (c hostileClient) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	return c.do(t, "GET", path, nil)
}

func (c hostileClient) do(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, c.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	resp, err := hostileHTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s with %d bytes: %v", method, path, len(body), err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// answerText is what an answer says: the "error" of an error body (JSON
// escapes undone), else the body as sent.
func answerText(body []byte) string {
	var e api.ErrorBody
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return string(body)
}

// lockedBuffer collects riskd's log; the exec package writes it from its
// own goroutine while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
