// Package rulesapi is the analysts' HTTP API for rules and lists: list and
// read the running rules, validate and test a rule set, publish it, see its
// history, roll back, and edit lists, all without a restart.
//
// A rule set is a set of files: rule files NAME.yaml (or NAME.yml), an
// optional settings.yaml and lists/NAME.txt. Every change, a list edit
// included, publishes a whole new set as a new version: compiled first (a
// set that does not compile is refused with the rule id and position, and
// the running set stays), then written to the fleet topic (rulesync), from
// which every instance, this one included, compiles and installs it
// (Service.Run). A publish answers once this instance installed it. Each
// version is kept in ClickHouse (ruleset_versions) with its author and
// message, and every change or refused change is in audit_log. A publish,
// rollback or list edit whose files hash to the running set's is refused
// with 409 naming the running version (audited as ACTION_unchanged).
//
// The rule directory riskd starts from is read, never written. Start runs
// before anything decides: on a fresh topic it publishes the directory as
// version 1 (author "riskd"); when the topic's newest version carries the
// directory's hash (rulesync.Record.DirHash) that version runs, so
// published versions survive restarts; a directory edited while riskd was
// stopped is published as a new version. The daemon's watcher publishes a
// directory changed while riskd runs the same way (PublishDir).
//
// GET /v1/rules/versions/{a}/diff/{b} answers rules.Diff of two versions:
// rules, lists and settings added, removed and changed.
//
// Routes (viewer reads, analyst changes; admin may do everything):
//
//	GET    /v1/rules                        viewer, analyst
//	GET    /v1/rules/{id}                   viewer, analyst
//	GET    /v1/rules/versions               viewer, analyst
//	GET    /v1/rules/versions/{seq}         viewer, analyst
//	GET    /v1/rules/versions/{a}/diff/{b}  viewer, analyst
//	GET    /v1/rules/vocabulary             viewer, analyst (the names an editor completes)
//	POST   /v1/rules/validate               analyst
//	POST   /v1/rules/test                   analyst
//	POST   /v1/rules/publish                analyst
//	POST   /v1/rules/rollback               analyst
//	GET    /v1/lists                        viewer, analyst
//	GET    /v1/lists/{name}                 viewer, analyst
//	PUT    /v1/lists/{name}                 analyst
//	POST   /v1/lists/{name}/entries         analyst
//	DELETE /v1/lists/{name}/entries/{entry} analyst
//	DELETE /v1/lists/{name}                 analyst
//
// Wiring:
//
//	svc, err := rulesapi.New(rulesapi.Config{Holder: h, Features: set, Dir: dir, Sync: sync, Store: store})
//	started, err := svc.Start(ctx) // installs the version that must run
//	server.Handle(svc.Routes()...)
//	go svc.Run(ctx) // follows the rule topic and installs what it reads
package rulesapi
