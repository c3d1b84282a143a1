package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/realtime"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/gorilla/websocket"
)

// These tests cover the "Connecting" part of the real-time spec from the
// client's side: how /ws authenticates, which origins may open a socket,
// the limits, and that every close the server starts is announced by a
// final {"type":"error","data":{"code":"webSocket.closed"}} frame followed
// by a close frame with the right code.

const wscClosedCode = "webSocket.closed"

// wscClock is a goroutine-safe clock a test can move forward.
type wscClock struct{ off atomic.Int64 }

func (c *wscClock) now() time.Time { return time.Now().Add(time.Duration(c.off.Load())).UTC() }

func (c *wscClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// wscRefusal is what a client sees when the handshake is refused.
type wscRefusal struct {
	Status int
	Header http.Header
	Err    apptest.Error
	Body   string
}

// wscRefused dials and requires a refusal before the upgrade, with a JSON
// error body.
func wscRefused(t *testing.T, s *apptest.Server, query string, h http.Header) wscRefusal {
	t.Helper()
	ws, resp, err := s.Dial(t, query, h)
	if err == nil {
		ws.Conn.Close()
		t.Fatalf("dial ?%s: upgraded (status %d), want a refusal before the upgrade", wscRedact(query), resp.StatusCode)
	}
	if resp == nil {
		t.Fatalf("dial ?%s: %v: no HTTP answer", wscRedact(query), err)
	}
	b, _ := io.ReadAll(resp.Body)
	r := wscRefusal{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("refusal %d: Content-Type %q, want JSON", resp.StatusCode, ct)
	}
	if err := json.Unmarshal(b, &r.Err); err != nil {
		t.Fatalf("refusal %d: body %q is not a JSON error: %v", resp.StatusCode, b, err)
	}
	if r.Err.Code == "" || r.Err.Message == "" {
		t.Errorf("refusal %d: body %s: want code and message", resp.StatusCode, b)
	}
	return r
}

func wscRedact(q string) string {
	if len(q) > 24 {
		return q[:24] + "..."
	}
	return q
}

// wscOpen dials and requires an upgrade followed by the hello frame.
func wscOpen(t *testing.T, s *apptest.Server, query string, h http.Header) (*apptest.WS, *http.Response, apptest.Frame) {
	t.Helper()
	ws, resp, err := s.Dial(t, query, h)
	if err != nil {
		status, body := 0, ""
		if resp != nil {
			status = resp.StatusCode
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		t.Fatalf("dial ?%s: %v (status %d %s)", wscRedact(query), err, status, body)
	}
	return ws, resp, ws.Expect(t, realtime.EventHello)
}

func wscBearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

func wscTokenQuery(token string) string { return url.Values{"token": {token}}.Encode() }

func wscTicketQuery(ticket string) string { return url.Values{"ticket": {ticket}}.Encode() }

func wscProtocols(p ...string) http.Header {
	return http.Header{"Sec-WebSocket-Protocol": {strings.Join(p, ", ")}}
}

// wscTicket asks for a WebSocket ticket with the access token.
func wscTicket(t *testing.T, s *apptest.Server, token string) string {
	t.Helper()
	r := s.Do(t, "POST", "/api/v1/ws/ticket", token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("ticket: %d %s", r.Status, r.Body)
	}
	var b struct {
		Ticket string `json:"ticket"`
	}
	r.JSON(t, &b)
	if b.Ticket == "" {
		t.Fatalf("ticket: empty in %s", r.Body)
	}
	return b.Ticket
}

// wscLogin signs the user in again: a second sign-in session.
func wscLogin(t *testing.T, s *apptest.Server, email, password string) apptest.Session {
	t.Helper()
	r := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": password})
	if r.Status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r.Status, r.Body)
	}
	var sess apptest.Session
	r.JSON(t, &sess)
	return sess
}

// wscAlive proves the socket is open and served: a ping command gets its
// pong, with the id echoed.
func wscAlive(t *testing.T, ws *apptest.WS, id string) {
	t.Helper()
	ws.Send(t, realtime.CmdPing, id, nil)
	for {
		f := ws.Expect(t, realtime.EventPong)
		if f.ID == id {
			break
		}
	}
	if err := ws.Err(); err != nil {
		t.Fatalf("socket closed: %v", err)
	}
}

type wscErrorData struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Command  string `json:"command"`
	ClientID string `json:"client_id"`
}

