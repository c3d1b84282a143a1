package httpapi

import (
	"net/http"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/search"
	"github.com/gin-gonic/gin"
)

// handleSearch: GET /search?q=&chat_id=&limit=&cursor= returns the
// caller's matching messages, newest first (package search).
//
// @Summary Search the caller's messages
// @Description Messages of the caller's chats that hold every word of q, newest first.
// @Tags search
// @Produce json
// @Param q query string true "Words to find"
// @Param chat_id query string false "Only this chat"
// @Param limit query integer false "Results per page" minimum(1) maximum(100)
// @Param cursor query string false "next_cursor of the previous page"
// @Success 200 {object} search.Page
// @Failure 400 {object} errorBody "validation.failed: q, limit or cursor"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "chat.notFound; route.notFound when search is not enabled"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/search [get]
func (s *server) handleSearch(c *gin.Context) error {
	if s.deps.Search == nil {
		return apperr.New(apperr.CodeNotFound, "Search is not enabled.")
	}
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	if limit > search.MaxLimit {
		return apperr.Invalid("limit", "limit must be between 1 and %d.", search.MaxLimit)
	}
	page, err := s.deps.Search.Search(c.Request.Context(), search.Request{
		UserID: me(c).UserID, Query: c.Query("q"), ChatID: c.Query("chat_id"),
		Limit: int(limit), Cursor: c.Query("cursor"),
	})
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, page)
	return nil
}
