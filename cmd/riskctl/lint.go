package main

import (
	"context"
	"errors"
	"io"
)

func runRulesLint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}

func runRulesTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
