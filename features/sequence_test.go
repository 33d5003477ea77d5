package features

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"riskd/event"
)

// seqYAML declares sequences by account and by device, with and without
// a link, a where clause and "*" steps, from 2 to 4 steps.
const seqYAML = `
ato_30m:      {sequence: [password_reset, payee_add, payment], by: account, within: 30m, link: payee_id, where: 'type != "payment" || channel == "transfer"'}
login_pay_10m: {sequence: [login, payment], by: account, within: 10m}
payee_pay_1h:  {sequence: [payee_add, payment], by: account, within: 1h, link: payee_id}
any4_5m:       {sequence: [login, "*", "*", payment], by: account, within: 5m}
pay_pay_2m:    {sequence: [payment, payment], by: account, within: 2m, link: payee_id}
dev_bind_pay:  {sequence: [device_bind, payment], by: device.id, within: 20m}
dev_any_pay:   {sequence: ["*", payment], by: device.id, within: 90s, link: payee_id}
acc_n_10m:     {count: "*", by: account, window: 10m}
`

// seqOracle is one entity's events as the brute force sees them: those
// not late for it, in stream order.
type seqOracle struct {
	added []*event.Event
}

// bruteChain reports whether the events in from (any order) hold steps
// 0..n-2 of feature f for an event at ts with link value link, by trying
// every combination: the definition itself, not the Store's greedy.
func bruteChain(st *Store, f *feature, from []*event.Event, ts int64, link string) bool {
	sp := f.seq
	var linkOf func(*event.Event) string
	if sp.link >= 0 {
		linkOf = st.set.fields[sp.link]
	}
	var try func(k int, bound int64, link string) bool
	try = func(k int, bound int64, link string) bool {
		if k < 0 {
			return true
		}
		for _, x := range from {
			if x.TS >= bound || x.TS < ts-sp.withinMs || (sp.steps[k] != "*" && sp.steps[k] != x.Type) || !f.match(x, &st.vm) {
				continue
			}
			l := link
			if linkOf != nil {
				if v := linkOf(x); v != "" {
					if l != "" && l != v {
						continue
					}
					l = v
				}
			}
			if try(k-1, x.TS, l) {
				return true
			}
		}
		return false
	}
	return try(len(sp.steps)-2, ts, link)
}

// TestSequenceMatchesBruteForce compares every sequence read on jittered
// generated traffic (late, behind and tied events) with a brute-force
// search over the entity's events: equal for every read not late and not
// crowded (no step with more than seqKeep occurrences from ts-within on),
// and never 1 where the brute force says 0. Also with the fewest buckets
// (the derived bucket width at its edge) and no late tolerance.
func TestSequenceMatchesBruteForce(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { checkSequences(t, seed, 12_000) })
	}
	t.Run("2 buckets", func(t *testing.T) { checkSequences(t, 5, 12_000, func(c *Config) { c.Buckets = 2 }) })
	t.Run("no tolerance", func(t *testing.T) {
		checkSequences(t, 6, 12_000, func(c *Config) { c.Buckets, c.LateTolerance = 8, 0 })
	})
}

