package httpapi

import (
	"net/http"
	"sync"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/gin-gonic/gin"
)

// Limits on POST /render: a history page of long answers fits; a client
// re-rendering a stream every 200 ms stays far below the rate.
const (
	renderMaxItems    = 100
	renderMaxBytes    = 512 << 10
	renderPerSecond   = 20
	renderBurst       = 40
	renderIdleForgets = 10 * time.Minute
)

type renderItem struct {
	Text    string `json:"text"`
	Partial bool   `json:"partial"` // still streaming: close an open code fence
}

type renderRequest struct {
	Items []renderItem `json:"items"`
}

// renderResponse holds one HTML fragment per item, in order.
type renderResponse struct {
	HTML []string `json:"html"`
}

// handleRender turns assistant answers (Markdown) into sanitized HTML for
// the web app, so that no Markdown or sanitizer code runs in the browser
// (internal/render explains why).
//
// @Summary Render Markdown answers as HTML
// @Description Turns assistant answers (Markdown) into sanitized HTML with highlighted code, so that no Markdown or sanitizer code runs in the browser. At most 100 texts and 512 KiB per request.
// @Tags ai
// @Accept json
// @Produce json
// @Param body body renderRequest true "The texts; partial: still streaming (an open code fence is closed)"
// @Success 200 {object} renderResponse
// @Failure 400 {object} errorBody "validation.failed: too many items or too much text"
// @Failure 401 {object} errorBody "auth.required, auth.invalidToken or auth.tokenExpired: no, a bad or an expired access token"
// @Failure 403 {object} errorBody "auth.userBlocked; auth.forbidden for a bot API key"
// @Failure 413 {object} errorBody "request.tooLarge: the body is larger than AICHAT_MAX_BODY_BYTES"
// @Failure 415 {object} errorBody "request.unsupportedMediaType: the body is not application/json"
// @Failure 429 {object} errorBody "rateLimit.exceeded; see Retry-After"
// @Failure 500 {object} errorBody "internal.error"
// @Security BearerAuth
// @Router /api/v1/render [post]
func (s *server) handleRender(c *gin.Context) error {
	var req renderRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if len(req.Items) > renderMaxItems {
		return apperr.Invalid("items", "At most %d texts per request.", renderMaxItems)
	}
	total := 0
	for _, it := range req.Items {
		total += len(it.Text)
	}
	if total > renderMaxBytes {
		return apperr.Invalid("items", "At most %d KiB of text per request.", renderMaxBytes>>10)
	}
	if !s.renderLimit.allow(me(c).UserID, time.Now()) {
		return &apperr.Error{Code: apperr.CodeRateLimited, Retry: 1, Message: "Too many render requests; slow down."}
	}
	out := make([]string, len(req.Items))
	for i, it := range req.Items {
		if it.Partial {
			out[i] = s.deps.Render.Partial(it.Text)
		} else {
			out[i] = s.deps.Render.HTML(it.Text)
		}
	}
	c.JSON(http.StatusOK, renderResponse{HTML: out})
	return nil
}

// limiter is a token bucket per user. Rendering is the only endpoint whose
// cost grows with what the caller sends, so it is the one that needs it.
type limiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(perSecond, burst float64) *limiter {
	return &limiter{rate: perSecond, burst: burst, buckets: map[string]*bucket{}}
}

func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > renderIdleForgets {
		// A full bucket and a missing one are the same: drop idle ones so
		// the map does not grow with every user ever seen.
		for k, b := range l.buckets {
			if now.Sub(b.at) > renderIdleForgets {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
