package httpapi

import (
	"net/http"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/realtime"
	"github.com/gin-gonic/gin"
)

type registerRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// handleRegister creates an account and signs it in.
//
// @Summary Create an account and sign in
// @Tags auth
// @Accept json
// @Produce json
// @Param body body registerRequest true "The new account; name is optional"
// @Success 201 {object} auth.Session
// @Failure 400 {object} errorBody "validation.failed (field names the field), auth.weakPassword"
// @Failure 409 {object} errorBody "auth.emailTaken"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 500 {object} errorBody "internal.error"
// @Router /api/v1/auth/register [post]
func (s *server) handleRegister(c *gin.Context) error {
	var req registerRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	sess, err := s.auth.Register(c.Request.Context(), req.Email, req.Password, req.Name)
	if err != nil {
		return err
	}
	noStore(c)
	c.JSON(http.StatusCreated, sess)
	return nil
}

// handleLogin signs a user in with email and password.
//
// @Summary Sign in with email and password
// @Tags auth
// @Accept json
// @Produce json
// @Param body body loginRequest true "Credentials"
// @Success 200 {object} auth.Session
// @Failure 400 {object} errorBody "validation.failed"
// @Failure 401 {object} errorBody "auth.invalidCredentials"
// @Failure 403 {object} errorBody "auth.userBlocked"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 429 {object} errorBody "auth.tooManyAttempts: too many failed sign-ins; see Retry-After"
// @Failure 500 {object} errorBody "internal.error"
// @Router /api/v1/auth/login [post]
func (s *server) handleLogin(c *gin.Context) error {
	var req loginRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	sess, err := s.auth.Login(c.Request.Context(), req.Email, req.Password)
	if err != nil {
		return err
	}
	noStore(c)
	c.JSON(http.StatusOK, sess)
	return nil
}

// handleRefresh trades a refresh token for a new pair.
//
// @Summary Trade a refresh token for a new pair
// @Description Refresh tokens rotate: each is good once. Presenting a used one again ends the whole session (auth.refreshTokenReused).
// @Tags auth
// @Accept json
// @Produce json
// @Param body body refreshRequest true "The refresh token"
// @Success 200 {object} auth.Session
// @Failure 400 {object} errorBody "validation.failed: refresh_token is required"
// @Failure 401 {object} errorBody "auth.invalidRefreshToken, auth.refreshTokenReused"
// @Failure 403 {object} errorBody "auth.userBlocked"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 500 {object} errorBody "internal.error"
// @Router /api/v1/auth/refresh [post]
func (s *server) handleRefresh(c *gin.Context) error {
	var req refreshRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.RefreshToken == "" {
		return apperr.Invalid("refresh_token", "refresh_token is required.")
	}
	sess, err := s.auth.Refresh(c.Request.Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	noStore(c)
	c.JSON(http.StatusOK, sess)
	return nil
}

// handleLogout ends the session the refresh token belongs to.
//
// @Summary Sign out
// @Description Ends the session the refresh token belongs to and closes its sockets.
// @Tags auth
// @Accept json
// @Produce json
// @Param body body refreshRequest true "The refresh token of the session to end"
// @Success 204 "Signed out"
// @Failure 400 {object} errorBody "validation.failed: refresh_token is required"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 500 {object} errorBody "internal.error"
// @Router /api/v1/auth/logout [post]
func (s *server) handleLogout(c *gin.Context) error {
	var req refreshRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.RefreshToken == "" {
		return apperr.Invalid("refresh_token", "refresh_token is required.")
	}
	p, err := s.auth.Logout(c.Request.Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	if p != nil {
		s.deps.Hub.Kick([]string{p.UserID}, p.SessionID, realtime.CloseTokenExpired, "Signed out.")
	}
	c.Status(http.StatusNoContent)
	return nil
}

// handleMe returns the signed-in user.
//
// @Summary The signed-in user
// @Tags me
// @Produce json
// @Success 200 {object} auth.User
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Security BotAPIKey
// @Router /api/v1/me [get]
func (s *server) handleMe(c *gin.Context) error {
	u, err := s.auth.User(c.Request.Context(), me(c).UserID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, u)
	return nil
}

type passwordChange struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// handleChangePassword replaces the password; every other session ends and
// the caller receives a fresh one.
//
// @Summary Change the password
// @Description Every other session ends; the answer is a fresh session for the caller.
// @Tags me
// @Accept json
// @Produce json
// @Param body body passwordChange true "The current and the new password"
// @Success 200 {object} auth.Session
// @Failure 400 {object} errorBody "validation.failed, auth.weakPassword"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.wrongPassword: current_password is wrong; auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/me/password [post]
func (s *server) handleChangePassword(c *gin.Context) error {
	var req passwordChange
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.CurrentPassword == "" {
		return apperr.Invalid("current_password", "current_password is required.")
	}
	sess, err := s.auth.ChangePassword(c.Request.Context(), me(c).UserID, req.CurrentPassword, req.NewPassword)
	if err != nil {
		return err
	}
	// Every older token is void now; sockets opened with one close so
	// their clients refresh (or sign in again on other devices).
	s.deps.Hub.Kick([]string{me(c).UserID}, "", realtime.CloseTokenExpired, "Password changed; sign in again.")
	noStore(c)
	c.JSON(http.StatusOK, sess)
	return nil
}

// sessionList is the answer of GET /me/sessions.
type sessionList struct {
	Sessions []auth.SessionInfo `json:"sessions"`
}

// handleSessionList lists the caller's signed-in sessions.
//
// @Summary The caller's signed-in sessions
// @Tags me
// @Produce json
// @Success 200 {object} sessionList "Most recently used first; current marks the caller's own"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/me/sessions [get]
func (s *server) handleSessionList(c *gin.Context) error {
	p := me(c)
	list, err := s.auth.Sessions(c.Request.Context(), p.UserID, p.SessionID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, sessionList{Sessions: list})
	return nil
}

// handleSessionDelete signs out one of the caller's sessions.
//
// @Summary Sign out one session
// @Tags me
// @Produce json
// @Param id path string true "Session id (from GET /api/v1/me/sessions)"
// @Success 204 "Signed out; its sockets close"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 404 {object} errorBody "session.notFound"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/me/sessions/{id} [delete]
func (s *server) handleSessionDelete(c *gin.Context) error {
	if err := s.auth.RevokeSession(c.Request.Context(), me(c).UserID, c.Param("id")); err != nil {
		return err
	}
	s.deps.Hub.Kick([]string{me(c).UserID}, c.Param("id"), realtime.CloseTokenExpired, "This session was signed out.")
	c.Status(http.StatusNoContent)
	return nil
}

// noStore keeps tokens out of any cache between us and the client.
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
}
