package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// riskdProc is riskd running as a child process.
type riskdProc struct {
	cmd     *exec.Cmd
	httpURL string
	logPath string
	exited  chan error // receives Wait's result once
	// admin is an admin's token when http.pprof is on, for the
	// profiles the harness takes.
	admin string
}

// riskdOptions is what the harness puts in riskd's generated config.
type riskdOptions struct {
	Binary, Dir    string // the built binary; a scratch directory for config and log
	Brokers        string
	Group          string
	Partitions     int
	ClickHouse, DB string
	AuthTokens     []string // "name:role:token"; empty leaves the auth key out
	// StateKafka is riskd's state.kafka: engine state snapshots in Kafka,
	// every SnapshotInterval.
	StateKafka       bool
	SnapshotInterval time.Duration
	// DecidePublish is decide.publish_events.
	DecidePublish bool
	// Shards is engine.shards; 0 leaves the key out.
	Shards int
	// GCPercent and MemoryLimit are runtime.gc_percent and
	// runtime.memory_limit; zero values leave the key out.
	GCPercent   int
	MemoryLimit string
	// Instance is state.instance; empty leaves it to the host name, which
	// would make the members of a fleet on one host share one name.
	Instance string
	// Standby is kafka.standby.
	Standby bool
	// Pprof is http.pprof: Go's profiler for the admin token (see
	// traceRiskd).
	Pprof bool
	// Env is added to the child's environment (the fleet sets GOMAXPROCS).
	Env []string
	// Started, when set, runs as soon as the process exists and before
	// it is ready (the fleet moves it into its cgroup there); an error
	// kills the process.
	Started func(pid int) error
}

// buildRiskd compiles cmd/riskd into dir, so the measured process is the
// daemon itself and not `go run` around it.
func buildRiskd(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "riskd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/riskd")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build riskd: %w", err)
	}
	return bin, nil
}

// freePort asks the kernel for an unused loopback port for riskd's HTTP.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// writeConfig writes riskd's YAML config. Rule and feature paths are
// absolute so riskd finds them whatever its working directory.
func writeConfig(o riskdOptions, httpAddr string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "kafka:\n  brokers: [%q]\n  group: %q\n  partitions: %d\n", o.Brokers, o.Group, o.Partitions)
	if o.Standby {
		b.WriteString("  standby: true\n")
	}
	fmt.Fprintf(&b, "clickhouse:\n  addr: %q\n  database: %q\n", o.ClickHouse, o.DB)
	fmt.Fprintf(&b, "rules:\n  dir: %q\n  features: %q\n",
		filepath.Join(wd, "bench/reference/rules"), filepath.Join(wd, "bench/reference/features.yaml"))
	fmt.Fprintf(&b, "http:\n  listen: %q\n", httpAddr)
	if o.Pprof {
		b.WriteString("  pprof: true\n")
	}
	fmt.Fprintf(&b, "decide:\n  publish_events: %v\n", o.DecidePublish)
	fmt.Fprintf(&b, "state:\n  kafka: %v\n  snapshot_interval: %s\n  topic: %q\n  dir: \"\"\n", o.StateKafka, o.SnapshotInterval, "riskd.state-"+o.Group)
	if o.Instance != "" {
		fmt.Fprintf(&b, "  instance: %q\n", o.Instance)
	}
	if o.Shards > 0 {
		fmt.Fprintf(&b, "engine:\n  shards: %d\n", o.Shards)
	}
	if o.GCPercent != 0 || o.MemoryLimit != "" {
		fmt.Fprintf(&b, "runtime:\n  gc_percent: %d\n  memory_limit: %q\n", o.GCPercent, o.MemoryLimit)
	}
	b.WriteString("log:\n  level: warn\n")
	if len(o.AuthTokens) > 0 {
		b.WriteString("auth:\n  tokens:\n")
		for _, t := range o.AuthTokens {
			fmt.Fprintf(&b, "    - %q\n", t)
		}
	}
	path := filepath.Join(o.Dir, "riskd.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	return path, nil
}

