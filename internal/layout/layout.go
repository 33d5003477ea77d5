package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Layer places the packages a pattern names at a rank. A package may import
// packages of its own rank or lower; tests may import a little more (see
// the layering tests).
type Layer struct {
	// Pattern is an import path, or a path ending in "/..." for that
	// package and every package under it.
	Pattern string
	// Rank orders the layers, inner (low) to outer (high).
	Rank int
	// Rig marks a test rig: only tests, and packages at RankTools or
	// above, may import it.
	Rig bool
}

// RankTools is the rank of the harness and tools layer (bench): from here
// outwards, production code may import test rigs.
const RankTools = 80

// Layers is the layer table. Every package of the module must match a
// pattern; the longest pattern that matches wins.
var Layers = []Layer{
	// Leaf utilities, importable by any package; they import no riskd package.
	{"riskd/internal/backoff", 0, false},
	{"riskd/internal/keyhash", 0, false},

	// The core: no Kafka, no ClickHouse, no HTTP.
	{"riskd/event", 10, false},
	{"riskd/features", 20, false},
	{"riskd/rules", 30, false},
	{"riskd/engine", 40, false},

	// streams and its subpackages adapt Kafka and ClickHouse to the
	// engine. Siblings import each other only in this order: notify
	// (alert delivery, which knows no ClickHouse), chstore (which stores
	// notify's dead letters), then the pipeline and rulesync (whose tests
	// run a pipeline).
	{"riskd/streams/notify", 50, false},
	{"riskd/streams/chstore", 52, false},
	{"riskd/streams/chstore/sqldump", 53, false},
	{"riskd/streams", 54, false},
	{"riskd/streams/rulesync", 54, false},
	{"riskd/streams/snapshots", 54, false},
	// backtest replays stored events (chstore) through the engine.
	{"riskd/backtest", 56, false},

	// The HTTP edge, one layer: rulesapi mounts its routes on api's
	// server, and api's tests serve both.
	{"riskd/api", 60, false},
	{"riskd/api/rulesapi", 60, false},
	// The web console serves its app and hands the app's calls to api.
	{"riskd/console", 65, false},

	// Test rigs: imported by tests, bench and cmd only.
	{"riskd/internal/apitest", 70, true},
	{"riskd/internal/chtest", 70, true},
	{"riskd/internal/kafkatest", 70, true},
	{"riskd/internal/jsonyardstick", 70, true},
	{"riskd/internal/browsertest", 70, true},
	{"riskd/internal/alone", 70, true},

	// Harness and tools, beside cmd: they may import anything but cmd.
	{"riskd/bench/...", RankTools, false},
	{"riskd/internal/layout/...", RankTools, false},

	// Commands: wiring only.
	{"riskd/cmd/...", 90, false},
}

// Find returns the layer of the package at path: the longest pattern
// that matches it. ok is false when no pattern does.
func Find(path string) (l Layer, ok bool) {
	best := -1
	for _, c := range Layers {
		prefix, tree := strings.CutSuffix(c.Pattern, "/...")
		if path != prefix && (!tree || !strings.HasPrefix(path, prefix+"/")) {
			continue
		}
		if len(prefix) > best {
			l, ok, best = c, true, len(prefix)
		}
	}
	return l, ok
}

// Package is what go list says about one package of the module.
type Package struct {
	ImportPath   string
	Name         string
	Doc          string // the first sentence of the package doc
	Dir          string
	Imports      []string // of the non-test files
	TestImports  []string // of the package's own _test.go files
	XTestImports []string // of its package x_test files
	Module       *struct{ Path string }
	Error        *struct{ Err string }
}

// Root returns the directory of the main module's go.mod, as go env GOMOD
// reports it for the working directory.
func Root() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// List runs go list -e -json ./... in root and returns the module's
// packages, sorted by import path. A package go list could not load is
// returned with its Error set.
func List(root string) ([]Package, error) {
	cmd := exec.Command("go", "list", "-e", "-json", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list ./... in %s: %w\n%s", root, err, stderr.Bytes())
	}
	var pkgs []Package
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p Package
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list ./... in %s: read its JSON: %w", root, err)
		}
		pkgs = append(pkgs, p)
	}
	slices.SortFunc(pkgs, func(a, b Package) int { return strings.Compare(a.ImportPath, b.ImportPath) })
	return pkgs, nil
}

