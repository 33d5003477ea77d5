package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestParseTCP(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   3: 0100007F:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000   102        0 6444 1 0000000086fd0120 100 0 0 10 0
 136: 0100007F:8206 0100007F:2328 01 00000000:00000000 03:000005BE 00000000     0        0 7001 3 00000000dbba91f0
`
	rows := parseTCP(bufio.NewScanner(strings.NewReader(table)))
	want := []tcpRow{
		{localPort: "2328", remotePort: "0000", state: "0A", inode: "6444"},
		{localPort: "8206", remotePort: "2328", state: "01", inode: "7001"},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v, want %+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, rows[i], want[i])
		}
	}
}
