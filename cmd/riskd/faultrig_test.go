package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"riskd/api"
	"riskd/bench/traffic"
	"riskd/event"
	"riskd/internal/apitest"
	"riskd/internal/chtest"
	"riskd/internal/kafkatest"
	"riskd/streams"
)

// The rig of the fault tests (faults_test.go): a generated stream with
// accounts of the test's own for the lock checks, the riskd binary run as
// an operator runs it against a broker that outlives it, and the three
// checks every scenario ends with, against a reference run of the same
// stream that nothing interrupted.

// faultsEnv selects the full fault set ("full", as make faults sets it);
// unset, make test runs the short form. faultEnv.start leaves every
// RISKD_* variable out of riskd's environment (riskd refuses unknown ones,
// and the config file says everything).
const faultsEnv = "RISKD_TEST_FAULTS"

// faultsSeedEnv overrides the seed the kill points are drawn from.
const faultsSeedEnv = "RISKD_TEST_FAULTS_SEED"

func faultsFull() bool { return os.Getenv(faultsEnv) == "full" }

// faultSize is how big a scenario's stream is and how often it is hit.
type faultSize struct {
	events, accounts int
	kills            int
}

func faultSizeNow() faultSize {
	if faultsFull() {
		return faultSize{events: 10000, accounts: 800, kills: 4}
	}
	return faultSize{events: 3000, accounts: 300, kills: 1}
}

// The accounts of the lock checks, none of them in the generated
// population (acct-NNNNNN). supportEarly is locked through the API early
// in every run, supportLate immediately before the fault. bruteForce is
// locked by the reference rule brute-force-lock on five failed logins
// dated before the stream starts, so they are decided first, and
// bruteForceLate the same way on five failed logins from lateIP produced
// once the backlog is decided: while riskd has nothing to submit it cuts
// no snapshot, so the last one stands before those logins, and a kill -9
// right after the lock (TestFaultsKillNineMidStream) has the restart
// replay them. Each locked account has two events after the fault
// (afterFault). Then probeCount failed logins from lateIP, one per probe
// account, read the IP's window (accounts_per_ip_1h)
// that bruteForceLate's logins filled: the probes are decided as the
// reference run decides them only if the replay rebuilt those windows.
const (
	supportEarly   = "fault-support-early"
	supportLate    = "fault-support-late"
	bruteForce     = "fault-brute-force"
	bruteForceLate = "fault-brute-force-late"
	lateIP         = "203.0.113.77"
	probeCount     = 16
)

// streamMsg is one event of a fault stream and the input it goes to.
type streamMsg struct {
	payments bool
	msg      kafka.Message
	id       string
}

// faultStream is the stream every run of a scenario reads: a backlog
// produced before riskd starts, bruteForceLate's logins produced once it
// is decided, and the lock checks' later events and the probes, produced
// once the faults are over.
type faultStream struct {
	key     string
	backlog []streamMsg
	late    []streamMsg
	after   []streamMsg
	// early are the events decided before the locks are made.
	early []string
	// locked maps each later event to the account lock that must refuse it.
	locked map[string]string
	probes []string
	ids    []string
}

var (
	streamsMu sync.Mutex
	streamsBy = map[string]*faultStream{}
	// faultStart is the event time the generated streams start at: a few
	// days before now, so no event is dated ahead of the wall clock (riskd
	// refuses those), the same for every run of the test binary.
	faultStart = time.Now().Add(-4 * 24 * time.Hour).Truncate(time.Hour)
)

