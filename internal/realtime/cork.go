package realtime

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// corkConn lets a session's writer send every frame waiting for a socket in
// one write(2). gorilla/websocket writes each message with its own call;
// under load (a busy group chat, several answers to one tab) frames queue,
// and one system call plus one loopback or TCP segment per frame was the
// largest cost in the fan-out profile. While corked, writes collect in a
// pooled buffer; uncork sends them at once and gives the buffer back, so an
// idle socket holds none.
type corkConn struct {
	net.Conn
	pool *sync.Pool

	mu     sync.Mutex // guards corked and buf, never held across a write
	corked bool
	buf    *[]byte
}

// Write sends p, or buffers it while corked. gorilla/websocket serializes
// its own calls (the writer's frames, the reader's pongs) and sets the
// write deadline before each; uncork's write runs under the last one set,
// that of the newest frame. A pong that arrives while frames are buffered
// joins them; one written between uncork's swap and its write may go
// first, which WebSocket allows for control frames.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.corked {
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	if c.buf == nil {
		if b, ok := c.pool.Get().(*[]byte); ok {
			c.buf = b
		} else {
			b := make([]byte, 0, 8<<10)
			c.buf = &b
		}
	}
	*c.buf = append(*c.buf, p...)
	c.mu.Unlock()
	return len(p), nil
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork sends what was buffered. An error means the frames may not have
// left: the socket is done.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	c.corked = false
	b := c.buf
	c.buf = nil
	c.mu.Unlock()
	if b == nil {
		return nil
	}
	_, err := c.Conn.Write(*b) // net.Conn writes are whole: no interleaving with a pong
	if cap(*b) <= maxPooledCork {
		*b = (*b)[:0]
		c.pool.Put(b)
	}
	return err
}

// maxPooledCork keeps a rare huge batch from pinning its buffer.
const maxPooledCork = 256 << 10

// corkWriter hands the upgrader a corkConn when it hijacks the request's
// connection.
type corkWriter struct {
	http.ResponseWriter
	pool *sync.Pool
	conn *corkConn
}

func (w *corkWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &corkConn{Conn: nc, pool: w.pool}
	return w.conn, brw, nil
}