// wscFinal waits for the server to close ws and checks what the client saw:
// the close code, and a webSocket.closed error frame as the last frame
// before it. It returns that frame's message.
func wscFinal(t *testing.T, ws *apptest.WS, wantCode int) string {
	t.Helper()
	code := ws.Closed(t)
	frames := ws.Frames()
	var types []string
	for _, f := range frames {
		types = append(types, f.Type)
	}
	if code != wantCode {
		t.Errorf("close code %d, want %d (frames before it: %v; read error: %v)", code, wantCode, types, ws.Err())
	}
	if len(frames) == 0 {
		t.Errorf("close %d came without a final error frame (no frame at all)", code)
		return ""
	}
	last := frames[len(frames)-1]
	if last.Type != realtime.EventError {
		t.Errorf("last frame before close %d is %q %s, want an error frame %s (frames: %v)", code, last.Type, last.Data, wscClosedCode, types)
		return ""
	}
	var d wscErrorData
	last.Decode(t, &d)
	if d.Code != wscClosedCode || d.Message == "" {
		t.Errorf("final frame data %s, want code %s with a message", last.Data, wscClosedCode)
	}
	return d.Message
}

// wscMetrics reads /metrics and returns the aichat_ws_* samples by their
// name with labels, e.g. `aichat_ws_disconnects_total{reason="client"}`.
func wscMetrics(t *testing.T, s *apptest.Server) map[string]float64 {
	t.Helper()
	r := s.Do(t, "GET", "/metrics", "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("metrics: %d %s", r.Status, r.Body)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if !strings.HasPrefix(line, "aichat_ws_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// wscWait polls cond until it holds or a generous deadline passes.
func wscWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(apptest.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, apptest.Wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wscSecretNotLogged fails if secret appears in any log line.
func wscSecretNotLogged(t *testing.T, s *apptest.Server, name, secret string) {
	t.Helper()
	for _, line := range strings.Split(s.Logs(), "\n") {
		if strings.Contains(line, secret) {
			t.Errorf("%s appears in a log line: %s", name, line)
			return
		}
	}
}

func TestWSConnCredentials(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		ticket := wscTicket(t, s, alice.AccessToken)

		cases := []struct {
			name  string
			query string
			h     http.Header
		}{
			{"authorization header", "", wscBearer(alice.AccessToken)},
			{"ticket", wscTicketQuery(ticket), nil},
			{"token in query", wscTokenQuery(alice.AccessToken), nil},
			{"subprotocol", "", wscProtocols(realtime.Subprotocol, "bearer."+alice.AccessToken)},
			{"subprotocol, token offered first", "", wscProtocols("bearer."+alice.AccessToken, realtime.Subprotocol)},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ws, resp, hello := wscOpen(t, s, tc.query, tc.h)
				var d struct {
					SessionID string    `json:"session_id"`
					UserID    string    `json:"user_id"`
					ExpiresAt time.Time `json:"expires_at"`
				}
				hello.Decode(t, &d)
				if d.UserID != alice.User.ID || d.SessionID == "" || d.ExpiresAt.IsZero() {
					t.Errorf("hello %s: want alice's id %s, a session id and the token's expiry", hello.Data, alice.User.ID)
				}
				if tc.h.Get("Sec-WebSocket-Protocol") != "" {
					if got := resp.Header.Values("Sec-WebSocket-Protocol"); len(got) != 1 || got[0] != realtime.Subprotocol {
						t.Errorf("Sec-WebSocket-Protocol answered %q, want exactly %q", got, realtime.Subprotocol)
					}
					if ws.Conn.Subprotocol() != realtime.Subprotocol {
						t.Errorf("negotiated subprotocol %q, want %q", ws.Conn.Subprotocol(), realtime.Subprotocol)
					}
				}
				for k, vs := range resp.Header {
					for _, v := range vs {
						if strings.Contains(v, alice.AccessToken) {
							t.Errorf("handshake answer echoes the access token in %s", k)
						}
					}
				}
				wscAlive(t, ws, "p-"+tc.name)
			})
		}

		t.Run("ticket is single-use", func(t *testing.T) {
			r := wscRefused(t, s, wscTicketQuery(ticket), nil)
			if r.Status != http.StatusUnauthorized || r.Err.Code != "auth.invalidToken" {
				t.Errorf("second use of a ticket: %d %s, want 401 auth.invalidToken", r.Status, r.Body)
			}
		})

		if !strings.Contains(s.Logs(), `"path":"/ws"`) {
			t.Fatalf("no /ws request was logged; the log check below would prove nothing:\n%s", s.Logs())
		}
		wscSecretNotLogged(t, s, "the access token", alice.AccessToken)
		wscSecretNotLogged(t, s, "the ticket", ticket)
	})
}

