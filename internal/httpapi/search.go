package httpapi

import (
	"net/http"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/search"
	"github.com/gin-gonic/gin"
)

// handleSearch: GET /search?q=&chat_id=&limit=&cursor= returns the
// caller's matching messages, newest first (package search).
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
