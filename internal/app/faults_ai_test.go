package app_test

import (
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm"
	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/app"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/store/storetest"
)

// TestProviderFaultsLeaveNothingBehind: the model provider refuses (500,
// 429), cuts the stream in the middle, reports an error mid-stream, or
// stalls past the idle timeout. Each time the chat gets a clear ai_error,
// the partial text is kept with the failed answer, the chat can be asked
// again, and once it is all over the process has as many goroutines as
// before the faults.
func TestProviderFaultsLeaveNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test skipped in -short mode")
	}
	up := llmtest.NewServer(t)
	s := apptest.Start(t, storetest.SQLite(t), apptest.WithAI(up.URL), func(_ *config.Config, o *app.Options) {
		o.LLM = &llm.Options{IdleTimeout: 500 * time.Millisecond, MaxRetries: -1}
	})
	alice := s.Register(t, "alice@example.com")
	var c struct{ ID string }
	s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "faults"}).JSON(t, &c)
	ws, _ := s.Connect(t, alice.AccessToken, "")
	ask := func(id string) {
		ws.Send(t, "send_message", id, map[string]any{"chat_id": c.ID, "content": "question " + id, "client_id": id})
	}

	// Warm up: one good answer, so lazily started goroutines exist before
	// the baseline is taken.
	up.Enqueue(llmtest.Script{Text: "All good."})
	ask("warm")
	ws.Expect(t, "ai_done")
	time.Sleep(200 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	words := "one two three four five six seven eight"
	faults := []struct {
		name    string
		script  llmtest.Script
		code    string
		partial string // text kept with the failed answer
	}{
		{"500 before the stream", llmtest.ServerError(500), "ai.providerDown", ""},
		{"429 before the stream", llmtest.RateLimited("1"), "ai.rateLimited", ""},
		{"cut mid-stream", llmtest.Script{Text: words, Break: llmtest.BreakHijack, BreakAfter: 3}, "ai.truncated", "one two three"},
		{"error event mid-stream", llmtest.Script{Text: words, Break: llmtest.BreakErrorOpenAI, BreakAfter: 2, ErrorMessage: "overloaded"}, "ai.upstreamError", "one two"},
		{"stall past the idle timeout", llmtest.Script{Text: words, Break: llmtest.BreakStall, BreakAfter: 4}, "ai.timeout", "one two three four"},
	}
	for i, f := range faults {
		up.Enqueue(f.script)
		ask(string(rune('a' + i)))
		var e struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Content string `json:"content"`
		}
		ws.Expect(t, "ai_error").Decode(t, &e)
		if e.Code != f.code || e.Message == "" || strings.TrimSpace(e.Content) != f.partial {
			t.Errorf("%s: ai_error %+v, want code %s with %q kept", f.name, e, f.code, f.partial)
		}
	}
	// The chat still answers.
	up.Enqueue(llmtest.Script{Text: "Back to normal."})
	ask("z")
	ws.Expect(t, "ai_done")

	// Everything the faults started has ended.
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline+2 {
			t.Logf("goroutines: %d before the faults, %d after", baseline, n)
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before the faults, %d after:\n%s", baseline, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