func TestWSConnRefusedCredentials(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		clock := &wscClock{}
		s := apptest.Start(t, e, apptest.WithClock(clock.now))
		bob := s.Register(t, "bob@example.com")
		early := wscTicket(t, s, bob.AccessToken) // redeemed after the token expired
		bogus := "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"

		type check struct {
			name   string
			query  string
			h      http.Header
			status int
			code   string
		}
		run := func(t *testing.T, cases []check) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					r := wscRefused(t, s, tc.query, tc.h)
					if r.Status != tc.status || r.Err.Code != tc.code {
						t.Errorf("%d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
					}
					if strings.Contains(r.Body, bob.AccessToken) || strings.Contains(r.Header.Get("Sec-WebSocket-Protocol"), bob.AccessToken) {
						t.Errorf("refusal echoes the token: %s", r.Body)
					}
				})
			}
		}
		run(t, []check{
			{"no credential", "", nil, 401, "auth.required"},
			{"only the subprotocol, no token", "", wscProtocols(realtime.Subprotocol), 401, "auth.required"},
			{"empty token query", "token=", nil, 401, "auth.required"},
			{"basic auth header", "", http.Header{"Authorization": {"Basic Ym9iOnB3"}}, 401, "auth.invalidToken"},
			{"bogus bearer", "", wscBearer(bogus), 401, "auth.invalidToken"},
			{"bogus token query", wscTokenQuery(bogus), nil, 401, "auth.invalidToken"},
			{"bogus subprotocol token", "", wscProtocols(realtime.Subprotocol, "bearer."+bogus), 401, "auth.invalidToken"},
			{"unknown ticket", wscTicketQuery("no-such-ticket"), nil, 401, "auth.invalidToken"},
		})

		clock.advance(time.Hour)
		run(t, []check{
			{"expired bearer", "", wscBearer(bob.AccessToken), 401, "auth.tokenExpired"},
			{"expired token query", wscTokenQuery(bob.AccessToken), nil, 401, "auth.tokenExpired"},
			{"expired subprotocol token", "", wscProtocols(realtime.Subprotocol, "bearer."+bob.AccessToken), 401, "auth.tokenExpired"},
			{"ticket past its life", wscTicketQuery(early), nil, 401, "auth.invalidToken"},
		})
		if r := s.Do(t, "POST", "/api/v1/ws/ticket", bob.AccessToken, nil); r.Status != 401 || r.Err(t).Code != "auth.tokenExpired" {
			t.Errorf("ticket for an expired token: %d %s, want 401 auth.tokenExpired", r.Status, r.Body)
		}
		if n := s.App.Hub.Connections(); n != 0 {
			t.Errorf("%d sockets open after only refusals", n)
		}
		wscSecretNotLogged(t, s, "the access token", bob.AccessToken)
	})
}

func TestWSConnOrigin(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t))
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	own := "http://" + u.Host
	port := u.Port()
	listed := apptest.Start(t, storetest.SQLite(t), apptest.WithConfig(func(c *config.Config) {
		c.AllowedOrigins = []string{"https://chat.example.com"}
	}))
	lu, _ := url.Parse(listed.URL)
	listedOwn := "http://" + lu.Host

	cases := []struct {
		name   string
		s      *apptest.Server
		origin string // "" sends none
		ok     bool
	}{
		{"default: no Origin (not a browser)", s, "", true},
		{"default: own origin", s, own, true},
		{"default: own origin, upper case", s, strings.ToUpper(own), true},
		{"default: foreign site", s, "https://evil.example", false},
		{"default: same address, other port", s, "http://127.0.0.1:" + strconv.Itoa(wscOtherPort(port)), false},
		{"default: own host as a subdomain prefix", s, "http://" + u.Host + ".evil.example", false},
		{"default: null origin", s, "null", false},
		{"listed: allowed origin", listed, "https://chat.example.com", true},
		{"listed: allowed origin, trailing slash", listed, "https://chat.example.com/", true},
		{"listed: allowed origin, mixed case", listed, "HTTPS://Chat.Example.COM", true},
		{"listed: no Origin", listed, "", true},
		{"listed: own origin is not listed", listed, listedOwn, false},
		{"listed: other scheme", listed, "http://chat.example.com", false},
		{"listed: lookalike", listed, "https://chat.example.com.evil.example", false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sess := tc.s.Register(t, "origin"+strconv.Itoa(i)+"@example.com")
			h := wscBearer(sess.AccessToken)
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			if tc.ok {
				ws, _, _ := wscOpen(t, tc.s, "", h)
				wscAlive(t, ws, "o")
				return
			}
			before := wscMetrics(t, tc.s)["aichat_ws_connects_total"]
			r := wscRefused(t, tc.s, "", h)
			if r.Status != http.StatusForbidden || r.Err.Code != "webSocket.originForbidden" {
				t.Errorf("origin %q: %d %s, want 403 webSocket.originForbidden", tc.origin, r.Status, r.Body)
			}
			if after := wscMetrics(t, tc.s)["aichat_ws_connects_total"]; after != before {
				t.Errorf("origin %q: a socket was accepted (connects %v -> %v)", tc.origin, before, after)
			}
		})
	}
}

func wscOtherPort(p string) int {
	n, _ := strconv.Atoi(p)
	if n == 1 {
		return 2
	}
	return n - 1
}

