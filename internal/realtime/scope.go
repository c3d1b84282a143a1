package realtime

import (
	"encoding/json"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/chat"
)

// A socket opened with a bot's API key acts and hears only in the key's
// chats, even when the bot is a member of others: commands naming another
// chat answer chat.notFound (exactly as for a chat the user is not in),
// and events about another chat are not delivered to it. Sockets of people
// are not restricted here; membership decides for them.

// checkScope refuses a command about a chat outside the session's key.
func checkScope(s *Session, chatID string) error {
	if s.User.InScope(chatID) {
		return nil
	}
	return apperr.New(apperr.CodeChatNotFound, "Chat not found.")
}

// allows reports whether a frame may reach s. Chat events carry their chat
// in the item; others (unread_count, typing, chat_updated, chat_removed)
// name it in data.chat_id, read only for the few scoped sessions.
func (s *Session) allows(it item) bool {
	if s.User.APIKeyID == "" || it.op != opFrame {
		return true
	}
	id := it.chatID
	if id == "" {
		id = frameChatID(it.frame)
	}
	return id == "" || s.User.Scope[id]
}

func frameChatID(frame []byte) string {
	var f struct {
		Data struct {
			ChatID string `json:"chat_id"`
		} `json:"data"`
	}
	if json.Unmarshal(frame, &f) != nil {
		return ""
	}
	return f.Data.ChatID
}

// scopedUnread keeps the counts of the key's chats only.
func scopedUnread(s *Session, u *chat.Unread) *chat.Unread {
	out := &chat.Unread{Chats: map[string]int{}}
	for id, n := range u.Chats {
		if s.User.InScope(id) {
			out.Chats[id] = n
			out.Total += n
		}
	}
	return out
}
