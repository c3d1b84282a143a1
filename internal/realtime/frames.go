// Package realtime owns live delivery over WebSocket: the hub that knows
// every socket of this instance, the session that reads commands from one
// socket and writes events to it, the envelopes that carry events between
// instances through a Broker, presence and typing, and resuming after a
// reconnect from the database. It knows nothing of HTTP routing: package
// httpapi authenticates the upgrade request and hands the socket over.
package realtime

import (
	"encoding/json"
	"time"

	"github.com/aichat/aichat/internal/apperr"
)

// Server events. docs/protocol.md shows every one with an example.
const (
	EventHello        = "hello"
	EventChatMessage  = "chat_message"
	EventUnreadCount  = "unread_count"
	EventNotification = "notification"
	EventPresence     = "presence"
	EventTyping       = "typing"
	EventChatUpdated  = "chat_updated"
	EventChatRemoved  = "chat_removed"
	EventAck          = "ack"
	EventResumed      = "resumed"
	EventResync       = "resync"
	EventPong         = "pong"
	EventError        = "error"
	EventAIStart      = "ai_start"
	EventAIDelta      = "ai_delta"
	EventAIDone       = "ai_done"
	EventAIError      = "ai_error"
)

// Client commands.
const (
	CmdSendMessage = "send_message"
	CmdTyping      = "typing"
	CmdRead        = "read"
	CmdAIStop      = "ai_stop"
	CmdResume      = "resume"
	CmdPing        = "ping"
)

// frame is the shape of every message on the socket, both ways. A command
// may carry an id; the ack or error that answers it repeats the id.
type frame struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
	Data any    `json:"data"`
}

type inFrame struct {
	Type string          `json:"type"`
	ID   string          `json:"id,omitempty"`
	Data json.RawMessage `json:"data"`
}

// encode marshals a frame once; the bytes are shared by every socket it
// goes to and never modified.
func encode(typ, id string, data any) []byte {
	b, err := json.Marshal(frame{Type: typ, ID: id, Data: data})
	if err != nil {
		// Only our own types are encoded here; failing is a programming error.
		panic("realtime: encode " + typ + ": " + err.Error())
	}
	return b
}

// errorData is the data of an error frame.
type errorData struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Field    string `json:"field,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Command  string `json:"command,omitempty"`
	Retry    int    `json:"retry_after,omitempty"`
	// RequestID names the failure in the server's log, so a user's report
	// can be traced (REST errors carry one too).
	RequestID string `json:"request_id,omitempty"`
}

// Close codes, beyond RFC 6455's.
const (
	ClosePolicy       = 1008 // policy violation: blocked, limits
	CloseTokenExpired = 4001 // refresh the access token and reconnect
)

// Error codes only the socket uses.
const (
	CodeClosed         = apperr.CodeWSClosed
	CodeBadCommand     = apperr.CodeWSBadCommand
	CodeUnknownCommand = apperr.CodeWSUnknownCommand
	CodeNotGenerating  = apperr.CodeAINotGenerating
)

func errorFrame(id string, err error, extra errorData) []byte {
	d := extra
	if e, ok := apperr.As(err); ok {
		d.Code, d.Message, d.Field, d.Retry = e.Code, e.Message, e.Field, e.Retry
	} else {
		d.Code, d.Message = apperr.CodeInternal, "Internal error."
	}
	return encode(EventError, id, d)
}

type helloData struct {
	SessionID  string    `json:"session_id"`
	UserID     string    `json:"user_id"`
	ServerTime time.Time `json:"server_time"`
	ExpiresAt  time.Time `json:"expires_at"`
	Holding    bool      `json:"holding"`
	Unread     any       `json:"unread"`
}

type presenceData struct {
	UserID string `json:"user_id"`
	Online bool   `json:"online"`
}

type typingData struct {
	ChatID    string `json:"chat_id"`
	UserID    string `json:"user_id"`
	ExpiresMS int    `json:"expires_in_ms"`
}

type unreadData struct {
	ChatID string `json:"chat_id"`
	Count  int    `json:"count"`
	Total  int    `json:"total"`
}

type chatRefData struct {
	ChatID string `json:"chat_id"`
}
