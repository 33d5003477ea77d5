package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
// It is 100 on every Linux architecture Go supports; reading it properly
// needs sysconf(3) and cgo, which the harness avoids.
const clockTicks = 100

// procSample is what the harness reads about riskd from /proc.
type procSample struct {
	CPU      time.Duration // utime + stime since the process started
	RSSBytes uint64        // VmRSS
	HWMBytes uint64        // VmHWM, the peak RSS
}

// readProc reads CPU time from /proc/PID/stat and memory from
// /proc/PID/status.
func readProc(pid int) (procSample, error) {
	var s procSample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("proc stat %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; fields after its closing
	// parenthesis start at field 3 (state), so utime (14) is index 11.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return s, fmt.Errorf("proc stat %d: no command field", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("proc stat %d: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("proc stat %d: utime %q stime %q", pid, f[11], f[12])
	}
	s.CPU = time.Duration(ut+st) * time.Second / clockTicks

	st2, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("proc status %d: %w", pid, err)
	}
	defer st2.Close()
	sc := bufio.NewScanner(st2)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			s.RSSBytes = parseKB(v)
		case "VmHWM":
			s.HWMBytes = parseKB(v)
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("proc status %d: %w", pid, err)
	}
	return s, nil
}

// parseKB reads a /proc/PID/status value such as "  123456 kB".
func parseKB(v string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return n << 10
}

// machineInfo describes the host for the results file.
type machineInfo struct {
	CPUModel  string `json:"cpu_model"`
	CPUs      int    `json:"cpus"`
	MemTotal  uint64 `json:"mem_total_bytes"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	GitCommit string `json:"git_commit"`
}

// readMachine fills what /proc/cpuinfo and /proc/meminfo say; missing
// files leave fields empty rather than failing a run.
func readMachine() machineInfo {
	var m machineInfo
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch strings.TrimSpace(k) {
			case "model name":
				m.CPUModel = strings.TrimSpace(v)
			case "processor":
				m.CPUs++
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				m.MemTotal = parseKB(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// findProcess returns the pid of the first process whose /proc/PID/comm
// is comm (15 characters at most, as the kernel truncates it), or 0.
func findProcess(comm string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && strings.TrimSpace(string(b)) == comm {
			return pid
		}
	}
	return 0
}
