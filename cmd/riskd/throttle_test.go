package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/segmentio/kafka-go"

	"riskd/api"
	"riskd/internal/kafkatest"
	"riskd/streams"
	"riskd/streams/notify"
)

// note is one notification as a subscriber saw it: its kind and the
// account, event and rule its body names.
type note struct{ kind, account, eventID, rule string }

func (n note) String() string { return n.kind + " " + n.account + " " + n.eventID + " " + n.rule }

func parseNote(t *testing.T, kind string, body []byte) note {
	t.Helper()
	var b struct {
		AccountID string `json:"account_id"`
		EventID   string `json:"event_id"`
		RuleID    string `json:"rule_id"` // an alert's
		Reason    string `json:"reason"`  // a lock's: "rule:<id>"
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Errorf("%s body %s: %v", kind, body, err)
	}
	if b.RuleID == "" {
		b.RuleID = strings.TrimPrefix(b.Reason, "rule:")
	}
	return note{kind, b.AccountID, b.EventID, b.RuleID}
}

// notes is what one subscriber (webhook or stream) received so far.
type notes struct {
	mu  sync.Mutex
	got []note
}

func (n *notes) add(x note) {
	n.mu.Lock()
	n.got = append(n.got, x)
	n.mu.Unlock()
}

// of returns the notes of one account and kind, as sorted strings.
func (n *notes) of(account, kind string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, x := range n.got {
		if x.account == account && x.kind == kind {
			out = append(out, x.String())
		}
	}
	slices.Sort(out)
	return out
}

