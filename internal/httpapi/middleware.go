package httpapi

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/auth"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

const (
	ctxRequestID = "aichat.request_id"
	ctxPrincipal = "aichat.principal"
)

// requestID takes the caller's X-Request-ID when it is sane (a proxy's id
// keeps one trace across hops) or makes one, and echoes it back.
func (s *server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !saneID(id) {
		id = uuid.NewString()
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	c.Next()
}

func saneID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func requestID(c *gin.Context) string { return c.GetString(ctxRequestID) }

// accessLog logs every request once. It logs the route pattern and the path
// without its query string: queries may carry tokens, and bodies are never
// logged, so no password, token or message text reaches the log.
func (s *server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	attrs := []any{
		"method", c.Request.Method,
		"route", route,
		"path", c.Request.URL.Path,
		"status", c.Writer.Status(),
		"duration_ms", float64(time.Since(start).Microseconds()) / 1000,
		"request_id", requestID(c),
	}
	if p, ok := principal(c); ok {
		attrs = append(attrs, "user_id", p.UserID)
	}
	s.log.InfoContext(c.Request.Context(), "request", attrs...)
}

// recoverPanic turns a panic in a handler into a logged 500; the server and
// every other request go on.
func (s *server) recoverPanic(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v) // the client went away; net/http handles this one quietly
			}
			s.log.ErrorContext(c.Request.Context(), "panic in handler",
				"request_id", requestID(c), "route", c.FullPath(),
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				c.AbortWithStatusJSON(http.StatusInternalServerError,
					errorBody{Code: apperr.CodeInternal, Message: "Internal error.", RequestID: requestID(c)})
			} else {
				c.Abort()
			}
		}
	}()
	c.Next()
}

// limitBody caps every request body; decode turns the overflow into 413.
func (s *server) limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.deps.MaxBodyBytes)
	}
	c.Next()
}

// authenticate requires a valid access token, or a bot's API key, in the
// Authorization header.
func (s *server) authenticate(c *gin.Context) {
	h := c.GetHeader("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		s.writeError(c, apperr.New(apperr.CodeUnauthenticated, "Sign in first: send Authorization: Bearer <access token>."))
		return
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		s.writeError(c, apperr.New(apperr.CodeInvalidToken, "Authorization header must be: Bearer <access token>."))
		return
	}
	token = strings.TrimSpace(token)
	var (
		p   *auth.Principal
		err error
	)
	if auth.IsAPIKey(token) {
		// A bot's API key: only the routes and chats a key may use.
		if p, err = s.auth.AuthenticateKey(c.Request.Context(), token); err == nil {
			err = checkKeyRoute(c, p)
		}
	} else {
		p, err = s.auth.Authenticate(c.Request.Context(), token)
	}
	if p != nil {
		c.Set(ctxPrincipal, p)
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Next()
}

// requireRole lets the request through only for the given roles. It runs
// after authenticate.
func (s *server) requireRole(roles ...auth.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, ok := principal(c)
		if !ok || !slices.Contains(roles, p.Role) {
			s.writeError(c, apperr.New(apperr.CodeForbidden, "Your role may not do this."))
			return
		}
		c.Next()
	}
}

func principal(c *gin.Context) (*auth.Principal, bool) {
	v, ok := c.Get(ctxPrincipal)
	if !ok {
		return nil, false
	}
	p, ok := v.(*auth.Principal)
	return p, ok
}

// me returns the authenticated caller; routes using it sit behind authenticate.
func me(c *gin.Context) *auth.Principal {
	p, _ := principal(c)
	return p
}
