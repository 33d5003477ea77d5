package chstore

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// reconnecting is the driver's connection pool with one more try for a
// read whose pooled connection turns out dead before anything was read:
// the server dropped it while idle, or the driver handed out one an
// earlier cancelled query had closed ("use of closed network
// connection"). A read is safe to send again, and the caller (an API
// request, a backtest) would otherwise fail at once, as a labels request
// once did in CI. Writes keep their own retries (retry.go).
type reconnecting struct{ driver.Conn }

func (c reconnecting) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	rows, err := c.Conn.Query(ctx, query, args...)
	if err != nil && staleConn(err) && ctx.Err() == nil {
		return c.Conn.Query(ctx, query, args...)
	}
	return rows, err
}

func (c reconnecting) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	row := c.Conn.QueryRow(ctx, query, args...)
	if err := row.Err(); err != nil && staleConn(err) && ctx.Err() == nil {
		return c.Conn.QueryRow(ctx, query, args...)
	}
	return row
}

// staleConn reports whether err says the connection was gone, rather
// than that the server refused the statement.
func staleConn(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "use of closed network connection") // when a layer wraps with %v
}
