package chat

// Events hears about changes once they are committed, so connected clients
// learn of them. The real-time hub implements it; with none set, nobody
// listens. Implementations must not block: they run on the caller's request.
type Events interface {
	// MessageCreated: m is stored in a chat with these members; unread
	// holds the new counts of every member but the author.
	MessageCreated(m *Message, members []string, unread []UnreadChange)
	// UnreadChanged: a user's count for a chat changed other than by a new
	// message (they read it).
	UnreadChanged(changes ...UnreadChange)
	// ChatChanged: the chat's title, settings or members changed; members
	// are who is in it now and removed who lost access (left, removed, or
	// the chat was deleted).
	ChatChanged(chatID string, members, removed []string)
}

// UnreadChange is one user's unread count for one chat, as of Ver. Ver
// orders changes that may arrive out of order from several instances: a new
// message at seq n has Ver 2n, a read (or a load) when the chat's last seq
// was n has Ver 2n+1, so a read after message n wins over it.
type UnreadChange struct {
	UserID string `json:"u"`
	ChatID string `json:"c"`
	Count  int    `json:"n"`
	Ver    int64  `json:"v"`
}

// SetEvents sets who hears about changes, in order; call it before
// serving.
func (s *Service) SetEvents(e ...Events) {
	if len(e) == 1 {
		s.events = e[0]
		return
	}
	s.events = multiEvents(e)
}

type multiEvents []Events

func (m multiEvents) MessageCreated(msg *Message, members []string, unread []UnreadChange) {
	for _, e := range m {
		e.MessageCreated(msg, members, unread)
	}
}

func (m multiEvents) UnreadChanged(changes ...UnreadChange) {
	for _, e := range m {
		e.UnreadChanged(changes...)
	}
}

func (m multiEvents) ChatChanged(chatID string, members, removed []string) {
	for _, e := range m {
		e.ChatChanged(chatID, members, removed)
	}
}

type noEvents struct{}

func (noEvents) MessageCreated(*Message, []string, []UnreadChange) {}
func (noEvents) UnreadChanged(...UnreadChange)                     {}
func (noEvents) ChatChanged(string, []string, []string)            {}