// newFaultStream generates (once per size) a stream of money movements
// and account events from bench/traffic with fraud mixed in, plus the
// lock checks' events.
func newFaultStream(t *testing.T, size faultSize) *faultStream {
	t.Helper()
	key := fmt.Sprintf("%d/%d", size.events, size.accounts)
	streamsMu.Lock()
	defer streamsMu.Unlock()
	if s := streamsBy[key]; s != nil {
		return s
	}
	s := &faultStream{key: key, locked: map[string]string{}}
	startMS := faultStart.UnixMilli()
	add := func(to *[]streamMsg, id, typ, account string, ts int64, extra string) {
		m := ev(id, typ, account, ts, extra)
		*to = append(*to, streamMsg{payments: typ == event.TypePayment, msg: m, id: id})
		s.ids = append(s.ids, id)
	}
	pay := `,"amount":1500,"currency":"EUR","channel":"qr"`
	// Before the stream: one payment per support account, five failed
	// logins on the brute-force one (the fifth locks it).
	for i, acct := range []string{supportEarly, supportLate} {
		id := fmt.Sprintf("%s-first", acct)
		add(&s.backlog, id, event.TypePayment, acct, startMS-60_000+int64(i)*1000, pay)
		s.early = append(s.early, id)
	}
	for i := range 5 {
		id := fmt.Sprintf("%s-failed-%d", bruteForce, i)
		add(&s.backlog, id, event.TypeLoginFailed, bruteForce, startMS-50_000+int64(i)*1000, "")
		s.early = append(s.early, id)
	}
	g := traffic.New(traffic.Config{Accounts: size.accounts, Seed: 29, FraudRate: 0.05, Start: faultStart, IDPrefix: "f-"})
	var last int64
	for range size.events {
		var e event.Event
		g.Next(&e)
		last = e.TS
		money := false
		switch e.Type {
		case event.TypePayment, event.TypeTopup, event.TypeWithdrawal, event.TypeRefund, event.TypePointsRedeem:
			money = true // routed as bench/produce does
		}
		s.backlog = append(s.backlog, streamMsg{payments: money, id: e.ID,
			msg: kafka.Message{Key: []byte(e.AccountID), Value: e.AppendJSON(nil)}})
		s.ids = append(s.ids, e.ID)
	}
	if time.UnixMilli(last).After(time.Now().Add(-time.Hour)) {
		t.Fatalf("the generated stream ends at %s, too close to now", time.UnixMilli(last))
	}
	ip := fmt.Sprintf(`,"ip":%q`, lateIP)
	for i := range 5 {
		add(&s.late, fmt.Sprintf("%s-failed-%d", bruteForceLate, i), event.TypeLoginFailed, bruteForceLate,
			last+10_000+int64(i)*1000, ip)
	}
	// After the faults: a payment and a sign-in on each locked account.
	for i, acct := range []string{supportEarly, supportLate, bruteForce, bruteForceLate} {
		ts := last + 60_000 + int64(i)*10_000
		id := fmt.Sprintf("%s-after-pay", acct)
		add(&s.after, id, event.TypePayment, acct, ts, pay)
		s.locked[id] = acct
		id = fmt.Sprintf("%s-after-login", acct)
		add(&s.after, id, event.TypeLogin, acct, ts+1000, "")
		s.locked[id] = acct
	}
	// The probes: accounts whose keys land on one partition, so they are
	// decided in the order written whatever the merge does with live
	// records of several partitions.
	for i, acct := range probeAccounts(probeCount) {
		id := fmt.Sprintf("%s-failed", acct)
		add(&s.after, id, event.TypeLoginFailed, acct, last+120_000+int64(i)*1000, ip)
		s.probes = append(s.probes, id)
	}
	streamsBy[key] = s
	return s
}

// probeAccounts returns n account ids that kafka.Hash (the producers'
// balancer) puts on one partition of four.
func probeAccounts(n int) []string {
	var out []string
	want := -1
	for i := 0; len(out) < n; i++ {
		acct := fmt.Sprintf("fault-ip-probe-%03d", i)
		p := (&kafka.Hash{}).Balance(kafka.Message{Key: []byte(acct)}, 0, 1, 2, 3)
		if want < 0 {
			want = p
		}
		if p == want {
			out = append(out, acct)
		}
	}
	return out
}

// faultEnv is one run of riskd on a stream: its topics, group, state
// topic and ClickHouse database, and the binary.
type faultEnv struct {
	name    string
	broker  kafkatest.Broker
	bin     string
	dir     string
	sfx     string
	group   string
	inputs  [2]string
	outputs [5]string // decisions, alerts, actions, dlq, rules
	state   string
	// chAddr is where riskd finds ClickHouse (a proxy in some
	// scenarios); db the test's database; ch the test's own connection.
	chAddr, db string
	ch         driver.Conn
	features   string
	// output and kafka are more keys of the config's output and kafka
	// sections, indented ("  drain_timeout: 2s\n").
	output, kafka string
	starts        int
	procs         []*riskdProc
}

// waitSaved waits until p has saved a state snapshot.
func (p *riskdProc) waitSaved(t *testing.T) {
	t.Helper()
	waitFor(t, waitLong, p.name+": a snapshot saved", func() (bool, string) {
		v := p.metrics(t)[`riskd_state_snapshots_total{outcome="saved"}`]
		return v > 0, fmt.Sprintf(`riskd_state_snapshots_total{outcome="saved"} %.0f`, v)
	})
}

// waitDecided waits until p has decided at least n events.
func (p *riskdProc) waitDecided(t *testing.T, n float64) {
	t.Helper()
	waitFor(t, 2*waitLong, p.name+": deciding", func() (bool, string) {
		d := p.metrics(t)["riskd_decisions_total"]
		return d >= n, fmt.Sprintf("riskd_decisions_total %.0f", d)
	})
}

