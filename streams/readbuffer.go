package streams

import (
	"bufio"
	"context"
	"net"
	"time"

	"github.com/segmentio/kafka-go"
)

// inputReadBuffer is how much of a fetch response an input partition's
// connection reads from its socket at a time. kafka-go reads through a
// bufio.Reader of the default 4 KiB, so a fetch of a few hundred events
// of a few hundred bytes each took a read(2) per sixteen events or so:
// 0.38 µs of riskd's CPU per decision in the harness's in-process profile,
// a third of its Kafka reader. The memory is per open input connection.
const inputReadBuffer = 64 << 10

// inputDialer dials the input partitions' readers with inputReadBuffer
// between kafka-go and the socket. The rest is kafka-go's default dialer.
var inputDialer = &kafka.Dialer{
	Timeout: 10 * time.Second,
	DialFunc: func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := new(net.Dialer).DialContext(ctx, network, address)
		if err != nil {
			return nil, err // net's error names the address, kafka-go adds its context
		}
		return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, inputReadBuffer)}, nil
	},
}

// bufferedConn reads its Conn through r; everything else (writes,
// deadlines, closing) is the Conn's own. A deadline stops a read of the
// socket as before; what r holds already was received.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
