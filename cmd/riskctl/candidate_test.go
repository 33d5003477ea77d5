package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestCandidateReportPrintsTheAgreementMatrixAsATable(t *testing.T) {
	var rep candidateReport
	if err := json.Unmarshal([]byte(`{"version":"5-abcdef12","author":"alice","message":"review scam payees",
		"installed_since":"2026-11-24T12:00:00Z","live_version":"4-12345678","compared":10,"agreed":8,
		"matrix":[{"live":"allow","candidate":"allow","count":7},{"live":"block","candidate":"block","count":1},
			{"live":"block","candidate":"review","count":2,"examples":["e1","e2"]}],
		"rule_counts":[{"rule_id":"scam-payee","count":3}]}`), &rep); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	writeCandidateReport(&out, rep)
	want := `candidate 5-abcdef12 by alice since 2026-11-24 12:00:00: review scam payees
live 4-12345678; 10 decisions compared, 8 agree (80.0%)

  LIVE \ CANDIDATE  allow  block  review
             allow      7      0       0
             block      0      1       2

examples (live -> candidate):
  block -> review: e1 e2

candidate rule hits:
  scam-payee  3
`
	if out.String() != want {
		t.Errorf("report =\n%s\nwant\n%s", out.String(), want)
	}
}

func TestCandidateCommandsRefuseBadArguments(t *testing.T) {
	t.Setenv(envToken, "")
	for _, c := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"promote"}, "promote: give -m MSG: why the candidate goes live", 2},
		{[]string{"promote", "-m", "x", "extra"}, `promote: unexpected argument "extra"`, 2},
		{[]string{"candidate", "x"}, `candidate: unexpected argument "x"`, 2},
		{[]string{"drop", "x"}, `drop: unexpected argument "x"`, 2},
		{[]string{"drop"}, envToken + " is empty: set it to an API token of riskd (the secret part of auth.tokens)", 1},
	} {
		var out, errOut bytes.Buffer
		err := runRules(t.Context(), c.args, &out, &errOut)
		if err == nil || err.Error() != c.want || exitCode(err) != c.code {
			t.Errorf("%v: err %v (exit %d), want %q (exit %d)", c.args, err, exitCode(err), c.want, c.code)
		}
	}
}
