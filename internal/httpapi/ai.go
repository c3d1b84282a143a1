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
func (s *server) handleModels(c *gin.Context) error {
	c.JSON(http.StatusOK, modelList{Configured: s.deps.AI.Configured(), Models: s.deps.AI.Models()})
	return nil
}

// handleAIStop stops the answer being generated in a chat, whichever
// instance runs it; the partial text is kept with status stopped.
func (s *server) handleAIStop(c *gin.Context) error {
	if err := s.deps.AI.Stop(c.Request.Context(), me(c).UserID, c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusAccepted)
	return nil
}

// handleRegenerate writes the chat's last answer again; the old text is
// kept as a previous version. The new answer streams over the socket.
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
