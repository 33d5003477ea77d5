package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// byteUnits are the suffixes MemoryLimit accepts, as GOMEMLIMIT does.
var byteUnits = []struct {
	suffix string
	size   int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// limit returns MemoryLimit in bytes, 0 when it is empty, or an error that
// names the key.
func (c RuntimeConfig) limit() (int64, error) {
	if c.GCPercent < -1 {
		return 0, fmt.Errorf("runtime.gc_percent %d: want -1 (off, with a memory_limit), 0 (GOGC or Go's 100) or more", c.GCPercent)
	}
	s := strings.TrimSpace(c.MemoryLimit)
	if s == "" {
		if c.GCPercent == -1 {
			return 0, errors.New("runtime.gc_percent -1 turns the collector's percentage off: it needs a runtime.memory_limit, or the heap grows without bound")
		}
		return 0, nil
	}
	size := int64(1)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, size = strings.TrimSpace(num), u.size
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/size {
		return 0, fmt.Errorf("runtime.memory_limit %q: want a positive whole number of bytes, with an optional unit (KiB, MiB, GiB, TiB)", c.MemoryLimit)
	}
	return n * size, nil
}

// applyRuntime sets the collector as the config says and logs what it runs
// with, the variables' values included, so that an operator reading the
// log knows the memory riskd may take.
func applyRuntime(c RuntimeConfig, log *slog.Logger) error {
	limit, err := c.limit()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	if c.GCPercent != 0 {
		debug.SetGCPercent(c.GCPercent)
	}
	percent := debug.SetGCPercent(-1) // reads the setting; put back at once
	debug.SetGCPercent(percent)
	attrs := []any{"gc_percent", percent}
	if now := debug.SetMemoryLimit(-1); now != math.MaxInt64 {
		attrs = append(attrs, "memory_limit_bytes", now)
	} else {
		attrs = append(attrs, "memory_limit", "none")
	}
	log.Info("garbage collector", attrs...)
	return nil
}
