package main

import "testing"

func TestScoreBenchParse(t *testing.T) {
	out := []byte(`goos: linux
goarch: amd64
pkg: riskd/engine
cpu: AMD EPYC
BenchmarkScoreReference/score-2         	  200000	      8911 ns/op	         0 dup-fraction	    111937 events/s	         1.545 x-encoding_json	     146 B/op	       1 allocs/op
PASS
ok  	riskd/engine	10.241s
`)
	r := scoreBenchResult{name: scoreReference}
	if err := r.parse(out); err != nil {
		t.Fatal(err)
	}
	if r.NsPerOp != 8911 || r.EventsPerSec != 111937 || r.DupFraction != 0 || r.XEncodingJSON != 1.545 {
		t.Fatalf("parsed %+v", r)
	}
	if err := (&scoreBenchResult{name: scoreAtScale}).parse(out); err == nil {
		t.Fatal("the reference's line was taken for the benchmark at scale")
	}
	if err := (&scoreBenchResult{name: scoreReference}).parse([]byte("PASS\nok riskd/engine 1s\n")); err == nil {
		t.Fatal("parse of output without the benchmark line succeeded")
	}
}
