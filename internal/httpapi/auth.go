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
