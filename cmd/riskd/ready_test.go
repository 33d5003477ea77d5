package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"riskd/internal/kafkatest"
	"riskd/streams"
)

// These tests check what /readyz and /metrics tell an operator while
// something riskd depends on is missing: the group has not given it
// partitions, ClickHouse is away, the output topics refuse writes. Each
// waits for the answer it expects with a generous deadline; none depends
// on how fast riskd notices.

// readyzAnswer is one GET /readyz: the status, the body, and the body's
// fields when it is JSON.
type readyzAnswer struct {
	status  int
	body    string
	Ready   bool     `json:"ready"`
	Failing []string `json:"failing"`
}

// failing reports whether one of the failing conditions starts with prefix.
func (a readyzAnswer) failing(prefix string) bool {
	for _, f := range a.Failing {
		if strings.HasPrefix(f, prefix) {
			return true
		}
	}
	return false
}

func getReadyz(t *testing.T, d *daemon) readyzAnswer {
	t.Helper()
	resp, err := http.Get("http://" + d.httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := readyzAnswer{status: resp.StatusCode, body: string(body)}
	json.Unmarshal(body, &a) // not JSON: the fields stay empty, and the test shows the body
	return a
}

// waitReadyz polls /readyz until ok accepts an answer, and fails the test
// with the last answer when waitLong passes first.
func waitReadyz(t *testing.T, d *daemon, want string, ok func(readyzAnswer) bool) readyzAnswer {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		a := getReadyz(t, d)
		if ok(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered %s in %s; last answer: %d %s", want, waitLong, a.status, a.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitReady(t *testing.T, d *daemon) readyzAnswer {
	t.Helper()
	return waitReadyz(t, d, "200", func(a readyzAnswer) bool { return a.status == http.StatusOK })
}

// waitNotReady waits for a 503 whose failing conditions include one that
// starts with prefix.
func waitNotReady(t *testing.T, d *daemon, prefix string) readyzAnswer {
	t.Helper()
	return waitReadyz(t, d, fmt.Sprintf("503 naming %q", prefix), func(a readyzAnswer) bool {
		return a.status == http.StatusServiceUnavailable && !a.Ready && a.failing(prefix)
	})
}

// scrape is GET /metrics, the text an operator's Prometheus reads.
func scrape(t *testing.T, d *daemon) string {
	t.Helper()
	resp, err := http.Get("http://" + d.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// waitGaugeSum polls until metricSum is exactly want.
func waitGaugeSum(t *testing.T, d *daemon, name, label string, want float64) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		got := metricSum(t, d, name, label)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s{%s} summed %.0f after %s, want %.0f", name, label, got, waitLong, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func payments(prefix string, from, n int) []kafka.Message {
	var msgs []kafka.Message
	for i := from; i < from+n; i++ {
		msgs = append(msgs, ev(fmt.Sprintf("%s-%d", prefix, i), "payment", fmt.Sprintf("acct-%s-%d", prefix, i%40),
			baseTS+int64(i)*1000, `,"amount":1000,"currency":"EUR","channel":"qr"`))
	}
	return msgs
}

// TestEverySeriesIsListedFromTheStart scrapes /metrics before anything
// happened: the error stages, the per-topic counters and the rules' error
// counters must be there at 0, so that alerts on rate() and dashboards
// work from the first scrape. Then a late event and a rule that fails at
// run time are counted.
func TestEverySeriesIsListedFromTheStart(t *testing.T) {
	kafkatest.Run(t, testEverySeriesIsListedFromTheStart)
}

func testEverySeriesIsListedFromTheStart(t *testing.T, b kafkatest.Broker) {
	e := newBrokerEnv(t, b)
	// A rule that fails at run time on acct-err's payments: their attribute
	// n is not a number.
	if err := os.WriteFile(filepath.Join(e.cfg.Rules.Dir, "zz-broken.yaml"),
		[]byte("- id: bad-attr\n  when: event.account_id == \"acct-err\" && int(event.attrs[\"n\"]) > 3\n  action: alert\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := e.start(t)
	text := scrape(t, d)
	var missing []string
	for _, want := range []string{
		`riskd_errors_total{stage="clickhouse"} 0`,
		`riskd_errors_total{stage="rules"} 0`,
		`riskd_errors_total{stage="kafka_out"} 0`,
		`riskd_errors_total{stage="commit"} 0`,
		fmt.Sprintf(`riskd_dlq_total{topic=%q} 0`, e.payments),
		fmt.Sprintf(`riskd_dlq_total{topic=%q} 0`, e.accountEvents),
		fmt.Sprintf(`riskd_consumed_total{topic=%q} 0`, e.payments),
		fmt.Sprintf(`riskd_late_events_total{reason="account",topic=%q} 0`, e.payments),
		fmt.Sprintf(`riskd_late_events_total{reason="device.id",topic=%q} 0`, e.accountEvents),
		`riskd_rule_errors_total{rule="bad-attr"} 0`,
		`riskd_rule_errors_total{rule="scam-payee"} 0`,
		`riskd_rule_hits_total{action="block",mode="active",rule="scam-payee"} 0`,
		`riskd_duplicate_events_total 0`,
		`riskd_decisions_total{action="allow"} 0`,
		`riskd_sink_seconds_count{sink="clickhouse"} 0`,
		"riskd_ready ",
		`riskd_ready_condition{condition="kafka"} `,
		`riskd_ready_condition{condition="clickhouse"} `,
		`riskd_ready_condition{condition="output"} `,
	} {
		if !strings.Contains(text, want) {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the first scrape lacks:\n%s\n\nscrape:\n%s", strings.Join(missing, "\n"), text)
	}

	// An account's event an hour older than its latest is late for the
	// windows; a payment whose attribute n is not a number fails bad-attr.
	kafkatest.Produce(t, e.addr, e.payments,
		ev("late-1", "payment", "acct-late", baseTS, `,"amount":100,"currency":"EUR","channel":"qr"`),
		ev("late-2", "payment", "acct-late", baseTS-3600_000, `,"amount":100,"currency":"EUR","channel":"qr"`),
		ev("err-1", "payment", "acct-err", baseTS, `,"amount":100,"currency":"EUR","channel":"qr","attrs":{"n":"many"}`))
	e.waitStored(t, 3)
	waitCounter(t, d, "riskd_late_events_total", 1, e.payments)
	waitCounter(t, d, "riskd_rule_errors_total", 1, "bad-attr")
	if got := metricSum(t, d, "riskd_errors_total", "rules"); got != 1 {
		t.Fatalf("riskd_errors_total{stage=\"rules\"} = %.0f, want 1", got)
	}
	if got := metricSum(t, d, "riskd_late_events_total", e.payments); got != 1 {
		t.Fatalf("riskd_late_events_total{topic=%q} = %.0f, want 1", e.payments, got)
	}
	// It names no device, IP, payee or card: late for its account only.
	if got := metricSum(t, d, "riskd_late_events_total", "account"); got != 1 {
		t.Fatalf("riskd_late_events_total{reason=\"account\"} = %.0f, want 1", got)
	}
}

// hogPartitions joins the daemon's consumer group before the daemon does,
// as a member that, as the group's leader, assigns every partition to
// itself: the daemon joins and gets none, as a surplus instance would, or
// one started while the old one still holds its partitions. release makes
// the member leave, so the daemon gets every partition.
func hogPartitions(t *testing.T, e *testEnv) (release func()) {
	t.Helper()
	g, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: e.cfg.Kafka.Group, Brokers: []string{e.addr}, Topics: e.cfg.Kafka.Inputs,
		GroupBalancers:    []kafka.GroupBalancer{hog{}},
		HeartbeatInterval: 200 * time.Millisecond, JoinGroupBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			gen, err := g.Next(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue
			}
			n := 0
			for _, as := range gen.Assignments {
				n += len(as)
			}
			select {
			case first <- n:
			default:
			}
			gen.Start(func(ctx context.Context) { <-ctx.Done() })
		}
	}()
	select {
	case n := <-first:
		if want := e.cfg.Kafka.Partitions * len(e.cfg.Kafka.Inputs); n != want {
			t.Fatalf("the hog member got %d partitions, want all %d", n, want)
		}
	case <-time.After(waitLong):
		t.Fatal("the hog member never joined the group")
	}
	var released bool
	release = func() {
		if !released {
			released = true
			cancel()
			g.Close()
			<-done
		}
	}
	t.Cleanup(release)
	return release
}

// hog is a group balancer for the "range" protocol (so it can lead a group
// of riskd members) that gives every partition to the member whose user
// data is "hog".
type hog struct{}

func (hog) ProtocolName() string      { return "range" }
func (hog) UserData() ([]byte, error) { return []byte("hog"), nil }
func (hog) AssignGroups(members []kafka.GroupMember, parts []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	for _, m := range members {
		out[m.ID] = map[string][]int{}
	}
	for _, m := range members {
		if string(m.UserData) == "hog" {
			for _, p := range parts {
				out[m.ID][p.Topic] = append(out[m.ID][p.Topic], p.ID)
			}
			break
		}
	}
	return out
}

// TestNotReadyWithoutPartitions starts riskd while another member of its
// group holds every partition: riskd is up, but not consuming, so /readyz
// must say so until the partitions come to it.
func TestNotReadyWithoutPartitions(t *testing.T) { kafkatest.Run(t, testNotReadyWithoutPartitions) }

func testNotReadyWithoutPartitions(t *testing.T, b kafkatest.Broker) {
	e := newBrokerEnv(t, b)
	if err := streams.EnsureTopics(t.Context(), []string{e.addr}, e.cfg.Kafka.Partitions, e.cfg.Kafka.Inputs...); err != nil {
		t.Fatal(err)
	}
	release := hogPartitions(t, e)
	d, _ := e.start(t)
	a := getReadyz(t, d)
	if a.status != http.StatusServiceUnavailable || !a.failing("kafka: ") {
		t.Fatalf("/readyz right after start, before any partition is assigned: %d %s, want 503 naming kafka", a.status, a.body)
	}
	waitNotReady(t, d, "kafka: no partitions assigned")
	release()
	if a := waitReady(t, d); !a.Ready || len(a.Failing) != 0 || !strings.Contains(a.body, `"conditions":[`) {
		t.Fatalf("ready answer: %s, want ready, nothing failing, and the conditions", a.body)
	}
	kafkatest.Produce(t, e.addr, e.payments, payments("np", 0, 10)...)
	e.waitStored(t, 10)
}

// TestClickHouseOutageIsNotReadyAndLagShowsTheBacklog cuts ClickHouse
// while events keep arriving: /readyz must name ClickHouse, the error
// counter must count the failures, and the consumer lag must grow to the
// real backlog (what is on the broker past the committed offsets), not
// stay at what the last fetch saw. When ClickHouse is back, all of it
// recovers.
func TestClickHouseOutageIsNotReadyAndLagShowsTheBacklog(t *testing.T) {
	kafkatest.Run(t, testClickHouseOutageIsNotReadyAndLagShowsTheBacklog)
}

func testClickHouseOutageIsNotReadyAndLagShowsTheBacklog(t *testing.T, b kafkatest.Broker) {
	e, proxy := newRelayedEnv(t, b)
	e.cfg.Output.BatchSize = 50
	e.cfg.Output.MaxInFlight = 200
	d, _ := e.start(t)

	kafkatest.Produce(t, e.addr, e.payments, payments("ch", 0, 100)...)
	e.waitStored(t, 100)
	waitReady(t, d)
	waitGaugeSum(t, d, "riskd_consumer_lag", e.payments, 0) // the 100 are committed

	proxy.Down()
	const backlog = 2000
	kafkatest.Produce(t, e.addr, e.payments, payments("ch", 100, backlog)...)
	a := waitNotReady(t, d, "clickhouse: ")
	t.Logf("during the outage: %s", a.body)
	// Nothing after the first 100 can be committed while ClickHouse is
	// away, so the lag is exactly what was produced since.
	waitGaugeSum(t, d, "riskd_consumer_lag", e.payments, backlog)
	if n := metricSum(t, d, "riskd_errors_total", "clickhouse"); n == 0 {
		t.Fatal(`riskd_errors_total{stage="clickhouse"} stayed 0 during the outage`)
	}
	if v := metricSum(t, d, "riskd_ready", ""); v != 0 {
		t.Fatalf("riskd_ready = %v during the outage, want 0", v)
	}

	proxy.Up()
	e.waitStored(t, 100+backlog)
	waitReady(t, d)
	waitGaugeSum(t, d, "riskd_consumer_lag", e.payments, 0)
	e.assertStoredOnce(t, 100+backlog)
}

// TestNotReadyWhileOutputsCannotBePublished makes the broker refuse every
// write to the decisions topic with a retriable error (not enough
// replicas), as a broker short of in-sync replicas does: the output stage
// waits for it, nothing more becomes durable, and /readyz must name the
// stalled output stage while ClickHouse itself is fine. The broker is a
// kfake of the test's own, to inject that refusal.
func TestNotReadyWhileOutputsCannotBePublished(t *testing.T) {
	var addr string
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			l, err := net.Listen(network, "127.0.0.1:0")
			if err == nil {
				addr = l.Addr().String()
			}
			return l, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e := newBrokerEnv(t, kafkatest.Broker{Name: "embedded"})
	e.addr, e.cfg.Kafka.Brokers = addr, []string{addr}
	d, _ := e.start(t)

	kafkatest.Produce(t, e.addr, e.payments, payments("out", 0, 20)...)
	e.waitStored(t, 20)
	waitReady(t, d)

	refuse := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: e.decisions, Err: kerr.NotEnoughReplicas, Count: -1})
	kafkatest.Produce(t, e.addr, e.payments, payments("out", 20, 10)...)
	a := waitNotReady(t, d, "output: ")
	t.Logf("while the decisions topic refuses writes: %s", a.body)
	if a.failing("clickhouse: ") {
		t.Fatalf("ClickHouse named as failing while it is up: %s", a.body)
	}
	if n := metricSum(t, d, "riskd_errors_total", "kafka_out"); n == 0 {
		t.Fatal(`riskd_errors_total{stage="kafka_out"} stayed 0 while outputs were refused`)
	}

	refuse.Remove()
	e.waitStored(t, 30)
	waitReady(t, d)
	e.assertStoredOnce(t, 30)
}
