package httpapi

import (
	"github.com/aichat/aichat/internal/auth"
	"github.com/gin-gonic/gin"
)

// routes lists the whole HTTP surface on one screen.
func (s *server) routes(r *gin.Engine) {
	r.GET("/healthz", s.handleHealthz)
	r.GET("/readyz", s.h(s.handleReadyz))
	if s.deps.Metrics != nil {
		r.GET("/metrics", gin.WrapH(s.deps.Metrics))
	}
	r.GET("/ws", s.h(s.handleWS))
	// The OpenAPI spec and Swagger UI (openapi.go); public, like the
	// source it is generated from.
	r.GET("/swagger/*path", s.handleSwagger)
	r.HEAD("/swagger/*path", s.handleSwagger)
	if s.deps.Web != nil {
		web := gin.WrapH(s.deps.Web)
		r.GET("/", web)
		r.HEAD("/", web)
		r.GET("/assets/*path", web)
		r.HEAD("/assets/*path", web)
		r.GET("/favicon.ico", web)
	}

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
	me.GET("/me/unread", s.h(s.handleUnread))
	me.POST("/ws/ticket", s.h(s.handleTicket))

	me.GET("/friends", s.h(s.handleFriends))
	me.POST("/friends/requests", s.h(s.handleFriendRequest))
	me.POST("/friends/requests/:id/accept", s.h(s.handleFriendAccept))
	me.POST("/friends/requests/:id/decline", s.h(s.handleFriendDecline))
	me.DELETE("/friends/requests/:id", s.h(s.handleFriendCancel))
	me.DELETE("/friends/:user_id", s.h(s.handleFriendRemove))
	me.POST("/friends/:user_id/chat", s.h(s.handleFriendChat))
	me.PUT("/blocks/:user_id", s.h(s.handleBlock))
	me.DELETE("/blocks/:user_id", s.h(s.handleUnblock))
	me.GET("/notifications", s.h(s.handleNotifications))
	me.POST("/notifications/read-all", s.h(s.handleNotificationsReadAll))
	me.POST("/notifications/:id/read", s.h(s.handleNotificationRead))

	me.GET("/chats", s.h(s.handleChatList))
	me.POST("/chats", s.h(s.handleChatCreate))
	me.GET("/chats/:id", s.h(s.handleChatGet))
	me.PATCH("/chats/:id", s.h(s.handleChatUpdate))
	me.DELETE("/chats/:id", s.h(s.handleChatDelete))
	me.GET("/chats/:id/messages", s.h(s.handleMessageList))
	me.POST("/chats/:id/messages", s.h(s.handleMessageSend))
	me.POST("/chats/:id/read", s.h(s.handleChatRead))
	me.POST("/chats/:id/participants", s.h(s.handleParticipantAdd))
	me.DELETE("/chats/:id/participants/:user", s.h(s.handleParticipantRemove))
	me.GET("/chats/:id/invitations", s.h(s.handleChatInvitations))
	me.DELETE("/chats/:id/invitations/:inv", s.h(s.handleChatInvitationCancel))
	me.GET("/invitations", s.h(s.handleInvitations))
	me.POST("/invitations/:id/accept", s.h(s.handleInvitationAccept))
	me.POST("/invitations/:id/decline", s.h(s.handleInvitationDecline))
	me.POST("/chats/:id/ai/stop", s.h(s.handleAIStop))
	me.POST("/chats/:id/messages/:seq/regenerate", s.h(s.handleRegenerate))
	me.GET("/models", s.h(s.handleModels))
	me.GET("/me/usage", s.h(s.handleMyUsage))
	me.POST("/render", s.h(s.handleRender))
	me.GET("/search", s.h(s.handleSearch))

	// Admins only: changes to accounts and keys, and the audit log.
	admin := api.Group("/admin", s.authenticate, s.requireRole(auth.RoleAdmin))
	admin.GET("/users", s.h(s.handleAdminUsers))
	admin.GET("/users/:id", s.h(s.handleAdminUserGet))
	admin.PATCH("/users/:id", s.h(s.handleAdminUserUpdate))
	admin.POST("/users/:id/quota/reset", s.h(s.handleAdminQuotaReset))
	admin.POST("/bots", s.h(s.handleAdminBotCreate))
	admin.GET("/bots/:id/keys", s.h(s.handleAdminKeys))
	admin.POST("/bots/:id/keys", s.h(s.handleAdminKeyIssue))
	admin.DELETE("/keys/:id", s.h(s.handleAdminKeyRevoke))
	admin.GET("/audit", s.h(s.handleAdminAudit))

	// Admins and support: read-only views and the moderation queue.
	staff := api.Group("/admin", s.authenticate, s.requireRole(auth.RoleAdmin, auth.RoleSupport))
	staff.GET("/usage", s.h(s.handleUsageTotals))
	staff.GET("/status", s.h(s.handleAdminStatus))
	staff.GET("/flags", s.h(s.handleAdminFlags))
	staff.POST("/flags/:id/review", s.h(s.handleAdminFlagReview))
}
