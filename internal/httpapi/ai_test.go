package httpapi_test

import (
	"testing"

	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/app/apptest"
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
