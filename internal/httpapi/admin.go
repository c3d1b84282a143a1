package httpapi

import (
	"net/http"
	"strconv"

	"github.com/aichat/aichat/internal/admin"
	"github.com/aichat/aichat/internal/ai"
	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/chat"
	"github.com/gin-gonic/gin"
)

// The admin API (/api/v1/admin/...). routes.go puts each handler behind
// requireRole: admin only for anything that changes accounts or keys and
// for the audit log; admin and support for usage, status and the
// moderation queue. package admin does the work and writes the audit log.

type (
	quotaResponse struct {
		Quota *ai.Quota `json:"quota"`
	}
	apiKeyList struct {
		APIKeys []*auth.APIKey `json:"api_keys"`
	}
	// issuedKey holds the key itself: this answer is the only time it is
	// shown.
	issuedKey struct {
		APIKey *auth.APIKey `json:"api_key"`
		Key    string       `json:"key"`
	}
)

// page reads ?limit= and ?before=.
func page(c *gin.Context) (admin.Page, error) {
	p := admin.Page{Before: c.Query("before")}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, apperr.Invalid("limit", "limit must be 1 to %d.", admin.MaxLimit)
		}
		p.Limit = n
	}
	return p, nil
}

// handleAdminUsers lists and searches users: ?q= (email or name
// substring), ?role=, ?blocked=true|false, ?limit=, ?before=.
//
// @Summary List and search users
// @Description Admins only.
// @Tags admin
// @Produce json
// @Param q query string false "Substring of the email or name"
// @Param role query string false "Only this role" Enums(user, admin, support, bot)
// @Param blocked query boolean false "Only blocked (true) or not blocked (false) accounts"
// @Param limit query integer false "Page size" minimum(1)
// @Param before query string false "next_before of the previous page"
// @Success 200 {object} admin.UserPage
// @Failure 400 {object} errorBody "validation.failed"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/users [get]
func (s *server) handleAdminUsers(c *gin.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	q := admin.UserQuery{Q: c.Query("q"), Role: auth.Role(c.Query("role")), Page: p}
	if v := c.Query("blocked"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return apperr.Invalid("blocked", "blocked must be true or false.")
		}
		q.Blocked = &b
	}
	out, err := s.deps.Admin.Users(c.Request.Context(), q)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// handleAdminUserGet shows any account with today's quota (and a bot's
// keys).
//
// @Summary One account
// @Description Admins only. With today's quota, and a bot's keys.
// @Tags admin
// @Produce json
// @Param id path string true "User id"
// @Success 200 {object} admin.UserDetail
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 404 {object} errorBody "user.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/users/{id} [get]
func (s *server) handleAdminUserGet(c *gin.Context) error {
	u, err := s.deps.Admin.User(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, u)
	return nil
}

// handleAdminUserUpdate changes a user's role or blocks them; their sockets
// close on every instance.
//
// @Summary Change a user's role, or block them
// @Description Admins only. Their access tokens stop working at once and their sockets close on every instance; blocking also ends their sessions.
// @Tags admin
// @Accept json
// @Produce json
// @Param id path string true "User id"
// @Param body body auth.UserUpdate true "role, blocked, or both"
// @Success 200 {object} auth.User
// @Failure 400 {object} errorBody "validation.failed: unknown role"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 404 {object} errorBody "user.notFound"
// @Failure 409 {object} errorBody "admin.selfChange: admins may not demote or block themselves"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/users/{id} [patch]
func (s *server) handleAdminUserUpdate(c *gin.Context) error {
	var req auth.UserUpdate
	if err := decode(c, &req); err != nil {
		return err
	}
	u, err := s.deps.Admin.UpdateUser(c.Request.Context(), me(c), c.Param("id"), req)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, u)
	return nil
}

