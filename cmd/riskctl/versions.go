package main

import (
	"context"
	"errors"
	"io"
)

func runRulesPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}

func runRulesHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}

func runRulesDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}

func runRulesRollback(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