func TestWSConnPerUserLimit(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t), apptest.WithConfig(func(c *config.Config) { c.WSMaxConnsPerUser = 2 }))
	alice := s.Register(t, "alice@example.com")
	bob := s.Register(t, "bob@example.com")
	a1, _ := s.Connect(t, alice.AccessToken, "")
	a2, _ := s.Connect(t, alice.AccessToken, "")

	for _, tc := range []struct {
		name  string
		query string
		h     http.Header
	}{
		{"header", "", wscBearer(alice.AccessToken)},
		{"ticket", wscTicketQuery(wscTicket(t, s, alice.AccessToken)), nil},
		{"subprotocol", "", wscProtocols(realtime.Subprotocol, "bearer."+alice.AccessToken)},
	} {
		t.Run("third by "+tc.name, func(t *testing.T) {
			r := wscRefused(t, s, tc.query, tc.h)
			if r.Status != http.StatusTooManyRequests || r.Err.Code != "rateLimit.exceeded" {
				t.Errorf("%d %s, want 429 rateLimit.exceeded", r.Status, r.Body)
			}
			if r.Header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
		})
	}
	// The open ones are unaffected, and another user is not limited by alice.
	wscAlive(t, a1, "a1")
	wscAlive(t, a2, "a2")
	b, _ := s.Connect(t, bob.AccessToken, "")
	wscAlive(t, b, "b")

	// When one closes, a new one fits again.
	a1.Conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	a1.Closed(t)
	wscWait(t, "a connection slot after one socket closed", func() bool {
		ws, _, err := s.Dial(t, "", wscBearer(alice.AccessToken))
		if err != nil {
			return false
		}
		ws.Expect(t, realtime.EventHello)
		return true
	})
	wscAlive(t, a2, "a2 again")
}

func TestWSConnFrameLimit(t *testing.T) {
	const limit = 1024
	s := apptest.Start(t, storetest.SQLite(t), apptest.WithConfig(func(c *config.Config) { c.WSMaxFrameBytes = limit }))
	alice := s.Register(t, "alice@example.com")
	ws, _ := s.Connect(t, alice.AccessToken, "")
	other, _ := s.Connect(t, alice.AccessToken, "")

	frame := func(n int) []byte {
		b := []byte(`{"type":"ping","id":"big","data":{"pad":""}}`)
		pad := strings.Repeat("x", n-len(b))
		return []byte(`{"type":"ping","id":"big","data":{"pad":"` + pad + `"}}`)
	}
	ws.SendRaw(t, frame(limit)) // exactly at the limit: fine
	if f := ws.Expect(t, realtime.EventPong); f.ID != "big" {
		t.Fatalf("pong id %q", f.ID)
	}
	// One byte over. The server may close before the client finishes
	// writing, so a write error is not a failure.
	ws.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = ws.Conn.WriteMessage(websocket.TextMessage, frame(limit+1))
	if code := ws.Closed(t); code != websocket.CloseMessageTooBig {
		t.Errorf("close code %d, want 1009", code)
	}
	wscAlive(t, other, "other") // the user's other socket is unaffected
}

func TestWSConnFrameTooBigFinalFrame(t *testing.T) {
	const limit = 1024
	s := apptest.Start(t, storetest.SQLite(t), apptest.WithConfig(func(c *config.Config) { c.WSMaxFrameBytes = limit }))
	alice := s.Register(t, "alice@example.com")
	ws, _ := s.Connect(t, alice.AccessToken, "")
	ws.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = ws.Conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","data":"`+strings.Repeat("x", 2*limit)+`"}`))
	msg := wscFinal(t, ws, websocket.CloseMessageTooBig)
	if !strings.Contains(msg, strconv.Itoa(limit)) {
		t.Errorf("final message %q does not name the limit %d", msg, limit)
	}
}

func TestWSConnCommandRateLimit(t *testing.T) {
	const perMin = 5
	s := apptest.Start(t, storetest.SQLite(t), apptest.WithConfig(func(c *config.Config) { c.WSCommandsPerMin = perMin }))
	alice := s.Register(t, "alice@example.com")
	ws, _ := s.Connect(t, alice.AccessToken, "")
	other, _ := s.Connect(t, alice.AccessToken, "")

	// Past the allowance at once. Writes after the server's close may fail.
	for i := 0; i < 3*perMin; i++ {
		b, _ := json.Marshal(map[string]any{"type": realtime.CmdPing, "id": "r" + strconv.Itoa(i)})
		ws.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if ws.Conn.WriteMessage(websocket.TextMessage, b) != nil {
			break
		}
	}
	code := ws.Closed(t)
	frames := ws.Frames()
	pongs := 0
	for _, f := range frames {
		if f.Type == realtime.EventPong {
			pongs++
			if n, _ := strconv.Atoi(strings.TrimPrefix(f.ID, "r")); n >= perMin {
				t.Errorf("pong for command %s, beyond the %d allowed", f.ID, perMin)
			}
		}
	}
	if pongs > perMin {
		t.Errorf("%d pongs, want at most %d", pongs, perMin)
	}
	if code != websocket.ClosePolicyViolation {
		t.Errorf("close code %d, want 1008", code)
	}
	if len(frames) == 0 || frames[len(frames)-1].Type != realtime.EventError {
		t.Fatalf("frames %v: want a final error frame", frames)
	}
	var d wscErrorData
	frames[len(frames)-1].Decode(t, &d)
	if d.Code != wscClosedCode || d.Message == "" {
		t.Errorf("final frame %+v, want %s with a message", d, wscClosedCode)
	}
	wscAlive(t, other, "other") // the limit is per socket
}