// buildRiskd builds the riskd binary once per test, as riskdCommand does.
func buildRiskd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "riskd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// newFaultEnv makes the names of one run on broker b, its ClickHouse
// database (chtest: dropped when the test ends) and the input topics with
// four partitions.
func newFaultEnv(t *testing.T, name string, b kafkatest.Broker, bin, features string) *faultEnv {
	t.Helper()
	chCfg := chtest.Config(t)
	sfx := kafkatest.Suffix()
	e := &faultEnv{name: name, broker: b, bin: bin, dir: t.TempDir(), sfx: sfx, group: "riskd-faults-" + sfx,
		inputs:   [2]string{"payments-" + sfx, "account-events-" + sfx},
		outputs:  [5]string{"risk.decisions-" + sfx, "risk.alerts-" + sfx, "risk.actions-" + sfx, "risk.dlq-" + sfx, "risk.rules-" + sfx},
		state:    "riskd.state-" + sfx,
		chAddr:   chCfg.Addr,
		db:       chCfg.Database,
		features: features,
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chCfg.Addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.ch = conn
	if err := streams.EnsureTopics(t.Context(), []string{b.Addr()}, 4, e.inputs[:]...); err != nil {
		t.Fatal(err)
	}
	return e
}

// config writes the file riskd runs with: the broker, the test's topics
// and group, four partitions and two shards, the reference rules, state in
// Kafka with a snapshot every 300ms under the instance's name, and outputs
// throttled: at most 100 messages in flight, written every 100ms, so riskd
// decides at most 1000 events a second however fast the machine, and a
// backlog of thousands takes seconds, long enough to be hit mid-stream.
// Offsets are committed every second (the default), so a kill leaves up
// to a second of decisions stored in ClickHouse but not committed: the
// restart decides them again, and check 1 shows whether they are stored
// twice.
func (e *faultEnv) config(t *testing.T, instance string) string {
	t.Helper()
	features := e.features
	if features == "" {
		features = "../../bench/reference/features.yaml"
	}
	cfg := fmt.Sprintf(`kafka:
  brokers: [%s]
  group: %s
  partitions: 4
  inputs: [%s, %s]
  decisions_topic: %s
  alerts_topic: %s
  actions_topic: %s
  dlq_topic: %s
  rules_topic: %s
%sclickhouse:
  addr: %s
  database: %s
engine:
  shards: 2
rules:
  dir: ../../bench/reference/rules
  features: %s
http:
  listen: 127.0.0.1:0
output:
  batch_size: 1000
  flush_interval: 100ms
  max_in_flight: 100
  store_check_interval: 200ms
%sstate:
  kafka: true
  topic: %s
  snapshot_interval: 300ms
  partition_linger: 2s
  instance: %s
  dir: %s
`, e.broker.Addr(), e.group, e.inputs[0], e.inputs[1], e.outputs[0], e.outputs[1], e.outputs[2], e.outputs[3], e.outputs[4],
		e.kafka, e.chAddr, e.db, features, e.output, e.state, instance, filepath.Join(e.dir, "state-"+instance))
	path := filepath.Join(e.dir, "riskd-"+instance+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// produce writes msgs to the env's input topics, keyed by account and
// hash-partitioned like bench/produce.
func (e *faultEnv) produce(t *testing.T, msgs []streamMsg) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(e.broker.Addr()), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchTimeout: time.Millisecond, BatchBytes: 8 << 20}
	defer w.Close()
	out := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		out[i] = m.msg
		out[i].Topic = e.inputs[1]
		if m.payments {
			out[i].Topic = e.inputs[0]
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for len(out) > 0 {
		n := min(len(out), 5000)
		if err := w.WriteMessages(ctx, out[:n]...); err != nil {
			t.Fatalf("%s: produce %d events: %v", e.name, n, err)
		}
		out = out[n:]
	}
}

// riskdProc is one riskd process.
type riskdProc struct {
	name string
	cmd  *exec.Cmd
	logs *lockedBuffer
	http string
	// done is closed once the process has exited, exitErr being what
	// Wait returned.
	done    chan struct{}
	exitErr error
	// skipped is riskd_store_skipped_rows_total{table="decisions"} as
	// scraped just before the process was stopped or killed.
	skipped float64
}

// start runs the riskd binary with the env's config under instance, the
// test tokens in RISKD_AUTH_TOKENS, and returns once its HTTP listener is
// known. It is killed when the test ends if still running.
func (e *faultEnv) start(t *testing.T, instance string) *riskdProc {
	t.Helper()
	e.starts++
	p := &riskdProc{name: fmt.Sprintf("%s/%s#%d", e.name, instance, e.starts), logs: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(e.bin, "--config", e.config(t, instance))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RISKD_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, "RISKD_CLICKHOUSE_PASSWORD=", "RISKD_AUTH_TOKENS="+strings.Join(apitest.TokenEntries(), ","))
	p.cmd.Stderr = p.logs
	p.cmd.Stdout = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	e.procs = append(e.procs, p)
	t.Cleanup(func() {
		if !p.gone() {
			p.cmd.Process.Kill()
			p.wait()
		}
		if t.Failed() {
			t.Logf("%s log (last 80 lines):\n%s", p.name, tail(p.logs.String(), 80))
		}
	})
	p.http = p.waitLog(t, regexp.MustCompile(`http listening" addr=(\S+)`))[1]
	return p
}

// wait waits for the process to exit and returns what Wait returned.
func (p *riskdProc) wait() error {
	<-p.done
	return p.exitErr
}

// gone reports whether the process has exited.
func (p *riskdProc) gone() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (p *riskdProc) kill9(t *testing.T) {
	t.Helper()
	p.noteSkipped()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("%s: kill -9: %v", p.name, err)
	}
	p.wait()
}

// term sends SIGTERM and returns riskd's exit error once it has exited.
func (p *riskdProc) term(t *testing.T) error {
	t.Helper()
	p.noteSkipped()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", p.name, err)
	}
	select {
	case <-p.done:
		return p.exitErr
	case <-time.After(3 * waitLong):
		t.Fatalf("%s still running %s after SIGTERM", p.name, 3*waitLong)
		return nil
	}
}