// handleAdminQuotaReset gives a user today's whole allowance again.
//
// @Summary Give a user today's allowance again
// @Description Admins only.
// @Tags admin
// @Produce json
// @Param id path string true "User id"
// @Success 200 {object} quotaResponse
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 404 {object} errorBody "user.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/users/{id}/quota/reset [post]
func (s *server) handleAdminQuotaReset(c *gin.Context) error {
	q, err := s.deps.Admin.ResetQuota(c.Request.Context(), me(c), c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, quotaResponse{Quota: q})
	return nil
}

type botRequest struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// handleAdminBotCreate creates a bot account.
//
// @Summary Create a bot account
// @Description Admins only. A bot signs in with API keys only.
// @Tags admin
// @Accept json
// @Produce json
// @Param body body botRequest true "The bot's email and name"
// @Success 201 {object} auth.User
// @Failure 400 {object} errorBody "validation.failed"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 409 {object} errorBody "auth.emailTaken"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/bots [post]
func (s *server) handleAdminBotCreate(c *gin.Context) error {
	var req botRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	u, err := s.deps.Admin.CreateBot(c.Request.Context(), me(c), req.Email, req.Name)
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, u)
	return nil
}

// handleAdminKeys lists a bot's API keys (never the keys).
//
// @Summary A bot's API keys
// @Description Admins only. Never the keys themselves.
// @Tags admin
// @Produce json
// @Param id path string true "Bot user id"
// @Success 200 {object} apiKeyList
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 404 {object} errorBody "user.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/bots/{id}/keys [get]
func (s *server) handleAdminKeys(c *gin.Context) error {
	keys, err := s.deps.Admin.Keys(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, apiKeyList{APIKeys: keys})
	return nil
}

// handleAdminKeyIssue creates an API key; the answer is the only time the
// key is shown.
//
// @Summary Issue an API key for a bot
// @Description Admins only. The answer is the only time the key is shown.
// @Tags admin
// @Accept json
// @Produce json
// @Param id path string true "Bot user id"
// @Param body body admin.KeyRequest true "The key's name and the chats it may use"
// @Success 201 {object} issuedKey
// @Failure 400 {object} errorBody "validation.failed: not a bot, or a chat the bot is not in"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 404 {object} errorBody "user.notFound"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/bots/{id}/keys [post]
func (s *server) handleAdminKeyIssue(c *gin.Context) error {
	var req admin.KeyRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	raw, k, err := s.deps.Admin.IssueKey(c.Request.Context(), me(c), c.Param("id"), req)
	if err != nil {
		return err
	}
	noStore(c)
	c.JSON(http.StatusCreated, issuedKey{APIKey: k, Key: raw})
	return nil
}

// handleAdminKeyRevoke revokes an API key; its sockets close.
//
// @Summary Revoke an API key
// @Description Admins only. Sockets opened with the key close.
// @Tags admin
// @Produce json
// @Param id path string true "API key id"
// @Success 200 {object} auth.APIKey "The revoked key"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 404 {object} errorBody "apiKey.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/keys/{id} [delete]
func (s *server) handleAdminKeyRevoke(c *gin.Context) error {
	k, err := s.deps.Admin.RevokeKey(c.Request.Context(), me(c), c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, k)
	return nil
}

