package rules

import (
	"errors"
	"strings"
	"testing"
)

// TestWhenWarming: skip and allow parse, allow is the default, anything
// else is refused at its position, by Compile and by Lint alike.
func TestWhenWarming(t *testing.T) {
	set := unlockFeatures(t)
	rs, err := Compile(map[string][]byte{"r.yaml": []byte(`
- id: cautious
  when: f.payments_1h > 3
  action: review
  when_warming: skip
- id: eager
  when: f.payments_1h > 3
  action: review
  when_warming: allow
- id: default
  when: f.payments_1h > 3
  action: review
`)}, set)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, false} {
		if got := rs.Rules[i].SkipWhileWarming; got != want {
			t.Errorf("%s: SkipWhileWarming %v, want %v", rs.Rules[i].ID, got, want)
		}
	}
	src := "- id: r\n  when: f.payments_1h > 3\n  action: review\n  when_warming: later\n"
	_, err = Compile(map[string][]byte{"r.yaml": []byte(src)}, set)
	var ce *CompileError
	if want := `r.yaml:4:17: rule r: unknown when_warming "later": want allow`; !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want %s...", err, want)
	}
	if probs := Lint(map[string][]byte{"r.yaml": []byte(src)}, set); len(probs) != 1 || probs[0].Line != ce.Line || probs[0].Col != ce.Col {
		t.Errorf("lint %v, want one problem at %d:%d", probs, ce.Line, ce.Col)
	}
}
