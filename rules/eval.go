package rules

import (
	"fmt"
	"unsafe"

	"github.com/expr-lang/expr/vm"
)

// Outcome is what evaluating a rule set against one event found. Its slices
// are reused: Eval resets them, so copy what must outlive the next call.
type Outcome struct {
	// Matched holds the active rules that matched, in rule order.
	Matched []*Rule
	// Shadow holds the shadow rules that matched.
	Shadow []*Rule
	// Errored holds the rules whose expression failed at run time; they
	// count as not matched.
	Errored []*Rule
	// ErrorTexts holds the error of each Errored rule, same order.
	ErrorTexts []string
}

// Reset empties the outcome, keeping its storage.
func (o *Outcome) Reset() {
	clear(o.Matched)
	clear(o.Shadow)
	clear(o.Errored)
	o.Matched = o.Matched[:0]
	o.Shadow = o.Shadow[:0]
	o.Errored = o.Errored[:0]
	o.ErrorTexts = o.ErrorTexts[:0]
}

// Evaluator runs rule sets for one shard. It owns a vm.VM and an Env and
// is not safe for concurrent use.
//
// Rules built only from comparisons, &&, ||, in_list and the like run as
// native Go closures compiled at load time (see compileNative); they read
// the Env in place and neither allocate nor fail. Every reference rule is
// such a rule. The rest run in expr's VM: the Env is boxed into an
// interface value once, and Env returns a pointer to the boxed copy, so
// passing it to the VM copies nothing per event and expr reads fields from
// a non-addressable struct. What still allocates in the VM is inside expr:
// the []any argument slice of a helper call (haversine; hour, ratio,
// attr_num and the other helpers when the rule around them cannot run
// natively) and boxing a non-zero float64 result of arithmetic. Run-time errors can only come
// from the VM, and are counted on the rule as before; a run that builds
// more than RunMemoryBudget elements, or loops more than RunStepBudget
// times, is one of them.
type Evaluator struct {
	vm    vm.VM
	boxed any
	env   *Env
	// ticks counts the loop iterations of the VM rule running; Eval resets
	// it before each. tick is Env.Tick, made once so that Eval can set it
	// without allocating.
	ticks int
	tick  func() bool
}

// errRunStepBudget is the error of a rule run over RunStepBudget.
var errRunStepBudget = fmt.Errorf("rule over its run-time budget of %d iterations", RunStepBudget)

// eface is the layout of an interface{} value.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

// NewEvaluator returns an Evaluator with a zero Env.
func NewEvaluator() *Evaluator {
	// Env is larger than a pointer, so the interface's data word points at
	// a heap copy that only this Evaluator references; writing through it is
	// how the shard fills the Env without re-boxing. The value boxed must
	// not be the zero Env: the compiler boxes a constant zero value as a
	// pointer to a shared read-only zero block, and writing there would
	// corrupt every zero value in the program. A non-zero window slot makes
	// the value non-zero, so the runtime copies it into fresh memory; the
	// slot is cleared again in the copy.
	seed := new(Env)
	seed.W[0] = 1
	e := &Evaluator{boxed: *seed}
	e.vm.MemoryBudget = RunMemoryBudget
	e.env = (*Env)((*eface)(unsafe.Pointer(&e.boxed)).data)
	if e.env == seed {
		panic("rules: boxed Env aliases its source")
	}
	e.env.W[0] = 0
	e.tick = func() bool {
		e.ticks++
		if e.ticks > RunStepBudget {
			// The VM recovers a panic of a function it calls and returns
			// it as the run's error, with the position of the loop, as it
			// does for its memory budget.
			panic(errRunStepBudget)
		}
		return true
	}
	return e
}

// Env returns the environment the next Eval reads. The caller fills it in
// place (Event, F, W, Account).
func (e *Evaluator) Env() *Env { return e.env }

// Eval evaluates the rules of rs that apply to the Env's event type and
// fills out. A rule that fails at run time is counted on the rule, appended
// to out.Errored and treated as not matched.
func (e *Evaluator) Eval(rs *RuleSet, out *Outcome) {
	out.Reset()
	e.env.InList = rs.inListFunc()
	e.env.Tick = e.tick
	rules, typed := rs.byType[e.env.Event.Type]
	if !typed {
		rules = rs.anyType
	}
	for _, r := range rules {
		if r.native != nil { // cannot fail at run time; see compileNative
			match := r.native
			if typed && r.nativeTyped != nil {
				// A per-type list holds a typed rule only for a type in
				// r.Types, so the rule's type test is known to pass.
				match = r.nativeTyped
			}
			if match(e.env) {
				if r.Mode == Shadow {
					out.Shadow = append(out.Shadow, r)
				} else {
					out.Matched = append(out.Matched, r)
				}
			}
			continue
		}
		e.ticks = 0
		v, err := e.vm.Run(r.program, e.boxed)
		if err != nil {
			r.errors.Add(1)
			out.Errored = append(out.Errored, r)
			out.ErrorTexts = append(out.ErrorTexts, err.Error())
			continue
		}
		if matched, _ := v.(bool); matched {
			if r.Mode == Shadow {
				out.Shadow = append(out.Shadow, r)
			} else {
				out.Matched = append(out.Matched, r)
			}
		}
	}
}

// EvalAll is Eval without the event-type index: every rule runs. It exists
// to check that the index does not change results.
func (e *Evaluator) EvalAll(rs *RuleSet, out *Outcome) {
	all := RuleSet{Rules: rs.Rules, Lists: rs.Lists, anyType: rs.Rules}
	e.Eval(&all, out)
}
