//go:build linux && (amd64 || arm64)

package netstamp

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// stamp turns on the kernel's receive stamps for a TCP connection; any
// other connection, or one that refuses the option, is returned as is.
func stamp(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return c
	}
	return &conn{Conn: c, tcp: tc, raw: raw}
}

// conn reads with recvmsg to get the stamp. It embeds net.Conn, not
// *net.TCPConn, so that the TCP connection's WriteTo cannot read around
// Read; what only writes (ReadFrom, CloseWrite) is passed on.
type conn struct {
	net.Conn
	tcp *net.TCPConn
	raw syscall.RawConn
	oob [64]byte     // control messages; used under the fd's read lock (inside raw.Read)
	at  atomic.Int64 // Unix ns when the latest read's data arrived; 0: unknown
}

// CloseWrite sends a FIN: net/http does before closing a connection whose
// request body it stopped reading, so the client gets the response.
func (c *conn) CloseWrite() error { return c.tcp.CloseWrite() }

// ReadFrom writes to the connection (sendfile, splice) as the TCP
// connection does.
func (c *conn) ReadFrom(r io.Reader) (int64, error) { return c.tcp.ReadFrom(r) }

func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	rerr := c.raw.Read(func(fd uintptr) bool {
		var oobn int
		for {
			n, oobn, _, _, err = syscall.Recvmsg(int(fd), p, c.oob[:], 0)
			if err != syscall.EINTR {
				break
			}
		}
		if err == nil && n > 0 {
			c.keep(c.oob[:oobn])
		}
		if err == nil && raceEnabled {
			// The race detector learns that a read follows the peer's
			// write from syscall.Read and Write; Recvmsg does not tell it,
			// and it would then see races between a test and the server
			// it talks to. A zero-length read, which Linux answers at once
			// for a socket, tells it the same.
			syscall.Read(int(fd), nil)
		}
		return err != syscall.EAGAIN // false: wait until readable (or the deadline)
	})
	if rerr == nil && err != nil {
		rerr = os.NewSyscallError("recvmsg", err)
	}
	if rerr != nil {
		var op *net.OpError // raw.Read's own ("raw-read"): say read, as TCPConn.Read does
		if errors.As(rerr, &op) {
			rerr = op.Err
		}
		return 0, &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: rerr}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// keep stores the stamp from the control messages. For TCP the kernel
// gives the arrival of the last segment the read consumed: bytes that
// waited in the socket for later ones are timed from the later ones.
// A read without a stamp clears it, so that no caller times from an
// older read's.
func (c *conn) keep(oob []byte) {
	var ns int64
	msgs, _ := syscall.ParseSocketControlMessage(oob)
	for _, m := range msgs {
		// struct timespec on 64-bit Linux: two native-endian int64s.
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
			ns = sec*1e9 + nsec
		}
	}
	c.at.Store(ns)
}

func (c *conn) arrivedAt() time.Time {
	if ns := c.at.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
