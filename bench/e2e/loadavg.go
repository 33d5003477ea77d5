package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// load1 reads the 1-minute load average from /proc/loadavg. The machine
// is shared, so every figure is recorded with it: a rate or a latency
// measured at load 4 on two cores says less about riskd than one measured
// at load 1.5. It is -1 when the file cannot be read, so a missing value
// is never mistaken for an idle machine.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	v, err := parseLoad1(string(b))
	if err != nil {
		return -1
	}
	return v
}

// parseLoad1 returns the first field of /proc/loadavg
// ("3.55 2.76 1.53 1/158 10467").
func parseLoad1(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, fmt.Errorf("loadavg: empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("loadavg: %w", err)
	}
	return v, nil
}
