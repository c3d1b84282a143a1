package ai_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/store/storetest"
)

// completions counts the chat completion requests the upstream received.
func completions(up *llmtest.Server) int {
	n := 0
	for _, r := range up.Requests() {
		if r.Path == "/v1/chat/completions" {
			n++
		}
	}
	return n
}

// A message is answered or not by the chat's ai_mode as it was when the
// message was stored: switching the mode right after sending does not
// change what happens to it, either way.
func TestModeDecidedAsOfSend(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		up := llmtest.NewServer(t)
		up.SetModels("gpt-test")
		up.SetDefault(llmtest.Script{Text: "ok"})
		s := apptest.Start(t, e, apptest.WithAI(up.URL))
		alice := s.Register(t, "alice@example.com")
		uid := alice.User.ID
		ctx := context.Background()
		off, always := chat.ModeOff, chat.ModeAlways
		c, err := s.App.Chats.Create(ctx, uid, chat.NewChat{Title: "mode",
			Settings: &chat.SettingsPatch{AIMode: &off}})
		if err != nil {
			t.Fatal(err)
		}
		setMode := func(mode *string) {
			t.Helper()
			if _, err := s.App.Chats.Update(ctx, uid, c.ID, chat.Update{Settings: &chat.SettingsPatch{AIMode: mode}}); err != nil {
				t.Fatal(err)
			}
		}
		ws, _ := s.Connect(t, alice.AccessToken, "")
		const n = 8
		// Sent with the assistant off, switched on at once: no answers.
		for i := range n {
			if _, err := s.App.Chats.Send(ctx, uid, c.ID, fmt.Sprintf("sent while off %d", i), ""); err != nil {
				t.Fatal(err)
			}
			setMode(&always)
			setMode(&off)
		}
		ws.ExpectNone(t, "ai_start", 300*time.Millisecond)
		if got := completions(up); got != 0 {
			t.Fatalf("the upstream was asked %d times about messages sent with ai_mode off", got)
		}
		// Sent with the assistant on, switched off at once: each answered.
		for i := range n {
			setMode(&always)
			if _, err := s.App.Chats.Send(ctx, uid, c.ID, fmt.Sprintf("sent while on %d", i), ""); err != nil {
				t.Fatal(err)
			}
			setMode(&off)
			// One answer at a time per chat: wait for this one to end.
			ws.Expect(t, "ai_done")
		}
		if got := completions(up); got != n {
			t.Fatalf("the upstream was asked %d times about %d messages sent with ai_mode always", got, n)
		}
		msgs, _, err := s.App.Chats.History(ctx, uid, c.ID, chat.Page{Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		answers := 0
		for _, m := range msgs {
			if m.AuthorKind == chat.AuthorAssistant {
				answers++
				if m.Status != chat.StatusComplete || m.Content != "ok" {
					t.Errorf("answer %d: status %s, content %q", m.Seq, m.Status, m.Content)
				}
			}
		}
		if answers != n {
			t.Errorf("%d answers stored, want %d", answers, n)
		}
	})
}
