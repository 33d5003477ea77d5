package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroupRoot is the cgroup v1 cpu controller. The fleet holds each riskd
// to a CPU quota there so that k instances on this 2-core machine each get
// the same share, as k hosts of the same size would.
const cgroupRoot = "/sys/fs/cgroup/cpu"

// cpuCgroup is one riskd's cgroup: riskd-fleet-<i> under cgroupRoot.
type cpuCgroup struct{ dir string }

// newCPUCgroup creates (or reuses, after a run that failed to remove it)
// the cgroup and sets its quota in cores per 100 ms period.
func newCPUCgroup(name string, quota float64) (*cpuCgroup, error) {
	dir := filepath.Join(cgroupRoot, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cgroup %s: %w (the fleet needs a writable cgroup v1 cpu controller, as root; -cpu-quota 0 runs without quotas)", dir, err)
	}
	g := &cpuCgroup{dir: dir}
	const period = 100_000 // µs
	if err := g.write("cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
		g.remove()
		return nil, err
	}
	if err := g.write("cpu.cfs_quota_us", strconv.Itoa(int(quota*period))); err != nil {
		g.remove()
		return nil, err
	}
	return g, nil
}

func (g *cpuCgroup) write(file, v string) error {
	if err := os.WriteFile(filepath.Join(g.dir, file), []byte(v), 0o644); err != nil {
		return fmt.Errorf("cgroup %s: %w", file, err)
	}
	return nil
}

// add moves a process into the cgroup.
func (g *cpuCgroup) add(pid int) error { return g.write("cgroup.procs", strconv.Itoa(pid)) }

// throttled reads cpu.stat: how many periods the quota cut short and the
// time the group's threads waited for the next period. Throttling says
// the quota, not the machine, bounded the instance.
func (g *cpuCgroup) throttled() (periods uint64, wait time.Duration) {
	b, err := os.ReadFile(filepath.Join(g.dir, "cpu.stat"))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, _ := strconv.ParseUint(v, 10, 64)
		switch k {
		case "nr_throttled":
			periods = n
		case "throttled_time":
			wait = time.Duration(n)
		}
	}
	return periods, wait
}

// remove deletes the cgroup; it must be empty, so callers stop its
// process first. A few retries cover the moment the kernel takes to
// reap an exited process from it.
func (g *cpuCgroup) remove() {
	for range 20 {
		if err := os.Remove(g.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	logf("warning: could not remove cgroup %s", g.dir)
}
