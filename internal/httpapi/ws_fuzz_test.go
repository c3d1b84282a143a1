package httpapi_test

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/store/storetest"
)

// FuzzWSCommand sends arbitrary text frames to a real server over a real
// socket: whatever arrives, the server stays up, the socket stays open
// (frames here are below the size limit), and a ping right after is
// answered, so no command can wedge or kill a session.
func FuzzWSCommand(f *testing.F) {
	s := apptest.Start(f, storetest.SQLite(f), apptest.WithConfig(func(c *config.Config) { c.WSCommandsPerMin = 1 << 30 }))
	alice := s.Register(f, "alice@example.com")
	var c struct{ ID string }
	s.Do(f, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "fuzz", "settings": map[string]any{"ai_mode": "off"}}).JSON(f, &c)
	for _, seed := range []string{
		`{"type":"send_message","id":"1","data":{"chat_id":"` + c.ID + `","content":"hi","client_id":"c1"}}`,
		`{"type":"typing","data":{"chat_id":"` + c.ID + `"}}`,
		`{"type":"read","id":"2","data":{"chat_id":"` + c.ID + `","seq":1}}`,
		`{"type":"resume","id":"3","data":{"chats":{"` + c.ID + `":0},"since":"2026-11-25T08:00:00Z"}}`,
		`{"type":"ai_stop","id":"4","data":{"chat_id":"` + c.ID + `"}}`,
		`{"type":"ping","id":"5"}`,
		`{"type":"send_message","data":{"chat_id":"x","content":"` + "\u0000" + `","client_id":""}}`,
		`{"type":"read","data":{"chat_id":["a"],"seq":-1}}`,
		`{"type":"resume","data":{"chats":{"a":1e400}}}`,
		`{"type":"fly"}`, `[]`, `null`, `{"type":`, `{"type":"ping","extra":1}`,
	} {
		f.Add([]byte(seed))
	}
	// One socket for the whole run (a socket opened inside the fuzz function
	// would close with that input's test): it must never be closed.
	ws, _ := s.Connect(f, alice.AccessToken, "")
	f.Fuzz(func(t *testing.T, msg []byte) {
		if !utf8.Valid(msg) || len(msg) > 16<<10 {
			return // browsers send valid UTF-8 text frames; size limits have their own test
		}
		if err := ws.Err(); err != nil {
			t.Fatalf("the socket was closed by an earlier input: %v", err)
		}
		ws.SendRaw(t, msg)
		ws.Send(t, "ping", "alive", map[string]any{})
		var pong apptest.Frame
		for {
			pong = ws.Expect(t, "pong")
			if pong.ID == "alive" {
				break
			}
		}
		if ws.Err() != nil {
			t.Fatalf("socket closed after %q: %v", msg, ws.Err())
		}
		var probe json.RawMessage
		if r := s.Do(t, "GET", "/healthz", "", nil); r.Status != 200 {
			t.Fatalf("server unhealthy after %q: %d", msg, r.Status)
		} else {
			_ = json.Unmarshal(r.Body, &probe)
		}
	})
}
