// Package rules loads, compiles and evaluates fraud rules.
//
// A rule directory holds rule files (*.yaml or *.yml, each a YAML list of
// rules), an optional settings.yaml (score thresholds) and named value lists
// under lists/NAME.txt (one value per line, # starts a comment):
//
//   - id: brute-force-lock
//     when: event.type == "login_failed" && f.failed_logins_15m >= 5
//     action: lock
//     lock_for: 30m
//     alert: "Your wallet was locked after repeated failed sign-ins."
//     examples:
//   - event: {type: login_failed}
//     f: {failed_logins_15m: 6}
//     expect: match
//
// settings.yaml is a map:
//
//	thresholds:
//	  - {score: 80, action: review}
//	  - {score: 120, action: block}
//
// Each rule's when is an expr-lang expression compiled against Env: event
// (event.Event), f (features.Profile plus the declared window features, which
// are rewritten at compile time into slots of Env.W), account (AccountInfo)
// and the helpers in_list(name, value), haversine(lat1, lon1, lat2, lon2) (km)
// and hour(ts_ms) (UTC hour). Misspelt names, type errors, unknown lists and
// schema mistakes are reported as *CompileError with the file, line and column.
// Rule examples run at load time; a failing example rejects the whole set.
//
// A RuleSet is immutable once built; Holder swaps it atomically and Watcher
// reloads it when the directory changes, keeping the last good set. Each
// shard owns an Evaluator, fills Evaluator.Env in place and calls Eval.
package rules
