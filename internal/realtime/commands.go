package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/chat"
	"github.com/google/uuid"
)

// commandTimeout bounds the work one command may do (a database write).
const commandTimeout = 10 * time.Second

// handle runs one command from s. Commands of one socket run one after
// another, in the order sent. A bad command gets an error frame naming it;
// the socket stays open.
func (h *Hub) handle(s *Session, msg []byte, arrived time.Time) {
	var in inFrame
	dec := json.NewDecoder(bytes.NewReader(msg))
	if err := dec.Decode(&in); err != nil || in.Type == "" {
		s.push(item{typ: EventError, frame: errorFrame(in.ID, apperr.New(CodeBadCommand,
			"A command is a JSON object {\"type\": \"...\", \"data\": {...}}."), errorData{})})
		return
	}
	h.metrics.Commands.WithLabelValues(commandLabel(in.Type)).Inc()
	ctx, cancel := context.WithTimeout(s.ctx, commandTimeout)
	defer cancel()
	var err error
	switch in.Type {
	case CmdSendMessage:
		if !arrived.IsZero() {
			ctx = chat.WithArrival(ctx, arrived)
		}
		err = h.cmdSend(ctx, s, in)
	case CmdTyping:
		err = h.cmdTyping(ctx, s, in)
	case CmdRead:
		err = h.cmdRead(ctx, s, in)
	case CmdResume:
		err = h.cmdResume(ctx, s, in)
	case CmdAIStop:
		err = h.cmdAIStop(ctx, s, in)
	case CmdPing:
		s.push(item{typ: EventPong, frame: encode(EventPong, in.ID, map[string]time.Time{"server_time": time.Now().UTC()})})
	default:
		err = apperr.New(CodeUnknownCommand, "Unknown command %q; known: send_message, typing, read, ai_stop, resume, ping.", truncate(in.Type, 40))
	}
	if err != nil {
		rid := uuid.NewString()
		if e, ok := apperr.As(err); ok {
			h.log.Info("socket command refused", "request_id", rid, "session_id", s.ID, "user_id", s.User.UserID,
				"command", truncate(in.Type, 40), "code", e.Code)
		} else {
			h.log.Error("socket command failed", "request_id", rid, "session_id", s.ID, "user_id", s.User.UserID,
				"command", truncate(in.Type, 40), "err", err)
		}
		extra := errorData{Command: truncate(in.Type, 40), RequestID: rid}
		if in.Type == CmdSendMessage {
			var d struct {
				ClientID string `json:"client_id"`
			}
			json.Unmarshal(in.Data, &d)
			extra.ClientID = truncate(d.ClientID, chat.MaxClientIDLen)
		}
		s.push(item{typ: EventError, frame: errorFrame(in.ID, err, extra)})
	}
}

func commandLabel(t string) string {
	switch t {
	case CmdSendMessage, CmdTyping, CmdRead, CmdAIStop, CmdResume, CmdPing:
		return t
	}
	return "unknown"
}

// decodeData reads a command's data strictly: unknown fields are errors,
// so a typo is reported instead of ignored.
func decodeData(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apperr.New(CodeBadCommand, "Bad command data: %s.", truncate(err.Error(), 200))
	}
	return nil
}

type sendData struct {
	ChatID   string `json:"chat_id"`
	Content  string `json:"content"`
	ClientID string `json:"client_id"`
}

// cmdSend stores a message through the same service as REST; the ack goes
// out only after the commit, and the chat_message event reaches every
// member's sockets (this one included) through the hub.
func (h *Hub) cmdSend(ctx context.Context, s *Session, in inFrame) error {
	var d sendData
	if err := decodeData(in.Data, &d); err != nil {
		return err
	}
	if err := checkScope(s, d.ChatID); err != nil {
		return err
	}
	sent, err := h.chats.Send(ctx, s.User.UserID, d.ChatID, d.Content, d.ClientID)
	if err != nil {
		return err
	}
	s.push(item{typ: EventAck, frame: encode(EventAck, in.ID, map[string]any{
		"client_id": d.ClientID, "duplicate": sent.Duplicate, "message": sent.Message})})
	return nil
}

type chatRef struct {
	ChatID string `json:"chat_id"`
}

// cmdTyping tells the chat's other members that s's user is typing. A
// client may send it as often as it likes; at most one per chat per second
// goes out.
func (h *Hub) cmdTyping(ctx context.Context, s *Session, in inFrame) error {
	var d chatRef
	if err := decodeData(in.Data, &d); err != nil {
		return err
	}
	if err := checkScope(s, d.ChatID); err != nil {
		return err
	}
	now := time.Now()
	if last, ok := s.lastTyped[d.ChatID]; ok && now.Sub(last) < time.Second {
		return nil
	}
	members, err := h.chats.Members(ctx, s.User.UserID, d.ChatID)
	if err != nil {
		return err
	}
	if s.lastTyped == nil {
		s.lastTyped = map[string]time.Time{}
	}
	s.lastTyped[d.ChatID] = now
	others := members[:0:0]
	for _, m := range members {
		if m != s.User.UserID {
			others = append(others, m)
		}
	}
	if len(others) > 0 {
		h.Send(others, EventTyping, typingData{ChatID: d.ChatID, UserID: s.User.UserID, ExpiresMS: int(h.opt.TypingTTL / time.Millisecond)})
	}
	return nil
}

type readData struct {
	ChatID string `json:"chat_id"`
	Seq    int64  `json:"seq"`
}

// cmdRead marks a chat read; every socket of the user hears unread_count.
func (h *Hub) cmdRead(ctx context.Context, s *Session, in inFrame) error {
	var d readData
	if err := decodeData(in.Data, &d); err != nil {
		return err
	}
	if err := checkScope(s, d.ChatID); err != nil {
		return err
	}
	u, err := h.chats.MarkRead(ctx, s.User.UserID, d.ChatID, d.Seq)
	if err != nil {
		return err
	}
	if s.User.APIKeyID != "" {
		u = scopedUnread(s, u)
	}
	s.push(item{typ: EventAck, frame: encode(EventAck, in.ID, map[string]any{"unread": u})})
	return nil
}

// cmdAIStop stops the answer being generated in a chat, on whichever
// instance runs it; any member may.
func (h *Hub) cmdAIStop(ctx context.Context, s *Session, in inFrame) error {
	var d chatRef
	if err := decodeData(in.Data, &d); err != nil {
		return err
	}
	if err := checkScope(s, d.ChatID); err != nil {
		return err
	}
	if h.ai == nil {
		return apperr.New(CodeNotGenerating, "Nothing is being generated in this chat.")
	}
	if err := h.ai.Stop(ctx, s.User.UserID, d.ChatID); err != nil {
		return err
	}
	s.push(item{typ: EventAck, frame: encode(EventAck, in.ID, map[string]any{"chat_id": d.ChatID, "stopping": true})})
	return nil
}
