package chstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// flakyConn fails its first n queries with err: the driver's side of a
// pooled connection found dead. Only Query is used.
type flakyConn struct {
	driver.Conn
	n, calls int
	err      error
}

func (c *flakyConn) Query(context.Context, string, ...any) (driver.Rows, error) {
	c.calls++
	if c.calls <= c.n {
		return nil, c.err
	}
	return nil, nil
}

// A read on a dead pooled connection is sent once more; a refused
// statement, a second dead connection or an ended context is not.
func TestReadsRetryOnceOnADeadConnection(t *testing.T) {
	closed := fmt.Errorf("query processing: failed to read first block packet: %w",
		&net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed})
	refused := errors.New("code: 60, message: Table riskd.nope doesn't exist")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		failures  int
		err       error
		wantCalls int
		wantErr   bool
	}{
		{"closed once: sent again", context.Background(), 1, closed, 2, false},
		{"closed twice: one more try only", context.Background(), 2, closed, 2, true},
		{"wrapped as text", context.Background(), 1, errors.New("read tcp 127.0.0.1:1->127.0.0.1:9000: use of closed network connection"), 2, false},
		{"refused by the server: not again", context.Background(), 1, refused, 1, true},
		{"context ended: not again", cancelled, 1, closed, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := &flakyConn{n: tc.failures, err: tc.err}
			_, err := reconnecting{fc}.Query(tc.ctx, "SELECT 1")
			if fc.calls != tc.wantCalls || (err != nil) != tc.wantErr {
				t.Errorf("%d calls, error %v; want %d calls, error %v", fc.calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
}