func TestWSConnBadCommands(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t))
	alice := s.Register(t, "alice@example.com")
	ws, _ := s.Connect(t, alice.AccessToken, "")

	cases := []struct {
		name, frame, id, code, command string
	}{
		{"unknown command", `{"type":"fly","id":"u1","data":{}}`, "u1", "webSocket.unknownCommand", "fly"},
		{"unknown command without data", `{"type":"subscribe","id":"u2"}`, "u2", "webSocket.unknownCommand", "subscribe"},
		{"bad data for a known command", `{"type":"typing","id":"b1","data":{"chat":"x"}}`, "b1", "webSocket.badCommand", "typing"},
		{"data of the wrong type", `{"type":"read","id":"b2","data":"all"}`, "b2", "webSocket.badCommand", "read"},
		{"truncated JSON", `{"type":"ping","id":`, "", "webSocket.badCommand", ""},
		{"not JSON", `hello`, "", "webSocket.badCommand", ""},
		{"JSON array", `[1,2,3]`, "", "webSocket.badCommand", ""},
		{"empty frame", ``, "", "webSocket.badCommand", ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws.SendRaw(t, []byte(tc.frame))
			f := ws.Expect(t, realtime.EventError)
			var d wscErrorData
			f.Decode(t, &d)
			if d.Code != tc.code || d.Message == "" {
				t.Errorf("error %s, want code %s with a message", f.Data, tc.code)
			}
			if f.ID != tc.id {
				t.Errorf("error id %q, want %q echoed", f.ID, tc.id)
			}
			if tc.command != "" && d.Command != tc.command {
				t.Errorf("error names command %q, want %q", d.Command, tc.command)
			}
			wscAlive(t, ws, "after-"+strconv.Itoa(i)) // still open and served
		})
	}
}

func TestWSConnBadCommandEchoesID(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t))
	alice := s.Register(t, "alice@example.com")
	ws, _ := s.Connect(t, alice.AccessToken, "")
	ws.SendRaw(t, []byte(`{"id":"m1","data":{}}`))
	f := ws.Expect(t, realtime.EventError)
	if f.ID != "m1" {
		t.Errorf("error id %q for a command with id m1 and no type, want m1 (data %s)", f.ID, f.Data)
	}
	wscAlive(t, ws, "after")
}

func TestWSConnShutdown(t *testing.T) {
	cases := []struct {
		name string
		stop func(s *apptest.Server)
	}{
		{"hub shutdown", func(s *apptest.Server) { s.App.Hub.Shutdown() }},
		{"app close", func(s *apptest.Server) { s.App.Close() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := apptest.Start(t, storetest.SQLite(t))
			alice := s.Register(t, "alice@example.com")
			bob := s.Register(t, "bob@example.com")
			var socks []*apptest.WS
			for _, tok := range []string{alice.AccessToken, alice.AccessToken, bob.AccessToken} {
				ws, _ := s.Connect(t, tok, "")
				socks = append(socks, ws)
			}
			ws, _, _ := wscOpen(t, s, wscTicketQuery(wscTicket(t, s, bob.AccessToken)), nil)
			socks = append(socks, ws)

			tc.stop(s)
			for i, ws := range socks {
				t.Run("socket "+strconv.Itoa(i), func(t *testing.T) {
					wscFinal(t, ws, websocket.CloseGoingAway)
				})
			}
		})
	}
}

func TestWSConnRefusedAfterShutdown(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t))
	alice := s.Register(t, "alice@example.com")
	s.App.Hub.Shutdown()
	ws, resp, err := s.Dial(t, "", wscBearer(alice.AccessToken))
	if err != nil {
		if resp == nil || resp.StatusCode < 400 {
			t.Fatalf("dial after shutdown: %v", err)
		}
		return // refused before the upgrade: fine
	}
	// Upgraded: it must at least be told to go away at once.
	wscFinal(t, ws, websocket.CloseGoingAway)
}

func TestWSConnTokenExpiry(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel() // each engine waits for a real token expiry
		s := apptest.Start(t, e, apptest.WithConfig(func(c *config.Config) { c.AccessTTL = 2 * time.Second }))
		alice := s.Register(t, "alice@example.com")
		ticket := wscTicket(t, s, alice.AccessToken)

		socks := map[string]*apptest.WS{}
		socks["header"], _ = s.Connect(t, alice.AccessToken, "")
		socks["ticket"], _, _ = wscOpen(t, s, wscTicketQuery(ticket), nil)
		socks["query"], _, _ = wscOpen(t, s, wscTokenQuery(alice.AccessToken), nil)
		socks["subprotocol"], _, _ = wscOpen(t, s, "", wscProtocols(realtime.Subprotocol, "bearer."+alice.AccessToken))
		for name, ws := range socks {
			t.Run(name, func(t *testing.T) {
				wscFinal(t, ws, realtime.CloseTokenExpired)
			})
		}
	})
}

