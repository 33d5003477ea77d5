package layout

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// testImportExceptions are outer packages that the tests of an inner
// package may import anyway, besides the test rigs: bench/traffic, the
// labelled traffic generator, and bench/reference, the reference workload
// (its Go code is a doc and tests; the package is data). Importing them
// drags nothing outer into an inner test because each imports at most the
// riskd packages listed here, which the test checks: if bench/traffic
// starts importing features, say, its exception ends.
var testImportExceptions = map[string][]string{
	"riskd/bench/traffic":   {"riskd/event"},
	"riskd/bench/reference": nil,
}

var loaded = sync.OnceValues(func() ([]Package, error) {
	root, err := Root()
	if err != nil {
		return nil, err
	}
	return List(root)
})

// modulePackages returns the module's packages, as go list sees them now.
func modulePackages(t *testing.T) []Package {
	t.Helper()
	pkgs, err := loaded()
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list ./... found no packages")
	}
	return pkgs
}

func report(t *testing.T, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Error(p)
	}
}

func TestImportsPointInward(t *testing.T) {
	report(t, checkImports(modulePackages(t)))
}

func TestTestImportsPointInward(t *testing.T) {
	report(t, checkTestImports(modulePackages(t)))
}

func TestEveryPackageHasADoc(t *testing.T) {
	report(t, checkDocs(modulePackages(t)))
}

func TestArchitectureGraphIsCurrent(t *testing.T) {
	pkgs := modulePackages(t)
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, ArchitectureFile))
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReplaceGraph(doc, Graph(pkgs))
	if err != nil {
		t.Fatalf("%s: %v", ArchitectureFile, err)
	}
	if string(want) == string(doc) {
		return
	}
	got, wantLines := strings.Split(string(doc), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(got), len(wantLines)) {
		g, w := line(got, i), line(wantLines, i)
		if g != w {
			t.Fatalf("%s: the package graph is out of date; run make graph\nline %d is  %q\nwould be   %q",
				ArchitectureFile, i+1, g, w)
		}
	}
}

func line(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end of file)"
}

// checkImports returns a problem for every package go list could not load
// or the layer table does not place, and for every non-test import that
// climbs to an outer layer or reaches a test rig from production code.
func checkImports(pkgs []Package) []string {
	mod := ModulePath(pkgs)
	var problems []string
	for _, p := range pkgs {
		if p.Error != nil {
			problems = append(problems, fmt.Sprintf("%s: go list: %s", p.ImportPath, p.Error.Err))
		}
		from, ok := Find(p.ImportPath)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s has no layer: add %s to the layer table (Layers in internal/layout/layout.go)",
				p.ImportPath, p.ImportPath))
			continue
		}
		for _, imp := range Internal(mod, p.Imports) {
			to, ok := Find(imp)
			switch {
			case !ok || imp == p.ImportPath:
				// An unplaced package is reported as such.
			case to.Rig && !from.Rig && from.Rank < RankTools:
				problems = append(problems, fmt.Sprintf("%s imports test rig %s: only tests, bench and cmd may import test rigs",
					p.ImportPath, imp))
			case to.Rank > from.Rank:
				problems = append(problems, fmt.Sprintf("%s imports %s: rank %d may not import rank %d, an outer layer",
					p.ImportPath, imp, from.Rank, to.Rank))
			}
		}
	}
	return problems
}

