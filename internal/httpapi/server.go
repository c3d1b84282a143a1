// Package httpapi is aichat's HTTP surface: the Gin router, its middleware
// (request ids, logging, recovery, body limits, authentication, roles), the
// JSON handlers, and the single table that maps error codes to statuses.
// Handlers decode, call a service, and encode; business rules live in the
// services.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"

	"github.com/aichat/aichat/internal/admin"
	"github.com/aichat/aichat/internal/ai"
	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/realtime"
	"github.com/aichat/aichat/internal/render"
	"github.com/aichat/aichat/internal/search"
	"github.com/aichat/aichat/internal/social"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// Deps are what the HTTP layer needs from the rest of the program.
type Deps struct {
	Log     *slog.Logger
	Auth    *auth.Service
	Chats   *chat.Service
	Hub     *realtime.Hub
	AI      *ai.Service
	Ready   func(ctx context.Context) error // nil error when dependencies answer
	Metrics http.Handler                    // serves /metrics; nil: not on this router
	// Registerer receives the HTTP metrics (requests by route and status,
	// durations); nil: not collected.
	Registerer   prometheus.Registerer
	MaxBodyBytes int64
	// AllowedOrigins may open /ws; empty means the server's own origin.
	AllowedOrigins []string
	// Social serves friends, blocks and notifications (social.go).
	Social *social.Service
	// Render turns answers into HTML for POST /render.
	Render *render.Cache
	// Web serves the web app (/ and /assets/); nil serves none.
	Web http.Handler
	// Admin runs the admin and support actions (/api/v1/admin/...).
	Admin *admin.Service
	// Search answers GET /api/v1/search; nil answers route.notFound.
	Search *search.Service
}

type server struct {
	log   *slog.Logger
	auth  *auth.Service
	chats *chat.Service
	deps  Deps

	renderLimit *limiter
}

var ginMode sync.Once

// NewServer returns the HTTP handler for the whole API.
func NewServer(d Deps) http.Handler {
	// Gin keeps its mode in a package variable; set it once, never per server.
	ginMode.Do(func() { gin.SetMode(gin.ReleaseMode) })
	if d.Render == nil {
		d.Render = render.NewCache(render.New(), 16<<20)
	}
	s := &server{log: d.Log, auth: d.Auth, chats: d.Chats, deps: d, renderLimit: newLimiter(renderPerSecond, renderBurst)}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.ContextWithFallback = true
	mw := []gin.HandlerFunc{s.requestID, s.accessLog}
	if d.Registerer != nil {
		mw = append(mw, newHTTPMetrics(d.Registerer).observe)
	}
	r.Use(append(mw, s.recoverPanic, s.limitBody)...)
	r.NoRoute(func(c *gin.Context) {
		s.writeError(c, apperr.New(apperr.CodeNotFound, "No such endpoint: %s %s.", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		s.writeError(c, apperr.New(apperr.CodeMethodNotAllowed, "Method %s is not allowed here.", c.Request.Method))
	})
	s.routes(r)
	return r
}
