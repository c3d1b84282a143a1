package ai_test

import (
	"context"
	"fmt"
	"strings"
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

// startAnswering starts the app with a fake model that answers "ok".
func startAnswering(t *testing.T, e storetest.Engine) (*apptest.Server, *llmtest.Server) {
	t.Helper()
	up := llmtest.NewServer(t)
	up.SetModels("gpt-test")
	up.SetDefault(llmtest.Script{Text: "ok"})
	return apptest.Start(t, e, apptest.WithAI(up.URL)), up
}

// A message is answered or not by the chat's ai_mode as it was when the
// message was stored: switching the mode right after sending does not
// change what happens to it, either way.
func TestModeDecidedAsOfSend(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := startAnswering(t, e)
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

// On SQLite the history and participants an answer needs are read with
// the question, right after its commit; the model gets the
// same request either way: the last depth messages before the question,
// oldest first, and every participant. A message that gets no answer
// (mention mode without @ai) reads nothing more.
func TestHistoryReadWithQuestion(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := startAnswering(t, e)
		alice := s.Register(t, "alice@example.com")
		s.Register(t, "bob@example.com")
		uid := alice.User.ID
		ctx := context.Background()
		mention, depth := chat.ModeMention, 3
		c, err := s.App.Chats.Create(ctx, uid, chat.NewChat{Title: "history", Participants: []string{"bob@example.com"},
			Settings: &chat.SettingsPatch{AIMode: &mention, Depth: &depth}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			sent, err := s.App.Chats.Send(ctx, uid, c.ID, fmt.Sprintf("earlier %d", i), "")
			if err != nil {
				t.Fatal(err)
			}
			if at, ok := sent.Message.ChatAtSend(); !ok || at.Prefetched || at.History != nil {
				t.Fatalf("message %d, no answer due: state known %v, history read %v", i, ok, at.Prefetched)
			}
		}
		ws, _ := s.Connect(t, alice.AccessToken, "")
		sent, err := s.App.Chats.Send(ctx, uid, c.ID, "@ai what came before?", "")
		if err != nil {
			t.Fatal(err)
		}
		at, _ := sent.Message.ChatAtSend()
		if want := e.Name == "sqlite"; at.Prefetched != want {
			t.Fatalf("history read with the question: %v, want %v on %s", at.Prefetched, want, e.Name)
		}
		if at.Prefetched {
			var got []string
			for _, m := range at.History {
				got = append(got, m.Content)
			}
			if fmt.Sprint(got) != "[earlier 2 earlier 3 earlier 4]" {
				t.Fatalf("history read with the question: %q", got)
			}
			if len(at.Participants) != 2 || at.Participants[0].Email != "alice@example.com" || at.Participants[1].Email != "bob@example.com" {
				t.Fatalf("participants read with the question: %+v", at.Participants)
			}
		}
		ws.Expect(t, "ai_done")
		var contents []string
		for _, m := range up.Last().Body["messages"].([]any) {
			mm := m.(map[string]any)
			if mm["role"] == "system" {
				if c := mm["content"].(string); !strings.Contains(c, "alice@example.com") || !strings.Contains(c, "bob@example.com") {
					continue
				}
				contents = append(contents, "participants")
				continue
			}
			contents = append(contents, mm["content"].(string))
		}
		// A group chat names each message's author.
		want := "[participants [alice@example.com]: earlier 2 [alice@example.com]: earlier 3 " +
			"[alice@example.com]: earlier 4 [alice@example.com]: @ai what came before?]"
		if fmt.Sprint(contents) != want {
			t.Fatalf("the model got %q, want %s", contents, want)
		}
	})
}