// checkTestImports returns a problem for every import of a package's tests
// (in-package and _test package) that climbs to an outer layer, other than
// test rigs and testImportExceptions, and for every exception that no
// longer holds.
func checkTestImports(pkgs []Package) []string {
	mod := ModulePath(pkgs)
	var problems []string
	exists := map[string]bool{}
	for _, p := range pkgs {
		exists[p.ImportPath] = true
		if allowed, ok := testImportExceptions[p.ImportPath]; ok {
			for _, imp := range Internal(mod, p.Imports) {
				if !slices.Contains(allowed, imp) {
					problems = append(problems, fmt.Sprintf("%s imports %s: inner tests may import %s only while it imports nothing of riskd but %v; drop the import or the exception",
						p.ImportPath, imp, p.ImportPath, allowed))
				}
			}
		}
	}
	for _, exc := range sortedKeys(testImportExceptions) {
		if !exists[exc] {
			problems = append(problems, fmt.Sprintf("%s is a test-import exception but no package: remove it from testImportExceptions", exc))
		}
	}
	for _, p := range pkgs {
		from, ok := Find(p.ImportPath)
		if !ok {
			continue // checkImports reports it
		}
		for _, imp := range Internal(mod, append(slices.Clone(p.TestImports), p.XTestImports...)) {
			to, ok := Find(imp)
			if _, exc := testImportExceptions[imp]; !ok || exc || to.Rig || to.Rank <= from.Rank {
				continue
			}
			problems = append(problems, fmt.Sprintf("tests of %s import %s: rank %d tests may import rank %d or lower, test rigs, and %s",
				p.ImportPath, imp, from.Rank, from.Rank, strings.Join(sortedKeys(testImportExceptions), ", ")))
		}
	}
	return problems
}

// checkDocs returns a problem for every package without a package doc.
func checkDocs(pkgs []Package) []string {
	var problems []string
	for _, p := range pkgs {
		if strings.TrimSpace(p.Doc) == "" {
			problems = append(problems, fmt.Sprintf("%s has no package doc: add a doc.go saying what it is for (%s)",
				p.ImportPath, p.Dir))
		}
	}
	return problems
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestChecksNameTheOffendingImport runs the checks on a made-up module
// with one of each violation, and pins what they say.
func TestChecksNameTheOffendingImport(t *testing.T) {
	mod := &struct{ Path string }{"riskd"}
	pkgs := []Package{
		{ImportPath: "riskd/event", Doc: "Package event.", Module: mod,
			XTestImports: []string{"riskd/bench/traffic", "riskd/event"}},
		{ImportPath: "riskd/features", Doc: "Package features.", Module: mod,
			Imports:     []string{"fmt", "riskd/event", "riskd/internal/keyhash"},
			TestImports: []string{"riskd/engine", "riskd/internal/kafkatest", "riskd/bench/reference"}},
		{ImportPath: "riskd/engine", Doc: "Package engine.", Module: mod,
			Imports: []string{"riskd/features", "riskd/streams"}},
		{ImportPath: "riskd/api", Doc: "Package api.", Module: mod,
			Imports: []string{"riskd/engine", "riskd/internal/chtest"}},
		{ImportPath: "riskd/internal/chtest", Doc: "Package chtest.", Module: mod,
			Imports: []string{"riskd/streams/chstore"}},
		{ImportPath: "riskd/bench/traffic", Doc: "Package traffic.", Module: mod,
			Imports: []string{"riskd/event", "riskd/rules"}},
		{ImportPath: "riskd/cmd/riskd", Doc: "Command riskd.", Module: mod,
			Imports: []string{"riskd/api", "riskd/internal/kafkatest"}},
		{ImportPath: "riskd/ledger", Module: mod, Imports: []string{"riskd/event"}},
	}
	got := append(checkImports(pkgs), checkTestImports(pkgs)...)
	got = append(got, checkDocs(pkgs)...)
	want := []string{
		"riskd/engine imports riskd/streams: rank 40 may not import rank 54, an outer layer",
		"riskd/api imports test rig riskd/internal/chtest: only tests, bench and cmd may import test rigs",
		"riskd/ledger has no layer: add riskd/ledger to the layer table (Layers in internal/layout/layout.go)",
		"riskd/bench/traffic imports riskd/rules: inner tests may import riskd/bench/traffic only while it imports nothing of riskd but [riskd/event]; drop the import or the exception",
		"riskd/bench/reference is a test-import exception but no package: remove it from testImportExceptions",
		"tests of riskd/features import riskd/engine: rank 20 tests may import rank 20 or lower, test rigs, and riskd/bench/reference, riskd/bench/traffic",
		"riskd/ledger has no package doc: add a doc.go saying what it is for ()",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
