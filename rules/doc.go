// Package rules loads, compiles and evaluates fraud rules.
//
// A rule directory holds rule files (*.yaml or *.yml, each a YAML list of
// rules), an optional settings.yaml (score thresholds) and named value
// lists under lists/NAME.txt (one value per line, # starts a comment).
// A rule file reads:
//
//	# auth.yaml: sign-in rules.
//	- id: brute-force-lock
//	  when: event.type == "login_failed" && f.failed_logins_15m >= 5
//	  action: lock
//	  lock_for: 30m                          # or indefinite: until support unlocks
//	  unlock_clears: [failed_logins_15m]     # reset by support's unlock
//	  alert: "Your wallet was locked after repeated failed sign-ins."
//	  code: auth.too_many_failed_logins     # what the decide answer tells
//	  user_message: "Too many wrong passwords. Call us to unlock your wallet."
//	  examples:
//	    - event: {type: login_failed}
//	      f: {failed_logins_15m: 6}
//	      expect: match
//
// and settings.yaml is a map:
//
//	thresholds:
//	  - {score: 80, action: review}
//	  - {score: 120, action: block}
//
// Each rule's when is an expr-lang expression compiled against Env: event
// (event.Event), f (features.Profile plus the declared window features,
// which are rewritten at compile time into slots of Env.W), account
// (AccountInfo) and the helpers in_list(name, value), haversine(lat1, lon1,
// lat2, lon2) (km) and hour(ts_ms) (UTC hour). The expression is parsed
// once; the event types it tests for, its native form (Go closures, for
// the rules simple enough) and its expr program all come from that tree.
// Misspelt names, type errors, unknown lists and schema mistakes are
// reported as *CompileError with the file, line and column. Rule examples
// run at load time, reading the features they do not give at their values
// on an account's first event; a failing example rejects the whole set.
// A lock rule's unlock_clears names the window features grouped by
// account that an unlock of its lock resets for the account (default: the
// ones its when reads; [] for none); it may not name features of shared
// entities (device, IP, payee), nor appear on other rules. A rule's
// when_warming (allow, the default, or skip) says whether it decides
// while a window feature it reads is warming after a change of the
// feature definitions (Rule.SkipWhileWarming).
// Lint reports every problem of a set instead of the first, and Diff
// compares two sets of files.
//
// code, category, step_up and user_message (Rule.Wallet) are what the
// decide answer tells the wallet when the rule decides: a stable reason
// code, the screen to show (one of Categories, allowed for the rule's
// action), for a challenge the step-up to ask (StepUps), and the text for
// the user; absent ones take the action's defaults (WalletDefault). alert
// is a different text: the notification sent out of band.
//
// Rules come from analysts through the API, so a rule's cost is bounded
// before it runs. Compiling refuses, each with a *CompileError that names
// the limit ("rule deep: expression nests 500000 deep, limit is 64"):
//
//   - an expression longer than MaxExprBytes (4096 bytes) or nesting
//     deeper than MaxExprDepth (64 brackets and prefix operators), both
//     checked before parsing, at the expression's start;
//   - a syntax tree of more than MaxExprNodes (1000) nodes;
//   - a string literal over MaxStringLiteral (256 bytes), an array or map
//     literal over MaxListLiteral (100) entries, a range a..b whose bounds
//     are not integer constants or that has over MaxRange (1000) elements;
//   - work over MaxSteps (2^21) steps on the largest event: a static bound
//     in which each loop builtin repeats its body once per element of its
//     collection (a range or literal by its length, anything else by
//     DynamicLen, the largest event the decoder accepts), so nested loops
//     multiply, and bytes read or built count as steps (see limits.go).
//
// At run time each rule's VM run has two budgets: memory, RunMemoryBudget
// (32768 elements of the arrays, maps and ranges it builds), and loop
// iterations, RunStepBudget (10000 on one event, nested loops counted per
// inner iteration; the compiler makes each iteration call the hidden
// __tick, which analysts cannot name). A run over either fails ("rule
// over its run-time budget of 10000 iterations", with the loop's
// position) and, like any run-time error, is counted on the rule
// (Rule.Errors, RuleSet.ErrorCounts), recorded in the Outcome and treated
// as not matched, without stopping the other rules. Native rules run no
// VM and pay nothing for these bounds.
//
// A RuleSet is immutable once built; Holder swaps it atomically and
// Watcher reloads it when the directory changes, keeping the last good
// set. Each shard owns an Evaluator, fills Evaluator.Env in place and
// calls Eval, which fills an Outcome; Decide turns the Outcome's matched
// rules and the set's thresholds into the decision's action and score.
//
// RuleSet.RunTest is the analyst's test: it decides ad-hoc events, given
// with their feature values, through the same Eval and Decide, and runs
// the set's examples again.
package rules
