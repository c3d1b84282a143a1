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
func (s *server) handleFriendAccept(c *gin.Context) error {
	f, err := s.deps.Social.Accept(c.Request.Context(), me(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, f)
	return nil
}

// handleFriendDecline declines a request addressed to the caller.
func (s *server) handleFriendDecline(c *gin.Context) error {
	if err := s.deps.Social.Decline(c.Request.Context(), me(c).UserID, c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleFriendCancel withdraws a request the caller sent.
func (s *server) handleFriendCancel(c *gin.Context) error {
	if err := s.deps.Social.Cancel(c.Request.Context(), me(c).UserID, c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleFriendRemove ends a friendship.
func (s *server) handleFriendRemove(c *gin.Context) error {
	if err := s.deps.Social.RemoveFriend(c.Request.Context(), me(c).UserID, c.Param("user_id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleFriendChat returns the direct chat with a friend: 200 with the
// existing one, 201 with a new one.
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
func (s *server) handleBlock(c *gin.Context) error {
	if err := s.deps.Social.Block(c.Request.Context(), me(c).UserID, c.Param("user_id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleUnblock lifts a block (idempotent).
func (s *server) handleUnblock(c *gin.Context) error {
	if err := s.deps.Social.Unblock(c.Request.Context(), me(c).UserID, c.Param("user_id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleNotifications pages through the caller's notifications, unread
// first: ?limit=1..100 (default 20), ?cursor=<next_cursor>.
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
func (s *server) handleNotificationRead(c *gin.Context) error {
	n, err := s.deps.Social.MarkRead(c.Request.Context(), me(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, unreadNotifications{Unread: n})
	return nil
}

// handleNotificationsReadAll marks every notification read.
func (s *server) handleNotificationsReadAll(c *gin.Context) error {
	if err := s.deps.Social.MarkAllRead(c.Request.Context(), me(c).UserID); err != nil {
		return err
	}
	c.JSON(http.StatusOK, unreadNotifications{Unread: 0})
	return nil
}
