package event

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestTSPeeker(t *testing.T) {
	const ms = int64(1795538400000)
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, tc := range []struct {
		name string
		msg  string
		want int64 // 0: not ok
	}{
		{"a typical event", typicalEvent, ms},
		{"ts first", `{"ts":1795538400000,"event_id":"e"}`, ms},
		{"ts last", `{"event_id":"e","ts":1795538400000}`, ms},
		{"ts alone with space around", " \t{ \"ts\" :\r1795538400000\n} \n", ms},
		{"an RFC 3339 ts", `{"ts":"2026-11-24T16:31:00Z"}`, 1795537860000},
		{"an RFC 3339 ts with fractions and a zone", `{"ts":"2026-11-24T17:31:00.123+01:00","x":1}`, 1795537860123},
		{"leading zeros, as fastjson reads them", `{"ts":0001795538400000}`, ms},
		{"many leading zeros", `{"ts":000000000000000000000001795538400000}`, ms},
		{"the first ts of two", `{"ts":1795538400000,"ts":1795538400001}`, ms},
		{"values skipped before ts", `{"a":{"b":[1,-2.5e3,true,false,null,"x\"}"]},"c":[],"d":{},"e":NaN,"f":-Inf,"ts":1795538400000}`, ms},
		{"a plain ts after an escaped one wins", `{"t\u0073":1795538400001,"ts":1795538400000}`, ms},
		{"an escaped key alone is unescaped", `{"t\u0073":1795538400000}`, ms},
		{"an escaped key that is not ts", `{"t\u0074":1795538400000}`, 0},
		{"an escaped ts string", `{"ts":"2026-11-24T16:31:00\u005a"}`, 1795537860000},
		{"the lowest ts", `{"ts":100000000000}`, 100000000000},
		{"below the range: epoch seconds", `{"ts":1795538400}`, 0},
		{"at the top of the range", `{"ts":100000000000000}`, 0},
		{"beyond int64", `{"ts":99999999999999999999999}`, 0},
		{"negative", `{"ts":-1795538400000}`, 0},
		{"a plus sign", `{"ts":+1795538400000}`, 0},
		{"a fraction", `{"ts":1795538400000.0}`, 0},
		{"an exponent", `{"ts":1.7955384e12}`, 0},
		{"a number run with a minus inside", `{"ts":1795538400000-1}`, 0},
		{"a string that is not RFC 3339", `{"ts":"1795538400000"}`, 0},
		{"an RFC 3339 ts out of range", `{"ts":"1970-01-01T00:00:00Z"}`, 0},
		{"null", `{"ts":null}`, 0},
		{"true", `{"ts":true}`, 0},
		{"an object", `{"ts":{"ms":1795538400000}}`, 0},
		{"nan", `{"ts":nan}`, 0},
		{"no ts", `{"event_id":"e"}`, 0},
		{"ts only nested", `{"x":{"ts":1795538400000}}`, 0},
		{"empty object", `{}`, 0},
		{"an array", `[{"ts":1795538400000}]`, 0},
		{"empty", ``, 0},
		{"a bad value before ts", `{"a":tru,"ts":1795538400000}`, 0},
		{"a missing comma before ts", `{"a":1 "ts":1795538400000}`, 0},
		{"an unclosed string before ts", `{"a":"x`, 0},
		{"a trailing comma in an array before ts", `{"a":[1,],"ts":1795538400000}`, 0},
		{"junk after the ts number", `{"ts":1795538400000x}`, 0},
		{"junk after the closing brace", `{"ts":1795538400000}x`, 0},
		{"truncated after ts", `{"ts":1795538400000`, 0},
		{"nesting as deep as fastjson takes", `{"a":` + deep(299) + `,"ts":1795538400000}`, ms},
		{"nesting deeper than fastjson takes", `{"a":` + deep(300) + `,"ts":1795538400000}`, 0},
		// The one documented difference: after the ts value's comma
		// nothing is read, so this gets its ts where fastjson fails.
		{"malformed after ts", `{"ts":1795538400000,"a":`, ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pk TSPeeker
			got, ok := pk.TS([]byte(tc.msg))
			if ok != (tc.want != 0) || got != tc.want {
				t.Errorf("TS = %d, %v; want %d", got, ok, tc.want)
			}
			old, oldOK := new(TSPeeker).tsFastjson([]byte(tc.msg))
			differs := tc.name == "malformed after ts" // as TS's doc comment allows
			if (old == got && oldOK == ok) == differs {
				t.Errorf("TS = %d, %v; fastjson %d, %v", got, ok, old, oldOK)
			}
		})
	}
}

// FuzzTSPeeker holds TS to fastjson's answer (tsFastjson, the TS of old)
// wherever fastjson parses the message, and elsewhere to the documented
// difference: a ts fastjson refuses must be the one fastjson reads from
// the message cut after the ts value.
func FuzzTSPeeker(f *testing.F) {
	for _, seed := range decodeSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var pk, ref TSPeeker
		got, ok := pk.TS(msg)
		want, wantOK := ref.tsFastjson(msg)
		if again, againOK := pk.TS(msg); again != got || againOK != ok {
			t.Fatalf("TS twice: %d, %v then %d, %v", got, ok, again, againOK)
		}
		if ok == wantOK && got == want {
			return
		}
		if _, err := ref.p.ParseBytes(msg); err == nil || !ok {
			t.Fatalf("TS = %d, %v; fastjson %d, %v", got, ok, want, wantOK)
		}
		for k := range msg { // a cut at some comma must give TS's answer
			if msg[k] != ',' {
				continue
			}
			cut := append(append([]byte(nil), msg[:k]...), '}')
			if ms, ok := ref.tsFastjson(cut); ok && ms == got {
				return
			}
		}
		t.Fatalf("TS = %d, %v on a message fastjson refuses, and no cut of it has that ts", got, ok)
	})
}

// decodeSeeds is FuzzDecode's corpus: its seeds and testdata/fuzz.
func decodeSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	seeds := [][]byte{
		[]byte(typicalEvent),
		[]byte(typicalSmallEvent),
		[]byte(`{"event_id":"e","type":"login","ts":"2026-11-24T16:31:00Z","account_id":"a","x":[1,{"y":null}]}`),
		[]byte(`{"geo":{"lat":1},"device":null}`),
		[]byte(`{"event_id":"e","type":"payment","ts":1795538400000,"account_id":"a","balance_before":0,"balance_after":-12,"kyc_level":9,"mfa_passed":false,"account_created_at":1700000000000,"tz":"Asia/Kathmandu"}`),
		[]byte(`{"event_id":"e","type":"payment","ts":1795538400000,"account_id":"a","balance_before":9007199254740992,"kyc_level":10,"mfa_passed":1,"account_created_at":null,"tz":"Local"}`),
		[]byte(`{"t\u0073":1795538400000,"a":[{"b":"c\"d"}]}`),
	}
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecode", "*"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		// go test fuzz v1, then one line: []byte("...")
		_, line, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		line = strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")")
		s, err := strconv.Unquote(line)
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		seeds = append(seeds, []byte(s))
	}
	return seeds
}
