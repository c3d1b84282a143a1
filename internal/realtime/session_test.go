package realtime

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/auth"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestTokenBucket(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := tokenBucket{perMin: 60} // one a second

	// A full minute's allowance may be spent at once.
	for i := range 60 {
		if !b.take(t0) {
			t.Fatalf("take %d of the first 60 refused", i+1)
		}
	}
	if b.take(t0) {
		t.Fatal("61st take at once allowed")
	}
	// It refills evenly: one token a second.
	if b.take(t0.Add(900 * time.Millisecond)) {
		t.Fatal("allowed after 0.9 s: less than one token refilled")
	}
	if !b.take(t0.Add(1100 * time.Millisecond)) {
		t.Fatal("refused after 1.1 s: one token should have refilled")
	}
	if b.take(t0.Add(1200 * time.Millisecond)) {
		t.Fatal("second take after 1.2 s allowed")
	}
	// Ten seconds refill ten tokens.
	n := 0
	for b.take(t0.Add(11200 * time.Millisecond)) {
		n++
	}
	if n != 10 {
		t.Fatalf("after 10 s idle: %d takes, want 10", n)
	}
	// A long idle period refills to the cap, not beyond.
	n = 0
	for b.take(t0.Add(time.Hour)) {
		n++
	}
	if n != 60 {
		t.Fatalf("after an hour idle: %d takes, want 60 (the cap)", n)
	}
}

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// testHub is a hub with only what a session needs, without a database.
func testHub(opt Options) *Hub {
	if opt.QueueSize == 0 {
		opt.QueueSize = 16
	}
	if opt.WriteWait == 0 {
		opt.WriteWait = time.Second
	}
	if opt.PongWait == 0 {
		opt.PongWait = time.Minute
	}
	if opt.MaxFrameBytes == 0 {
		opt.MaxFrameBytes = 1 << 16
	}
	h := &Hub{opt: opt, log: slog.New(slog.DiscardHandler), metrics: NewMetrics(nil), seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].users = map[string]*userSessions{}
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// offlineSession is a session without a socket whose writer never runs:
// what it would write stays in s.items for the test to read.
func offlineSession(h *Hub) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{ID: "s1", User: &auth.Principal{UserID: "u1"}, hub: h, ctx: ctx, cancel: cancel,
		readDone: make(chan struct{})}
	s.writing = true
	return s
}

func msgItem(chatID string, seq int64, tag string) item {
	return item{typ: EventChatMessage, frame: []byte(tag), chatID: chatID, seq: seq}
}

func queued(s *Session) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, it := range s.items {
		switch {
		case it.op == opClose:
			out = append(out, "close")
		case it.chatID != "":
			out = append(out, fmt.Sprintf("%s:%s/%d", it.frame, it.chatID, it.seq))
		default:
			out = append(out, string(it.frame))
		}
	}
	return out
}

func TestSessionHoldRelease(t *testing.T) {
	s := offlineSession(testHub(Options{}))
	s.hold()
	defer s.close(0, "", "test")

	// While holding, chat events wait; anything else goes out at once.
	s.push(item{typ: EventHello, frame: []byte("hello")})
	s.push(msgItem("a", 5, "live"))
	s.push(item{typ: EventUnreadCount, frame: []byte("unread")})
	s.push(msgItem("b", 2, "live"))
	s.push(msgItem("a", 6, "live"))
	s.push(item{typ: EventChatUpdated, frame: []byte("updated"), chatID: "a"}) // held: it has a chat
	s.push(msgItem("a", 7, "live"))
	if got, want := strings.Join(queued(s), " "), "hello unread"; got != want {
		t.Fatalf("while holding: queued %q, want %q", got, want)
	}

	// The replay (a 4..6, b 1..2) goes first, then the held events it did
	// not cover, in the order they arrived.
	s.release([]item{msgItem("a", 4, "replay"), msgItem("a", 5, "replay"), msgItem("a", 6, "replay"),
		msgItem("b", 1, "replay"), msgItem("b", 2, "replay")})
	want := "hello unread replay:a/4 replay:a/5 replay:a/6 replay:b/1 replay:b/2 updated:a/0 live:a/7"
	if got := strings.Join(queued(s), " "); got != want {
		t.Fatalf("after release:\n got %s\nwant %s", got, want)
	}

	// Live events flow again; a copy of a replayed message that arrives
	// late (its sender committed before the replay read the database but
	// published after the release) is not sent a second time.
	s.mu.Lock()
	s.items = nil
	s.mu.Unlock()
	s.push(msgItem("a", 6, "late"))
	s.push(msgItem("b", 2, "late"))
	s.push(msgItem("a", 8, "live"))
	s.push(msgItem("c", 1, "live"))
	if got, want := strings.Join(queued(s), " "), "live:a/8 live:c/1"; got != want {
		t.Fatalf("after release, live: queued %q, want %q", got, want)
	}
}

