package httpapi

import (
	"net/http"

	"github.com/aichat/aichat/internal/auth"
	"github.com/gin-gonic/gin"
)

// ticketResponse is the answer to POST /api/v1/ws/ticket.
type ticketResponse struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"` // seconds the ticket can be redeemed in
}

// handleTicket issues a single-use ticket for opening the WebSocket
// (GET /ws?ticket=...), so the access token never travels in a URL.
//
// @Summary Issue a WebSocket ticket
// @Description A single-use ticket for GET /ws?ticket=..., so that the access token never travels in a URL.
// @Tags realtime
// @Produce json
// @Success 200 {object} ticketResponse
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/ws/ticket [post]
func (s *server) handleTicket(c *gin.Context) error {
	ticket, _, err := s.auth.IssueTicket(c.Request.Context(), me(c))
	if err != nil {
		return err
	}
	noStore(c)
	c.JSON(http.StatusOK, ticketResponse{Ticket: ticket, ExpiresIn: int(auth.TicketTTL.Seconds())})
	return nil
}
