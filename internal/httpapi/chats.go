package httpapi

import (
	"net/http"
	"strconv"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/chat"
	"github.com/gin-gonic/gin"
)

// The answers that wrap a list or a few values. Their fields are in the
// order of their JSON names, as a map's would be.
type (
	chatList struct {
		Chats []*chat.Chat `json:"chats"`
	}
	invitationList struct {
		Invitations []*chat.Invitation `json:"invitations"`
	}
	// invitationResponse: the chat asks newcomers to accept, so they were
	// invited rather than added.
	invitationResponse struct {
		Invitation *chat.Invitation `json:"invitation"`
	}
	messagePage struct {
		HasMore  bool            `json:"has_more"` // there are more messages in the direction asked
		Messages []*chat.Message `json:"messages"`
	}
	readResponse struct {
		ChatID      string `json:"chat_id"`
		Total       int    `json:"total"`        // unread messages in all the caller's chats
		UnreadCount int    `json:"unread_count"` // unread messages left in this chat
	}
)

// handleChatList lists the caller's chats, most recent activity first.
func (s *server) handleChatList(c *gin.Context) error {
	list, err := s.chats.List(c.Request.Context(), me(c).UserID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, chatList{Chats: inScope(me(c), list)})
	return nil
}

// handleChatCreate creates a chat owned by the caller.
func (s *server) handleChatCreate(c *gin.Context) error {
	var req chat.NewChat
	if err := decode(c, &req); err != nil {
		return err
	}
	ch, err := s.chats.Create(c.Request.Context(), me(c).UserID, req)
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, ch)
	return nil
}

// handleChatGet shows one of the caller's chats.
func (s *server) handleChatGet(c *gin.Context) error {
	ch, err := s.chats.Get(c.Request.Context(), me(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, ch)
	return nil
}

// handleChatUpdate renames a chat or changes its AI settings.
func (s *server) handleChatUpdate(c *gin.Context) error {
	var req chat.Update
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Title == nil && req.Settings == nil {
		return apperr.Invalid("", "Send title, settings, or both.")
	}
	ch, err := s.chats.Update(c.Request.Context(), me(c).UserID, c.Param("id"), req)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, ch)
	return nil
}

// handleChatDelete deletes a chat (owner only).
func (s *server) handleChatDelete(c *gin.Context) error {
	if _, err := s.chats.Delete(c.Request.Context(), me(c).UserID, c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

type participantRequest struct {
	Email string `json:"email"`
}

// handleParticipantAdd adds someone to a chat by email (owner only).
func (s *server) handleParticipantAdd(c *gin.Context) error {
	var req participantRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Email == "" {
		return apperr.Invalid("email", "email is required.")
	}
	ch, inv, err := s.chats.AddParticipant(c.Request.Context(), me(c).UserID, c.Param("id"), req.Email)
	if err != nil {
		return err
	}
	if inv != nil {
		// The chat asks newcomers to accept: they are invited, not added.
		c.JSON(http.StatusAccepted, invitationResponse{Invitation: inv})
		return nil
	}
	c.JSON(http.StatusOK, ch)
	return nil
}

// handleChatInvitations lists who is invited to a chat (any member).
func (s *server) handleChatInvitations(c *gin.Context) error {
	list, err := s.chats.ChatInvitations(c.Request.Context(), me(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, invitationList{Invitations: list})
	return nil
}

// handleChatInvitationCancel withdraws an invitation (the chat's owner).
func (s *server) handleChatInvitationCancel(c *gin.Context) error {
	if err := s.chats.CancelInvitation(c.Request.Context(), me(c).UserID, c.Param("id"), c.Param("inv")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleInvitations lists the invitations waiting for the caller.
func (s *server) handleInvitations(c *gin.Context) error {
	list, err := s.chats.Invitations(c.Request.Context(), me(c).UserID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, invitationList{Invitations: list})
	return nil
}

// handleInvitationAccept joins the chat; it answers the chat.
func (s *server) handleInvitationAccept(c *gin.Context) error {
	ch, err := s.chats.AcceptInvitation(c.Request.Context(), me(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, ch)
	return nil
}

// handleInvitationDecline drops an invitation the caller received.
func (s *server) handleInvitationDecline(c *gin.Context) error {
	if err := s.chats.DeclineInvitation(c.Request.Context(), me(c).UserID, c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleParticipantRemove removes a member (owner), or the caller
// themselves ("me" or their own id: leave).
func (s *server) handleParticipantRemove(c *gin.Context) error {
	p := me(c)
	target := c.Param("user")
	if target == "me" {
		target = p.UserID
	}
	if err := s.chats.RemoveParticipant(c.Request.Context(), p.UserID, c.Param("id"), target); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

type sendRequest struct {
	Content  string `json:"content"`
	ClientID string `json:"client_id"`
}

// handleMessageSend stores a message. A retry with the same client_id
// answers 200 with the original message instead of 201.
func (s *server) handleMessageSend(c *gin.Context) error {
	var req sendRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	sent, err := s.chats.Send(c.Request.Context(), me(c).UserID, c.Param("id"), req.Content, req.ClientID)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if sent.Duplicate {
		status = http.StatusOK
	}
	c.JSON(status, sent.Message)
	return nil
}

// handleMessageList pages through a chat's history by seq:
// ?before=N (older than N, newest first), ?after=N (newer than N, oldest
// first), ?limit=1..200 (default 50).
func (s *server) handleMessageList(c *gin.Context) error {
	var p chat.Page
	var err error
	if p.Before, err = queryInt(c, "before"); err != nil {
		return err
	}
	if p.After, err = queryInt(c, "after"); err != nil {
		return err
	}
	_, p.FromAfter = c.GetQuery("after") // after=0: from the first message, oldest first
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	if limit < 0 || limit > 200 {
		return apperr.Invalid("limit", "limit must be between 1 and 200.")
	}
	p.Limit = int(limit)
	msgs, more, err := s.chats.History(c.Request.Context(), me(c).UserID, c.Param("id"), p)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, messagePage{HasMore: more, Messages: msgs})
	return nil
}

type readRequest struct {
	Seq int64 `json:"seq"`
}

// handleChatRead marks a chat read, up to seq when given.
func (s *server) handleChatRead(c *gin.Context) error {
	var req readRequest
	if c.Request.ContentLength != 0 {
		if err := decode(c, &req); err != nil {
			return err
		}
	}
	u, err := s.chats.MarkRead(c.Request.Context(), me(c).UserID, c.Param("id"), req.Seq)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, readResponse{ChatID: c.Param("id"), Total: u.Total, UnreadCount: u.Chats[c.Param("id")]})
	return nil
}

// handleUnread returns the caller's unread counts per chat and in total.
func (s *server) handleUnread(c *gin.Context) error {
	u, err := s.chats.UnreadFresh(c.Request.Context(), me(c).UserID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, u)
	return nil
}

func queryInt(c *gin.Context, name string) (int64, error) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, apperr.Invalid(name, "%s must be a non-negative integer.", name)
	}
	return n, nil
}