// mustTerm stops riskd with SIGTERM and expects a drained exit, status 0,
// having saved its state.
func (p *riskdProc) mustTerm(t *testing.T) {
	t.Helper()
	if err := p.term(t); err != nil {
		t.Fatalf("%s exited with %v after SIGTERM; log:\n%s", p.name, err, tail(p.logs.String(), 60))
	}
	if !strings.Contains(p.logs.String(), "engine state saved at the committed offsets") {
		t.Fatalf("%s stopped without saving its state; log:\n%s", p.name, tail(p.logs.String(), 60))
	}
}

// waitLog waits for a line matching re and returns its submatches.
func (p *riskdProc) waitLog(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		exited := p.gone() // then its whole log is in p.logs (Wait copies it first)
		if m := re.FindStringSubmatch(p.logs.String()); m != nil {
			return m
		}
		if exited || time.Now().After(deadline) {
			t.Fatalf("%s: no log line matching %s (exited: %v); log:\n%s", p.name, re, p.gone(), tail(p.logs.String(), 60))
		}
		select {
		case <-p.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// metrics scrapes /metrics and sums each metric's series by name (and by
// name{labels} as written).
func (p *riskdProc) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	m, err := p.scrape()
	if err != nil {
		t.Fatalf("%s: GET /metrics: %v", p.name, err)
	}
	return m
}

// noteSkipped records, just before riskd is stopped or killed, how many
// decision rows its ClickHouse recovery window left out because they were
// stored already (riskd_store_skipped_rows_total).
func (p *riskdProc) noteSkipped() {
	if m, err := p.scrape(); err == nil {
		p.skipped = m[`riskd_store_skipped_rows_total{table="decisions"}`]
	}
}

func (p *riskdProc) scrape() (map[string]float64, error) {
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		out[series] = v
		if j := strings.IndexByte(series, '{'); j >= 0 {
			out[series[:j]] += v
		}
	}
	return out, sc.Err()
}

// lock locks account through the API as support, for two hours, and
// returns when the lock was answered.
func (p *riskdProc) lock(t *testing.T, account string) time.Time {
	t.Helper()
	asked := time.Now()
	defer func() {
		t.Logf("%s: %s locked through the API at %s, answered in %s", p.name, account,
			asked.UTC().Format(time.StampMilli), time.Since(asked).Round(time.Millisecond))
	}()
	c := apitest.Client{T: t, Base: "http://" + p.http}
	code, body := c.Do(api.RoleSupport, "POST", "/v1/accounts/"+account+"/lock",
		map[string]string{"reason": "fault test: locked before the fault", "duration": "2h"})
	if code != 200 {
		t.Fatalf("%s: lock %s: %d %s", p.name, account, code, body)
	}
	return time.Now()
}

// waitFor polls cond every 50ms until it holds or timeout passes; then
// the test fails with what cond last said.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %s: %s", what, timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stored is how many distinct events have a decision row.
func (e *faultEnv) stored(t *testing.T) uint64 {
	t.Helper()
	var n uint64
	q := "SELECT uniqExact(event_id) FROM `" + e.db + "`.decisions"
	if err := e.ch.QueryRow(t.Context(), q).Scan(&n); err != nil {
		if strings.Contains(err.Error(), "doesn't exist") || strings.Contains(err.Error(), "UNKNOWN_TABLE") {
			return 0 // riskd has not created it yet
		}
		t.Fatalf("%s: count decisions: %v", e.name, err)
	}
	return n
}

// waitStored waits until at least n distinct events are stored.
func (e *faultEnv) waitStored(t *testing.T, n uint64, timeout time.Duration) uint64 {
	t.Helper()
	var got uint64
	waitFor(t, timeout, fmt.Sprintf("%s: %d decisions stored", e.name, n), func() (bool, string) {
		got = e.stored(t)
		return got >= n, fmt.Sprintf("%d stored", got)
	})
	return got
}

// waitDecided waits until each of ids has a stored decision.
func (e *faultEnv) waitDecided(t *testing.T, ids ...string) {
	t.Helper()
	waitFor(t, waitLong, fmt.Sprintf("%s: decisions of %v stored", e.name, ids), func() (bool, string) {
		var n uint64
		q := "SELECT uniqExact(event_id) FROM `" + e.db + "`.decisions WHERE has(?, event_id)"
		if err := e.ch.QueryRow(t.Context(), q, ids).Scan(&n); err != nil {
			return false, err.Error()
		}
		return n == uint64(len(ids)), fmt.Sprintf("%d of %d", n, len(ids))
	})
}

