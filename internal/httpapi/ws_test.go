package httpapi_test

import (
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/realtime"
	"github.com/aichat/aichat/internal/store/storetest"
)

func TestWSSmoke(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		var c struct{ ID string }
		s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "t", "participants": []string{"bob@example.com"}}).JSON(t, &c)
		a, _ := s.Connect(t, alice.AccessToken, "")
		b, _ := s.Connect(t, bob.AccessToken, "")
		a.Send(t, realtime.CmdSendMessage, "1", map[string]any{"chat_id": c.ID, "content": "hello", "client_id": "c1"})
		ack := a.Expect(t, realtime.EventAck)
		t.Logf("ack %s", ack.Data)
		m := b.Expect(t, realtime.EventChatMessage)
		t.Logf("msg %s", m.Data)
		u := b.Expect(t, realtime.EventUnreadCount)
		t.Logf("unread %s", u.Data)
	})
}
