package realtime

import (
	"context"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/chat"
)

// maxResumeChats bounds one resume command.
const maxResumeChats = 1000

type resumeData struct {
	// Chats maps a chat id to the last seq the client saw in it (0: none).
	Chats map[string]int64 `json:"chats"`
	// Since, when set, also replays every chat the user is in that had
	// messages after this time and is not in Chats.
	Since *time.Time `json:"since"`
}

type resumedData struct {
	// Chats maps each resumed chat to the last seq now sent.
	Chats map[string]int64 `json:"chats"`
	// Truncated lists chats with more missed messages than one resume
	// replays; the client loads the rest with GET /chats/{id}/messages.
	Truncated []string `json:"truncated"`
	// Gone lists chats the user is no longer in (or that never existed).
	Gone   []string     `json:"gone"`
	Unread *chat.Unread `json:"unread"`
}

// cmdResume replays what the client missed, from the database, then lets
// live events through. Chat events are held from before the first read
// (from the connection's start when it asked with ?resume=1), so nothing
// falls between the replay and the live stream, and held events the replay
// already covered are dropped: each message arrives once, in order.
func (h *Hub) cmdResume(ctx context.Context, s *Session, in inFrame) error {
	var d resumeData
	if err := decodeData(in.Data, &d); err != nil {
		return err
	}
	if len(d.Chats) > maxResumeChats {
		return apperr.Invalid("chats", "Resume at most %d chats at once.", maxResumeChats)
	}
	s.hold()
	res := resumedData{Chats: map[string]int64{}, Truncated: []string{}, Gone: []string{}}
	var replay []item
	add := func(chatID string, p chat.Page) error {
		msgs, more, err := h.chats.History(ctx, s.User.UserID, chatID, p)
		if apperr.Is(err, apperr.CodeChatNotFound) {
			res.Gone = append(res.Gone, chatID)
			return nil
		}
		if err != nil {
			return err
		}
		last := p.After
		for _, m := range msgs {
			replay = append(replay, item{typ: EventChatMessage, frame: encode(EventChatMessage, "", m), chatID: chatID, seq: m.Seq})
			last = m.Seq
		}
		res.Chats[chatID] = last
		if more {
			res.Truncated = append(res.Truncated, chatID)
		}
		return nil
	}
	for chatID, seq := range d.Chats {
		if !s.User.InScope(chatID) {
			res.Gone = append(res.Gone, chatID)
			continue
		}
		p := chat.Page{After: seq, Limit: h.opt.ResumeLimit}
		if seq <= 0 {
			p = chat.Page{Since: time.Unix(0, 0).UTC(), Limit: h.opt.ResumeLimit}
		}
		if err := add(chatID, p); err != nil {
			s.release(nil)
			return err
		}
	}
	if d.Since != nil {
		// In UTC, as stored: SQLite compares times as text, so a client's
		// time in another zone would select the wrong messages.
		since := d.Since.UTC()
		d.Since = &since
		chats, err := h.chats.List(ctx, s.User.UserID)
		if err != nil {
			s.release(nil)
			return err
		}
		for _, c := range chats {
			if _, done := d.Chats[c.ID]; done || !c.LastActivity.After(*d.Since) || !s.User.InScope(c.ID) {
				continue
			}
			if err := add(c.ID, chat.Page{Since: *d.Since, Limit: h.opt.ResumeLimit}); err != nil {
				s.release(nil)
				return err
			}
		}
	}
	u, err := h.chats.Unread(ctx, s.User.UserID)
	if err != nil {
		s.release(nil)
		return err
	}
	if s.User.APIKeyID != "" {
		u = scopedUnread(s, u)
	}
	res.Unread = u
	h.metrics.Replayed.Add(float64(len(replay)))
	s.releaseResumed(replay)
	s.push(item{typ: EventResumed, frame: encode(EventResumed, in.ID, res)})
	if h.ai != nil && len(res.Chats) > 0 {
		// Answers still being generated: the text so far, then live deltas.
		ids := make([]string, 0, len(res.Chats))
		for id := range res.Chats {
			ids = append(ids, id)
		}
		h.ai.Snapshot(s.User.UserID, ids)
	}
	return nil
}
