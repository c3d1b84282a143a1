package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/store"
	"gorm.io/gorm"
)

// Invitation is a pending invitation to a chat whose settings ask
// newcomers to accept first (Settings.RequireAcceptance). The invitee is
// not a member until they accept: they see the chat's title here and
// nothing else of it.
type Invitation struct {
	ID        string       `json:"id"`
	ChatID    string       `json:"chat_id"`
	ChatTitle string       `json:"chat_title"`
	User      Participant  `json:"user"`       // the person invited
	InvitedBy *Participant `json:"invited_by"` // nil once that account is gone
	CreatedAt time.Time    `json:"created_at"`
}

type invitationRow struct {
	ID        string
	ChatID    string
	UserID    string
	InvitedBy *string
	CreatedAt time.Time
}

func (invitationRow) TableName() string { return "chat_invitations" }

func errInvitationNotFound() error {
	return apperr.New(apperr.CodeInvitationNotFound, "Invitation not found; it may have been withdrawn.")
}

// invite records an invitation of u to c by the owner (idempotent: a
// second invitation of the same person returns the first).
func (s *Service) invite(ctx context.Context, c *Chat, by string, u userRow) (*Invitation, error) {
	row := invitationRow{ID: newID(), ChatID: c.ID, UserID: u.ID, InvitedBy: &by, CreatedAt: s.opt.Now()}
	err := s.db.WithContext(ctx).Create(&row).Error
	if store.IsUniqueViolation(err) {
		var have invitationRow
		if err := s.db.WithContext(ctx).Where("chat_id = ? AND user_id = ?", c.ID, u.ID).Take(&have).Error; err != nil {
			return nil, fmt.Errorf("find invitation: %w", err)
		}
		list, err := s.describeInvitations(ctx, []invitationRow{have})
		if err != nil {
			return nil, err
		}
		return list[0], nil
	}
	if err != nil {
		return nil, fmt.Errorf("invite: %w", err)
	}
	list, err := s.describeInvitations(ctx, []invitationRow{row})
	if err != nil {
		return nil, err
	}
	s.relations().Invited(c, by, u.ID, row.ID)
	return list[0], nil
}

// Invitations lists the invitations waiting for userID, newest first.
func (s *Service) Invitations(ctx context.Context, userID string) ([]*Invitation, error) {
	var rows []invitationRow
	if err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("created_at DESC, id DESC").Limit(200).
		Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list invitations: %w", err)
	}
	return s.describeInvitations(ctx, rows)
}

// ChatInvitations lists who is invited to a chat; any member may see it.
func (s *Service) ChatInvitations(ctx context.Context, userID, chatID string) ([]*Invitation, error) {
	if _, err := s.Members(ctx, userID, chatID); err != nil {
		return nil, err
	}
	var rows []invitationRow
	if err := s.db.WithContext(ctx).Where("chat_id = ?", chatID).Order("created_at DESC, id DESC").
		Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list chat invitations: %w", err)
	}
	return s.describeInvitations(ctx, rows)
}

// AcceptInvitation makes userID a member of the chat they were invited to.
func (s *Service) AcceptInvitation(ctx context.Context, userID, invitationID string) (*Chat, error) {
	row, err := s.ownInvitation(ctx, userID, invitationID)
	if err != nil {
		return nil, err
	}
	var count int64
	if err := s.db.WithContext(ctx).Model(&memberRow{}).Where("chat_id = ?", row.ChatID).Count(&count).Error; err != nil {
		return nil, fmt.Errorf("count members: %w", err)
	}
	if count >= MaxParticipants+1 {
		return nil, apperr.Invalid("", "This chat is full (%d participants).", MaxParticipants)
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Where("id = ? AND user_id = ?", row.ID, userID).Delete(&invitationRow{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errInvitationNotFound() // accepted or withdrawn meanwhile
		}
		return s.join(tx, row.ChatID, userID)
	})
	if err != nil {
		if store.IsUniqueViolation(err) {
			return s.Get(ctx, userID, row.ChatID) // already a member: nothing to do
		}
		var ae *apperr.Error
		if errors.As(err, &ae) {
			return nil, err
		}
		return nil, fmt.Errorf("accept invitation: %w", err)
	}
	s.unread.invalidate(userID)
	c, err := s.Get(ctx, userID, row.ChatID)
	if err != nil {
		return nil, err
	}
	s.events.ChatChanged(c.ID, memberIDs(c), nil)
	return c, nil
}

