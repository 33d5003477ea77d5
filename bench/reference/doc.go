// Package reference holds the reference workload of riskd: the window
// features (features.yaml), the rule pack (rules/*.yaml with settings.yaml
// and rules/lists/*.txt) that the benchmark and the demo run. The Go code
// here only tests that the files load with the engine's own parsers.
package reference
