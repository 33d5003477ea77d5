package chstore_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"riskd/engine"
	"riskd/internal/chtest"
	"riskd/rules"
	"riskd/streams/chstore"
)

// labelEvents stores one decided event per (id, account, offset from base).
func labelEvents(t *testing.T, st *chstore.Store, base time.Time, evs ...labelEvent) {
	t.Helper()
	ds := make([]*engine.Decision, len(evs))
	for i, e := range evs {
		ds[i] = &engine.Decision{EventID: e.id, AccountID: e.account, EventType: "payment",
			EventTS: base.Add(e.at).UnixMilli(), DecidedAt: base.Add(e.at + time.Millisecond), Action: rules.Allow,
			RuleSetVersion: "1-00000000", Label: e.label, Raw: []byte(`{}`), Source: engine.Source{Topic: "payments"}}
	}
	if err := st.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
}

type labelEvent struct {
	id, account string
	at          time.Duration
	label       string // the generator's label, stored with the decision
}

func TestLabelsByIDAndRangeLandAndReplaceEarlierOnes(t *testing.T) {
	st := chtest.Open(t)
	ctx := t.Context()
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	labelEvents(t, st, base,
		labelEvent{"e1", "acct-a", 0, "ato"}, // the generator called it fraud
		labelEvent{"e2", "acct-a", time.Minute, ""},
		labelEvent{"e3", "acct-b", 10 * time.Minute, ""},
		labelEvent{"e4", "acct-b", 20*time.Minute + 500*time.Millisecond, ""},
		labelEvent{"e5", "acct-b", 30 * time.Minute, ""}, // at the range's end: outside
	)
	at := base.Add(24 * time.Hour)
	res, err := st.WriteLabels(ctx, []chstore.LabelItem{
		{EventID: "e1", Label: chstore.LabelNotFraud, Source: "support", Note: "owner confirmed the payment"},
		{EventID: "no-such-event", Label: chstore.LabelFraud, Source: "chargeback"},
		{AccountID: "acct-b", From: base.Add(10 * time.Minute), To: base.Add(30 * time.Minute), Label: chstore.LabelFraud, Source: "chargeback"},
		{AccountID: "acct-b", From: base.Add(time.Hour), To: base.Add(2 * time.Hour), Label: chstore.LabelFraud, Source: "chargeback"},
		{AccountID: "acct-zzz", From: base, To: base.Add(time.Hour), Label: chstore.LabelFraud, Source: "chargeback"},
	}, "alice", at)
	if err != nil {
		t.Fatal(err)
	}
	want := chstore.LabelResult{Labelled: 3, Fraud: 2, NotFraud: 1, UnknownEventIDs: []string{"no-such-event"}, EmptyRanges: []int{3, 4}}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("WriteLabels = %+v, want %+v", res, want)
	}
	got, err := st.LabelsByEvent(ctx, []string{"e1", "e2", "e3", "e4", "e5"})
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]chstore.StoredLabel{
		"e1": {EventID: "e1", AccountID: "acct-a", EventTS: base.UnixMilli(), Label: "not_fraud", Source: "support",
			LabelledBy: "alice", Note: "owner confirmed the payment", LabelledAt: at},
		"e3": {EventID: "e3", AccountID: "acct-b", EventTS: base.Add(10 * time.Minute).UnixMilli(), Label: "fraud", Source: "chargeback",
			LabelledBy: "alice", LabelledAt: at},
		"e4": {EventID: "e4", AccountID: "acct-b", EventTS: base.Add(20*time.Minute + 500*time.Millisecond).UnixMilli(), Label: "fraud",
			Source: "chargeback", LabelledBy: "alice", LabelledAt: at},
	}
	if fmt.Sprint(got) != fmt.Sprint(wantLabels) {
		t.Errorf("labels after the first call:\n got %+v\nwant %+v", got, wantLabels)
	}

	// A later label of the same event replaces the earlier one, and within
	// one call the later item wins.
	later := at.Add(time.Hour)
	res, err = st.WriteLabels(ctx, []chstore.LabelItem{
		{EventID: "e3", Label: chstore.LabelNotFraud, Source: "analyst"},
		{EventID: "e3", Label: "card_testing", Source: "analyst", Note: "second thoughts"},
	}, "bob", later)
	if err != nil {
		t.Fatal(err)
	}
	if res.Labelled != 1 || res.Fraud != 1 || len(res.UnknownEventIDs) != 0 {
		t.Errorf("second WriteLabels = %+v, want 1 fraud event labelled", res)
	}
	got, err = st.LabelsByEvent(ctx, []string{"e3"})
	if err != nil {
		t.Fatal(err)
	}
	if l := got["e3"]; l.Label != "card_testing" || l.LabelledBy != "bob" || l.Note != "second thoughts" || !l.LabelledAt.Equal(later) {
		t.Errorf("e3 after relabelling = %+v, want card_testing by bob", l)
	}
}

