package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clickHouseServer finds the process of the ClickHouse server the harness
// writes to, for its CPU time: the process holding the socket that listens
// on addr's port (from /proc/net/tcp and tcp6 and the processes' file
// descriptors, which root can read). That is the server riskd talks to
// even when more than one runs (scripts/clickhouse-up starts a second on
// another port) or when a watchdog parent shares the server's name. If no
// local process listens on the port (a remote server, or fds not
// readable), it falls back to the first process named clickhouse-serv, and
// how says so; pid 0 when there is none, and the figure is then not
// measured.
func clickHouseServer(addr string) (pid int, how string) {
	if _, port, err := net.SplitHostPort(addr); err == nil {
		if p, err := strconv.Atoi(port); err == nil {
			if pid := listener(p); pid > 0 {
				return pid, fmt.Sprintf("listens on port %d", p)
			}
		}
	}
	if pid := findProcess("clickhouse-serv"); pid > 0 {
		return pid, "first process named clickhouse-serv (no local listener on " + addr + " found)"
	}
	return 0, "no local ClickHouse server process found"
}

// socketInodes returns the inodes of the sockets among pid's file
// descriptors.
func socketInodes(pid int) map[string]bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			out[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	return out
}

// tcpRow is one socket of /proc/net/tcp or tcp6.
type tcpRow struct {
	localPort, remotePort string // 4 hex digits
	state                 string // 0A listen, 01 established
	inode                 string
}

// tcpRows reads both TCP tables of this network namespace.
func tcpRows() []tcpRow {
	var rows []tcpRow
	for _, path := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		rows = append(rows, parseTCP(bufio.NewScanner(f))...)
		f.Close()
	}
	return rows
}

// parseTCP reads a /proc/net/tcp table: after a header line,
// "sl local_address rem_address st ... uid timeout inode ...", addresses
// as HEXIP:HEXPORT.
func parseTCP(sc *bufio.Scanner) []tcpRow {
	var rows []tcpRow
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		_, lp, ok1 := strings.Cut(f[1], ":")
		_, rp, ok2 := strings.Cut(f[2], ":")
		if !ok1 || !ok2 {
			continue
		}
		rows = append(rows, tcpRow{localPort: lp, remotePort: rp, state: f[3], inode: f[9]})
	}
	return rows
}

// otherClients returns the processes, other than server and those in
// ours, that hold a TCP connection to one of the ports server listens on
// (native, HTTP, interserver), each with its command line. A ClickHouse
// server shared with other clients spends CPU on their work too, and its
// CPU time cannot be split by client from outside (query_log is off by
// default), so the harness reports them instead.
func otherClients(server int, ours map[int]bool) map[int]string {
	serverSockets := socketInodes(server)
	if len(serverSockets) == 0 {
		return nil
	}
	rows := tcpRows()
	ports := map[string]bool{}
	for _, r := range rows {
		if r.state == "0A" && serverSockets[r.inode] {
			ports[r.localPort] = true
		}
	}
	clientSockets := map[string]bool{}
	for _, r := range rows {
		if r.state == "01" && ports[r.remotePort] && !serverSockets[r.inode] {
			clientSockets[r.inode] = true
		}
	}
	if len(clientSockets) == 0 {
		return nil
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := map[int]string{}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == server || ours[pid] {
			continue
		}
		for ino := range socketInodes(pid) {
			if clientSockets[ino] {
				out[pid] = commandLine(pid)
				break
			}
		}
	}
	return out
}

// commandLine returns pid's command line, shortened, for a report.
func commandLine(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return "?"
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// listener returns the pid of the process with a TCP socket listening on
// port, or 0.
func listener(port int) int {
	want := fmt.Sprintf("%04X", port)
	inodes := map[string]bool{}
	for _, r := range tcpRows() {
		if r.state == "0A" && r.localPort == want {
			inodes[r.inode] = true
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		for ino := range socketInodes(pid) {
			if inodes[ino] {
				return pid
			}
		}
	}
	return 0
}