// Internal returns the imports in paths that belong to the module whose
// path is mod, sorted, without duplicates.
func Internal(mod string, paths []string) []string {
	var out []string
	for _, p := range paths {
		if p == mod || strings.HasPrefix(p, mod+"/") {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ModulePath returns the module path of the packages (riskd).
func ModulePath(pkgs []Package) string {
	for _, p := range pkgs {
		if p.Module != nil {
			return p.Module.Path
		}
	}
	return "riskd"
}

// Graph markers: the generated package graph of docs/ARCHITECTURE.md sits
// between these two lines.
const (
	GraphBegin = "<!-- graph:begin -->"
	GraphEnd   = "<!-- graph:end -->"
)

// Graph renders the package graph: every package inner to outer (by rank,
// then path), with its rank, the first sentence of its doc and its riskd
// imports (non-test). Paths are shown without the module prefix.
func Graph(pkgs []Package) string {
	mod := ModulePath(pkgs)
	short := func(p string) string {
		if p == mod {
			return "."
		}
		return strings.TrimPrefix(p, mod+"/")
	}
	rank := func(p Package) int {
		if l, ok := Find(p.ImportPath); ok {
			return l.Rank
		}
		return 1 << 30 // unplaced packages last; the layering test names them
	}
	sorted := slices.Clone(pkgs)
	slices.SortStableFunc(sorted, func(a, b Package) int {
		if c := rank(a) - rank(b); c != 0 {
			return c
		}
		return strings.Compare(a.ImportPath, b.ImportPath)
	})

	var b strings.Builder
	b.WriteString("Generated from `go list` by `make graph` (internal/layout); do not edit by hand.\n")
	b.WriteString("Rank is the layer, inner (low) to outer (high): a package imports only packages of its\n")
	b.WriteString("rank or lower, and test rigs only from tests, bench and cmd. Imports are non-test ones.\n\n")
	b.WriteString("```\n")
	const indent = "      "
	for _, p := range sorted {
		head := "?"
		l, ok := Find(p.ImportPath)
		if ok {
			head = strconv.Itoa(l.Rank)
		}
		head = fmt.Sprintf("%4s  %s", head, short(p.ImportPath))
		if l.Rig {
			head += "  (test rig)"
		}
		b.WriteString(head + "\n")
		doc := p.Doc
		if doc == "" {
			doc = "(no package doc)"
		}
		wrap(&b, indent, doc)
		var imports []string
		for _, imp := range Internal(mod, p.Imports) {
			imports = append(imports, short(imp))
		}
		if len(imports) == 0 {
			imports = []string{"-"}
		}
		wrap(&b, indent, "imports: "+strings.Join(imports, ", "))
	}
	b.WriteString("```\n")
	return b.String()
}

// wrap writes text to b in lines of at most 100 columns, each starting
// with indent.
func wrap(b *strings.Builder, indent, text string) {
	const width = 100
	line := indent
	for _, w := range strings.Fields(text) {
		if line != indent && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
}

// ReplaceGraph returns doc with the text between the graph markers
// replaced by graph.
func ReplaceGraph(doc []byte, graph string) ([]byte, error) {
	before, rest, ok := bytes.Cut(doc, []byte(GraphBegin+"\n"))
	if !ok {
		return nil, fmt.Errorf("no %q line", GraphBegin)
	}
	_, after, ok := bytes.Cut(rest, []byte(GraphEnd))
	if !ok {
		return nil, fmt.Errorf("no %q after %q", GraphEnd, GraphBegin)
	}
	var out bytes.Buffer
	out.Write(before)
	out.WriteString(GraphBegin + "\n")
	out.WriteString(graph)
	out.WriteString(GraphEnd)
	out.Write(after)
	return out.Bytes(), nil
}

// ArchitectureFile is where the package graph is written, from the module
// root.
const ArchitectureFile = "docs/ARCHITECTURE.md"