func TestWSConnLogout(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		first := s.Register(t, "alice@example.com")
		second := wscLogin(t, s, "alice@example.com", apptest.Password)
		bob := s.Register(t, "bob@example.com")

		gone := map[string]*apptest.WS{}
		gone["header"], _ = s.Connect(t, first.AccessToken, "")
		gone["ticket"], _, _ = wscOpen(t, s, wscTicketQuery(wscTicket(t, s, first.AccessToken)), nil)
		gone["subprotocol"], _, _ = wscOpen(t, s, "", wscProtocols(realtime.Subprotocol, "bearer."+first.AccessToken))
		stay := map[string]*apptest.WS{}
		stay["other sign-in"], _ = s.Connect(t, second.AccessToken, "")
		stay["other sign-in by ticket"], _, _ = wscOpen(t, s, wscTicketQuery(wscTicket(t, s, second.AccessToken)), nil)
		stay["other user"], _ = s.Connect(t, bob.AccessToken, "")

		if r := s.Do(t, "POST", "/api/v1/auth/logout", "", map[string]string{"refresh_token": first.RefreshToken}); r.Status != http.StatusNoContent {
			t.Fatalf("logout: %d %s", r.Status, r.Body)
		}
		for name, ws := range gone {
			t.Run("closed: "+name, func(t *testing.T) {
				wscFinal(t, ws, realtime.CloseTokenExpired)
			})
		}
		for name, ws := range stay {
			t.Run("open: "+name, func(t *testing.T) {
				wscAlive(t, ws, "alive")
			})
		}
	})
}

func TestWSConnPasswordChange(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		first := s.Register(t, "alice@example.com")
		second := wscLogin(t, s, "alice@example.com", apptest.Password)
		bob := s.Register(t, "bob@example.com")

		gone := map[string]*apptest.WS{}
		gone["changer's socket"], _ = s.Connect(t, first.AccessToken, "")
		gone["other sign-in"], _ = s.Connect(t, second.AccessToken, "")
		gone["other sign-in by ticket"], _, _ = wscOpen(t, s, wscTicketQuery(wscTicket(t, s, second.AccessToken)), nil)
		other, _ := s.Connect(t, bob.AccessToken, "")

		r := s.Do(t, "POST", "/api/v1/me/password", first.AccessToken,
			map[string]string{"current_password": apptest.Password, "new_password": "a brand new passphrase"})
		if r.Status != http.StatusOK {
			t.Fatalf("password change: %d %s", r.Status, r.Body)
		}
		var fresh apptest.Session
		r.JSON(t, &fresh)
		for name, ws := range gone {
			t.Run("closed: "+name, func(t *testing.T) {
				wscFinal(t, ws, realtime.CloseTokenExpired)
			})
		}
		wscAlive(t, other, "bob")

		if r := wscRefused(t, s, "", wscBearer(second.AccessToken)); r.Status != http.StatusUnauthorized {
			t.Errorf("old token after password change: %d %s, want 401", r.Status, r.Body)
		}
		ws, _ := s.Connect(t, fresh.AccessToken, "")
		wscAlive(t, ws, "fresh")
	})
}

func TestWSConnAdminBlock(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		admin := s.Admin(t, "root@example.com")
		mallory := s.Register(t, "mallory@example.com")
		bob := s.Register(t, "bob@example.com")
		early := wscTicket(t, s, mallory.AccessToken) // issued before the block

		gone := map[string]*apptest.WS{}
		gone["header"], _ = s.Connect(t, mallory.AccessToken, "")
		gone["ticket"], _, _ = wscOpen(t, s, wscTicketQuery(wscTicket(t, s, mallory.AccessToken)), nil)
		other, _ := s.Connect(t, bob.AccessToken, "")
		adminWS, _ := s.Connect(t, admin.AccessToken, "")

		if r := s.Do(t, "PATCH", "/api/v1/admin/users/"+mallory.User.ID, admin.AccessToken, map[string]any{"blocked": true}); r.Status != http.StatusOK {
			t.Fatalf("block: %d %s", r.Status, r.Body)
		}
		for name, ws := range gone {
			t.Run("closed: "+name, func(t *testing.T) {
				wscFinal(t, ws, websocket.ClosePolicyViolation)
			})
		}
		wscAlive(t, other, "bob")
		wscAlive(t, adminWS, "admin")

		for _, tc := range []struct {
			name  string
			query string
			h     http.Header
		}{
			{"header", "", wscBearer(mallory.AccessToken)},
			{"token query", wscTokenQuery(mallory.AccessToken), nil},
			{"subprotocol", "", wscProtocols(realtime.Subprotocol, "bearer."+mallory.AccessToken)},
			{"ticket issued before the block", wscTicketQuery(early), nil},
		} {
			t.Run("refused: "+tc.name, func(t *testing.T) {
				r := wscRefused(t, s, tc.query, tc.h)
				if (r.Status != 401 && r.Status != 403) || (r.Err.Code != "auth.userBlocked" && r.Err.Code != "auth.invalidToken") {
					t.Errorf("blocked user's credential: %d %s, want 403 auth.userBlocked (or 401 auth.invalidToken)", r.Status, r.Body)
				}
			})
		}
		if r := s.Do(t, "POST", "/api/v1/ws/ticket", mallory.AccessToken, nil); r.Status < 400 {
			t.Errorf("ticket for a blocked user: %d %s", r.Status, r.Body)
		}
	})
}

