package httpapi_test

import (
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
)

// TestWSErrorRequestID: a refused socket command names a request id that
// the server's log has too, with the session, the command and the code, so
// a user's report can be traced.
func TestWSErrorRequestID(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t))
	alice := s.Register(t, "alice@example.com")
	ws, _ := s.Connect(t, alice.AccessToken, "")
	ws.Send(t, "read", "7", map[string]any{"chat_id": "00000000-0000-0000-0000-000000000000"})
	var e struct {
		Code      string `json:"code"`
		RequestID string `json:"request_id"`
	}
	ws.Expect(t, "error").Decode(t, &e)
	if e.Code != "chat.notFound" || len(e.RequestID) < 16 {
		t.Fatalf("error frame %+v: want chat.notFound with a request id", e)
	}
	var line string
	for _, l := range strings.Split(s.Logs(), "\n") {
		if strings.Contains(l, e.RequestID) {
			line = l
		}
	}
	for _, want := range []string{`"msg":"socket command refused"`, `"command":"read"`, `"code":"chat.notFound"`, `"session_id":`} {
		if !strings.Contains(line, want) {
			t.Fatalf("log line for request %s lacks %s: %q", e.RequestID, want, line)
		}
	}
}
