package realtime

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/auth"
	"github.com/gorilla/websocket"
)

// countingConn counts the writes that reach the connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// corkedPair returns a real socket pair whose server end is upgraded the
// way Hub.Accept does it, and the counter of its connection's writes.
func corkedPair(t *testing.T) (server *websocket.Conn, cork *corkConn, wire *countingConn, client *websocket.Conn) {
	t.Helper()
	type end struct {
		ws   *websocket.Conn
		cork *corkConn
	}
	ends := make(chan end, 1)
	pool := &sync.Pool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &corkWriter{ResponseWriter: w, pool: pool}
		c, err := (&websocket.Upgrader{}).Upgrade(cw, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		ends <- end{c, cw.conn}
	}))
	t.Cleanup(srv.Close)
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	var e end
	select {
	case e = <-ends:
	case <-time.After(5 * time.Second):
		t.Fatal("no server side")
	}
	t.Cleanup(func() { e.ws.Close() })
	wire = &countingConn{Conn: e.cork.Conn}
	e.cork.Conn = wire // nothing has been written since the upgrade
	return e.ws, e.cork, wire, client
}

// TestSessionCorkedWrites: frames that wait for a socket leave in one
// write, arrive complete and in order, and a close queued behind them is
// still preceded by every one of them.
func TestSessionCorkedWrites(t *testing.T) {
	h := testHub(Options{QueueSize: 256})
	server, cork, wire, client := corkedPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{ID: "s1", User: &auth.Principal{UserID: "u1"}, hub: h, conn: server, cork: cork, ctx: ctx, cancel: cancel,
		readDone: make(chan struct{}), bucket: tokenBucket{perMin: 600}}
	go s.readLoop()

	const n = 100
	s.writing = true // hold the writer while the frames queue
	for i := range n {
		s.push(item{typ: EventChatMessage, frame: fmt.Appendf(nil, `{"type":"chat_message","n":%d}`, i)})
	}
	s.begin()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range n {
		_, b, err := client.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want := fmt.Sprintf(`{"type":"chat_message","n":%d}`, i); string(b) != want {
			t.Fatalf("frame %d = %s, want %s", i, b, want)
		}
	}
	if w := wire.writes.Load(); w != 1 {
		t.Errorf("%d queued frames took %d writes, want 1", n, w)
	}

	// A ping from the client is answered (the reader's pong goes through
	// the same connection) while frames keep coming.
	pong := make(chan struct{}, 1)
	client.SetPongHandler(func(string) error { pong <- struct{}{}; return nil })
	if err := client.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	next := n
	for round := range 20 {
		s.mu.Lock()
		s.writing = true
		s.mu.Unlock()
		for range 5 {
			s.push(item{typ: EventChatMessage, frame: fmt.Appendf(nil, `{"n":%d}`, next)})
			next++
		}
		s.begin()
		for i := next - 5; i < next; i++ {
			if _, b, err := client.ReadMessage(); err != nil || string(b) != fmt.Sprintf(`{"n":%d}`, i) {
				t.Fatalf("round %d: read %s, %v; want frame %d", round, b, err, i)
			}
		}
		if len(pong) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-pong:
	default:
		t.Error("the client's ping was not answered")
	}

	s.mu.Lock()
	s.writing = true
	s.mu.Unlock()
	first := next
	for i := range 10 {
		s.push(item{typ: EventChatMessage, frame: fmt.Appendf(nil, `{"n":%d}`, first+i)})
	}
	s.close(websocket.CloseGoingAway, "Server is restarting.", "shutdown")
	s.begin()
	var got []string
	var closeErr error
	for {
		_, b, err := client.ReadMessage()
		if err != nil {
			closeErr = err
			break
		}
		got = append(got, string(b))
	}
	if !websocket.IsCloseError(closeErr, websocket.CloseGoingAway) {
		t.Fatalf("read ended with %v, want close 1001", closeErr)
	}
	// closing skips the backlog, but never a frame half-written: what
	// arrived is a prefix of what was queued, then the error frame.
	if len(got) == 0 || !strings.Contains(got[len(got)-1], `"type":"error"`) {
		t.Fatalf("frames before the close: %q, want the error frame last", got)
	}
	for i, f := range got[:len(got)-1] {
		if want := fmt.Sprintf(`{"n":%d}`, first+i); f != want {
			t.Fatalf("frame %d after the close was queued = %s, want %s", i, f, want)
		}
	}
	select {
	case <-s.readDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the session's reader did not end after the close")
	}
}