// TestAlertFloodIsThrottledOnEveryOutput floods one account with payments
// to a reported scam payee, every one of which matches the alerting rule
// scam-payee. The user must get one alert per engine.alert_throttle (10m of
// event time) on every output: the alerts topic, the ClickHouse alerts
// table, a webhook subscriber and the live stream, all the same; the next
// matching event once the window has passed in event time alerts again.
// Another account is locked by brute force, unlocked by support and locked
// again within the window: both lock commands and lock notifications go
// out, while the lock rule's alert is sent once.
func TestAlertFloodIsThrottledOnEveryOutput(t *testing.T) {
	const secret = "whsec-throttle-0123456789"
	var hooks notes
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte(secret), r.Header.Get(notify.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		hooks.add(parseNote(t, r.Header.Get(notify.HeaderEvent), body))
	}))
	defer receiver.Close()

	e := newTestEnv(t)
	t.Setenv("RISKD_TEST_WEBHOOK_SECRET", secret)
	e.cfg.Notify.Webhooks = []WebhookConfig{{Name: "wallet-notifier", URL: receiver.URL, SecretEnv: "RISKD_TEST_WEBHOOK_SECRET"}}
	_, c := startAPI(t, e)
	if e.cfg.Engine.AlertThrottle != 10*time.Minute {
		t.Fatalf("engine.alert_throttle = %v, want the 10m default", e.cfg.Engine.AlertThrottle)
	}

	// A viewer watches the live stream from the start.
	var stream notes
	resp := openAlertStream(t, c)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		kind := ""
		for sc.Scan() {
			line := sc.Text()
			if k, ok := strings.CutPrefix(line, "event: "); ok {
				kind = k
			} else if data, ok := strings.CutPrefix(line, "data: "); ok {
				stream.add(parseNote(t, kind, []byte(data)))
			}
		}
	}()

	// The flood: 300 payments a second apart, then one at exactly 10m
	// after the first (a new window) and one a second after that.
	const flood = 300
	const acct = "acct-flood"
	var msgs []kafka.Message
	for i := range flood {
		msgs = append(msgs, ev(fmt.Sprintf("flood-%d", i), "payment", acct, baseTS+int64(i)*1000,
			`,"amount":1500,"currency":"EUR","channel":"transfer","payee_id":"payee-scam-0002"`))
	}
	for i, at := range []int64{10 * 60_000, 10*60_000 + 1000} {
		msgs = append(msgs, ev(fmt.Sprintf("flood-after-%d", i), "payment", acct, baseTS+at,
			`,"amount":1500,"currency":"EUR","channel":"transfer","payee_id":"payee-scam-0002"`))
	}
	kafkatest.Produce(t, e.addr, e.payments, msgs...)

	// Brute force: five failed logins lock acct-bf; support unlocks it,
	// which resets the failed-login count and the lock rule's alert
	// throttle; five more lock it again, and the user is told again.
	const bf = "acct-bf"
	var logins []kafka.Message
	for i := range 10 {
		logins = append(logins, ev(fmt.Sprintf("bf-%d", i), "login_failed", bf, baseTS+int64(i)*1000,
			`,"ip":"198.51.100.9","device":{"id":"dev-bf"}`))
	}
	kafkatest.Produce(t, e.addr, e.accountEvents, logins[:5]...)
	e.waitStored(t, flood+2+5)
	if d := e.decision(t, "bf-4"); d.Action != "lock" {
		t.Fatalf("fifth failed login: %+v, want a lock", d)
	}
	if code, body := c.Do(api.RoleSupport, "POST", "/v1/accounts/"+bf+"/unlock",
		map[string]string{"reason": "owner verified by phone", "verification": "security_questions"}); code != 200 {
		t.Fatalf("unlock: %d %s", code, body)
	}
	kafkatest.Produce(t, e.addr, e.accountEvents, logins[5:]...)
	e.waitStored(t, flood+2+10)
	if d := e.decision(t, "bf-5"); d.Action == "lock" {
		t.Fatalf("sixth failed login after the unlock: %+v, want no lock (the unlock reset the count)", d)
	}
	if d := e.decision(t, "bf-9"); d.Action != "lock" || d.Reason == "account_locked" {
		t.Fatalf("fifth failed login after the unlock: %+v, want a new lock", d)
	}

	// The alerts topic.
	var topic notes
	for _, m := range kafkatest.ReadAll(t, e.addr, e.alerts, 1, waitLong) {
		var a streams.AlertRecord
		if err := json.Unmarshal(m.Value, &a); err != nil {
			t.Fatalf("alert %s: %v", m.Value, err)
		}
		topic.add(note{notify.KindAlert, a.AccountID, a.EventID, a.RuleID})
	}
	wantScam := []string{"alert acct-flood flood-0 scam-payee", "alert acct-flood flood-after-0 scam-payee"}
	if got := filterRule(topic.of(acct, notify.KindAlert), "scam-payee"); !slices.Equal(got, wantScam) {
		t.Fatalf("%s: %d scam-payee alerts on %s: %v\nwant one per 10m window: %v", acct, len(got), e.alerts, head(got), wantScam)
	}
	checkOnePerWindow(t, e, topic.of(acct, notify.KindAlert))
	if got := filterRule(topic.of(bf, notify.KindAlert), "brute-force-lock"); len(got) != 2 {
		t.Errorf("%s: brute-force-lock alerts %v, want one per lock: the unlock opens the throttle again", bf, got)
	}
	var locks int
	for _, m := range kafkatest.ReadAll(t, e.addr, e.actions, 2, waitLong) {
		var a streams.ActionRecord
		if err := json.Unmarshal(m.Value, &a); err == nil && a.AccountID == bf && a.Type == "lock" {
			locks++
		}
	}
	if locks != 2 {
		t.Errorf("%s: %d lock commands on %s, want 2 (locks are never throttled)", bf, locks, e.actions)
	}

	// The alerts table holds the same alerts as the topic.
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{e.cfg.ClickHouse.Addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var table notes
	rows, err := conn.Query(t.Context(), "SELECT account_id, event_id, rule_id FROM `"+e.cfg.ClickHouse.Database+"`.alerts FINAL")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n note
		if err := rows.Scan(&n.account, &n.eventID, &n.rule); err != nil {
			t.Fatal(err)
		}
		n.kind = notify.KindAlert
		table.add(n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{acct, bf} {
		if want, got := topic.of(a, notify.KindAlert), table.of(a, notify.KindAlert); !slices.Equal(got, want) {
			t.Errorf("%s: alerts table %v, alerts topic %v; want the same", a, head(got), head(want))
		}
	}

	// Webhooks and the stream get the same alerts, and both locks.
	want := map[string][]string{}
	for _, a := range []string{acct, bf} {
		want[a+"/"+notify.KindAlert] = topic.of(a, notify.KindAlert)
	}
	want[bf+"/"+notify.KindLock] = []string{"lock acct-bf bf-4 brute-force-lock", "lock acct-bf bf-9 brute-force-lock"}
	for name, got := range map[string]*notes{"webhook": &hooks, "live stream": &stream} {
		deadline := time.Now().Add(waitLong)
		for {
			enough := true
			for key, w := range want {
				account, kind, _ := strings.Cut(key, "/")
				enough = enough && len(got.of(account, kind)) >= len(w)
			}
			if enough || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // anything more would show up now
		for key, w := range want {
			account, kind, _ := strings.Cut(key, "/")
			if g := got.of(account, kind); !slices.Equal(g, w) {
				t.Errorf("%s: %s %s notifications %v, want %v", name, account, kind, head(g), w)
			}
		}
	}
}

// checkOnePerWindow fails if a rule alerted acct twice within 10 minutes of
// event time (the flood's events are baseTS + 1s each; flood-after-N are
// at 10m and 10m01s).
func checkOnePerWindow(t *testing.T, e *testEnv, alerts []string) {
	t.Helper()
	type sent struct {
		rule string
		ts   int64
	}
	var times []sent
	for _, a := range alerts {
		f := strings.Fields(a) // kind account event rule
		times = append(times, sent{f[3], e.decision(t, f[2]).EventTS})
	}
	slices.SortFunc(times, func(x, y sent) int { return cmp.Compare(x.ts, y.ts) })
	last := map[string]int64{}
	for _, x := range times {
		if prev, ok := last[x.rule]; ok && x.ts-prev < 10*60_000 {
			t.Errorf("rule %s alerted at %d and again %dms later, inside the 10m window", x.rule, prev, x.ts-prev)
		}
		last[x.rule] = x.ts
	}
}

func filterRule(notes []string, rule string) []string {
	var out []string
	for _, n := range notes {
		if strings.HasSuffix(n, " "+rule) {
			out = append(out, n)
		}
	}
	return out
}

// head is the first few of a long list, for failure messages.
func head(list []string) []string {
	if len(list) > 5 {
		return append(slices.Clip(list[:5]), fmt.Sprintf("... %d in all", len(list)))
	}
	return list
}

// TestAlertThrottleConfigKeys: engine.alert_throttle sets the throttle;
// notify.throttle, its old name, still does (file or environment); both
// with different values is refused, naming both keys.
func TestAlertThrottleConfigKeys(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path string
		env        []string
		want       time.Duration
		err        string
	}{
		{"the default", "", nil, 10 * time.Minute, ""},
		{"the new key", file("new.yaml", "engine:\n  alert_throttle: 5m\n"), nil, 5 * time.Minute, ""},
		{"the old key in the file", file("old.yaml", "notify:\n  throttle: 3m\n"), nil, 3 * time.Minute, ""},
		{"the old key in the environment", "", []string{"RISKD_NOTIFY_THROTTLE=2m"}, 2 * time.Minute, ""},
		{"both with the same value", file("same.yaml", "engine:\n  alert_throttle: 4m\nnotify:\n  throttle: 4m\n"), nil, 4 * time.Minute, ""},
		{"the new key given as the default beside the old one", file("newdef.yaml", "engine:\n  alert_throttle: 10m\nnotify:\n  throttle: 1m\n"), nil, 0,
			"config: notify.throttle (1m0s) is the old name of engine.alert_throttle (10m0s): set only engine.alert_throttle"},
		{"the new key in the environment beside the old one in the file", file("mixed.yaml", "notify:\n  throttle: 1m\n"),
			[]string{"RISKD_ENGINE_ALERT_THROTTLE=7m"}, 0,
			"config: notify.throttle (1m0s) is the old name of engine.alert_throttle (7m0s): set only engine.alert_throttle"},
		{"throttling off", "", []string{"RISKD_ENGINE_ALERT_THROTTLE=-1s"}, -time.Second, ""},
	}
	for _, c := range cases {
		cfg, err := LoadConfig(c.path, c.env)
		switch {
		case c.err != "":
			if err == nil || err.Error() != c.err {
				t.Errorf("%s: err = %v, want %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case cfg.Engine.AlertThrottle != c.want:
			t.Errorf("%s: engine.alert_throttle = %v, want %v", c.name, cfg.Engine.AlertThrottle, c.want)
		}
	}
}