// decisionRow is what the checks compare of a stored decision: what the
// events alone decide, not the wall clock (decided_at, latency,
// lock_until) nor where the event was read from.
type decisionRow struct {
	Action   string
	Score    int32
	Reason   string
	Matched  []string
	Shadow   []string
	Errored  []string
	RuleSet  string
	Names    []string
	Values   []float64
	Late     uint8
	LateFor  []string
	Original uint8
}

// rowCounts are the rows of the decisions table with and without FINAL.
type rowCounts struct {
	rows, ids, finalRows, finalIDs uint64
}

func (e *faultEnv) counts(t *testing.T) rowCounts {
	t.Helper()
	var c rowCounts
	table := "`" + e.db + "`.decisions"
	if err := e.ch.QueryRow(t.Context(), "SELECT count(), uniqExact(event_id) FROM "+table).Scan(&c.rows, &c.ids); err != nil {
		t.Fatal(err)
	}
	if err := e.ch.QueryRow(t.Context(), "SELECT count(), uniqExact(event_id) FROM "+table+" FINAL").Scan(&c.finalRows, &c.finalIDs); err != nil {
		t.Fatal(err)
	}
	return c
}

// duplicates lists up to limit event ids stored more than once (without
// FINAL), with how many rows each has, and how many such ids there are.
func (e *faultEnv) duplicates(t *testing.T, limit int) (map[string]uint64, uint64) {
	t.Helper()
	table := "`" + e.db + "`.decisions"
	var total uint64
	if err := e.ch.QueryRow(t.Context(), "SELECT count() FROM (SELECT event_id FROM "+table+
		" GROUP BY event_id HAVING count() > 1)").Scan(&total); err != nil {
		t.Fatal(err)
	}
	rows, err := e.ch.Query(t.Context(), "SELECT event_id, count() AS c FROM "+table+
		" GROUP BY event_id HAVING c > 1 ORDER BY event_id LIMIT "+strconv.Itoa(limit))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	return out, total
}

