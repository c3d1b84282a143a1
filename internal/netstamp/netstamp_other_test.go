//go:build !linux || !(amd64 || arm64)

package netstamp_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/netstamp"
)

// TestPlainWhereNoStamps: without kernel stamps the listener and dialer
// hand out the plain connections, which work as ever, and Source says
// there is nothing to read, so callers time from the read.
func TestPlainWhereNoStamps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := netstamp.Listener(ln)
	t.Cleanup(func() { sl.Close() })
	go func() {
		c, err := sl.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("hello"))
		c.Close()
	}()
	c, err := netstamp.Dialer(&net.Dialer{Timeout: 5 * time.Second})(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, ok := c.(*net.TCPConn); !ok {
		t.Errorf("dialed a %T, want the plain *net.TCPConn", c)
	}
	if b, err := io.ReadAll(c); err != nil || string(b) != "hello" {
		t.Errorf("read %q, %v", b, err)
	}
	if netstamp.Source(c) != nil {
		t.Error("Source found stamps on a plain connection")
	}
}