func checkSequences(t *testing.T, seed uint64, n int, mod ...func(*Config)) {
	s := mustSet(t, seqYAML, mod...)
	st := s.NewStore()
	evs := jitteredTraffic(n, seed)
	ents := map[string]*seqOracle{}
	stats := map[string]int{}
	observeEntities(t, s, st, evs, func(e entityVisit) {
		seq, ev, v, g, name, id, isLate := e.seq, e.ev, e.v, e.g, e.name, e.id, e.late
		o := ents[e.key()]
		if o == nil {
			o = &seqOracle{}
			ents[e.key()] = o
		}
		{
			for m := s.groups[g].seq; m != 0; m &= m - 1 {
				i := trailingZeros(m)
				f := &s.feats[i]
				sp := f.seq
				got := v.Windows[i]
				var want float64
				var link string
				if sp.link >= 0 {
					link = s.fields[sp.link](ev)
				}
				lastStep := sp.steps[len(sp.steps)-1]
				if (lastStep == "*" || lastStep == ev.Type) && f.match(ev, &st.vm) && bruteChain(st, f, o.added, ev.TS, link) {
					want = 1
				}
				// Exact unless a step had more than seqKeep occurrences
				// from ts-within on (see sequence.go), or ev is late.
				crowded := false
				for k := range len(sp.steps) - 1 {
					c := 0
					for _, x := range o.added {
						if x.TS >= ev.TS-sp.withinMs && (sp.steps[k] == "*" || sp.steps[k] == x.Type) && f.match(x, &st.vm) {
							c++
						}
					}
					crowded = crowded || c > seqKeep
				}
				switch {
				case got > want:
					t.Fatalf("event %d at %d (%s %s, late %v): %s = %v, want %v: found what did not happen", seq, ev.TS, name, id, isLate, s.Name(i), got, want)
				case !isLate && !crowded && got != want:
					t.Fatalf("event %d at %d (%s %s): %s = %v, want %v", seq, ev.TS, name, id, s.Name(i), got, want)
				case got != want && isLate:
					stats["missed late "+s.Name(i)]++
				case got != want:
					stats["missed crowded "+s.Name(i)]++
				}
				if want == 1 {
					stats["fired "+s.Name(i)]++
					if ev.TS < e.latest {
						stats["fired behind"]++
					}
				}
				if isLate {
					stats["late reads"]++
				} else if crowded {
					stats["crowded reads"]++
				} else {
					stats["exact reads"]++
				}
			}
			if !isLate {
				o.added = append(o.added, ev)
			}
		}
	})
	t.Log(stats)
	for _, k := range []string{"fired ato_30m", "fired login_pay_10m", "fired payee_pay_1h", "fired any4_5m",
		"fired pay_pay_2m", "fired dev_bind_pay", "fired dev_any_pay", "fired behind", "late reads", "crowded reads"} {
		if stats[k] < 3 {
			t.Fatalf("the traffic tests too little (%s): %v", k, stats)
		}
	}
}

func trailingZeros(m uint64) int {
	i := 0
	for m&1 == 0 {
		m >>= 1
		i++
	}
	return i
}

// sev is an event of account a at t0+secs with a type and payee.
func sev(typ string, secs int64, payee string) event.Event {
	return event.Event{Type: typ, AccountID: "a", TS: t0 + secs*1000, PayeeID: payee, Channel: "transfer"}
}

// play observes evs in order on a fresh Store of yml and returns the
// values of feature name, one per event.
func play(t *testing.T, yml, name string, evs ...event.Event) []float64 {
	t.Helper()
	s := mustSet(t, yml)
	st := s.NewStore()
	var out []float64
	for i := range evs {
		var v Values
		st.Observe(&evs[i], &v)
		out = append(out, win(t, s, &v, name))
	}
	return out
}