// decisions reads every stored decision (FINAL) by event id.
func (e *faultEnv) decisions(t *testing.T) map[string]decisionRow {
	t.Helper()
	rows, err := e.ch.Query(t.Context(), "SELECT event_id, action, score, reason, matched_rules, shadow_rules, errored_rules, "+
		"ruleset_version, feature_names, feature_values, late, late_for, original FROM `"+e.db+"`.decisions FINAL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]decisionRow{}
	for rows.Next() {
		var id string
		var d decisionRow
		if err := rows.Scan(&id, &d.Action, &d.Score, &d.Reason, &d.Matched, &d.Shadow, &d.Errored,
			&d.RuleSet, &d.Names, &d.Values, &d.Late, &d.LateFor, &d.Original); err != nil {
			t.Fatal(err)
		}
		out[id] = d
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// runFault is one run of a stream: the env, the stream, and the instance
// deciding it (the one support locks through).
type runFault struct {
	*faultEnv
	stream *faultStream
	main   *riskdProc
	start  time.Time
}

// begin produces the backlog, starts instance "a", waits for the events
// dated before the stream to be decided (the brute-force lock among them)
// and locks supportEarly through the API.
func (e *faultEnv) begin(t *testing.T, s *faultStream) *runFault {
	t.Helper()
	return e.beginWith(t, s, s.backlog)
}

// beginWith is begin with only backlog (a first part of s.backlog)
// produced.
func (e *faultEnv) beginWith(t *testing.T, s *faultStream, backlog []streamMsg) *runFault {
	t.Helper()
	r := &runFault{faultEnv: e, stream: s, start: time.Now()}
	e.produce(t, backlog)
	r.main = e.start(t, "a")
	e.waitDecided(t, s.early...)
	r.main.lock(t, supportEarly)
	return r
}

// finish waits for the backlog to be decided, produces bruteForceLate's
// logins and waits for its lock, runs fault (if any: the kill scenario
// kills riskd there, before a snapshot covers those logins), produces the
// lock checks' later events and the probes, waits for them, stops riskd
// cleanly and returns every stored decision after checking that each
// event of the stream is stored exactly once (check 1).
func (r *runFault) finish(t *testing.T, fault func()) map[string]decisionRow {
	t.Helper()
	r.waitStored(t, uint64(len(r.stream.backlog)), 4*time.Minute)
	r.produce(t, r.stream.late)
	r.waitDecided(t, r.stream.late[len(r.stream.late)-1].id)
	if fault != nil {
		fault()
	}
	r.produce(t, r.stream.after)
	r.waitStored(t, uint64(len(r.stream.ids)), 2*waitLong)
	r.main.mustTerm(t)
	r.checkStoredOnce(t)
	r.checkPublished(t)
	return r.decisions(t)
}

// checkPublished reads the decisions topic: every event of the stream must
// be there at least once (Kafka outputs are at-least-once: after a crash,
// the events past the committed offsets are published again, with the
// same riskd-event-id). It logs how many were published more than once,
// and how many rows the restarts' ClickHouse recovery windows left out
// (those would have been stored twice without them).
func (r *runFault) checkPublished(t *testing.T) {
	t.Helper()
	msgs := kafkatest.ReadAll(t, r.broker.Addr(), r.outputs[0], len(r.stream.ids), 2*waitLong)
	seen := map[string]int{}
	for _, m := range msgs {
		seen[kafkatest.Headers(m)[streams.HeaderEventID]]++
	}
	var missing []string
	repeated := 0
	for _, id := range r.stream.ids {
		switch n := seen[id]; {
		case n == 0:
			missing = append(missing, id)
		case n > 1:
			repeated++
		}
		delete(seen, id)
	}
	if len(missing) > 0 {
		t.Errorf("check 1 (%s): %d events have no decision on %s, e.g. %v", r.name, len(missing), r.outputs[0], missing[:min(10, len(missing))])
	}
	if len(seen) > 0 {
		t.Errorf("check 1 (%s): decisions on %s of events not in the stream: %v", r.name, r.outputs[0], slices.Collect(limitKeys(seen, 10)))
	}
	var skipped float64
	for _, p := range r.procs {
		skipped += p.skipped
	}
	t.Logf("%s: %d messages on %s, %d events published more than once; the restarts' ClickHouse recovery windows left out %.0f decision rows already stored",
		r.name, len(msgs), r.outputs[0], repeated, skipped)
}

// checkStoredOnce is check 1: every event of the stream has exactly one
// decision row, with and without FINAL, and there is nothing else.
func (r *runFault) checkStoredOnce(t *testing.T) {
	t.Helper()
	n := uint64(len(r.stream.ids))
	c := r.counts(t)
	t.Logf("%s: decisions table: %d rows, %d event ids; FINAL: %d rows, %d event ids; stream: %d events",
		r.name, c.rows, c.ids, c.finalRows, c.finalIDs, n)
	if c.finalRows != n || c.finalIDs != n {
		t.Errorf("check 1 (%s): FINAL holds %d rows of %d event ids, want %d and %d", r.name, c.finalRows, c.finalIDs, n, n)
	}
	if c.rows != n || c.ids != n {
		dups, total := r.duplicates(t, 10)
		t.Errorf("check 1 (%s): without FINAL %d rows of %d event ids, want exactly %d of %d: %d events are stored more than once, e.g. %v",
			r.name, c.rows, c.ids, n, n, total, dups)
	}
	ids := r.decisionsIDs(t)
	var missing []string
	for _, id := range r.stream.ids {
		if !ids[id] {
			missing = append(missing, id)
		}
		delete(ids, id)
	}
	if len(missing) > 0 {
		t.Errorf("check 1 (%s): %d events of the stream have no decision, e.g. %v", r.name, len(missing), missing[:min(10, len(missing))])
	}
	if len(ids) > 0 {
		t.Errorf("check 1 (%s): %d decisions of events not in the stream, e.g. %v", r.name, len(ids), slices.Collect(limitKeys(ids, 10)))
	}
}

func (e *faultEnv) decisionsIDs(t *testing.T) map[string]bool {
	t.Helper()
	rows, err := e.ch.Query(t.Context(), "SELECT DISTINCT event_id FROM `"+e.db+"`.decisions")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id] = true
	}
	return out
}

func limitKeys[V any](m map[string]V, n int) func(func(string) bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return func(yield func(string) bool) {
		for _, k := range keys[:min(n, len(keys))] {
			if !yield(k) {
				return
			}
		}
	}
}

// compareDecisions is check 2: every decision equals the reference run's
// in action, score, reason, matched/shadow/errored rules, rule set,
// recorded feature values and lateness.
func compareDecisions(t *testing.T, name string, got, want map[string]decisionRow) {
	t.Helper()
	var diffs []string
	differ := 0
	kinds := map[string]int{}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			continue // check 1 reports it
		}
		if reflect.DeepEqual(normRow(g), normRow(w)) {
			continue
		}
		differ++
		kinds[rowDiffKind(g, w)]++
		if len(diffs) < 12 {
			diffs = append(diffs, fmt.Sprintf("%s: got %s\n    want %s", id, rowString(g), rowString(w)))
		}
	}
	if differ > 0 {
		slices.Sort(diffs)
		t.Errorf("check 2 (%s): %d of %d decisions differ from the uninterrupted reference run (by what differs: %v):\n  %s",
			name, differ, len(want), kinds, strings.Join(diffs, "\n  "))
	} else {
		t.Logf("check 2 (%s): all %d decisions equal the reference run's", name, len(want))
	}
}

func normRow(d decisionRow) decisionRow {
	for _, s := range []*[]string{&d.Matched, &d.Shadow, &d.Errored, &d.Names, &d.LateFor} {
		if len(*s) == 0 {
			*s = nil
		}
	}
	if len(d.Values) == 0 {
		d.Values = nil
	}
	return d
}

