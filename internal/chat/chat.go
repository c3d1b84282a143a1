// Package chat owns chats, their members and their messages: creating and
// listing chats, per-chat AI settings, sending messages with per-chat
// sequence numbers and idempotent retries, history pages, and unread
// counters. Every text it stores (titles, settings, message content) is
// sealed with package seal before it reaches the database.
package chat

import (
	"context"
	"time"
)

// Chat kinds.
const (
	KindPersonal = "personal" // one person and the assistant
	KindGroup    = "group"    // several people, with or without the assistant
)

// Member roles.
const (
	RoleOwner  = "owner"
	RoleMember = "member"
)

// Message authors and statuses.
const (
	AuthorUser      = "user"
	AuthorAssistant = "assistant"
	AuthorSystem    = "system"

	StatusComplete  = "complete"
	StatusStreaming = "streaming"
	StatusStopped   = "stopped"
	StatusFailed    = "failed"
)

// Chat is a conversation as its members see it.
type Chat struct {
	ID           string        `json:"id"`
	Title        string        `json:"title"`
	Kind         string        `json:"kind"`
	OwnerID      string        `json:"owner_id"`
	Settings     Settings      `json:"settings"`
	Participants []Participant `json:"participants"`
	UnreadCount  int           `json:"unread_count"`
	LastSeq      int64         `json:"last_seq"`
	LastMessage  *Message      `json:"last_message"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`
	LastActivity time.Time     `json:"last_activity_at"`
}

// Participant is a member of a chat.
type Participant struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

// Message is one message in a chat; it is also the data of a chat_message
// event.
type Message struct {
	ID         string     `json:"id"`
	ChatID     string     `json:"chat_id"`
	Seq        int64      `json:"seq"`
	Author     string     `json:"author"`      // the user's id, or "assistant" / "system"
	AuthorKind string     `json:"author_kind"` // user, assistant or system
	ClientID   string     `json:"client_id,omitempty"`
	Content    string     `json:"content"`
	Status     string     `json:"status"`
	Model      string     `json:"model,omitempty"` // assistant answers: the model that wrote it
	CreatedAt  time.Time  `json:"created_at"`
	EditedAt   *time.Time `json:"edited_at,omitempty"`

	// sentIn is the chat as this message found it, read in the transaction
	// that stored it (Send only); listeners read it with ChatAtSend.
	sentIn *ChatState
	// received is when it reached this machine, or when Send was called
	// with it (Send only).
	received time.Time
}

// ReceivedAt is when m reached this machine (WithArrival) or else when
// Send was asked to store it: the start of the time the server takes from
// a person's message to what follows it (the model's request). Zero for a
// message not stored by Send just now.
func (m *Message) ReceivedAt() time.Time { return m.received }

type arrivalKey struct{}

// WithArrival returns ctx saying when the message Send is about to store
// reached this machine (a socket's kernel stamp), so that its ReceivedAt
// counts the wait to be read and decoded too.
func WithArrival(ctx context.Context, at time.Time) context.Context {
	return context.WithValue(ctx, arrivalKey{}, at)
}

// ChatState is what a chat was when a message was stored in it: its kind
// and AI settings, read in the same transaction as the message's seq, so
// later changes do not apply to it.
type ChatState struct {
	Kind     string
	Settings Settings
	// With Prefetched set (SetAnswerDue's function said an answer is due), the
	// last Settings.Depth messages before this one, oldest first, and the
	// chat's participants, read right after the message was stored (both
	// non-nil then, even when empty).
	Prefetched   bool
	History      []*Message
	Participants []Participant
}

// ChatAtSend returns the chat's kind and settings as of the moment m was
// stored. Only a message that Send has just stored knows them (not one
// read back from the database); ok is false otherwise.
func (m *Message) ChatAtSend() (ChatState, bool) {
	if m.sentIn == nil {
		return ChatState{}, false
	}
	return *m.sentIn, true
}

type chatRow struct {
	ID            string
	OwnerID       string
	Kind          string
	TitleCt       []byte
	SettingsCt    []byte
	KeyID         string
	LastSeq       int64
	LastMessageAt *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

func (chatRow) TableName() string { return "chats" }

type memberRow struct {
	ChatID      string `gorm:"primaryKey"`
	UserID      string `gorm:"primaryKey"`
	Role        string
	UnreadCount int
	LastReadSeq int64
	JoinedAt    time.Time
}

func (memberRow) TableName() string { return "chat_members" }

type messageRow struct {
	ID         string
	ChatID     string
	Seq        int64
	AuthorID   *string
	AuthorKind string
	ClientID   *string
	ContentCt  []byte
	KeyID      string
	Status     string
	CreatedAt  time.Time
	EditedAt   *time.Time
	// Assistant answers only.
	RequestedBy *string
	Model       *string
	Provider    *string
}

func (messageRow) TableName() string { return "messages" }

type userRow struct {
	ID    string
	Email string
	Name  string
}

func (userRow) TableName() string { return "users" }