// errConfigRejected is returned by startRiskd when riskd exits at once
// complaining about its config (for example a key this build lacks).
var errConfigRejected = errors.New("riskd rejected its config")

// startRiskd starts riskd and waits until /readyz answers. The child gets
// its own environment without RISKD_* variables, so the generated config
// is all that configures it.
func startRiskd(ctx context.Context, o riskdOptions) (*riskdProc, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	cfgPath, err := writeConfig(o, addr)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(o.Dir, "riskd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("riskd log: %w", err)
	}
	cmd := exec.Command(o.Binary, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RISKD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, o.Env...)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start riskd: %w", err)
	}
	p := &riskdProc{cmd: cmd, httpURL: "http://" + addr, logPath: logPath, exited: make(chan error, 1)}
	go func() {
		p.exited <- cmd.Wait()
		logFile.Close()
	}()
	if o.Started != nil {
		if err := o.Started(cmd.Process.Pid); err != nil {
			p.cmd.Process.Kill()
			<-p.exited
			return nil, err
		}
	}
	if err := p.waitReady(ctx, 60*time.Second); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return p, nil
}

// waitReady polls /readyz; if riskd exits first, its log says why.
func (p *riskdProc) waitReady(ctx context.Context, limit time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.exited:
			p.exited <- err
			tail, _ := os.ReadFile(p.logPath)
			msg := strings.TrimSpace(string(tail))
			if strings.Contains(msg, "config") {
				return fmt.Errorf("%w: %s", errConfigRejected, msg)
			}
			return fmt.Errorf("riskd exited before it was ready (%v): %s", err, msg)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get(p.httpURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("riskd not ready after %v (log: %s)", limit, p.logPath)
}

// stop sends SIGTERM (riskd drains and commits) and kills it if it has not
// exited within grace.
func (p *riskdProc) stop(grace time.Duration) error {
	select {
	case err := <-p.exited:
		p.exited <- err
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop riskd: %w", err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			return fmt.Errorf("riskd exit: %w (log: %s)", err, p.logPath)
		}
		return nil
	case <-time.After(grace):
		p.cmd.Process.Kill()
		return fmt.Errorf("riskd did not stop within %v; killed", grace)
	}
}

func (p *riskdProc) pid() int { return p.cmd.Process.Pid }

// trace saves an execution trace of riskd, taken for length through its
// /debug/pprof/trace (http.pprof on, token an admin's), to path: read it
// with go tool trace.
func (p *riskdProc) trace(ctx context.Context, token string, length time.Duration, path string) error {
	if err := p.savePprof(ctx, token, fmt.Sprintf("trace?seconds=%d", max(1, int(length.Seconds()))), path); err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	logf("execution trace of riskd (%v) in %s: go tool trace %s", length, path, path)
	return nil
}

// heap saves riskd's heap profile (live objects after the last
// collection, and the allocations since the start) to path: what each
// collection has to mark is in its inuse samples.
func (p *riskdProc) heap(ctx context.Context, token, path string) error {
	if err := p.savePprof(ctx, token, "heap", path); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	logf("heap profile of riskd in %s: go tool pprof -sample_index=inuse_space %s", path, path)
	return nil
}

// cpu saves a CPU profile of riskd, taken for length, to path.
func (p *riskdProc) cpu(ctx context.Context, length time.Duration, path string) error {
	if err := p.savePprof(ctx, p.admin, fmt.Sprintf("profile?seconds=%d", max(1, int(length.Seconds()))), path); err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	logf("CPU profile of riskd (%v) in %s: go tool pprof %s", length, path, path)
	return nil
}

// savePprof saves what riskd's /debug/pprof/<what> answers to path.
func (p *riskdProc) savePprof(ctx context.Context, token, what, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.httpURL+"/debug/pprof/"+what, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