// wscRawClient is a socket outside apptest's reader, so a test can choose
// how it answers pings (SetPingHandler must be set before reading starts).
type wscRawClient struct {
	conn  *websocket.Conn
	pings atomic.Int32
	done  chan struct{}

	mu     sync.Mutex
	frames []apptest.Frame
	err    error
}

func wscDialRaw(t *testing.T, s *apptest.Server, token string, answerPings bool) *wscRawClient {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial(s.WSURL(""), wscBearer(token))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &wscRawClient{conn: conn, done: make(chan struct{})}
	conn.SetPingHandler(func(data string) error {
		c.pings.Add(1)
		if !answerPings {
			return nil
		}
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if err == websocket.ErrCloseSent {
			return nil
		}
		return err
	})
	go func() {
		defer close(c.done)
		for {
			_, b, err := conn.ReadMessage()
			c.mu.Lock()
			if err != nil {
				c.err = err
				c.mu.Unlock()
				return
			}
			var f apptest.Frame
			if json.Unmarshal(b, &f) != nil {
				f = apptest.Frame{Type: "!invalid", Data: b}
			}
			c.frames = append(c.frames, f)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-c.done
	})
	return c
}

func TestWSConnPingPong(t *testing.T) {
	const pongWait = 400 * time.Millisecond
	s := apptest.Start(t, storetest.SQLite(t), apptest.WithHub(func(o *realtime.Options) {
		o.PingInterval = 100 * time.Millisecond
		o.PongWait = pongWait
	}))
	alice := s.Register(t, "alice@example.com")
	bob := s.Register(t, "bob@example.com")

	answering, _ := s.Connect(t, alice.AccessToken, "") // gorilla answers pings while reading
	counting := wscDialRaw(t, s, alice.AccessToken, true)
	silent := wscDialRaw(t, s, bob.AccessToken, false)
	start := time.Now()

	// The silent client is dropped after PongWait, with the final frame.
	select {
	case <-silent.done:
	case <-time.After(apptest.Wait):
		t.Fatalf("a client that answers no ping is still connected after %v (PongWait %v)", apptest.Wait, pongWait)
	}
	silent.mu.Lock()
	serr, sframes := silent.err, silent.frames
	silent.mu.Unlock()
	if silent.pings.Load() == 0 {
		t.Errorf("the silent client never received a ping")
	}
	var ce *websocket.CloseError
	if ce2, ok := serr.(*websocket.CloseError); ok {
		ce = ce2
	}
	if ce == nil || ce.Code != websocket.ClosePolicyViolation {
		t.Errorf("silent client ended with %v, want close 1008", serr)
	}
	if n := len(sframes); n == 0 || sframes[n-1].Type != realtime.EventError {
		t.Errorf("silent client frames %v: want a final error frame", sframes)
	} else {
		var d wscErrorData
		sframes[n-1].Decode(t, &d)
		if d.Code != wscClosedCode {
			t.Errorf("final frame %s, want %s", sframes[n-1].Data, wscClosedCode)
		}
	}

	// The answering clients outlive several PongWaits.
	if d := 2*pongWait + 200*time.Millisecond - time.Since(start); d > 0 {
		time.Sleep(d)
	}
	if n := counting.pings.Load(); n < 3 {
		t.Errorf("answering client got %d pings in %v, want several (PingInterval 100ms)", n, time.Since(start))
	}
	select {
	case <-counting.done:
		t.Fatalf("a client answering pings was closed: %v", counting.err)
	default:
	}
	wscAlive(t, answering, "still-here")
	b, _ := json.Marshal(map[string]string{"type": realtime.CmdPing, "id": "raw"})
	counting.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := counting.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatalf("write to the answering client: %v", err)
	}
	wscWait(t, "pong on the answering raw client", func() bool {
		counting.mu.Lock()
		defer counting.mu.Unlock()
		for _, f := range counting.frames {
			if f.Type == realtime.EventPong && f.ID == "raw" {
				return true
			}
		}
		return false
	})
}

