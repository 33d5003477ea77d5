package main

import "testing"

func TestParseLoad1(t *testing.T) {
	v, err := parseLoad1("3.55 2.76 1.53 1/158 10467\n")
	if err != nil || v != 3.55 {
		t.Fatalf("parseLoad1 = %v, %v; want 3.55", v, err)
	}
	for _, bad := range []string{"", "x 1 2"} {
		if _, err := parseLoad1(bad); err == nil {
			t.Errorf("parseLoad1(%q) succeeded", bad)
		}
	}
}
