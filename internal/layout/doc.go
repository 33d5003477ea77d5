// Package layout keeps riskd's package layout honest: it holds the layer
// table (which package sits at which rank, inner to outer), reads the
// module's packages with go list, and renders the package graph of
// docs/ARCHITECTURE.md. Its tests fail when an import climbs from an inner
// layer to an outer one, when production code imports a test rig, when a
// package has no rank or no package doc, and when the written graph is
// stale (make graph rewrites it).
//
// To place a new package, add its path to Layers:
//
//	{"riskd/streams/replay", 54, false},
package layout