func TestSequenceSemantics(t *testing.T) {
	const ato = `ato: {sequence: [password_reset, payee_add, payment], by: account, within: 30m, link: payee_id}`
	cases := []struct {
		name string
		yml  string
		evs  []event.Event
		want string
	}{
		{"the takeover", ato, []event.Event{sev("password_reset", 0, ""), sev("payee_add", 60, "p1"), sev("payment", 120, "p1")}, "0 0 1"},
		{"another payee", ato, []event.Event{sev("password_reset", 0, ""), sev("payee_add", 60, "p1"), sev("payment", 120, "p2")}, "0 0 0"},
		{"the right payee added before another", ato, []event.Event{sev("password_reset", 0, ""), sev("payee_add", 60, "p1"),
			sev("payee_add", 70, "p2"), sev("payment", 120, "p1")}, "0 0 0 1"},
		{"a payment without payee agrees with any", ato, []event.Event{sev("password_reset", 0, ""), sev("payee_add", 60, "p1"), sev("payment", 120, "")}, "0 0 1"},
		{"in event-time order, whatever the arrival", ato, []event.Event{sev("payee_add", 60, "p1"), sev("password_reset", 0, ""), sev("payment", 120, "p1")}, "0 0 1"},
		{"out of order", ato, []event.Event{sev("payee_add", 0, "p1"), sev("password_reset", 60, ""), sev("payment", 120, "p1")}, "0 0 0"},
		{"ties are not in order", ato, []event.Event{sev("password_reset", 60, ""), sev("payee_add", 60, "p1"), sev("payment", 120, "p1")}, "0 0 0"},
		{"the last step ties", ato, []event.Event{sev("password_reset", 0, ""), sev("payee_add", 60, "p1"), sev("payment", 60, "p1")}, "0 0 0"},
		{"within is inclusive", ato, []event.Event{sev("password_reset", 0, ""), sev("payee_add", 60, "p1"), sev("payment", 1800, "p1")}, "0 0 1"},
		{"a millisecond too long", ato, []event.Event{sev("password_reset", 0, ""), sev("payee_add", 60, "p1"),
			{Type: "payment", AccountID: "a", TS: t0 + 1800_001, PayeeID: "p1"}}, "0 0 0"},
		{"each payment completes", ato, []event.Event{sev("password_reset", 0, ""), sev("payee_add", 60, "p1"),
			sev("payment", 120, "p1"), sev("payment", 130, "p1")}, "0 0 1 1"},
		{"an earlier-dated payment reads as of its time", ato, []event.Event{sev("password_reset", 100, ""), sev("payee_add", 160, "p1"),
			sev("payment", 130, "p1"), sev("payment", 200, "p1")}, "0 0 0 1"},
		{"another account", ato, []event.Event{sev("password_reset", 0, ""), sev("payee_add", 60, "p1"),
			{Type: "payment", AccountID: "b", TS: t0 + 120_000, PayeeID: "p1"}}, "0 0 0"},
		{"an event is not its own earlier step", `pp: {sequence: [payment, payment], by: account, within: 1m}`,
			[]event.Event{sev("payment", 0, ""), sev("payment", 10, ""), sev("payment", 100, "")}, "0 1 0"},
		{"star steps", `s: {sequence: ["*", "*", payment], by: account, within: 1m}`,
			[]event.Event{sev("login", 0, ""), sev("payment", 10, ""), sev("payment", 20, "")}, "0 0 1"},
		{"where applies to every step", `w: {sequence: [login, payment], by: account, within: 1m, where: 'channel == "transfer"'}`,
			[]event.Event{{Type: "login", AccountID: "a", TS: t0}, sev("payment", 10, ""), sev("login", 20, ""), sev("payment", 30, "")}, "0 0 0 1"},
		{"no entity", `d: {sequence: [login, payment], by: device.id, within: 1m}`,
			[]event.Event{sev("login", 0, ""), sev("payment", 10, "")}, "0 0"},
		{"earlier steps without payee agree among themselves", `l: {sequence: [payee_add, payee_add, payment], by: account, within: 1h, link: payee_id}`,
			[]event.Event{sev("payee_add", 0, "p1"), sev("payee_add", 10, "p2"), sev("payment", 20, ""), sev("payee_add", 30, "p1"), sev("payment", 40, "")}, "0 0 0 0 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name, _, _ := strings.Cut(c.yml, ":")
			got := strings.Trim(fmt.Sprint(play(t, c.yml, name, c.evs...)), "[]")
			if got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

// An entity keeps the seqKeep latest occurrences of each step: a fifth
// payee added after the right one pushes it out, and the payment to it
// is missed; the items stay bounded however many steps come.
func TestSequenceIsBounded(t *testing.T) {
	const yml = `pp: {sequence: [payee_add, payment], by: account, within: 1h, link: payee_id}`
	for extra, want := range map[int]float64{seqKeep - 1: 1, seqKeep: 0} {
		evs := []event.Event{sev("payee_add", 0, "right")}
		for k := range extra {
			evs = append(evs, sev("payee_add", int64(10+k), fmt.Sprint("other", k)))
		}
		evs = append(evs, sev("payment", 100, "right"))
		got := play(t, yml, "pp", evs...)
		if got[len(got)-1] != want {
			t.Fatalf("%d payees added after the right one: %v, want %v", extra, got[len(got)-1], want)
		}
	}
	s := mustSet(t, `s: {sequence: ["*", "*", "*", payment], by: account, within: 1h, link: payee_id}`)
	st := s.NewStore()
	for k := range int64(1000) {
		ev := sev("payee_add", k, fmt.Sprint("p", k))
		var v Values
		st.Observe(&ev, &v)
	}
	items := accountItems(st, "a")
	if n := len(items); n != 3*seqKeep*2 {
		t.Fatalf("%d items after 1000 events, want %d", n, 3*seqKeep*2)
	}
	if b := itemBound(KindSequence, s.Config()); uint64(len(items)) > b {
		t.Fatalf("%d items, beyond the restore bound %d", len(items), b)
	}
}

// An event late for its entity is not kept as a step; it still reads.
func TestSequenceLateEvents(t *testing.T) {
	const yml = `lp: {sequence: [login, payment], by: account, within: 1h}`
	got := play(t, yml, "lp", sev("payment", 1000, ""), sev("login", 0, ""), sev("payment", 1001, ""))
	if fmt.Sprint(got) != "[0 0 0]" {
		t.Fatalf("a late login counted: %v", got)
	}
	got = play(t, yml, "lp", sev("login", 0, ""), sev("payment", 1000, ""), sev("payment", 10, ""))
	if fmt.Sprint(got) != "[0 1 1]" {
		t.Fatalf("a late payment does not read: %v", got)
	}
}

func TestSequenceParse(t *testing.T) {
	defs, err := ParseDefinitions([]byte(`
ato:
  sequence: [password_reset, payee_add, payment]
  by: account
  within: 30m
  link: payee
  where: 'type != "payment" || channel == "transfer"'
flow: {sequence: [login, "*"], by: device, within: 7d}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Definition{Name: "ato", Kind: KindSequence, By: "account", Window: 30 * 60e9, Link: "payee",
		Where: `type != "payment" || channel == "transfer"`, Steps: []string{"password_reset", "payee_add", "payment"}}
	if fmt.Sprint(defs[0]) != fmt.Sprint(want) || defs[1].Window != 7*24*3600e9 || len(defs[1].Steps) != 2 {
		t.Fatalf("got %+v", defs)
	}
	if _, err := Compile(defs, DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", maxStepName+1)
	for _, c := range []struct{ yml, want string }{
		{`s: {sequence: [login], by: account, within: 1m}`, `feature s (line 1): sequence: 1 steps, want 2 to 4`},
		{`s: {sequence: [a, b, c, d, e], by: account, within: 1m}`, `feature s (line 1): sequence: 5 steps, want 2 to 4`},
		{`s: {sequence: login, by: account, within: 1m}`, `feature s (line 1): sequence: want a list of event types like [password_reset, payee_add, payment]`},
		{`s: {sequence: [login, [a]], by: account, within: 1m}`, `feature s (line 1): sequence: step 2: want an event type`},
		{`s: {sequence: [login, ""], by: account, within: 1m}`, `feature s (line 1): sequence: step 2: empty event type (name one, or "*" for any)`},
		{`s: {sequence: [login, ` + long + `], by: account, within: 1m}`, `feature s (line 1): sequence: step 2: event type of 101 bytes, at most 100`},
		{`s: {sequence: [login, payment], by: account}`, `feature s (line 1): no within (the longest time from the first step to the last, like 30m)`},
		{`s: {sequence: [login, payment], by: account, within: soon}`, `feature s (line 1): within: bad window "soon": want a duration like 15m, 1h or 7d`},
		{`s: {sequence: [login, payment], by: account, within: -1m}`, `feature s (line 1): within: bad window "-1m": want a duration like 15m, 1h or 7d`},
		{`s: {sequence: [login, payment], by: account, window: 1m}`, `feature s (line 1): a sequence takes within (from the first step to the last), not window`},
		{`s: {sequence: [login, payment], by: account, within: 1m, link: amount}`, `feature s (line 1): unknown field "amount" in link (an entity field like payee_id, device.id, ip)`},
		{`s: {sequence: [login, payment], by: account, within: 1m, link: ""}`, `feature s (line 1): empty link: name an entity field like payee_id, or leave link out`},
		{`s: {sequence: [login, payment], by: account, within: 1m, link: attrs.` + long + `}`, `feature s (line 1): link field name of 107 bytes, at most 100`},
		{`s: {sequence: [login, payment], by: nobody, within: 1m}`, `feature s (line 1): unknown field "nobody" in by`},
		{`s: {sequence: [login, payment], within: 1m}`, `feature s (line 1): no by field`},
		{`s: {sequence: [login, payment], count: login, by: account, within: 1m}`, `feature s (line 1): two kinds (sequence and count); declare one`},
		{`s: {count: login, sequence: [login, payment], by: account, within: 1m}`, `feature s (line 1): two kinds (count and sequence); declare one`},
		{`s: {count: login, by: account, window: 1m, link: payee_id}`, `feature s (line 1): within and link are for sequence features; a count takes a window`},
		{`s: {count: login, by: account, within: 1m}`, `feature s (line 1): within and link are for sequence features; a count takes a window`},
	} {
		_, err := ParseDefinitions([]byte(c.yml))
		if err == nil || err.Error() != c.want {
			t.Errorf("%s:\n got %v\nwant %s", c.yml, err, c.want)
		}
	}
	// Compile checks what a Definition built in code lacks.
	bad := Definition{Name: "s", Kind: KindSequence, By: "account", Window: 60e9, Steps: []string{"a", "b"}}
	cfg := DefaultConfig()
	cfg.Buckets = 1
	if _, err := Compile([]Definition{bad}, cfg); err == nil || err.Error() != "feature s: a sequence needs features buckets of 2 or more, not 1" {
		t.Errorf("one bucket: %v", err)
	}
	bad.Window = 1e5 // 0.1ms
	if _, err := Compile([]Definition{bad}, DefaultConfig()); err == nil || err.Error() != "feature s: bad within 100µs: must be at least a millisecond" {
		t.Errorf("sub-millisecond within: %v", err)
	}
	c := Definition{Name: "c", Kind: KindCount, Of: "login", By: "account", Window: 60e9, Steps: []string{"a", "b"}}
	if _, err := Compile([]Definition{c}, DefaultConfig()); err == nil || err.Error() != "feature c: steps and link are for sequence features, not count" {
		t.Errorf("count with steps: %v", err)
	}
}

// Sequences read the same on one Store as on four sharing a Shared, and
// allocate nothing in steady state (with simple where clauses: an expr
// program, like ato_30m's, allocates whatever the kind).
func TestSequenceSharedAndAllocs(t *testing.T) {
	s := mustSet(t, strings.Replace(seqYAML, `'type != "payment" || channel == "transfer"'`, `'channel != "card"'`, 1))
	one, four := newRig(s, 0), newRig(s, 4)
	evs := jitteredTraffic(8000, 5)
	for i := range evs {
		var want, got Values
		wl, gl := one.observe(&evs[i], &want), four.observe(&evs[i], &got)
		if want != got || wl != gl {
			t.Fatalf("event %d: one Store gave late=%v %v\nfour sharing a Shared gave late=%v %v", i, wl, want.Windows, gl, got.Windows)
		}
	}
	if testing.Short() {
		return
	}
	st := one.stores[0]
	span := evs[len(evs)-1].TS - evs[0].TS
	var v Values
	for i := range evs { // a pass to grow the item lists
		evs[i].TS += span
		st.Observe(&evs[i], &v)
	}
	if allocs := steadyAllocs(st, evs, 4000); allocs > 0.5 {
		t.Fatalf("%v allocs per Observe in steady state", allocs)
	}
}

// A snapshot restores to the same bytes and the same later reads; a
// restore into changed definitions keeps each unchanged sequence (even
// renamed) and starts each changed one empty, warming for its within.
func TestSequenceSnapshot(t *testing.T) {
	before := mustSet(t, seqYAML)
	evs := jitteredTraffic(8000, 6)
	const after = `
takeover:      {sequence: [password_reset, payee_add, payment], by: account, within: 30m, link: payee_id, where: 'type != "payment" || channel == "transfer"'}
dev_any_pay:   {sequence: ["*", payment], by: device.id, within: 90s, link: payee_id}
login_pay_20m: {sequence: [login, payment], by: account, within: 20m}
payee_pay_1h:  {sequence: [payee_add, payment], by: account, within: 1h}
`
	changed := mustSet(t, after)
	keptAs := map[string]string{"takeover": "ato_30m", "dev_any_pay": "dev_any_pay"}
	for _, shards := range []int{0, 3} {
		t.Run(fmt.Sprint(shards, " shards"), func(t *testing.T) {
			r, r2, shared, stores := roundTrip(t, before, shards, evs, 5000)
			r3 := restoreRig(t, changed, shared, stores)
			now := evs[5000].TS
			warm := r3.sh.Warming(now)
			if len(warm) != 2 || warm[0].Name != "login_pay_20m" || warm[1].Name != "payee_pay_1h" {
				t.Fatalf("warming %v, want login_pay_20m and payee_pay_1h", warm)
			}
			wm := r3.sh.Restored().Watermark
			if warm[0].Until != wm+20*60_000 || warm[1].Until != wm+60*60_000 {
				t.Fatalf("warming %v from %d, want until within after it", warm, wm)
			}
			fired := 0
			for i := 5000; i < len(evs); i++ {
				var v1, v2, v3 Values
				l1, l2 := r.observe(&evs[i], &v1), r2.observe(&evs[i], &v2)
				r3.observe(&evs[i], &v3)
				if v1 != v2 || l1 != l2 {
					t.Fatalf("event %d: values differ after restore\n%v\n%v", i, v1.Windows, v2.Windows)
				}
				for name, was := range keptAs {
					got, want := win(t, changed, &v3, name), win(t, before, &v1, was)
					if got != want {
						t.Fatalf("event %d: %s = %v, want %v", i, name, got, want)
					}
					fired += int(got)
				}
			}
			if fired == 0 {
				t.Fatal("no kept sequence fired after the restore")
			}
		})
	}
}

// A snapshot from before sequences existed restores, the new sequence
// warming and the old features reading on unchanged.
func TestSequenceFromAnOldSnapshot(t *testing.T) {
	old, s := oldSnapshot(t)
	more := mustSet(t, kindsYAML+"\nseq_1h: {sequence: [login, payment], by: account, within: 1h}\n")
	st, err := more.Restore(bytes.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	evs := crowdEvents(4000)
	if w := st.Warming(evs[3000].TS); len(w) != 1 || w[0].Name != "seq_1h" {
		t.Fatalf("warming %v, want seq_1h", w)
	}
	ref := s.NewStore()
	var v Values
	for i := range evs[:3000] {
		ref.Observe(&evs[i], &v)
	}
	for i := 3000; i < len(evs); i++ {
		var v1, v2 Values
		ref.Observe(&evs[i], &v1)
		st.Observe(&evs[i], &v2)
		for _, name := range s.Names() {
			if a, b := win(t, s, &v1, name), win(t, more, &v2, name); a != b {
				t.Fatalf("event %d: %s = %v after the restore, want %v", i, name, b, a)
			}
		}
	}
}

// oldSnapshot returns the snapshot a build before the new kinds wrote
// (testdata/v4-old-kinds.snap, after 3000 of crowdEvents) and its Set.
func oldSnapshot(t *testing.T) ([]byte, *Set) {
	t.Helper()
	old, err := os.ReadFile("testdata/v4-old-kinds.snap")
	if err != nil {
		t.Fatal(err)
	}
	return old, mustSet(t, kindsYAML)
}