func TestWSConnMetrics(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t), apptest.WithConfig(func(c *config.Config) {
		c.WSCommandsPerMin = 3
		c.WSMaxFrameBytes = 512
	}))
	alice := s.Register(t, "alice@example.com")
	bob := s.Register(t, "bob@example.com")

	leaving, _ := s.Connect(t, alice.AccessToken, "")
	chatty, _ := s.Connect(t, alice.AccessToken, "")
	big, _ := s.Connect(t, alice.AccessToken, "")
	stays, _ := s.Connect(t, alice.AccessToken, "")
	kicked, _ := s.Connect(t, bob.AccessToken, "")

	m := wscMetrics(t, s)
	if m["aichat_ws_connections"] != 5 || m["aichat_ws_connects_total"] != 5 {
		t.Errorf("with 5 open: connections %v, connects %v", m["aichat_ws_connections"], m["aichat_ws_connects_total"])
	}

	leaving.Conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	for i := 0; i < 6; i++ {
		chatty.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if chatty.Conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)) != nil {
			break
		}
	}
	big.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = big.Conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","data":"`+strings.Repeat("x", 1024)+`"}`))
	if r := s.Do(t, "POST", "/api/v1/auth/logout", "", map[string]string{"refresh_token": bob.RefreshToken}); r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	for _, ws := range []*apptest.WS{leaving, chatty, big, kicked} {
		ws.Closed(t)
	}
	wscAlive(t, stays, "stays")

	want := map[string]float64{
		"aichat_ws_connections":                               1,
		"aichat_ws_connects_total":                            5,
		`aichat_ws_disconnects_total{reason="client"}`:        1,
		`aichat_ws_disconnects_total{reason="rate_limit"}`:    1,
		`aichat_ws_disconnects_total{reason="too_big"}`:       1,
		`aichat_ws_disconnects_total{reason="kicked"}`:        1,
		`aichat_ws_commands_total{command="ping"}`:            -1, // present
		`aichat_ws_events_sent_total{type="hello"}`:           5,
		`aichat_ws_disconnects_total{reason="shutdown"}`:      0, // absent yet
		`aichat_ws_disconnects_total{reason="write_error"}`:   0,
		`aichat_ws_disconnects_total{reason="no_pong"}`:       0,
		`aichat_ws_disconnects_total{reason="token_expired"}`: 0,
	}
	wscCheckMetrics(t, s, "after four disconnects", want)

	s.App.Hub.Shutdown()
	stays.Closed(t)
	want["aichat_ws_connections"] = 0
	want[`aichat_ws_disconnects_total{reason="shutdown"}`] = 1
	wscCheckMetrics(t, s, "after shutdown", want)
}

// wscCheckMetrics waits until the samples match want (0: absent or zero,
// -1: present and positive); the gauge drops only once the reader is done.
func wscCheckMetrics(t *testing.T, s *apptest.Server, when string, want map[string]float64) {
	t.Helper()
	var m map[string]float64
	match := func() bool {
		m = wscMetrics(t, s)
		for k, v := range want {
			switch got, ok := m[k]; {
			case v == -1 && (!ok || got <= 0):
				return false
			case v >= 0 && got != v:
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(apptest.Wait)
	for !match() {
		if time.Now().After(deadline) {
			for k, v := range want {
				if got := m[k]; (v == -1 && got <= 0) || (v >= 0 && got != v) {
					t.Errorf("%s: %s = %v, want %v", when, k, got, v)
				}
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWSConnStalledClientIsDisconnected(t *testing.T) {
	const content = 500 << 10
	s := apptest.Start(t, storetest.SQLite(t),
		apptest.WithConfig(func(c *config.Config) {
			c.MaxMessageBytes = content
			c.WSMaxFrameBytes = 1 << 20
		}),
		apptest.WithHub(func(o *realtime.Options) { o.WriteWait = 300 * time.Millisecond }))
	alice := s.Register(t, "alice@example.com")
	var chat struct{ ID string }
	if r := s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "notes"}); r.Status != http.StatusCreated {
		t.Fatalf("create chat: %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &chat)
	}

	// A client that stops reading: nothing reads conn until the server has
	// given up on writing to it.
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial(s.WSURL(""), wscBearer(alice.AccessToken))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	big := strings.Repeat("x", content)
	for i := 0; i < 16; i++ { // ~16 MB of acks and chat_message events
		b, _ := json.Marshal(map[string]any{"type": realtime.CmdSendMessage, "id": strconv.Itoa(i),
			"data": map[string]any{"chat_id": chat.ID, "content": big, "client_id": "c" + strconv.Itoa(i)}})
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if conn.WriteMessage(websocket.TextMessage, b) != nil {
			break // the server gave up already and dropped the connection
		}
	}
	wscWait(t, "the server giving up on the stalled socket", func() bool {
		m := wscMetrics(t, s)
		return m[`aichat_ws_disconnects_total{reason="write_error"}`]+m[`aichat_ws_disconnects_total{reason="slow"}`] > 0
	})

	// Now the client reads again: after what was already in flight, the
	// connection must end; it must not stay open with nobody writing.
	conn.SetReadDeadline(time.Now().Add(apptest.Wait))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			t.Fatalf("the server gave up writing but left the connection open: read timed out after %v", apptest.Wait)
		}
		break
	}
}
