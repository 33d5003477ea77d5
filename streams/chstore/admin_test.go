package chstore_test

import (
	"reflect"
	"testing"
	"time"

	"riskd/internal/chtest"
	"riskd/streams/chstore"
)

func TestRuleSetVersionsAreStoredAndReadBackWithTheirFiles(t *testing.T) {
	st := chtest.Open(t)
	at := time.Date(2026, 3, 1, 10, 0, 0, 123e6, time.UTC)
	v1 := chstore.RuleSetVersionRow{Seq: 1, Hash: "aaaa", Files: map[string]string{"auth.yaml": "- id: x\n", "lists/p.txt": "a\nb\n"},
		Author: "alice", Message: "first", PublishedAt: at, RuleCount: 1}
	v2 := chstore.RuleSetVersionRow{Seq: 2, Hash: "bbbb", Files: map[string]string{"auth.yaml": "[]"},
		Author: "bob", Message: "second", PublishedAt: at.Add(time.Second), RuleCount: 0}
	for _, v := range []chstore.RuleSetVersionRow{v1, v2, v2} { // v2 twice: a retry collapses
		if err := st.WriteRuleSetVersion(t.Context(), v); err != nil {
			t.Fatal(err)
		}
	}
	list, err := st.RuleSetVersions(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	noFiles := func(r chstore.RuleSetVersionRow) chstore.RuleSetVersionRow { r.Files = nil; return r }
	if want := []chstore.RuleSetVersionRow{noFiles(v2), noFiles(v1)}; !reflect.DeepEqual(list, want) {
		t.Errorf("versions = %+v\nwant %+v", list, want)
	}
	got, ok, err := st.RuleSetVersion(t.Context(), 1)
	if err != nil || !ok {
		t.Fatalf("version 1: ok=%v err=%v", ok, err)
	}
	if !reflect.DeepEqual(got, v1) {
		t.Errorf("version 1 = %+v\nwant %+v", got, v1)
	}
	if _, ok, err := st.RuleSetVersion(t.Context(), 9); ok || err != nil {
		t.Errorf("version 9: ok=%v err=%v, want not found", ok, err)
	}
}

func TestAuditRowsAreStoredInTimeOrder(t *testing.T) {
	st := chtest.Open(t)
	at := time.Date(2026, 3, 1, 10, 0, 0, 5e6, time.UTC)
	rows := []chstore.AuditRow{
		{At: at, Actor: "alice", Role: "analyst", Action: "rules.publish", Object: "ruleset", OldVersion: "1-aaaa", NewVersion: "2-bbbb", Detail: "tighten"},
		{At: at.Add(time.Millisecond), Actor: "alice", Role: "analyst", Action: "rules.publish_refused", Object: "ruleset", OldVersion: "2-bbbb", Detail: "auth.yaml:3:9: rule x: unknown name"},
	}
	for _, r := range rows {
		if err := st.WriteAudit(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.AuditLog(t.Context(), at.Add(-time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rows) {
		t.Errorf("audit = %+v\nwant %+v", got, rows)
	}
	later, err := st.AuditLog(t.Context(), at.Add(time.Millisecond), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(later) != 1 || later[0].Action != "rules.publish_refused" {
		t.Errorf("audit since +1ms = %+v, want only the refused publish", later)
	}
}