func TestLabelsRefuseBadItemsNamingIndexAndField(t *testing.T) {
	st := chtest.Open(t)
	ctx := t.Context()
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ok := chstore.LabelItem{EventID: "e1", Label: "fraud", Source: "analyst"}
	cases := []struct {
		name string
		item chstore.LabelItem
		want string
	}{
		{"no event and no account", chstore.LabelItem{Label: "fraud", Source: "x"},
			"labels[1].event_id: missing: give event_id, or account_id with from and to"},
		{"event and account", chstore.LabelItem{EventID: "e", AccountID: "a", Label: "fraud", Source: "x"},
			"labels[1].event_id: give event_id alone, or account_id with from and to, not both"},
		{"range without to", chstore.LabelItem{AccountID: "a", From: base, Label: "fraud", Source: "x"},
			"labels[1].to: missing: an account range needs from and to"},
		{"range backwards", chstore.LabelItem{AccountID: "a", From: base, To: base, Label: "fraud", Source: "x"},
			"labels[1].to: 2026-03-01T10:00:00Z is not after from (2026-03-01T10:00:00Z)"},
		{"range too long", chstore.LabelItem{AccountID: "a", From: base, To: base.Add(chstore.MaxLabelRange + time.Second), Label: "fraud", Source: "x"},
			"labels[1].to: the range is 8784h0m1s long, over the 8784h0m0s limit"},
		{"no label", chstore.LabelItem{EventID: "e", Source: "x"},
			`labels[1].label: missing (want "fraud", "not_fraud" or a fraud scenario name)`},
		{"label with a space", chstore.LabelItem{EventID: "e", Label: "not fraud", Source: "x"},
			`labels[1].label: "not fraud" has ' ' at byte 3: use letters, digits and _ - . : (want "fraud", "not_fraud" or a fraud scenario name)`},
		{"label too long", chstore.LabelItem{EventID: "e", Label: strings.Repeat("a", 65), Source: "x"},
			`labels[1].label: 65 bytes, over the 64-byte limit (want "fraud", "not_fraud" or a fraud scenario name)`},
		{"no source", chstore.LabelItem{EventID: "e", Label: "fraud"},
			`labels[1].source: missing (e.g. "chargeback", "support", "analyst")`},
		{"note too long", chstore.LabelItem{EventID: "e", Label: "fraud", Source: "x", Note: strings.Repeat("n", 1001)},
			"labels[1].note: 1001 bytes, over the 1000-byte limit"},
		{"note not UTF-8", chstore.LabelItem{EventID: "e", Label: "fraud", Source: "x", Note: "\xff"},
			"labels[1].note: not valid UTF-8"},
		{"event id too long", chstore.LabelItem{EventID: strings.Repeat("e", 257), Label: "fraud", Source: "x"},
			"labels[1].event_id: 257 bytes, over the 256-byte limit"},
		{"account id with a space", chstore.LabelItem{AccountID: "a b", From: base, To: base.Add(time.Hour), Label: "fraud", Source: "x"},
			"labels[1].account_id: contains the byte 0x20: ids are printable text without spaces"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := st.WriteLabels(ctx, []chstore.LabelItem{ok, c.item}, "alice", base)
			var fe *chstore.LabelFieldError
			if err == nil || err.Error() != c.want || !errors.As(err, &fe) || fe.Index != 1 {
				t.Errorf("error = %v, want %s", err, c.want)
			}
		})
	}

	t.Run("no items", func(t *testing.T) {
		if _, err := st.WriteLabels(ctx, nil, "alice", base); err == nil || err.Error() != "no labels given" {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("too many items", func(t *testing.T) {
		items := slices.Repeat([]chstore.LabelItem{ok}, chstore.MaxLabelItems+1)
		_, err := st.WriteLabels(ctx, items, "alice", base)
		if want := "10001 labels, over the 10000-per-request limit: send them in batches"; err == nil || err.Error() != want {
			t.Errorf("error = %v, want %s", err, want)
		}
		if _, err := st.WriteLabels(ctx, items[1:], "alice", base); err != nil {
			t.Errorf("10000 items: %v", err)
		}
	})
	t.Run("too many ranges", func(t *testing.T) {
		r := chstore.LabelItem{AccountID: "a", From: base, To: base.Add(time.Hour), Label: "fraud", Source: "x"}
		_, err := st.WriteLabels(ctx, slices.Repeat([]chstore.LabelItem{r}, chstore.MaxLabelRanges+1), "alice", base)
		if want := "1001 account ranges, over the 1000-per-request limit: send them in batches"; err == nil || err.Error() != want {
			t.Errorf("error = %v, want %s", err, want)
		}
	})
}

func TestLabelsRefuseMoreEventsThanTheBoundAndWriteNothing(t *testing.T) {
	st := chtest.Open(t)
	ctx := t.Context()
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var evs []labelEvent
	for i := range 5 {
		evs = append(evs, labelEvent{fmt.Sprintf("b%d", i), "acct-a", time.Duration(i) * time.Second, ""})
	}
	labelEvents(t, st, base, evs...)
	items := []chstore.LabelItem{
		{EventID: "b0", Label: "fraud", Source: "x"},
		{AccountID: "acct-a", From: base, To: base.Add(time.Minute), Label: "fraud", Source: "x"},
	}
	// b0..b4 are five events: a bound of 5 takes them (b0 counts once).
	if res, err := chstore.WriteLabelsAtMost(ctx, st, items, "alice", base, 5); err != nil || res.Labelled != 5 {
		t.Fatalf("bound 5: %+v, %v; want 5 labelled", res, err)
	}
	_, err := chstore.WriteLabelsAtMost(ctx, st, append(items, chstore.LabelItem{EventID: "b4", Label: "not_fraud", Source: "x"}),
		"bob", base.Add(time.Hour), 4)
	want := "labels[1]: too many events: the labels up to this one name more than 4 events; send fewer or shorter ranges per request"
	if err == nil || err.Error() != want || !errors.Is(err, chstore.ErrTooManyLabelled) {
		t.Fatalf("bound 4: error %v, want %s", err, want)
	}
	got, err := st.LabelsByEvent(ctx, []string{"b4"})
	if err != nil {
		t.Fatal(err)
	}
	if got["b4"].LabelledBy != "alice" {
		t.Errorf("b4 = %+v: the refused call wrote a label", got["b4"])
	}
}
