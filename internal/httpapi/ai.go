package httpapi

import (
	"net/http"
	"strconv"

	"github.com/aichat/aichat/internal/ai"
	"github.com/aichat/aichat/internal/apperr"
	"github.com/gin-gonic/gin"
)

type (
	modelList struct {
		Configured bool       `json:"configured"` // at least one provider is configured
		Models     []ai.Model `json:"models"`
	}
	usageResponse struct {
		Days  int        `json:"days"`
		Usage []ai.Usage `json:"usage"` // per day and model
	}
)

// handleModels lists the models every configured provider serves (never
// their keys or addresses).
//
// @Summary Models the assistant can use
// @Description Every configured provider's models (never their keys or addresses).
// @Tags ai
// @Produce json
// @Success 200 {object} modelList
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/models [get]
func (s *server) handleModels(c *gin.Context) error {
	c.JSON(http.StatusOK, modelList{Configured: s.deps.AI.Configured(), Models: s.deps.AI.Models()})
	return nil
}

// handleAIStop stops the answer being generated in a chat, whichever
// instance runs it; the partial text is kept with status stopped.
//
// @Summary Stop the answer being generated
// @Description Whichever instance runs it; the partial text is kept with status stopped.
// @Tags ai
// @Produce json
// @Param id path string true "Chat id"
// @Success 202 "Stopping"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "chat.notFound"
// @Failure 409 {object} errorBody "ai.notGenerating"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/chats/{id}/ai/stop [post]
func (s *server) handleAIStop(c *gin.Context) error {
	if err := s.deps.AI.Stop(c.Request.Context(), me(c).UserID, c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusAccepted)
	return nil
}

// handleRegenerate writes the chat's last answer again; the old text is
// kept as a previous version. The new answer streams over the socket.
//
// @Summary Write the chat's last answer again
// @Description The old text is kept as a previous version; the new answer streams over the socket.
// @Tags ai
// @Produce json
// @Param id path string true "Chat id"
// @Param seq path integer true "seq of the last answer"
// @Success 202 {object} chat.Message "The answer being written again"
// @Failure 400 {object} errorBody "validation.failed: seq is not the last answer; ai.modelNotFound: the chat has no model"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "chat.notFound, message.notFound"
// @Failure 409 {object} errorBody "ai.busy: an answer is being written"
// @Failure 429 {object} errorBody "ai.quotaExceeded: today's token allowance is used up"
// @Failure 500 {object} errorBody "internal.error"
// @Failure 503 {object} errorBody "ai.notConfigured"
// @Security BearerAuth
// @Router /api/v1/chats/{id}/messages/{seq}/regenerate [post]
func (s *server) handleRegenerate(c *gin.Context) error {
	seq, err := strconv.ParseInt(c.Param("seq"), 10, 64)
	if err != nil || seq <= 0 {
		return apperr.Invalid("seq", "seq must be a positive number.")
	}
	m, err := s.deps.AI.Regenerate(c.Request.Context(), me(c).UserID, c.Param("id"), seq)
	if err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, m)
	return nil
}

// handleMyUsage shows the caller's assistant usage per day and model.
//
// @Summary The caller's assistant usage
// @Tags ai
// @Produce json
// @Param days query integer false "How many days back" minimum(1) maximum(366) default(30)
// @Success 200 {object} usageResponse
// @Failure 400 {object} errorBody "validation.failed: days"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/me/usage [get]
func (s *server) handleMyUsage(c *gin.Context) error {
	days, err := usageDays(c)
	if err != nil {
		return err
	}
	u, err := s.deps.AI.UsageOf(c.Request.Context(), me(c).UserID, days)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, usageResponse{Days: days, Usage: u})
	return nil
}

func usageDays(c *gin.Context) (int, error) {
	days := 30
	if v := c.Query("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 366 {
			return 0, apperr.Invalid("days", "days must be 1 to 366.")
		}
		days = n
	}
	return days, nil
}
