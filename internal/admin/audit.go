package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/auth"
)

// Audited actions. Clients may filter on these; never rename one.
const (
	ActionUserRole    = "user.role"
	ActionUserBlock   = "user.block"
	ActionUserUnblock = "user.unblock"
	ActionUserUpdate  = "user.update" // role and blocked changed together
	ActionQuotaReset  = "user.quotaReset"
	ActionBotCreate   = "bot.create"
	ActionKeyIssue    = "apiKey.issue"
	ActionKeyRevoke   = "apiKey.revoke"
	ActionFlagReview  = "flag.review"
)

// Entry is one audit log line. Details never hold a secret: an API key
// appears by id and prefix only.
type Entry struct {
	ID         string          `json:"id"`
	ActorID    *string         `json:"actor_id"` // null once the account is deleted
	ActorEmail string          `json:"actor_email"`
	Action     string          `json:"action"`
	TargetType string          `json:"target_type"` // user, api_key, flag
	TargetID   string          `json:"target_id"`
	Details    json.RawMessage `json:"details" swaggertype:"object"`
	CreatedAt  time.Time       `json:"created_at"`
}

type auditRow struct {
	ID         string
	ActorID    *string
	ActorEmail string
	Action     string
	TargetType string
	TargetID   string
	Details    string
	CreatedAt  time.Time
}

func (auditRow) TableName() string { return "audit_log" }

// audit writes one entry. The action has happened by now, so a failure to
// record it is logged loudly rather than reported to the caller as if the
// action had failed.
func (s *Service) audit(ctx context.Context, actor *auth.Principal, action, targetType, targetID string, details map[string]any) {
	row := auditRow{ID: newID(), ActorEmail: actor.Email, Action: action, TargetType: targetType, TargetID: targetID,
		Details: marshalDetails(details), CreatedAt: s.opt.Now().UTC()}
	if actor.UserID != "" {
		id := actor.UserID
		row.ActorID = &id
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		s.opt.Log.Error("admin: write audit log", "action", action, "actor_id", actor.UserID, "target_id", targetID, "err", err)
	}
}

// AuditQuery filters the audit log; empty fields do not filter.
type AuditQuery struct {
	Action string
	Actor  string // user id
	Target string // any target id
	Page
}

// AuditPage is one page of the log, newest first.
type AuditPage struct {
	Entries []Entry `json:"entries"`
	Next    string  `json:"next"`
}

// Audit lists the audit log.
func (s *Service) Audit(ctx context.Context, q AuditQuery) (*AuditPage, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	if q.Actor != "" && !validID(q.Actor) {
		return nil, apperr.Invalid("actor", "actor must be a user id.")
	}
	if len(q.Action) > 64 || len(q.Target) > 64 {
		return nil, apperr.Invalid("", "Filter values are too long.")
	}
	db := s.db.WithContext(ctx).Model(&auditRow{})
	if q.Action != "" {
		db = db.Where("action = ?", q.Action)
	}
	if q.Actor != "" {
		db = db.Where("actor_id = ?", q.Actor)
	}
	if q.Target != "" {
		db = db.Where("target_id = ?", q.Target)
	}
	if q.Before != "" {
		db = db.Where("id < ?", q.Before)
	}
	var rows []auditRow
	if err := db.Order("id DESC").Limit(q.Limit + 1).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	out := &AuditPage{Entries: make([]Entry, 0, len(rows))}
	if len(rows) > q.Limit {
		rows = rows[:q.Limit]
		out.Next = rows[q.Limit-1].ID
	}
	for _, r := range rows {
		out.Entries = append(out.Entries, Entry{ID: r.ID, ActorID: r.ActorID, ActorEmail: r.ActorEmail, Action: r.Action,
			TargetType: r.TargetType, TargetID: r.TargetID, Details: json.RawMessage(r.Details), CreatedAt: r.CreatedAt.UTC()})
	}
	return out, nil
}
