package httpapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/auth"
	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
)

// handleWS authenticates the upgrade request, checks its origin and the
// user's connection limit, and hands the socket to the hub. Every refusal
// is an ordinary JSON error before the upgrade, so a client can tell a bad
// token (401) from a foreign page (403) or too many tabs (429).
//
// @Summary Open the WebSocket
// @Description Upgrades to the WebSocket that carries events and commands (docs/protocol.md). The credential is, in order: the Authorization header (access token or bot API key), ?ticket= from POST /api/v1/ws/ticket, ?token=, or the subprotocol bearer.<token>. Every refusal is a JSON error before the upgrade.
// @Tags realtime
// @Produce json
// @Param ticket query string false "Single-use ticket from POST /api/v1/ws/ticket"
// @Param token query string false "Access token (prefer a ticket: URLs end up in logs)"
// @Param resume query string false "1 or true: resume, sending what was missed since the last connection"
// @Success 101 "Switching Protocols"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired; tickets: auth.invalidToken when unknown, used or expired"
// @Failure 403 {object} errorBody "webSocket.originForbidden: Origin not allowed (AICHAT_ALLOWED_ORIGINS); auth.userBlocked"
// @Failure 426 {object} errorBody "webSocket.upgradeRequired: not a WebSocket upgrade request"
// @Failure 429 {object} errorBody "rateLimit.exceeded: too many open connections for this account"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Security BotAPIKey
// @Router /ws [get]
func (s *server) handleWS(c *gin.Context) error {
	r := c.Request
	if r.Method != http.MethodGet || !websocket.IsWebSocketUpgrade(r) {
		return apperr.New(apperr.CodeWSUpgradeRequired, "This endpoint speaks WebSocket: send an Upgrade: websocket request.")
	}
	if !s.originAllowed(r) {
		return apperr.New(apperr.CodeWSOrigin, "Origin %q may not open a socket here (AICHAT_ALLOWED_ORIGINS).", truncateString(r.Header.Get("Origin"), 100))
	}
	p, err := s.wsPrincipal(r)
	if err != nil {
		return err
	}
	c.Set(ctxPrincipal, p)
	if err := s.deps.Hub.CanConnect(p.UserID); err != nil {
		return err
	}
	resume := r.URL.Query().Get("resume")
	return s.deps.Hub.Accept(c.Writer, r, p, resume == "1" || resume == "true")
}

// wsPrincipal finds the caller's credential, in order: Authorization
// header, ?ticket=, ?token=, and a "bearer.<token>" entry in
// Sec-WebSocket-Protocol. None is 401.
func (s *server) wsPrincipal(r *http.Request) (*auth.Principal, error) {
	ctx := r.Context()
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return nil, apperr.New(apperr.CodeInvalidToken, "Authorization header must be: Bearer <access token>.")
		}
		if token = strings.TrimSpace(token); auth.IsAPIKey(token) {
			return s.auth.AuthenticateKey(ctx, token)
		}
		return s.auth.Authenticate(ctx, token)
	}
	q := r.URL.Query()
	if t := q.Get("ticket"); t != "" {
		return s.auth.RedeemTicket(ctx, t)
	}
	if t := q.Get("token"); t != "" {
		return s.auth.Authenticate(ctx, t)
	}
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if t, ok := strings.CutPrefix(strings.TrimSpace(p), "bearer."); ok && t != "" {
				if auth.IsAPIKey(t) {
					return s.auth.AuthenticateKey(ctx, t)
				}
				return s.auth.Authenticate(ctx, t)
			}
		}
	}
	return nil, apperr.New(apperr.CodeUnauthenticated,
		"Sign in first: send Authorization: Bearer <token>, ?ticket= from POST /api/v1/ws/ticket, ?token=, or the subprotocol bearer.<token>.")
}

// originAllowed guards against cross-site WebSocket hijacking: a browser
// sends cookies and Origin with the upgrade, so a foreign page must not be
// able to open a socket. Clients that are not browsers send no Origin.
func (s *server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	o := strings.ToLower(strings.TrimRight(origin, "/"))
	if len(s.deps.AllowedOrigins) == 0 {
		u, err := url.Parse(o)
		return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
	}
	for _, a := range s.deps.AllowedOrigins {
		if a == "*" || a == o {
			return true
		}
	}
	return false
}

func truncateString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