// DeclineInvitation drops an invitation userID received.
func (s *Service) DeclineInvitation(ctx context.Context, userID, invitationID string) error {
	if !validIDs([]string{invitationID}) {
		return errInvitationNotFound()
	}
	res := s.db.WithContext(ctx).Where("id = ? AND user_id = ?", invitationID, userID).Delete(&invitationRow{})
	if res.Error != nil {
		return fmt.Errorf("decline invitation: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return errInvitationNotFound()
	}
	return nil
}

// CancelInvitation withdraws an invitation to a chat (its owner only).
func (s *Service) CancelInvitation(ctx context.Context, userID, chatID, invitationID string) error {
	c, err := s.Get(ctx, userID, chatID)
	if err != nil {
		return err
	}
	if c.OwnerID != userID {
		return apperr.New(apperr.CodeChatForbidden, "Only the chat's owner can withdraw invitations.")
	}
	if !validIDs([]string{invitationID}) {
		return errInvitationNotFound()
	}
	res := s.db.WithContext(ctx).Where("id = ? AND chat_id = ?", invitationID, chatID).Delete(&invitationRow{})
	if res.Error != nil {
		return fmt.Errorf("cancel invitation: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return errInvitationNotFound()
	}
	return nil
}

func (s *Service) ownInvitation(ctx context.Context, userID, invitationID string) (*invitationRow, error) {
	if !validIDs([]string{invitationID}) {
		return nil, errInvitationNotFound()
	}
	var row invitationRow
	err := s.db.WithContext(ctx).Where("id = ? AND user_id = ?", invitationID, userID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errInvitationNotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("find invitation: %w", err)
	}
	return &row, nil
}

// join adds userID to chatID inside tx. A newcomer starts with nothing
// unread: history before they joined is visible but not counted. The chat
// row is updated (and so locked) first, so a concurrent send either lands
// before the newcomer's read mark or counts them as unread, never neither.
func (s *Service) join(tx *gorm.DB, chatID, userID string) error {
	var last []int64
	if err := tx.Raw("UPDATE chats SET kind = ?, updated_at = ? WHERE id = ? RETURNING last_seq", KindGroup, s.opt.Now(), chatID).
		Scan(&last).Error; err != nil {
		return err
	}
	if len(last) == 0 {
		return notFound()
	}
	return tx.Create(&memberRow{ChatID: chatID, UserID: userID, Role: RoleMember, JoinedAt: s.opt.Now(), LastReadSeq: last[0]}).Error
}

// describeInvitations adds the chats' titles and the people to rows.
func (s *Service) describeInvitations(ctx context.Context, rows []invitationRow) ([]*Invitation, error) {
	out := make([]*Invitation, 0, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	var chatIDs, userIDs []string
	for _, r := range rows {
		if !slices.Contains(chatIDs, r.ChatID) {
			chatIDs = append(chatIDs, r.ChatID)
		}
		userIDs = append(userIDs, r.UserID)
		if r.InvitedBy != nil {
			userIDs = append(userIDs, *r.InvitedBy)
		}
	}
	var chats []chatRow
	if err := s.db.WithContext(ctx).Where("id IN ?", chatIDs).Find(&chats).Error; err != nil {
		return nil, fmt.Errorf("invitation chats: %w", err)
	}
	titles := map[string]string{}
	for i := range chats {
		c, err := s.openChat(&chats[i])
		if err != nil {
			return nil, err
		}
		titles[c.ID] = c.Title
	}
	var users []userRow
	if err := s.db.WithContext(ctx).Where("id IN ?", userIDs).Find(&users).Error; err != nil {
		return nil, fmt.Errorf("invitation users: %w", err)
	}
	people := map[string]Participant{}
	for _, u := range users {
		people[u.ID] = Participant{ID: u.ID, Email: u.Email, Name: u.Name}
	}
	for _, r := range rows {
		inv := &Invitation{ID: r.ID, ChatID: r.ChatID, ChatTitle: titles[r.ChatID], User: people[r.UserID], CreatedAt: r.CreatedAt.UTC()}
		if r.InvitedBy != nil {
			if p, ok := people[*r.InvitedBy]; ok {
				inv.InvitedBy = &p
			}
		}
		out = append(out, inv)
	}
	return out, nil
}