func rowDiffKind(g, w decisionRow) string {
	var k []string
	if g.Action != w.Action || g.Reason != w.Reason || g.Score != w.Score {
		k = append(k, "action")
	}
	if !slices.Equal(g.Matched, w.Matched) || !slices.Equal(g.Shadow, w.Shadow) || !slices.Equal(g.Errored, w.Errored) {
		k = append(k, "rules")
	}
	if !slices.Equal(g.Names, w.Names) || !slices.Equal(g.Values, w.Values) {
		k = append(k, "features")
	}
	if g.Late != w.Late || !slices.Equal(g.LateFor, w.LateFor) {
		k = append(k, "late")
	}
	if g.Original != w.Original {
		k = append(k, "duplicate")
	}
	if g.RuleSet != w.RuleSet {
		k = append(k, "ruleset")
	}
	return strings.Join(k, "+")
}

func rowString(d decisionRow) string {
	var f []string
	for i, n := range d.Names {
		if i < len(d.Values) {
			f = append(f, fmt.Sprintf("%s=%g", n, d.Values[i]))
		}
	}
	return fmt.Sprintf("%s/%q score %d matched %v late %d%v original %d rules %s features {%s}",
		d.Action, d.Reason, d.Score, d.Matched, d.Late, d.LateFor, d.Original, d.RuleSet, strings.Join(f, " "))
}

// checkLocks is check 3: the later events of every locked account were
// decided lock with reason account_locked.
func checkLocks(t *testing.T, name string, s *faultStream, got map[string]decisionRow) {
	t.Helper()
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range s.locked {
			if !yield(id) {
				return
			}
		}
	})
	bad := 0
	for _, id := range ids {
		d, ok := got[id]
		if ok && d.Action == "lock" && d.Reason == "account_locked" {
			continue
		}
		bad++
		t.Errorf("check 3 (%s): %s, after the fault, on %s (locked before it: %s): decided %s/%q, want lock/account_locked",
			name, id, s.locked[id], lockKind(s.locked[id]), d.Action, d.Reason)
	}
	if bad == 0 {
		accounts := map[string]bool{}
		for _, a := range s.locked {
			accounts[a] = true
		}
		t.Logf("check 3 (%s): the %d later events of the %d locked accounts were all refused as account_locked",
			name, len(ids), len(accounts))
	}
}

// checkProbes checks that the reference run's probes read the IP windows
// bruteForceLate's logins filled: with them lateIP has seen ten accounts
// at the ninth probe (credential-stuffing-ip), without them only at the
// tenth; so a restart that does not rebuild those windows decides the
// probes otherwise, and check 2 shows it.
func checkProbes(t *testing.T, s *faultStream, ref map[string]decisionRow) {
	t.Helper()
	first := -1
	for i, id := range s.probes {
		if slices.Contains(ref[id].Matched, "credential-stuffing-ip") {
			first = i + 1
			break
		}
	}
	if first != 9 {
		t.Fatalf("reference run: the first probe from %s to match credential-stuffing-ip is number %d, want 9 "+
			"(%s's logins and 9 probes make 10 accounts); the probes would not show a replay that misses those logins",
			lateIP, first, bruteForceLate)
	}
}

func lockKind(account string) string {
	switch account {
	case supportEarly:
		return "support lock through the API early in the run"
	case supportLate:
		return "support lock through the API immediately before the fault"
	case bruteForce:
		return "rule lock by brute-force-lock early in the run"
	case bruteForceLate:
		return "rule lock by brute-force-lock once the backlog was decided"
	}
	return "?"
}

// references are the uninterrupted runs, one per broker, stream and
// features file, shared by the scenarios of one test binary.
var (
	refMu sync.Mutex
	refs  = map[string]*refRun{}
)

// refRun is one reference run, made by the first test that needs it.
type refRun struct {
	mu sync.Mutex
	d  map[string]decisionRow
}

// reference runs the stream once without a fault on a group, database and
// state topic of its own (same config otherwise): riskd decides the
// backlog, support locks both support accounts, and the later events come
// after the backlog is decided. It checks that run's own exactly-once and
// locks, and returns its decisions.
func reference(t *testing.T, b kafkatest.Broker, bin string, s *faultStream, features string) map[string]decisionRow {
	t.Helper()
	key := b.Name + "|" + s.key + "|" + features
	refMu.Lock()
	ref := refs[key]
	if ref == nil {
		ref = &refRun{}
		refs[key] = ref
	}
	refMu.Unlock()
	ref.mu.Lock()
	defer ref.mu.Unlock()
	if ref.d != nil {
		return ref.d
	}
	start := time.Now()
	r := newFaultEnv(t, "reference", b, bin, features).begin(t, s)
	r.main.lock(t, supportLate)
	d := r.finish(t, nil)
	checkLocks(t, "reference", s, d)
	if features == "" {
		checkProbes(t, s, d)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("reference run: %d events decided in %s", len(d), time.Since(start).Round(time.Millisecond))
	ref.d = d
	return d
}

// replayExpected sums the replay ranges a riskd process logged ("replaying
// to rebuild the engine state ... from F until U"), from F (the log start
// when F < 0) to U.
func replayExpected(logs string) (total int64, lines int) {
	re := regexp.MustCompile(`replaying to rebuild the engine state.* from=(-?\d+) until=(\d+)`)
	for _, m := range re.FindAllStringSubmatch(logs, -1) {
		from, _ := strconv.ParseInt(m[1], 10, 64)
		until, _ := strconv.ParseInt(m[2], 10, 64)
		total += until - max(from, 0)
		lines++
	}
	return total, lines
}

// drawPoints draws n stream positions in [lo, hi) of total, sorted and at
// least gap apart, from rng.
func drawPoints(rng *rand.Rand, n int, lo, hi, gap float64, total int) []uint64 {
	for {
		var ps []float64
		for range n {
			ps = append(ps, lo+rng.Float64()*(hi-lo))
		}
		slices.Sort(ps)
		ok := true
		for i := 1; i < len(ps); i++ {
			if ps[i]-ps[i-1] < gap {
				ok = false
			}
		}
		if ok {
			out := make([]uint64, n)
			for i, p := range ps {
				out[i] = uint64(p * float64(total))
			}
			return out
		}
	}
}

// faultSeed is the seed of the kill points: fixed, or $RISKD_TEST_FAULTS_SEED.
func faultSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv(faultsSeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", faultsSeedEnv, s, err)
		}
		return v
	}
	return 20261129
}

