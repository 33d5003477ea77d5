package kafkatest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Environment variables that point the integration tests at Apache Kafka.
const (
	// EnvAddr names a running Apache Kafka broker (host:port), for example
	// the one scripts/kafka-up starts on 127.0.0.1:19092. Unset, the tests
	// run on the embedded broker only.
	EnvAddr = "RISKD_TEST_KAFKA"
	// EnvVersion is that broker's version as kafka-up printed it; the
	// Kafka protocol does not tell a client the server's release.
	EnvVersion = "RISKD_TEST_KAFKA_VERSION"
)

// The Apache Kafka settings. A test that starts a riskd binary must not
// pass RISKD_TEST_* on (riskd refuses unknown RISKD_* variables).
var apacheAddr, apacheVersion = os.Getenv(EnvAddr), os.Getenv(EnvVersion)

// Broker is one Kafka cluster a test runs against.
type Broker struct {
	// Name is the subtest name: "embedded" or "apache-kafka".
	Name string
	addr string
	// Apache is true for Apache Kafka, false for the embedded kfake broker.
	Apache bool
	// Version is Apache Kafka's release ("4.1.2"), "" when unknown or embedded.
	Version string
}

// Addr is the bootstrap address (host:port).
func (b Broker) Addr() string { return b.addr }

// Run runs fn as one subtest per broker from Brokers: the embedded broker
// always, Apache Kafka too when $RISKD_TEST_KAFKA names it. The embedded
// broker is started inside its subtest and stopped when it ends.
func Run(t *testing.T, fn func(t *testing.T, b Broker)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) {
		fn(t, Embedded(t))
	})
	if b, ok := apache(t); ok {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// Brokers returns the brokers to test against: a fresh embedded broker
// (stopped when t ends) and, when $RISKD_TEST_KAFKA is set, that Apache
// Kafka broker. An unreachable $RISKD_TEST_KAFKA is logged and left out
// locally, and fails the test when CI=true.
func Brokers(t testing.TB) []Broker {
	t.Helper()
	bs := []Broker{Embedded(t)}
	if b, ok := apache(t); ok {
		bs = append(bs, b)
	}
	return bs
}

// Embedded starts the embedded Kafka-protocol broker (franz-go's kfake, the
// same options as streams.StartEmbedded, which this package cannot import
// because streams' own tests import it) on a free loopback port, stopped
// when t ends.
func Embedded(t testing.TB) Broker {
	t.Helper()
	var addr string
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			l, err := net.Listen(network, "127.0.0.1:0")
			if err == nil {
				addr = l.Addr().String()
			}
			return l, err
		}),
		kfake.AllowAutoTopicCreation(),
	)
	if err != nil {
		t.Fatalf("embedded broker: %v", err)
	}
	t.Cleanup(c.Close)
	return Broker{Name: "embedded", addr: addr}
}

// Apache returns the Apache Kafka broker of $RISKD_TEST_KAFKA, for tests
// that only a real broker makes honest. Unset, the test is skipped with
// instructions, or fails when CI=true (CI must run them).
func Apache(t testing.TB) Broker {
	t.Helper()
	b, ok := apache(t)
	if !ok {
		msg := "this test needs Apache Kafka: start one with scripts/kafka-up and set " + EnvAddr + "=127.0.0.1:19092"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return b
}

// RequireApache skips (or on CI fails) a subtest that Run started on the
// embedded broker: the property it checks needs Apache Kafka.
func RequireApache(t testing.TB, b Broker, why string) {
	t.Helper()
	if !b.Apache {
		t.Skipf("needs Apache Kafka (%s); the embedded broker cannot show it", why)
	}
}

var (
	reportOnce sync.Once
	reported   string
)

// apache checks $RISKD_TEST_KAFKA: false when unset or (locally)
// unreachable; fatal when unreachable on CI.
func apache(t testing.TB) (Broker, bool) {
	t.Helper()
	addr := apacheAddr
	if addr == "" {
		return Broker{}, false
	}
	b := Broker{Name: "apache-kafka", addr: addr, Apache: true, Version: apacheVersion}
	desc, err := describe(addr)
	if err != nil {
		msg := fmt.Sprintf("%s=%s does not answer (%v); start it with scripts/kafka-up", EnvAddr, addr, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Log(msg + "; testing the embedded broker only")
		return Broker{}, false
	}
	reportOnce.Do(func() {
		v := b.Version
		if v == "" {
			v = "(version unknown: set " + EnvVersion + ")"
		}
		reported = fmt.Sprintf("Apache Kafka %s at %s: %s", v, addr, desc)
	})
	t.Log(reported)
	return b, true
}

// describe asks the broker for its cluster metadata and API versions,
// which proves it speaks Kafka (not just that the port is open) and says
// what protocol level it runs.
func describe(addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return "", err
	}
	apis, err := c.ApiVersions(ctx, &kafka.ApiVersionsRequest{})
	if err != nil {
		return "", err
	}
	var fetch, produce int
	for _, k := range apis.ApiKeys {
		switch k.ApiName {
		case "Fetch":
			fetch = k.MaxVersion
		case "Produce":
			produce = k.MaxVersion
		}
	}
	return fmt.Sprintf("cluster %s, %d broker(s), controller %d, %d APIs (Produce v%d, Fetch v%d)",
		meta.ClusterID, len(meta.Brokers), meta.Controller.ID, len(apis.ApiKeys), produce, fetch), nil
}

// Suffix returns a random suffix for topic and consumer-group names, so
// tests that share one Apache Kafka broker (packages run in parallel, and
// the broker outlives runs) never read each other's messages or offsets.
func Suffix() string {
	return fmt.Sprintf("%08x", rand.Uint32())
}
