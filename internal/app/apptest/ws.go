package apptest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm"
	"github.com/aichat/aichat/internal/app"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/realtime"
	"github.com/gorilla/websocket"
)

// WithHub lets a test change real-time timings and limits.
func WithHub(f func(*realtime.Options)) Option {
	return func(_ *config.Config, o *app.Options) { f(&o.Hub) }
}

// WithRedis makes the app use the Redis at url, with keys under prefix.
func WithRedis(url, prefix string) Option {
	return func(c *config.Config, o *app.Options) {
		c.RedisURL = url
		o.BrokerPrefix = prefix
	}
}

// WithAI points the assistant at an OpenAI-compatible server (a fake
// upstream from llmtest) under the provider name "fake", with fast
// failures: no retries, a short idle timeout.
func WithAI(baseURL string) Option {
	return func(c *config.Config, o *app.Options) {
		c.AIProviders = []config.AIProvider{{Name: "fake", BaseURL: baseURL, MaxTokensField: "max_completion_tokens"}}
		if o.LLM == nil {
			o.LLM = &llm.Options{IdleTimeout: 3 * time.Second, MaxRetries: -1}
		}
	}
}

// Frame is one frame a test socket received.
type Frame struct {
	Type string          `json:"type"`
	ID   string          `json:"id"`
	Data json.RawMessage `json:"data"`
}

// Decode decodes the frame's data into v.
func (f Frame) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(f.Data, v); err != nil {
		t.Fatalf("decode %s data %s: %v", f.Type, f.Data, err)
	}
}

// WS is a real WebSocket client connected to the server under test. A
// goroutine reads every frame into a list the test waits on.
type WS struct {
	Conn *websocket.Conn

	mu       sync.Mutex
	cond     *sync.Cond
	frames   []Frame
	closeErr error // set when reading ended
}

// WSURL is the server's /ws address with the given query.
func (s *Server) WSURL(query string) string {
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws"
	if query != "" {
		u += "?" + query
	}
	return u
}

// Dial opens a socket with the given query and headers; it returns the
// handshake response so tests can check refusals.
func (s *Server) Dial(t testing.TB, query string, h http.Header) (*WS, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if p := h.Values("Sec-WebSocket-Protocol"); len(p) > 0 {
		d.Subprotocols = strings.Split(strings.Join(p, ","), ",")
		for i := range d.Subprotocols {
			d.Subprotocols[i] = strings.TrimSpace(d.Subprotocols[i])
		}
		h = h.Clone()
		h.Del("Sec-WebSocket-Protocol")
	}
	conn, resp, err := d.Dial(s.WSURL(query), h)
	if err != nil {
		return nil, resp, err
	}
	c := &WS{Conn: conn}
	c.cond = sync.NewCond(&c.mu)
	go c.read()
	t.Cleanup(func() { conn.Close() })
	return c, resp, nil
}

// Connect opens a socket authenticated with token (and the extra query,
// e.g. "resume=1") and waits for the hello frame.
func (s *Server) Connect(t testing.TB, token, query string) (*WS, Frame) {
	t.Helper()
	c, resp, err := s.Dial(t, query, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("connect: %v (status %d)", err, status)
	}
	return c, c.Expect(t, realtime.EventHello)
}

func (c *WS) read() {
	for {
		_, b, err := c.Conn.ReadMessage()
		c.mu.Lock()
		if err != nil {
			c.closeErr = err
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		var f Frame
		if json.Unmarshal(b, &f) != nil {
			f = Frame{Type: "!invalid", Data: b}
		}
		c.frames = append(c.frames, f)
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// Send writes a command frame.
func (c *WS) Send(t testing.TB, typ, id string, data any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": typ, "id": id, "data": data})
	if err != nil {
		t.Fatal(err)
	}
	c.SendRaw(t, b)
}

// SendRaw writes bytes as one text frame.
func (c *WS) SendRaw(t testing.TB, b []byte) {
	t.Helper()
	c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.Conn.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// Wait is how long Expect and friends wait for a frame.
var Wait = 5 * time.Second

// Expect returns the next frame of type typ, removing it and every frame
// before it; it fails the test if none comes in time.
func (c *WS) Expect(t testing.TB, typ string) Frame {
	t.Helper()
	f, ok := c.take(typ, Wait)
	if !ok {
		t.Fatalf("no %q frame within %v; got %s; read error: %v", typ, Wait, c.summary(), c.Err())
	}
	return f
}

// ExpectNone fails if a frame of type typ arrives within d.
func (c *WS) ExpectNone(t testing.TB, typ string, d time.Duration) {
	t.Helper()
	if f, ok := c.take(typ, d); ok {
		t.Fatalf("unexpected %q frame: %s", typ, f.Data)
	}
}

func (c *WS) take(typ string, d time.Duration) (Frame, bool) {
	deadline := time.Now().Add(d)
	timer := time.AfterFunc(d, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for i, f := range c.frames {
			if f.Type == typ {
				c.frames = c.frames[i+1:]
				return f, true
			}
		}
		if c.closeErr != nil || !time.Now().Before(deadline) {
			return Frame{}, false
		}
		c.cond.Wait()
	}
}

// Frames returns and clears everything received so far.
func (c *WS) Frames() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.frames
	c.frames = nil
	return f
}

// Closed waits until the server closes the socket and returns the close
// code, failing if it stays open.
func (c *WS) Closed(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for time.Now().Before(deadline) {
		if err := c.Err(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			return -1
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("socket still open after %v; got %s", Wait, c.summary())
	return 0
}

// Err is the error that ended reading, nil while the socket is open.
func (c *WS) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

func (c *WS) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var types []string
	for _, f := range c.frames {
		types = append(types, f.Type)
	}
	return "[" + strings.Join(types, " ") + "]"
}
