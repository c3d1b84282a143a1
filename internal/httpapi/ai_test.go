package httpapi_test

import (
	"testing"

	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/store/storetest"
)

func TestAISmoke(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		up := llmtest.NewServer(t)
		up.SetModels("gpt-test")
		up.SetDefault(llmtest.Script{Text: "Hello there, how can I help?"})
		s := apptest.Start(t, e, apptest.WithAI(up.URL))
		alice := s.Register(t, "alice@example.com")
		var c struct{ ID string }
		s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "t"}).JSON(t, &c)
		ws, _ := s.Connect(t, alice.AccessToken, "")
		ws.Send(t, "send_message", "1", map[string]any{"chat_id": c.ID, "content": "hi", "client_id": "c1"})
		st := ws.Expect(t, "ai_start")
		t.Logf("start %s", st.Data)
		done := ws.Expect(t, "ai_done")
		t.Logf("done %s", done.Data)
		r := s.Do(t, "GET", "/api/v1/chats/"+c.ID+"/messages", alice.AccessToken, nil)
		t.Logf("history %s", r.Body)
		t.Logf("request %s", up.Last().RawBody)
	})
}

// TestAIProviderModeration: with AICHAT_AI_OPENAI_MODERATION on and the
// OpenAI provider, a question the moderation endpoint flags is refused
// before any completion is requested.
func TestAIProviderModeration(t *testing.T) {
	up := llmtest.NewServer(t)
	up.SetModels("gpt-test")
	up.SetDefault(llmtest.Script{Text: "Sure."})
	s := apptest.Start(t, storetest.SQLite(t), apptest.WithConfig(func(c *config.Config) {
		c.OpenAIAPIKey, c.OpenAIBaseURL, c.AIOpenAIModerate = "sk-test", up.URL, true
	}))
	alice := s.Register(t, "alice@example.com")
	var c struct{ ID string }
	s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "t"}).JSON(t, &c)
	ws, _ := s.Connect(t, alice.AccessToken, "")

	ws.Send(t, "send_message", "1", map[string]any{"chat_id": c.ID, "content": "say " + llmtest.FlagWord, "client_id": "c1"})
	var e struct{ Code string }
	ws.Expect(t, "ai_error").Decode(t, &e)
	if e.Code != "ai.moderated" {
		t.Fatalf("ai_error code %q, want ai.moderated", e.Code)
	}
	for _, r := range up.Requests() {
		if r.Path == "/v1/chat/completions" {
			t.Fatal("a flagged question reached the model")
		}
	}

	ws.Send(t, "send_message", "2", map[string]any{"chat_id": c.ID, "content": "hello", "client_id": "c2"})
	var d struct{ Content string }
	ws.Expect(t, "ai_done").Decode(t, &d)
	if d.Content != "Sure." {
		t.Fatalf("answer %q, want Sure.", d.Content)
	}
}
