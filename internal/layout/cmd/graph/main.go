// Command graph rewrites the package graph of docs/ARCHITECTURE.md (the
// block between the graph markers) from go list: every package of the
// module with its rank, the first sentence of its doc and its riskd
// imports. make graph runs it; TestArchitectureGraphIsCurrent fails until
// it has run after a change to the packages.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"riskd/internal/layout"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "graph:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := layout.Root()
	if err != nil {
		return err
	}
	pkgs, err := layout.List(root)
	if err != nil {
		return err
	}
	path := filepath.Join(root, layout.ArchitectureFile)
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := layout.ReplaceGraph(doc, layout.Graph(pkgs))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if bytes.Equal(out, doc) {
		return nil
	}
	return os.WriteFile(path, out, 0o644)
}
