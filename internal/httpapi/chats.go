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
//
// @Summary The caller's chats
// @Description Most recent activity first. A bot API key sees only the chats it names.
// @Tags chats
// @Produce json
// @Success 200 {object} chatList
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Security BotAPIKey
// @Router /api/v1/chats [get]
func (s *server) handleChatList(c *gin.Context) error {
	list, err := s.chats.List(c.Request.Context(), me(c).UserID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, chatList{Chats: inScope(me(c), list)})
	return nil
}

// handleChatCreate creates a chat owned by the caller.
//
// @Summary Create a chat
// @Tags chats
// @Accept json
// @Produce json
// @Param body body chat.NewChat true "Title, AI settings and members"
// @Success 201 {object} chat.Chat
// @Failure 400 {object} errorBody "validation.failed: title, settings or participants"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "chat.blocked: a member blocked the caller, or the other way round; auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "user.notFound: a member to add has no account"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/chats [post]
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
//
// @Summary One chat
// @Tags chats
// @Produce json
// @Param id path string true "Chat id"
// @Success 200 {object} chat.Chat
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked"
// @Failure 404 {object} errorBody "chat.notFound (also for a chat the caller is not in)"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Security BotAPIKey
// @Router /api/v1/chats/{id} [get]
func (s *server) handleChatGet(c *gin.Context) error {
	ch, err := s.chats.Get(c.Request.Context(), me(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, ch)
	return nil
}

// handleChatUpdate renames a chat or changes its AI settings.
//
// @Summary Rename a chat or change its AI settings
// @Tags chats
// @Accept json
// @Produce json
// @Param id path string true "Chat id"
// @Param body body chat.Update true "title, settings, or both"
// @Success 200 {object} chat.Chat
// @Failure 400 {object} errorBody "validation.failed: title or settings"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "chat.forbidden: only the owner may; auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "chat.notFound"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/chats/{id} [patch]
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
//
// @Summary Delete a chat
// @Tags chats
// @Produce json
// @Param id path string true "Chat id"
// @Success 204 "Deleted"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "chat.forbidden: only the owner may; auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "chat.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/chats/{id} [delete]
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
//
// @Summary Add a member by email
// @Description The owner adds someone. When the chat asks newcomers to accept, they are invited instead (202).
// @Tags chats
// @Accept json
// @Produce json
// @Param id path string true "Chat id"
// @Param body body participantRequest true "The email of the person to add"
// @Success 200 {object} chat.Chat "Added"
// @Success 202 {object} invitationResponse "Invited"
// @Failure 400 {object} errorBody "validation.failed: email is required"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "chat.forbidden: only the owner may; chat.blocked; auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "chat.notFound, user.notFound"
// @Failure 409 {object} errorBody "chat.alreadyMember"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/chats/{id}/participants [post]
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
//
// @Summary A chat's pending invitations
// @Tags invitations
// @Produce json
// @Param id path string true "Chat id"
// @Success 200 {object} invitationList
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "chat.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/chats/{id}/invitations [get]
func (s *server) handleChatInvitations(c *gin.Context) error {
	list, err := s.chats.ChatInvitations(c.Request.Context(), me(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, invitationList{Invitations: list})
	return nil
}

// handleChatInvitationCancel withdraws an invitation (the chat's owner).
//
// @Summary Withdraw an invitation
// @Tags invitations
// @Produce json
// @Param id path string true "Chat id"
// @Param inv path string true "Invitation id"
// @Success 204 "Withdrawn"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "chat.forbidden: only the owner may; auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "chat.notFound, invitation.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/chats/{id}/invitations/{inv} [delete]
func (s *server) handleChatInvitationCancel(c *gin.Context) error {
	if err := s.chats.CancelInvitation(c.Request.Context(), me(c).UserID, c.Param("id"), c.Param("inv")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleInvitations lists the invitations waiting for the caller.
//
// @Summary Invitations waiting for the caller
// @Tags invitations
// @Produce json
// @Success 200 {object} invitationList
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/invitations [get]
func (s *server) handleInvitations(c *gin.Context) error {
	list, err := s.chats.Invitations(c.Request.Context(), me(c).UserID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, invitationList{Invitations: list})
	return nil
}

// handleInvitationAccept joins the chat; it answers the chat.
//
// @Summary Accept an invitation
// @Tags invitations
// @Produce json
// @Param id path string true "Invitation id"
// @Success 200 {object} chat.Chat "The chat joined"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "chat.blocked; auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "invitation.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/invitations/{id}/accept [post]
func (s *server) handleInvitationAccept(c *gin.Context) error {
	ch, err := s.chats.AcceptInvitation(c.Request.Context(), me(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, ch)
	return nil
}

// handleInvitationDecline drops an invitation the caller received.
//
// @Summary Decline an invitation
// @Tags invitations
// @Produce json
// @Param id path string true "Invitation id"
// @Success 204 "Declined"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "invitation.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/invitations/{id}/decline [post]
func (s *server) handleInvitationDecline(c *gin.Context) error {
	if err := s.chats.DeclineInvitation(c.Request.Context(), me(c).UserID, c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleParticipantRemove removes a member (owner), or the caller
// themselves ("me" or their own id: leave).
//
// @Summary Remove a member, or leave
// @Description The owner removes a member; anyone removes themselves (user = me or their own id) to leave.
// @Tags chats
// @Produce json
// @Param id path string true "Chat id"
// @Param user path string true "User id, or me"
// @Success 204 "Removed"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "chat.forbidden; auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "chat.notFound, user.notFound"
// @Failure 409 {object} errorBody "chat.ownerCannotLeave"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/chats/{id}/participants/{user} [delete]
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
//
// @Summary Send a message
// @Description Stores the message and sends it to the chat's members over their sockets; in a chat with the assistant, its answer streams over the socket. A retry with the same client_id answers 200 with the original message instead of 201.
// @Tags messages
// @Accept json
// @Produce json
// @Param id path string true "Chat id"
// @Param body body sendRequest true "The text, and a client id that makes retries safe"
// @Success 201 {object} chat.Message "Stored"
// @Success 200 {object} chat.Message "A retry: the message stored the first time"
// @Failure 400 {object} errorBody "validation.failed: empty or too long content"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "chat.blocked; auth.userBlocked"
// @Failure 404 {object} errorBody "chat.notFound"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 422 {object} errorBody "message.idempotencyConflict: client_id was used for a different message"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Security BotAPIKey
// @Router /api/v1/chats/{id}/messages [post]
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
//
// @Summary A chat's history
// @Description Pages by seq: before=N gives older messages than N, newest first; after=N gives newer ones, oldest first (after=0: from the first message). Neither: the latest, newest first.
// @Tags messages
// @Produce json
// @Param id path string true "Chat id"
// @Param before query integer false "Messages older than this seq" minimum(0)
// @Param after query integer false "Messages newer than this seq" minimum(0)
// @Param limit query integer false "1 to 200" minimum(1) maximum(200) default(50)
// @Success 200 {object} messagePage
// @Failure 400 {object} errorBody "validation.failed: before, after or limit"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked"
// @Failure 404 {object} errorBody "chat.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Security BotAPIKey
// @Router /api/v1/chats/{id}/messages [get]
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
//
// @Summary Mark a chat read
// @Description Up to seq when given, else up to the last message. The body is optional. The read mark never moves backwards.
// @Tags messages
// @Produce json
// @Param id path string true "Chat id"
// @Param body body readRequest false "Read up to this seq; 0 or no body: everything"
// @Success 200 {object} readResponse
// @Failure 400 {object} errorBody "validation.failed"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked"
// @Failure 404 {object} errorBody "chat.notFound"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Security BotAPIKey
// @Router /api/v1/chats/{id}/read [post]
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
//
// @Summary Unread counts
// @Tags me
// @Produce json
// @Success 200 {object} chat.Unread "Per chat and in total"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/me/unread [get]
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
