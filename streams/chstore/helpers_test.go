package chstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"riskd/engine"
	"riskd/rules"
)

// sampleDecisions builds n decisions for distinct events of a few accounts,
// covering every table: every 3rd carries an alert (and the one after it a
// throttled repeat, which gets no alerts row), every 5th newly locks
// the account, every 7th is refused because the account is already locked
// (no new lock row), every 4th is labelled.
func sampleDecisions(prefix string, n int, base time.Time) []*engine.Decision {
	ds := make([]*engine.Decision, n)
	for i := range ds {
		d := &engine.Decision{
			EventID:        fmt.Sprintf("%s-ev-%05d", prefix, i),
			AccountID:      fmt.Sprintf("acct-%d", i%10),
			EventType:      "payment",
			EventTS:        base.Add(time.Duration(i) * time.Second).UnixMilli(),
			DecidedAt:      base.Add(time.Duration(i)*time.Second + 1500*time.Microsecond),
			Action:         rules.Allow,
			RuleSetVersion: "7-1a2b3c4d",
			Latency:        time.Duration(100+i) * time.Microsecond,
			Raw:            []byte(fmt.Sprintf(`{"event_id":"%s-ev-%05d","type":"payment"}`, prefix, i)),
			Source:         engine.Source{Topic: "payments", Partition: i % 3, Offset: int64(1000 + i)},
			Features:       []engine.FeatureValue{{Name: "payments_1h", Value: float64(i % 9)}, {Name: "amount_24h", Value: 12.5 * float64(i)}},
			Shadow:         []engine.RuleHit{{RuleID: "new-device-big-transfer", Score: 40}},
		}
		switch {
		case i%7 == 6:
			d.Action, d.Reason = rules.Lock, engine.ReasonAccountLocked
			d.LockUntil = base.Add(time.Hour)
		case i%5 == 4:
			d.Action = rules.Lock
			d.Matched = []engine.RuleHit{{RuleID: "brute-force-lock", Action: rules.Lock}}
			d.LockUntil = base.Add(30 * time.Minute)
		case i%2 == 1:
			d.Action, d.Score = rules.Review, 55
			d.Matched = []engine.RuleHit{{RuleID: "velocity", Action: rules.Review, Score: 55}}
		}
		if i%3 == 0 {
			d.Matched = append(d.Matched, engine.RuleHit{RuleID: "scam-payee", Action: rules.Alert})
			d.Alerts = []engine.AlertMessage{{RuleID: "scam-payee", Message: "This payee is reported."}}
		}
		if i%3 == 1 { // (scam-payee left out of Matched, so TopRules counts stay as they were)
			sent := base.Add(time.Duration(i-1) * time.Second).UnixMilli()
			d.ThrottledAlerts = []engine.ThrottledAlert{{RuleID: "scam-payee", Message: "This payee is reported.",
				SentTS: sent, UntilTS: sent + (10 * time.Minute).Milliseconds()}}
		}
		if i%11 == 10 {
			d.Errored = []engine.RuleHit{{RuleID: "broken", Error: "division by zero"}}
		}
		if i%4 == 0 {
			d.Label = "fraud"
		}
		ds[i] = d
	}
	return ds
}

// want counts the rows sampleDecisions should produce per table.
type want struct{ events, decisions, alerts, locks, labels uint64 }

func wantRows(ds []*engine.Decision) want {
	var w want
	for _, d := range ds {
		w.events++
		w.decisions++
		w.alerts += uint64(len(d.Alerts)) // never the throttled ones
		if d.Action == rules.Lock && d.Reason != engine.ReasonAccountLocked {
			w.locks++
		}
		if d.Label != "" {
			w.labels++
		}
	}
	return w
}

// rawConn is a plain connection for checks the Store API does not offer.
func rawConn(t testing.TB, addr string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// countFinal counts the rows of db.table after deduplication.
func countFinal(t testing.TB, conn driver.Conn, db, table string) uint64 {
	t.Helper()
	var n uint64
	err := conn.QueryRow(context.Background(), "SELECT count() FROM `"+db+"`."+table+" FINAL").Scan(&n)
	if err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func checkRows(t testing.TB, conn driver.Conn, db string, w want) {
	t.Helper()
	for _, c := range []struct {
		table string
		want  uint64
	}{{"events", w.events}, {"decisions", w.decisions}, {"alerts", w.alerts}, {"account_locks", w.locks}, {"labels", w.labels}} {
		if got := countFinal(t, conn, db, c.table); got != c.want {
			t.Errorf("%s: %d rows after FINAL, want %d", c.table, got, c.want)
		}
	}
}

// replayedCopies returns ds as a replay after a restart reads them again:
// further on in their partitions, decided as the duplicates the engine
// marks them (no action, no matched rule, reason duplicate).
func replayedCopies(ds []*engine.Decision) []*engine.Decision {
	again := make([]*engine.Decision, 0, len(ds))
	for _, d := range ds {
		c := d.Clone()
		c.Duplicate, c.Action, c.Matched, c.Reason = true, 0, nil, "duplicate"
		c.Source.Offset += 1_000_000 // read again further on: the copy sorts after the first
		again = append(again, c)
	}
	return again
}
