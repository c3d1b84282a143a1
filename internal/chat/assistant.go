package chat

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/store"
	"gorm.io/gorm"
)

// Answer is how an assistant answer was produced, stored with it.
type Answer struct {
	Content          string
	Status           string // streaming (a periodic save), complete, stopped or failed
	FinishReason     string
	ErrorCode        string
	PromptTokens     int
	CompletionTokens int
	Duration         time.Duration
	TimeToFirst      time.Duration
}

// StartAnswer stores an empty assistant message with status streaming and
// the chat's next seq; every member counts it as unread.
// The streaming row is the chat's generation lock on every instance: while
// one exists, a second start is ai.busy. members are the chat's members as
// the caller just read them (the question's Send did); nil reads them and
// checks that requestedBy is one.
func (s *Service) StartAnswer(ctx context.Context, requestedBy, chatID string, members []string, model, provider string) (*Sent, error) {
	if members == nil {
		var err error
		if members, err = s.Members(ctx, requestedBy, chatID); err != nil {
			return nil, err
		}
	}
	req, mdl, prov := requestedBy, model, provider
	row := messageRow{ID: newID(), ChatID: chatID, AuthorKind: AuthorAssistant, Status: StatusStreaming,
		CreatedAt: s.opt.Now(), RequestedBy: &req, Model: &mdl, Provider: &prov}
	// Unread for every member, the requester too: a client showing the
	// chat marks it read as the answer arrives, and one looking elsewhere
	// keeps the badge (and the answer_finished notification) until then.
	unread, _, _, err := s.insert(ctx, &row, "", "", members, nil)
	if err != nil {
		if store.IsUniqueViolation(err) {
			return nil, errBusy()
		}
		return nil, err
	}
	m, err := s.openMessage(&row)
	if err != nil {
		return nil, err
	}
	s.created(m, members, unread)
	return &Sent{Message: m, Members: members}, nil
}

func errBusy() error {
	return apperr.New(apperr.CodeAIBusy, "The assistant is already answering in this chat; stop it or wait.")
}

