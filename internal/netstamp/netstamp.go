// Package netstamp makes TCP connections whose reads say when the kernel
// received the data (SO_TIMESTAMPNS). A latency can then be timed from a
// packet's arrival on this machine instead of from when a goroutine got
// round to reading it; on a busy machine that wait is most of the time a
// server adds (the relay's and the question's histograms count it).
//
// Where stamps cannot be had (another OS or architecture, or the option
// refused) the connections are the plain ones and Source returns nil:
// callers then time from the read.
package netstamp

import (
	"context"
	"net"
	"time"
)

// Dialer returns d's DialContext with stamped TCP connections.
func Dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return stamp(c), nil
	}
}

// Listener returns l with its accepted TCP connections stamped.
func Listener(l net.Listener) net.Listener { return listener{l} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return stamp(c), nil
}

// Source returns a function that tells when the data of c's latest read
// reached the kernel (zero before the first read), or nil when c is not
// stamped. It looks through a TLS connection or any wrapper with NetConn.
func Source(c net.Conn) func() time.Time {
	for range 4 {
		if s, ok := c.(*conn); ok {
			return s.arrivedAt
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}
