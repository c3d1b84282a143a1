package httpapi

import (
	"github.com/aichat/aichat/internal/auth"
	"github.com/gin-gonic/gin"
)

// routes lists the whole HTTP surface on one screen.
func (s *server) routes(r *gin.Engine) {
	r.GET("/healthz", s.handleHealthz)
	r.GET("/readyz", s.h(s.handleReadyz))

	api := r.Group("/api/v1")
	api.POST("/auth/register", s.h(s.handleRegister))
	api.POST("/auth/login", s.h(s.handleLogin))
	api.POST("/auth/refresh", s.h(s.handleRefresh))
	api.POST("/auth/logout", s.h(s.handleLogout))

	me := api.Group("", s.authenticate)
	me.GET("/me", s.h(s.handleMe))
	me.POST("/me/password", s.h(s.handleChangePassword))
	me.GET("/me/sessions", s.h(s.handleSessionList))
	me.DELETE("/me/sessions/:id", s.h(s.handleSessionDelete))

	admin := api.Group("/admin", s.authenticate, s.requireRole(auth.RoleAdmin))
	admin.GET("/users/:id", s.h(s.handleAdminUserGet))
	admin.PATCH("/users/:id", s.h(s.handleAdminUserUpdate))
}
