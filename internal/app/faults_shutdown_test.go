package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/config"
)

// TestShutdownDuringStreams stops an instance (what SIGTERM does) while it
// generates 100 answers: the client's socket is closed with 1001, every
// partial answer is stored (failed, with the text so far), none is left
// streaming, and the client resumes on the other instance and finds them.
func TestShutdownDuringStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test skipped in -short mode")
	}
	const streams = 100
	up := llmtest.NewServer(t)
	up.SetModels("gpt-test")
	words := strings.Repeat("word ", 400)
	up.SetDefault(llmtest.Script{Text: words, TokenDelay: 20 * time.Millisecond})
	s1, s2 := aiCluster(t, up, func(c *config.Config) {
		c.AIMaxConcurrent, c.AIDailyTokens = 1000, 0
		c.WSCommandsPerMin = 10000
	})
	alice := s1.Register(t, "alice@example.com")
	chats := make([]string, streams)
	var wg sync.WaitGroup
	for i := range chats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c struct{ ID string }
			s1.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": fmt.Sprint("chat ", i)}).JSON(t, &c)
			chats[i] = c.ID
		}()
	}
	wg.Wait()

	ws, _ := s1.Connect(t, alice.AccessToken, "")
	for i, id := range chats {
		ws.Send(t, "send_message", fmt.Sprint(i), map[string]any{"chat_id": id, "content": "a long story please", "client_id": fmt.Sprint("q", i)})
	}
	seqs := map[string]int64{}
	for range chats {
		var st struct {
			ChatID string `json:"chat_id"`
			Seq    int64  `json:"seq"`
		}
		ws.Expect(t, "ai_start").Decode(t, &st)
		seqs[st.ChatID] = st.Seq
	}
	time.Sleep(500 * time.Millisecond) // every answer has some text

	s1.Stop()
	if code := ws.Closed(t); code != 1001 {
		t.Fatalf("socket closed with %d, want 1001 (going away)", code)
	}

	// The client comes back on the other instance and resumes.
	ws2, _ := s2.Connect(t, alice.AccessToken, "resume=1")
	ws2.Send(t, "resume", "r", map[string]any{"chats": seqs})
	ws2.Expect(t, "resumed")
	short := 0
	for _, id := range chats {
		var page struct {
			Messages []struct {
				AuthorKind string `json:"author_kind"`
				Status     string `json:"status"`
				Content    string `json:"content"`
			}
		}
		r := s2.Do(t, "GET", "/api/v1/chats/"+id+"/messages?limit=1", alice.AccessToken, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("history on the other instance: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &page)
		m := page.Messages[0]
		if m.AuthorKind != "assistant" || m.Status != "failed" || !strings.HasPrefix(words, m.Content) {
			t.Fatalf("chat %s after the shutdown: %s answer %q (%d bytes)", id, m.Status, m.Content[:min(len(m.Content), 40)], len(m.Content))
		}
		if m.Content == "" {
			short++
		}
	}
	if short > 0 {
		t.Fatalf("%d of %d partial answers were stored without their text", short, streams)
	}
}