func TestSessionReleaseWithoutReplay(t *testing.T) {
	// The hold timer lets everything go when no resume comes.
	s := offlineSession(testHub(Options{}))
	s.hold()
	defer s.close(0, "", "test")
	s.push(msgItem("a", 1, "live"))
	s.push(msgItem("a", 2, "live"))
	s.release(nil)
	s.push(msgItem("a", 3, "live"))
	if got, want := strings.Join(queued(s), " "), "live:a/1 live:a/2 live:a/3"; got != want {
		t.Fatalf("queued %q, want %q", got, want)
	}
}

func TestSessionHeldOverflowCloses(t *testing.T) {
	h := testHub(Options{QueueSize: 2})
	s := offlineSession(h)
	s.hold()
	for i := range 8 { // QueueSize*4 held events fit
		s.push(msgItem("a", int64(i+1), "live"))
	}
	if s.closed.Load() {
		t.Fatal("closed with QueueSize*4 events held")
	}
	s.push(msgItem("a", 9, "live"))
	if !s.closed.Load() {
		t.Fatal("still open with more than QueueSize*4 events held")
	}
	if got := counter(h.metrics.QueueDrops); got != 1 {
		t.Fatalf("queue drops = %v, want 1", got)
	}
	if got := queued(s); len(got) != 1 || got[0] != "close" {
		t.Fatalf("queued %q, want only the close", got)
	}
}

func TestSessionQueueFullCloses(t *testing.T) {
	h := testHub(Options{QueueSize: 3})
	s := offlineSession(h)
	for range 3 {
		s.push(item{typ: EventTyping, frame: []byte("t")})
	}
	s.push(item{op: opPing}) // pings do not count against the queue
	if s.closed.Load() {
		t.Fatal("closed with a full queue, before one more frame")
	}
	s.push(item{typ: EventTyping, frame: []byte("t")})
	if !s.closed.Load() {
		t.Fatal("open with more than QueueSize frames queued")
	}
	if got := counter(h.metrics.QueueDrops); got != 1 {
		t.Fatalf("queue drops = %v, want 1", got)
	}
	s.push(item{typ: EventTyping, frame: []byte("t")}) // closing: ignored
	if got := queued(s); len(got) != 1 || got[0] != "close" {
		t.Fatalf("queued %q, want only the close", got)
	}
}

// wsPair returns the two ends of a real WebSocket connection.
func wsPair(t *testing.T) (server, client *websocket.Conn) {
	t.Helper()
	conns := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		conns <- c
	}))
	t.Cleanup(srv.Close)
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	select {
	case server = <-conns:
	case <-time.After(5 * time.Second):
		t.Fatal("no server side")
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

// A peer that stays connected but stops reading blocks the writer until
// WriteWait; then the socket must be closed, so that the reader ends and
// the session leaves the hub, instead of lingering until the pong timeout.
func TestSessionStalledPeerIsClosed(t *testing.T) {
	h := testHub(Options{QueueSize: 4, WriteWait: 300 * time.Millisecond, PongWait: 30 * time.Second})
	server, _ := wsPair(t) // the client never reads
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{ID: "s1", User: &auth.Principal{UserID: "u1"}, hub: h, conn: server, ctx: ctx, cancel: cancel,
		readDone: make(chan struct{}), bucket: tokenBucket{perMin: 600}}
	go s.readLoop()

	big := make([]byte, 4<<20) // more than the socket buffers hold
	start := time.Now()
	s.push(item{typ: EventChatMessage, frame: big})
	time.Sleep(100 * time.Millisecond) // the writer is now blocked in that write
	for i := 0; i < 10 && !s.closed.Load(); i++ {
		s.push(item{typ: EventChatMessage, frame: big})
	}
	if !s.closed.Load() {
		t.Fatal("session not closed as slow")
	}
	select {
	case <-s.readDone:
		t.Logf("closed %v after the first write", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled socket is still open 5 s after the write deadline passed")
	}
}
