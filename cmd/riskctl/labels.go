package main

import (
	"context"
	"errors"
	"io"
)

func runLabelsImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}

func runRulesStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
