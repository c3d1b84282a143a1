package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/gin-gonic/gin"
)

// statusResponse is the answer of /healthz and /readyz.
type statusResponse struct {
	Status string `json:"status" example:"ok"` // ok (healthz) or ready (readyz)
}

// handleHealthz answers while the process is up; it checks nothing else, so
// an orchestrator does not restart a healthy process over a database outage.
//
// @Summary Liveness
// @Description Answers while the process runs, whatever the state of the database, so that an orchestrator does not restart a healthy process over an outage.
// @Tags health
// @Produce json
// @Success 200 {object} statusResponse "The process is up (nothing else is checked)"
// @Failure 500 {object} errorBody "internal.error"
// @Router /healthz [get]
func (s *server) handleHealthz(c *gin.Context) {
	c.JSON(http.StatusOK, statusResponse{Status: "ok"})
}

// handleReadyz answers 200 only when the dependencies answer, so a load
// balancer stops sending traffic to an instance that cannot serve it.
//
// @Summary Readiness
// @Tags health
// @Produce json
// @Success 200 {object} statusResponse "The database (and Redis, when configured) answer"
// @Failure 500 {object} errorBody "internal.error"
// @Failure 503 {object} errorBody "internal.unavailable: a dependency does not answer"
// @Router /readyz [get]
func (s *server) handleReadyz(c *gin.Context) error {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.deps.Ready(ctx); err != nil {
		return apperr.Wrap(err, apperr.CodeUnavailable, "Not ready: "+err.Error())
	}
	c.JSON(http.StatusOK, statusResponse{Status: "ready"})
	return nil
}
