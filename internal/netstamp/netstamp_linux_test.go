//go:build linux && (amd64 || arm64)

package netstamp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/netstamp"
)

// pair returns a stamped server side and a stamped client side of one
// loopback TCP connection; both are closed at the end of the test.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := netstamp.Listener(ln)
	t.Cleanup(func() { sl.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := sl.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = netstamp.Dialer(&net.Dialer{Timeout: 5 * time.Second})(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close() })
	if netstamp.Source(client) == nil || netstamp.Source(server) == nil {
		t.Fatal("a stamped pair without stamps: the kernel refused SO_TIMESTAMPNS")
	}
	return server, client
}

// TestStampIsArrivalNotRead: bytes that wait in the socket are timed from
// when they arrived, not from when they were read. That wait is what the
// server's latency histograms must not leave out.
func TestStampIsArrivalNotRead(t *testing.T) {
	server, client := pair(t)
	src := netstamp.Source(client)
	if !src().IsZero() {
		t.Fatal("a stamp before any read")
	}
	before := time.Now()
	if _, err := server.Write([]byte("chunk one")); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	time.Sleep(100 * time.Millisecond) // the reader is late
	buf := make([]byte, 64)
	n, err := client.Read(buf)
	read := time.Now()
	if err != nil || string(buf[:n]) != "chunk one" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	at := src()
	if at.Before(before.Add(-time.Millisecond)) || at.After(written.Add(20*time.Millisecond)) {
		t.Errorf("stamp %v is not the arrival: written between %v and %v", at, before, written)
	}
	if waited := read.Sub(at); waited < 90*time.Millisecond {
		t.Errorf("the stamp is %v before the read, want the ~100 ms the bytes waited", waited)
	}

	// The next read gets the next arrival.
	if _, err := server.Write([]byte("chunk two")); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Read(buf); err != nil {
		t.Fatal(err)
	}
	if next := src(); !next.After(at) {
		t.Errorf("second stamp %v is not after the first %v", next, at)
	}
}

// TestStampedConnBehaves: deadlines, the peer's close and a local close
// surface as the errors net/http and the WebSocket library look for.
func TestStampedConnBehaves(t *testing.T) {
	server, client := pair(t)
	buf := make([]byte, 8)

	client.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := client.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v, want a timeout", err)
	}
	client.SetReadDeadline(time.Time{})

	if n, err := client.Read(buf[:0]); n != 0 || err != nil {
		t.Errorf("empty read: %d, %v", n, err)
	}

	// net/http half-closes a connection whose request body it stops
	// reading, so the client still gets the response.
	cw, ok := server.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("a stamped conn has no CloseWrite")
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Read(buf); err != io.EOF {
		t.Errorf("read after the peer's CloseWrite: %v, want io.EOF", err)
	}
	if _, err := client.Write([]byte("still open")); err != nil {
		t.Errorf("write after the peer's CloseWrite: %v", err)
	}
	server.Close()

	server2, client2 := pair(t)
	_ = server2
	errc := make(chan error, 1)
	go func() { _, err := client2.Read(buf); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	client2.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read on a closed conn: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a blocked read did not end when its conn was closed")
	}
}

// TestStampedHTTPS: an HTTP server on a stamped listener and a client on
// a stamped dialer talk TLS; Source finds the stamps under the TLS
// connection, as the model client does for an https provider.
func TestStampedHTTPS(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Write(append([]byte("got "), body...))
	}))
	ts.Listener = netstamp.Listener(ts.Listener)
	ts.StartTLS()
	t.Cleanup(ts.Close)

	tr := ts.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = netstamp.Dialer(&net.Dialer{Timeout: 5 * time.Second})
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var conn net.Conn // what the transport hands the trace, as in the model client
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { conn = info.Conn }}
	for i := range 3 { // a kept-alive connection reads on
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST", ts.URL, strings.NewReader("ping"))
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "got ping" {
			t.Fatalf("request %d: %q", i, b)
		}
	}
	if _, ok := conn.(*tls.Conn); !ok {
		t.Fatalf("the transport's conn is a %T, want *tls.Conn", conn)
	}
	src := netstamp.Source(conn)
	if src == nil {
		t.Fatal("Source found no stamps under the TLS connection")
	}
	if at := src(); at.IsZero() || time.Since(at) > 10*time.Second || at.After(time.Now()) {
		t.Errorf("stamp under TLS: %v", at)
	}
}
