package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/aichat/aichat/internal/apperr"
)

// SessionInfo describes one signed-in device or tab group: a refresh-token
// family that is still alive.
type SessionInfo struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Current    bool      `json:"current"`
}

// Sessions lists the user's live sessions, most recently used first.
// currentID marks the caller's own.
func (s *Service) Sessions(ctx context.Context, userID, currentID string) ([]SessionInfo, error) {
	var rows []refreshToken
	now := s.opt.Now()
	err := s.db.WithContext(ctx).
		Where("user_id = ? AND revoked_at IS NULL AND used_at IS NULL AND expires_at > ?", userID, now).
		Order("created_at DESC").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out := make([]SessionInfo, 0, len(rows))
	for _, r := range rows {
		var first refreshToken
		started := r.CreatedAt
		if err := s.db.WithContext(ctx).Select("created_at").Where("family_id = ?", r.FamilyID).
			Order("created_at").Limit(1).Take(&first).Error; err == nil {
			started = first.CreatedAt
		}
		out = append(out, SessionInfo{ID: r.FamilyID, CreatedAt: started, LastUsedAt: r.CreatedAt,
			ExpiresAt: r.ExpiresAt, Current: r.FamilyID == currentID})
	}
	return out, nil
}

// RevokeSession signs out one of the user's sessions. A session id that is
// not the user's answers session.notFound, exactly like one that does not
// exist.
func (s *Service) RevokeSession(ctx context.Context, userID, sessionID string) error {
	res := s.db.WithContext(ctx).Model(&refreshToken{}).
		Where("family_id = ? AND user_id = ? AND revoked_at IS NULL", sessionID, userID).
		Update("revoked_at", s.opt.Now())
	if res.Error != nil {
		return fmt.Errorf("revoke session: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return apperr.New(apperr.CodeSessionNotFound, "Session not found.")
	}
	return nil
}