// handleAdminAudit lists the audit log: ?action=, ?actor=, ?target=,
// ?limit=, ?before=.
//
// @Summary The audit log
// @Description Admins only. Newest first.
// @Tags admin
// @Produce json
// @Param action query string false "Only this action"
// @Param actor query string false "Only this actor (user id)"
// @Param target query string false "Only this target id"
// @Param limit query integer false "Page size" minimum(1)
// @Param before query string false "next_before of the previous page"
// @Success 200 {object} admin.AuditPage
// @Failure 400 {object} errorBody "validation.failed"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/audit [get]
func (s *server) handleAdminAudit(c *gin.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	out, err := s.deps.Admin.Audit(c.Request.Context(), admin.AuditQuery{Action: c.Query("action"),
		Actor: c.Query("actor"), Target: c.Query("target"), Page: p})
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// handleUsageTotals shows usage per user and model, per model and per day
// over ?days= (default 30), optionally for ?user=; admins and support.
//
// @Summary Assistant usage totals
// @Description Admins and support. Per user and model, per model and per day.
// @Tags admin
// @Produce json
// @Param days query integer false "How many days back" minimum(1) maximum(366) default(30)
// @Param user query string false "Only this user id"
// @Success 200 {object} admin.UsageReport
// @Failure 400 {object} errorBody "validation.failed: days"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/usage [get]
func (s *server) handleUsageTotals(c *gin.Context) error {
	days, err := usageDays(c)
	if err != nil {
		return err
	}
	rep, err := s.deps.Admin.Usage(c.Request.Context(), days, c.Query("user"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, rep)
	return nil
}

// handleAdminStatus shows this instance's health; admins and support.
//
// @Summary This instance's health
// @Description Admins and support.
// @Tags admin
// @Produce json
// @Success 200 {object} admin.Status
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/status [get]
func (s *server) handleAdminStatus(c *gin.Context) error {
	noStore(c)
	c.JSON(http.StatusOK, s.deps.Admin.Status(c.Request.Context()))
	return nil
}

// handleAdminFlags lists the moderation queue: ?status=open|reviewed|all,
// ?limit=, ?before=.
//
// @Summary The moderation queue
// @Description Admins and support.
// @Tags admin
// @Produce json
// @Param status query string false "Which flags" Enums(open, reviewed, all) default(open)
// @Param limit query integer false "Page size" minimum(1)
// @Param before query string false "next_before of the previous page"
// @Success 200 {object} admin.FlagPage
// @Failure 400 {object} errorBody "validation.failed"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/flags [get]
func (s *server) handleAdminFlags(c *gin.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	out, err := s.deps.Admin.Flags(c.Request.Context(), admin.FlagQuery{Status: c.Query("status"), Page: p})
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// handleAdminFlagReview marks a flag reviewed.
//
// @Summary Mark a flag reviewed
// @Description Admins and support.
// @Tags admin
// @Produce json
// @Param id path string true "Flag id"
// @Success 200 {object} admin.Flag
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.forbidden: the caller's role may not do this (or a bot API key); auth.userBlocked"
// @Failure 404 {object} errorBody "moderation.flagNotFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/admin/flags/{id}/review [post]
func (s *server) handleAdminFlagReview(c *gin.Context) error {
	f, err := s.deps.Admin.ReviewFlag(c.Request.Context(), me(c), c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, f)
	return nil
}

// keyRoutes are all an API key may call: a bot reads and writes the chats
// its key names. Everything else answers 403 to a key, whatever the role.
var keyRoutes = map[string]bool{
	"GET /api/v1/me":                  true,
	"GET /api/v1/chats":               true,
	"GET /api/v1/chats/:id":           true,
	"GET /api/v1/chats/:id/messages":  true,
	"POST /api/v1/chats/:id/messages": true,
	"POST /api/v1/chats/:id/read":     true,
}

// checkKeyRoute holds an API key's request to keyRoutes and to its chats:
// another chat answers chat.notFound, exactly like a chat the bot is not
// in.
func checkKeyRoute(c *gin.Context, p *auth.Principal) error {
	if !keyRoutes[c.Request.Method+" "+c.FullPath()] {
		return apperr.New(apperr.CodeForbidden, "An API key may only read and post in its chats.")
	}
	if id := c.Param("id"); id != "" && !p.InScope(id) {
		return apperr.New(apperr.CodeChatNotFound, "Chat not found.")
	}
	return nil
}

// inScope keeps the chats an API key may see.
func inScope(p *auth.Principal, list []*chat.Chat) []*chat.Chat {
	if p.APIKeyID == "" {
		return list
	}
	out := list[:0:0]
	for _, ch := range list {
		if p.InScope(ch.ID) {
			out = append(out, ch)
		}
	}
	return out
}