// SaveAnswer stores the answer's text so far (status streaming) or its end.
// It only writes while the message is still streaming, so a late save
// cannot overwrite an answer that was already ended elsewhere; it reports
// whether it wrote.
//
// It runs every AICHAT_AI_SAVE_EVERY for every streaming answer, so it is
// one raw statement (no GORM map update).
func (s *Service) SaveAnswer(ctx context.Context, m *Message, a Answer) (bool, error) {
	if s.db.Dialect == store.SQLite {
		ctx = uncanceled(ctx)
	}
	ct, key := s.sealer.Seal([]byte(a.Content), "message", m.ID, m.ChatID)
	var (
		res sql.Result
		err error
	)
	if a.Status == StatusStreaming {
		res, err = s.exec(ctx, saveStreamingSQL, ct, key, a.Status, s.opt.Now(), m.ID, StatusStreaming)
	} else {
		res, err = s.exec(ctx, saveEndSQL, ct, key, a.Status, s.opt.Now(),
			nullable(a.FinishReason), nullable(a.ErrorCode), a.PromptTokens, a.CompletionTokens,
			a.Duration.Milliseconds(), a.TimeToFirst.Milliseconds(), m.ID, StatusStreaming)
	}
	if err != nil {
		return false, fmt.Errorf("save answer: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("save answer: %w", err)
	}
	return n == 1, nil
}

const (
	saveStreamingSQL = `UPDATE messages SET content_ct = ?, key_id = ?, status = ?, updated_at = ?
		WHERE id = ? AND status = ?`
	saveEndSQL = `UPDATE messages SET content_ct = ?, key_id = ?, status = ?, updated_at = ?,
		finish_reason = ?, error_code = ?, prompt_tokens = ?, completion_tokens = ?, duration_ms = ?, ttft_ms = ?
		WHERE id = ? AND status = ?`
)

// rebind turns a raw statement's ? placeholders into PostgreSQL's $n
// (the statements passed here have no ? inside literals).
func (s *Service) rebind(q string) string {
	if s.db.Dialect != store.Postgres {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Regenerate makes the chat's last message, an assistant answer, stream
// again: its text and figures move to message_versions and the message
// keeps its id and seq. Only members may; a chat already streaming is
// ai.busy.
func (s *Service) Regenerate(ctx context.Context, userID, chatID string, seq int64, model, provider string) (*Sent, error) {
	members, err := s.Members(ctx, userID, chatID)
	if err != nil {
		return nil, err
	}
	var row messageRow
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Lock the chat so no message lands after the check below.
		var last []int64
		if err := tx.Raw("UPDATE chats SET last_seq = last_seq WHERE id = ? RETURNING last_seq", chatID).Scan(&last).Error; err != nil {
			return err
		}
		if len(last) == 0 {
			return notFound()
		}
		if err := tx.Where("chat_id = ? AND seq = ?", chatID, seq).Take(&row).Error; err != nil {
			if store.IsNotFound(err) {
				return apperr.New(apperr.CodeMessageNotFound, "No message %d in this chat.", seq)
			}
			return err
		}
		if row.AuthorKind != AuthorAssistant || seq != last[0] {
			return apperr.Invalid("seq", "Only the last message, when it is the assistant's answer, can be regenerated.")
		}
		if row.Status == StatusStreaming {
			return errBusy()
		}
		err := tx.Exec(`INSERT INTO message_versions (id, message_id, chat_id, content_ct, key_id, status, model,
				finish_reason, prompt_tokens, completion_tokens, created_at)
			SELECT ?, id, chat_id, content_ct, key_id, status, model, finish_reason, prompt_tokens, completion_tokens, ?
			FROM messages WHERE id = ?`, newID(), s.opt.Now(), row.ID).Error
		if err != nil {
			return err
		}
		ct, key := s.sealer.Seal(nil, "message", row.ID, row.ChatID)
		req, mdl, prov := userID, model, provider
		row.ContentCt, row.KeyID, row.Status = ct, key, StatusStreaming
		row.RequestedBy, row.Model, row.Provider = &req, &mdl, &prov
		return tx.Model(&messageRow{}).Where("id = ?", row.ID).Updates(map[string]any{
			"content_ct": ct, "key_id": key, "status": StatusStreaming, "requested_by": userID,
			"model": model, "provider": provider, "finish_reason": nil, "error_code": nil,
			"prompt_tokens": nil, "completion_tokens": nil, "duration_ms": nil, "ttft_ms": nil,
			"updated_at": s.opt.Now()}).Error
	})
	if err != nil {
		if store.IsUniqueViolation(err) {
			return nil, errBusy()
		}
		if _, ok := apperr.As(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("regenerate: %w", err)
	}
	m, err := s.openMessage(&row)
	if err != nil {
		return nil, err
	}
	return &Sent{Message: m, Members: members}, nil
}

// Recent returns up to n messages of a chat before seq, oldest first: the
// history an answer is written from. The caller has checked membership.
// It is on the path from a question to the model, so it reads only what a
// prompt (and Regenerate) uses, with one raw statement and no GORM scan:
// the messages carry no times, client id or edit mark.
func (s *Service) Recent(ctx context.Context, chatID string, beforeSeq int64, n int) ([]*Message, error) {
	if n <= 0 {
		return nil, nil
	}
	return s.recent(ctx, chatID, beforeSeq, n)
}

// recent is Recent, with an empty history (not nil) for n <= 0.
func (s *Service) recent(ctx context.Context, chatID string, beforeSeq int64, n int) ([]*Message, error) {
	if n <= 0 {
		return []*Message{}, nil
	}
	rows, err := s.query(ctx, recentSQL, chatID, beforeSeq, n)
	if err != nil {
		return nil, fmt.Errorf("recent messages: %w", err)
	}
	defer rows.Close()
	out := make([]*Message, 0, n)
	for rows.Next() {
		var (
			r             messageRow
			author, model sql.NullString
		)
		r.ChatID = chatID
		if err := rows.Scan(&r.ID, &r.Seq, &author, &r.AuthorKind, &r.ContentCt, &r.KeyID, &r.Status, &model); err != nil {
			return nil, fmt.Errorf("recent messages: %w", err)
		}
		if author.Valid {
			r.AuthorID = &author.String
		}
		if model.Valid {
			r.Model = &model.String
		}
		m, err := s.openMessage(&r)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recent messages: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

const recentSQL = `SELECT id, seq, author_id, author_kind, content_ct, key_id, status, model FROM messages
	WHERE chat_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`

// FailStaleAnswers ends answers left streaming by an instance that died:
// any streaming message not saved for longer than maxAge becomes failed,
// which also frees its chat's generation lock.
func (s *Service) FailStaleAnswers(ctx context.Context, maxAge time.Duration) (int64, error) {
	cutoff := s.opt.Now().Add(-maxAge)
	res := s.db.WithContext(ctx).Model(&messageRow{}).
		Where("status = ? AND COALESCE(updated_at, created_at) < ?", StatusStreaming, cutoff).
		Updates(map[string]any{"status": StatusFailed, "error_code": "ai.interrupted", "updated_at": s.opt.Now()})
	return res.RowsAffected, res.Error
}

// Streaming reports whether an answer is being generated in the chat.
func (s *Service) Streaming(ctx context.Context, chatID string) (bool, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&messageRow{}).
		Where("chat_id = ? AND status = ?", chatID, StatusStreaming).Count(&n).Error; err != nil {
		return false, fmt.Errorf("streaming: %w", err)
	}
	return n > 0, nil
}

// SetAnswerDue tells Send which of a person's messages the assistant will
// answer: for those, on SQLite, Send reads the history and participants
// the answer needs right after the message's commit, on its own goroutine
// (ChatState.Prefetched). Call it before serving.
func (s *Service) SetAnswerDue(due func(st Settings, content string) bool) { s.answerDue = due }
