package admin

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aichat/aichat/internal/ai"
	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/store"
)

// A flag is a moderation refusal waiting for review. It holds what the
// filter matched (a configured pattern, or the provider's categories) and
// where (chat, message and user ids, the time), never the text: reviewing
// the queue does not hand support staff anyone's conversation.

type flagRow struct {
	ID         string
	ChatID     *string
	MessageID  *string
	UserID     *string
	Stage      string
	Source     string
	Matched    string
	CreatedAt  time.Time
	ReviewedAt *time.Time
	ReviewedBy *string
}

func (flagRow) TableName() string { return "moderation_flags" }

// Flag is a moderation flag as listed.
type Flag struct {
	ID         string     `json:"id"`
	ChatID     *string    `json:"chat_id"` // null once the chat is deleted
	MessageID  *string    `json:"message_id"`
	UserID     *string    `json:"user_id"`
	UserEmail  string     `json:"user_email"`
	Stage      string     `json:"stage"`   // question or answer
	Source     string     `json:"source"`  // pattern or provider
	Matched    string     `json:"matched"` // the pattern as configured, or the categories
	CreatedAt  time.Time  `json:"created_at"`
	ReviewedAt *time.Time `json:"reviewed_at"`
	ReviewedBy *string    `json:"reviewed_by"`
}

// maxMatched bounds what a flag stores of a pattern or category list.
const maxMatched = 200

// FlagRecorder returns the hook the assistant calls when moderation refuses
// a question or an answer (ai.Options.OnFlag). A failure is logged: the
// refusal itself has happened either way.
func FlagRecorder(db *store.DB, log *slog.Logger) func(ctx context.Context, f ai.Flag) {
	return func(ctx context.Context, f ai.Flag) {
		row := flagRow{ID: newID(), Stage: f.Stage, Source: f.Source, Matched: truncate(f.Matched, maxMatched), CreatedAt: f.At.UTC()}
		if row.CreatedAt.IsZero() {
			row.CreatedAt = time.Now().UTC()
		}
		if validID(f.ChatID) {
			row.ChatID = &f.ChatID
		}
		if validID(f.MessageID) {
			row.MessageID = &f.MessageID
		}
		if validID(f.UserID) {
			row.UserID = &f.UserID
		}
		if err := db.WithContext(ctx).Create(&row).Error; err != nil && log != nil {
			log.Error("admin: record moderation flag", "chat_id", f.ChatID, "err", err)
		}
	}
}

// FlagQuery filters the queue: Status is "open" (default), "reviewed" or
// "all".
type FlagQuery struct {
	Status string
	Page
}

// FlagPage is one page of flags, newest first.
type FlagPage struct {
	Flags []Flag `json:"flags"`
	Next  string `json:"next"`
}

// Flags lists the moderation queue.
func (s *Service) Flags(ctx context.Context, q FlagQuery) (*FlagPage, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	db := s.db.WithContext(ctx).Table("moderation_flags AS f").
		Select("f.*, COALESCE(users.email, '') AS user_email").
		Joins("LEFT JOIN users ON users.id = f.user_id")
	switch q.Status {
	case "", "open":
		db = db.Where("f.reviewed_at IS NULL")
	case "reviewed":
		db = db.Where("f.reviewed_at IS NOT NULL")
	case "all":
	default:
		return nil, apperr.Invalid("status", "status must be open, reviewed or all.")
	}
	if q.Before != "" {
		db = db.Where("f.id < ?", q.Before)
	}
	var rows []Flag
	if err := db.Order("f.id DESC").Limit(q.Limit + 1).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("list flags: %w", err)
	}
	out := &FlagPage{Flags: rows}
	if out.Flags == nil {
		out.Flags = []Flag{}
	}
	if len(rows) > q.Limit {
		out.Flags = rows[:q.Limit]
		out.Next = rows[q.Limit-1].ID
	}
	for i := range out.Flags {
		out.Flags[i].CreatedAt = out.Flags[i].CreatedAt.UTC()
	}
	return out, nil
}

// ReviewFlag marks a flag reviewed (again is not an error) and returns it.
func (s *Service) ReviewFlag(ctx context.Context, actor *auth.Principal, id string) (*Flag, error) {
	notFound := apperr.New(apperr.CodeFlagNotFound, "Moderation flag not found.")
	if !validID(id) {
		return nil, notFound
	}
	res := s.db.WithContext(ctx).Model(&flagRow{}).Where("id = ? AND reviewed_at IS NULL", id).
		Updates(map[string]any{"reviewed_at": s.opt.Now().UTC(), "reviewed_by": actor.UserID})
	if res.Error != nil {
		return nil, fmt.Errorf("review flag: %w", res.Error)
	}
	var f Flag
	err := s.db.WithContext(ctx).Table("moderation_flags AS f").
		Select("f.*, COALESCE(users.email, '') AS user_email").
		Joins("LEFT JOIN users ON users.id = f.user_id").Where("f.id = ?", id).Take(&f).Error
	if store.IsNotFound(err) {
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("load flag: %w", err)
	}
	if res.RowsAffected == 1 {
		s.audit(ctx, actor, ActionFlagReview, "flag", id, map[string]any{"matched": f.Matched, "source": f.Source})
	}
	return &f, nil
}
