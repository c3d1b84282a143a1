package chat

import (
	"context"
	"fmt"
	"slices"

	"github.com/aichat/aichat/internal/apperr"
)

// Relations is what chat asks of the people around a user: who blocked
// whom, who are friends (they see each other's presence, like people who
// share a chat), and who should hear that they were added to or removed
// from a chat. Package social implements it, so chat does not import it;
// with none set nobody is blocked, nobody has friends and nobody hears.
type Relations interface {
	// Blocks returns which of others have blocked userID (blockedBy) and
	// which of others userID has blocked (blocking).
	Blocks(ctx context.Context, userID string, others []string) (blockedBy, blocking []string, err error)
	// Friends returns the ids of userID's friends.
	Friends(ctx context.Context, userID string) ([]string, error)
	// MembersAdded: by added these users to c (committed). Must not block.
	MembersAdded(c *Chat, by string, added []string)
	// MembersRemoved: by removed these users from c, or deleted c (then
	// removed is every other member). Must not block.
	MembersRemoved(c *Chat, by string, removed []string, deleted bool)
	// Invited: by invited userID to c (a chat that asks newcomers to
	// accept); invitationID names the invitation. Must not block.
	Invited(c *Chat, by, userID, invitationID string)
}

// SetRelations sets who answers questions about blocks and friends, and
// hears about membership changes; call it before serving.
func (s *Service) SetRelations(r Relations) { s.rel = r }

func (s *Service) relations() Relations {
	if s.rel == nil {
		return noRelations{}
	}
	return s.rel
}

type noRelations struct{}

func (noRelations) Blocks(context.Context, string, []string) ([]string, []string, error) {
	return nil, nil, nil
}
func (noRelations) Friends(context.Context, string) ([]string, error) { return nil, nil }
func (noRelations) MembersAdded(*Chat, string, []string)              {}
func (noRelations) MembersRemoved(*Chat, string, []string, bool)      {}
func (noRelations) Invited(*Chat, string, string, string)             {}

// checkAddable refuses to put people who blocked userID into a chat with
// them (chat.blocked).
func (s *Service) checkAddable(ctx context.Context, userID, field string, users []userRow) error {
	if s.rel == nil || len(users) == 0 {
		return nil
	}
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	by, _, err := s.rel.Blocks(ctx, userID, ids)
	if err != nil {
		return fmt.Errorf("check blocks: %w", err)
	}
	for _, u := range users {
		if slices.Contains(by, u.ID) {
			return &apperr.Error{Code: apperr.CodeChatBlocked, Field: field,
				Message: fmt.Sprintf("You cannot add %s to a chat.", u.Email)}
		}
	}
	return nil
}

// checkDirect refuses a message in a direct chat (a chat of exactly two
// people) when either has blocked the other (chat.blocked).
func (s *Service) checkDirect(ctx context.Context, userID string, members []string) error {
	if s.rel == nil || len(members) != 2 {
		return nil
	}
	other := members[0]
	if other == userID {
		other = members[1]
	}
	by, blocking, err := s.rel.Blocks(ctx, userID, []string{other})
	if err != nil {
		return fmt.Errorf("check blocks: %w", err)
	}
	switch {
	case len(blocking) > 0:
		return apperr.New(apperr.CodeChatBlocked, "You blocked this person; unblock them to write to them.")
	case len(by) > 0:
		return apperr.New(apperr.CodeChatBlocked, "You cannot write to this person.")
	}
	return nil
}

// FindDirect returns the most recently active direct chat between userID
// and otherID: a group chat whose only two members are the two of them;
// nil when there is none.
func (s *Service) FindDirect(ctx context.Context, userID, otherID string) (*Chat, error) {
	if !validIDs([]string{userID, otherID}) || userID == otherID {
		return nil, nil
	}
	var ids []string
	err := s.db.WithContext(ctx).Raw(`SELECT c.id FROM chats c
		JOIN chat_members a ON a.chat_id = c.id AND a.user_id = ?
		JOIN chat_members b ON b.chat_id = c.id AND b.user_id = ?
		WHERE c.kind = ? AND (SELECT COUNT(*) FROM chat_members m WHERE m.chat_id = c.id) = 2
		ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id DESC LIMIT 1`,
		userID, otherID, KindGroup).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("find direct chat: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return s.Get(ctx, userID, ids[0])
}

// UnreadBelow returns the members of chatID whose read mark is below seq:
// those who have not seen the message with that seq.
func (s *Service) UnreadBelow(ctx context.Context, chatID string, seq int64) ([]string, error) {
	if !validIDs([]string{chatID}) {
		return nil, nil
	}
	var ids []string
	if err := s.db.WithContext(ctx).Model(&memberRow{}).Where("chat_id = ? AND last_read_seq < ?", chatID, seq).
		Pluck("user_id", &ids).Error; err != nil {
		return nil, fmt.Errorf("unread members: %w", err)
	}
	return ids, nil
}