// accountOnlyFeatures writes the reference features with every window
// grouped by account (by: account), for runs whose partitions move back
// to an instance whose shared entity windows stand ahead of the moved
// partitions' last commit (see TestFaultsSecondInstanceJoinsAndLeaves).
// The names stay, so the reference rules compile unchanged.
func accountOnlyFeatures(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../bench/reference/features.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := regexp.MustCompile(`by: [a-z_.]+`).ReplaceAll(b, []byte("by: account"))
	path := filepath.Join(t.TempDir(), "features-by-account.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// stateRecords reads the state topic and returns the newest value of each
// key, as compaction would leave it.
func stateRecords(t *testing.T, addr, topic string) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	lag, err := r.ReadLag(ctx)
	if err != nil {
		t.Fatalf("state topic %s: %v", topic, err)
	}
	out := map[string][]byte{}
	for range lag {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("state topic %s: %v", topic, err)
		}
		out[string(m.Key)] = m.Value
	}
	return out
}

// newestManifest finds the newest snapshot of name in recs: its slot and
// Seq, from the manifests' JSON ({"crc32c":N,"manifest":{"seq":...}}).
func newestManifest(t *testing.T, recs map[string][]byte, name string) (slot int, seq uint64) {
	t.Helper()
	seq = 0
	slot = -1
	for s := range 2 {
		v := recs[fmt.Sprintf("%s/%d/manifest", name, s)]
		if v == nil {
			continue
		}
		var env struct {
			Manifest struct {
				Seq    uint64 `json:"seq"`
				Chunks int    `json:"chunks"`
			} `json:"manifest"`
		}
		if err := json.Unmarshal(v, &env); err != nil {
			t.Fatalf("manifest %s/%d: %v", name, s, err)
		}
		if env.Manifest.Seq > seq {
			slot, seq = s, env.Manifest.Seq
		}
	}
	if slot < 0 {
		t.Fatalf("no snapshot manifest of %s among %d records", name, len(recs))
	}
	return slot, seq
}

// checkCoPartitioned asks the broker how the env's group shares the input
// partitions and fails the test unless every member holds the same
// partition numbers of both inputs. Events are keyed by account on both
// topics, so an account's payments and account events share a partition
// number; an instance that holds only one of the two decides the account
// with half its history (its profile, windows and locks are split between
// instances), and after a handover it gets the other topic's events hours
// of event time out of order. It returns the assignment, for the log.
func (e *faultEnv) checkCoPartitioned(t *testing.T) string {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(e.broker.Addr()), Timeout: 10 * time.Second}
	resp, err := client.DescribeGroups(t.Context(), &kafka.DescribeGroupsRequest{GroupIDs: []string{e.group}})
	if err != nil || len(resp.Groups) != 1 || resp.Groups[0].Error != nil {
		t.Fatalf("describe group %s: %v %+v", e.group, err, resp)
	}
	var desc []string
	for _, m := range resp.Groups[0].Members {
		parts := map[string][]int{}
		for _, tp := range m.MemberAssignments.Topics {
			parts[tp.Topic] = slices.Sorted(slices.Values(tp.Partitions))
		}
		member := m.MemberID
		for _, p := range e.procs {
			if !p.gone() && strings.Contains(p.logs.String(), m.MemberID) {
				member = p.name
			}
		}
		d := fmt.Sprintf("%s: %s %v, %s %v", member, e.inputs[0], parts[e.inputs[0]], e.inputs[1], parts[e.inputs[1]])
		desc = append(desc, d)
		if !slices.Equal(parts[e.inputs[0]], parts[e.inputs[1]]) {
			t.Errorf("the group assigned the inputs' partitions without co-partitioning them (%s): an account's "+
				"payments and account events, keyed alike, are decided by different instances", d)
		}
	}
	slices.Sort(desc)
	return strings.Join(desc, "; ")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
