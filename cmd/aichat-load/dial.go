package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// dialer opens WebSocket connections, binding each to the next of its
// source addresses in turn. One (source IP, server IP, server port) triple
// has about 28,000 ephemeral ports (ip_local_port_range), so going past
// that to one listener needs several source addresses; all of 127.0.0.0/8
// is loopback on Linux, so 127.0.0.2, 127.0.0.3, ... work with no set-up.
type dialer struct {
	ips    []net.IP
	next   atomic.Uint64
	ws     websocket.Dialer
	rcvBuf int // SO_RCVBUF of every socket, when > 0 (a slow consumer's small window)
	mss    int // TCP_MAXSEG offered by every socket, when > 0 (see setMSS)
}

// sourceIPs returns 127.0.0.2 .. 127.0.0.(n+1).
func sourceIPs(n int) []net.IP {
	out := make([]net.IP, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, net.IPv4(127, 0, byte((2+i)/256), byte((2+i)%256)))
	}
	return out
}

func newDialer(nSource int, timeout time.Duration) *dialer {
	d := &dialer{ips: sourceIPs(nSource)}
	d.ws = websocket.Dialer{
		HandshakeTimeout: timeout,
		// Small buffers keep the generator's own memory per connection low;
		// a larger frame is read in pieces. Writes borrow a pooled buffer.
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		WriteBufferPool: &sync.Pool{},
		NetDialContext:  d.netDial,
	}
	return d
}

func (d *dialer) netDial(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.ws.HandshakeTimeout}
	if d.mss > 0 {
		nd.Control = func(_, _ string, c syscall.RawConn) error { return setMSS(c, d.mss) }
	}
	if len(d.ips) > 0 {
		ip := d.ips[d.next.Add(1)%uint64(len(d.ips))]
		nd.LocalAddr = &net.TCPAddr{IP: ip}
	}
	c, err := nd.DialContext(ctx, network, addr)
	if err == nil && d.rcvBuf > 0 {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(d.rcvBuf)
		}
	}
	return c, err
}

// wsURL turns http://host:port into ws://host:port/ws.
func wsURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("--url %q: want http://host:port", base)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/ws"
	return u.String(), nil
}

// dialWS opens a socket authenticated with token and returns it with the
// time the handshake took (TCP connect + HTTP upgrade, which on this
// server includes verifying the token and reading the user).
func (d *dialer) dialWS(ctx context.Context, target, token string) (*websocket.Conn, time.Duration, error) {
	h := http.Header{}
	if token != "" { // else the credential is in the URL (?ticket=)
		h.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	c, resp, err := d.ws.DialContext(ctx, target, h)
	took := time.Since(start)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			resp.Body.Close()
			return nil, took, fmt.Errorf("%w: HTTP %d %s", err, resp.StatusCode, bytes.TrimSpace(b))
		}
		return nil, took, err
	}
	return c, took, nil
}

// readFrames calls onFrame with every text frame until the socket fails or
// closes; the slice is reused, so onFrame must not keep it. gorilla answers
// the server's pings while this reads.
func readFrames(c *websocket.Conn, onFrame func([]byte)) error {
	buf := bytes.NewBuffer(make([]byte, 0, 1024))
	for {
		_, r, err := c.NextReader()
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		if onFrame != nil {
			onFrame(buf.Bytes())
		}
	}
}

// errorKey shortens an error to a stable label for counting.
func errorKey(err error) string {
	if ce, ok := err.(*websocket.CloseError); ok {
		return fmt.Sprintf("close %d", ce.Code)
	}
	s := err.Error()
	for _, known := range []string{"connection refused", "connection reset", "too many open files",
		"cannot assign requested address", "i/o timeout", "broken pipe", "EOF"} {
		if strings.Contains(s, known) {
			return known
		}
	}
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// counterMap counts labelled events from many goroutines.
type counterMap struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counterMap) add(k string, n int64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[k] += n
	c.mu.Unlock()
}

func (c *counterMap) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}
