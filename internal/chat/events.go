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

// UnreadChange is what changed one user's unread count for one chat. A
// count is the chat's last seq minus the user's read mark, and both only
// grow, so changes merge by taking the larger of each, in any order, from
// any instance. Zero means "not changed". Gone: the user left the chat.
type UnreadChange struct {
	UserID   string `json:"u"`
	ChatID   string `json:"c"`
	LastSeq  int64  `json:"s,omitempty"`
	LastRead int64  `json:"r,omitempty"`
	Gone     bool   `json:"g,omitempty"`
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
