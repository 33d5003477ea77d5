package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"riskd/internal/kafkatest"
	"riskd/streams"
)

func TestGenWritesTheRequestedEventsToBothTopics(t *testing.T) {
	broker, err := streams.StartEmbedded("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"gen", "--brokers", broker.Addr(), "--events", "1200",
		"--accounts", "300", "--fraud-rate", "0.05", "--partitions", "2"}, &out, &errOut)
	if err != nil {
		t.Fatalf("gen: %v\n%s", err, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "wrote 1200 events") {
		t.Fatalf("output %q", out.String())
	}
	payments := kafkatest.ReadAll(t, broker.Addr(), "payments", 1, 30*time.Second)
	accountEvents := kafkatest.ReadAll(t, broker.Addr(), "account-events", 1, 30*time.Second)
	if len(payments)+len(accountEvents) != 1200 {
		t.Fatalf("%d payments + %d account events, want 1200", len(payments), len(accountEvents))
	}
	for _, m := range payments {
		if !bytes.Contains(m.Value, []byte(`"type":"payment"`)) && !bytes.Contains(m.Value, []byte(`"type":"topup"`)) &&
			!bytes.Contains(m.Value, []byte(`"type":"withdrawal"`)) && !bytes.Contains(m.Value, []byte(`"type":"refund"`)) &&
			!bytes.Contains(m.Value, []byte(`"type":"points_redeem"`)) {
			t.Fatalf("payments topic carries %s", m.Value)
		}
		if !bytes.Contains(m.Value, append(append([]byte(`"account_id":"`), m.Key...), '"')) {
			t.Fatalf("message keyed %q is not that account's: %s", m.Key, m.Value)
		}
	}
}

func TestGenRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"gen", "--events", "0"}, {"gen", "--fraud-rate", "2"}, {"nope"}, {}} {
		if err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("riskctl %v: no error", args)
		}
	}
}

func TestHelpExitsCleanly(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"gen", "--help"}, {"gen", "-h"}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err != nil {
			t.Errorf("riskctl %v: %v", args, err)
		}
		if out.Len()+errOut.Len() == 0 {
			t.Errorf("riskctl %v printed no usage", args)
		}
	}
}
