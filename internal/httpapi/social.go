package httpapi

import (
	"net/http"
	"strconv"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/gin-gonic/gin"
)

// Friends, blocks and notifications (package social).

// handleFriends lists the caller's friends with presence, the requests
// they received and sent, and the people they blocked.
//
// @Summary Friends, requests and blocks
// @Tags friends
// @Produce json
// @Success 200 {object} social.Friends "Friends with presence, requests received and sent, people blocked"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/friends [get]
func (s *server) handleFriends(c *gin.Context) error {
	list, err := s.deps.Social.List(c.Request.Context(), me(c).UserID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, list)
	return nil
}

type friendRequest struct {
	Email string `json:"email"`
}

// handleFriendRequest sends a friend request by email. The answer is 202
// with the same body whether or not the address has an account.
//
// @Summary Send a friend request
// @Description The answer is the same whether or not the address has an account. When the addressee had already asked the caller, they become friends at once.
// @Tags friends
// @Accept json
// @Produce json
// @Param body body friendRequest true "Whom to ask, by email"
// @Success 202 {object} social.Outgoing
// @Failure 400 {object} errorBody "validation.failed: a bad email, or the caller's own"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 409 {object} errorBody "friend.alreadyFriends; friend.blocked: the caller blocked this person"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 429 {object} errorBody "rateLimit.exceeded: too many requests; see Retry-After"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/friends/requests [post]
func (s *server) handleFriendRequest(c *gin.Context) error {
	var req friendRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	out, err := s.deps.Social.SendRequest(c.Request.Context(), me(c).UserID, req.Email)
	if err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, out)
	return nil
}

// handleFriendAccept accepts a request addressed to the caller.
//
// @Summary Accept a friend request
// @Tags friends
// @Produce json
// @Param id path string true "Friend request id"
// @Success 200 {object} social.Friend
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "friend.requestNotFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/friends/requests/{id}/accept [post]
func (s *server) handleFriendAccept(c *gin.Context) error {
	f, err := s.deps.Social.Accept(c.Request.Context(), me(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, f)
	return nil
}

// handleFriendDecline declines a request addressed to the caller.
//
// @Summary Decline a friend request
// @Tags friends
// @Produce json
// @Param id path string true "Friend request id"
// @Success 204 "Declined"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "friend.requestNotFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/friends/requests/{id}/decline [post]
func (s *server) handleFriendDecline(c *gin.Context) error {
	if err := s.deps.Social.Decline(c.Request.Context(), me(c).UserID, c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleFriendCancel withdraws a request the caller sent.
//
// @Summary Withdraw a friend request the caller sent
// @Tags friends
// @Produce json
// @Param id path string true "Friend request id"
// @Success 204 "Withdrawn"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "friend.requestNotFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/friends/requests/{id} [delete]
func (s *server) handleFriendCancel(c *gin.Context) error {
	if err := s.deps.Social.Cancel(c.Request.Context(), me(c).UserID, c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleFriendRemove ends a friendship.
//
// @Summary End a friendship
// @Tags friends
// @Produce json
// @Param user_id path string true "User id"
// @Success 204 "No longer friends"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "friend.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/friends/{user_id} [delete]
func (s *server) handleFriendRemove(c *gin.Context) error {
	if err := s.deps.Social.RemoveFriend(c.Request.Context(), me(c).UserID, c.Param("user_id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleFriendChat returns the direct chat with a friend: 200 with the
// existing one, 201 with a new one.
//
// @Summary The direct chat with a friend
// @Tags friends
// @Produce json
// @Param user_id path string true "User id"
// @Success 200 {object} chat.Chat "The existing direct chat"
// @Success 201 {object} chat.Chat "A new direct chat"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "friend.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/friends/{user_id}/chat [post]
func (s *server) handleFriendChat(c *gin.Context) error {
	ch, created, err := s.deps.Social.DirectChat(c.Request.Context(), me(c).UserID, c.Param("user_id"))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, ch)
	return nil
}

// handleBlock blocks a user (idempotent).
//
// @Summary Block a user
// @Description Idempotent. Ends a friendship and pending requests between the two.
// @Tags friends
// @Produce json
// @Param user_id path string true "User id"
// @Success 204 "Blocked"
// @Failure 400 {object} errorBody "validation.failed: the caller's own id"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "user.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/blocks/{user_id} [put]
func (s *server) handleBlock(c *gin.Context) error {
	if err := s.deps.Social.Block(c.Request.Context(), me(c).UserID, c.Param("user_id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleUnblock lifts a block (idempotent).
//
// @Summary Lift a block
// @Description Idempotent.
// @Tags friends
// @Produce json
// @Param user_id path string true "User id"
// @Success 204 "Not blocked"
// @Failure 404 {object} errorBody "user.notFound: not a user id"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/blocks/{user_id} [delete]
func (s *server) handleUnblock(c *gin.Context) error {
	if err := s.deps.Social.Unblock(c.Request.Context(), me(c).UserID, c.Param("user_id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleNotifications pages through the caller's notifications, unread
// first: ?limit=1..100 (default 20), ?cursor=<next_cursor>.
//
// @Summary Notifications
// @Description Unread first, then newest first.
// @Tags notifications
// @Produce json
// @Param limit query integer false "1 to 100" minimum(1) maximum(100) default(20)
// @Param cursor query string false "next_cursor of the previous page"
// @Success 200 {object} social.Page
// @Failure 400 {object} errorBody "validation.failed: limit or cursor"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/notifications [get]
func (s *server) handleNotifications(c *gin.Context) error {
	limit := 0
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return apperr.Invalid("limit", "limit must be between 1 and 100.")
		}
		limit = n
	}
	page, err := s.deps.Social.Notifications(c.Request.Context(), me(c).UserID, c.Query("cursor"), limit)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, page)
	return nil
}

// unreadNotifications is how many notifications are left unread.
type unreadNotifications struct {
	Unread int64 `json:"unread"`
}

// handleNotificationRead marks one notification read.
//
// @Summary Mark one notification read
// @Tags notifications
// @Produce json
// @Param id path string true "Notification id"
// @Success 200 {object} unreadNotifications "How many are left unread"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "notification.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/notifications/{id}/read [post]
func (s *server) handleNotificationRead(c *gin.Context) error {
	n, err := s.deps.Social.MarkRead(c.Request.Context(), me(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, unreadNotifications{Unread: n})
	return nil
}

// handleNotificationsReadAll marks every notification read.
//
// @Summary Mark every notification read
// @Tags notifications
// @Produce json
// @Success 200 {object} unreadNotifications "unread is 0"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/notifications/read-all [post]
func (s *server) handleNotificationsReadAll(c *gin.Context) error {
	if err := s.deps.Social.MarkAllRead(c.Request.Context(), me(c).UserID); err != nil {
		return err
	}
	c.JSON(http.StatusOK, unreadNotifications{Unread: 0})
	return nil
}
