package httpapi

import (
	"net/http"
	"strconv"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/gin-gonic/gin"
)

// statusByCode is the one table that turns error codes into HTTP statuses.
// A code missing here is a bug and answers 500.
var statusByCode = map[string]int{
	apperr.CodeInternal:           http.StatusInternalServerError,
	apperr.CodeUnavailable:        http.StatusServiceUnavailable,
	apperr.CodeValidation:         http.StatusBadRequest,
	apperr.CodeTooLarge:           http.StatusRequestEntityTooLarge,
	apperr.CodeUnsupportedMedia:   http.StatusUnsupportedMediaType,
	apperr.CodeNotFound:           http.StatusNotFound,
	apperr.CodeMethodNotAllowed:   http.StatusMethodNotAllowed,
	apperr.CodeRateLimited:        http.StatusTooManyRequests,
	apperr.CodeInvalidToken:       http.StatusUnauthorized,
	apperr.CodeTokenExpired:       http.StatusUnauthorized,
	apperr.CodeUnauthenticated:    http.StatusUnauthorized,
	apperr.CodeInvalidCredentials: http.StatusUnauthorized,
	apperr.CodeEmailTaken:         http.StatusConflict,
	apperr.CodeWeakPassword:       http.StatusBadRequest,
	apperr.CodeTooManyAttempts:    http.StatusTooManyRequests,
	apperr.CodeRefreshInvalid:     http.StatusUnauthorized,
	apperr.CodeRefreshReused:      http.StatusUnauthorized,
	apperr.CodeUserBlocked:        http.StatusForbidden,
	apperr.CodeForbidden:          http.StatusForbidden,
	apperr.CodeWrongPassword:      http.StatusForbidden,
	apperr.CodeUserNotFound:       http.StatusNotFound,
	apperr.CodeSessionNotFound:    http.StatusNotFound,
	apperr.CodeAPIKeyNotFound:     http.StatusNotFound,
	apperr.CodeFlagNotFound:       http.StatusNotFound,
	apperr.CodeAdminSelf:          http.StatusConflict,
	apperr.CodeChatNotFound:       http.StatusNotFound,
	apperr.CodeChatForbidden:      http.StatusForbidden,
	apperr.CodeOwnerCannotLeave:   http.StatusConflict,
	apperr.CodeAlreadyMember:      http.StatusConflict,
	apperr.CodeMessageNotFound:    http.StatusNotFound,
	apperr.CodeIdempotency:        http.StatusUnprocessableEntity,
	apperr.CodeWSUpgradeRequired:  http.StatusUpgradeRequired,
	apperr.CodeWSOrigin:           http.StatusForbidden,
	apperr.CodeAINotGenerating:    http.StatusConflict,
	apperr.CodeAINotConfigured:    http.StatusServiceUnavailable,
	apperr.CodeAIBusy:             http.StatusConflict,
	apperr.CodeAIQuota:            http.StatusTooManyRequests,
	apperr.CodeAIModerated:        http.StatusUnprocessableEntity,
	apperr.CodeAIRateLimited:      http.StatusTooManyRequests,
	apperr.CodeAIProviderQuota:    http.StatusBadGateway,
	apperr.CodeAIUnavailable:      http.StatusBadGateway,
	apperr.CodeAIModelNotFound:    http.StatusBadRequest,
	apperr.CodeAIContextLength:    http.StatusBadRequest,
	apperr.CodeAITimeout:          http.StatusGatewayTimeout,
	apperr.CodeAITruncated:        http.StatusBadGateway,
	apperr.CodeAIUpstream:         http.StatusBadGateway,
	apperr.CodeAIAuth:             http.StatusBadGateway,
	apperr.CodeAIFiltered:         http.StatusBadGateway,

	// Friends and notifications.
	apperr.CodeInvitationNotFound:   http.StatusNotFound,
	apperr.CodeChatBlocked:          http.StatusForbidden,
	apperr.CodeFriendNotFound:       http.StatusNotFound,
	apperr.CodeFriendRequestMissing: http.StatusNotFound,
	apperr.CodeAlreadyFriends:       http.StatusConflict,
	apperr.CodeFriendBlocked:        http.StatusConflict,
	apperr.CodeNotificationNotFound: http.StatusNotFound,
}

// errorBody is the JSON shape of every error answer; the OpenAPI spec calls
// it Error.
type errorBody struct {
	Code      string `json:"code" example:"area.reason"`                         // what went wrong, e.g. chat.notFound; decides the status
	Message   string `json:"message" example:"A sentence for a person to read."` // for people; may change between versions
	Field     string `json:"field,omitempty" example:"email"`                    // the request field at fault, when there is one
	RequestID string `json:"request_id,omitempty"`                               // matches the X-Request-ID response header
} //	@name	Error

// writeError answers err as JSON. Errors without a code are internal: they
// are logged with the request id and answered without details.
func (s *server) writeError(c *gin.Context, err error) {
	e, ok := apperr.As(err)
	status := http.StatusInternalServerError
	if ok {
		if st, known := statusByCode[e.Code]; known {
			status = st
		} else {
			ok = false
		}
	}
	if !ok || status >= 500 {
		s.log.ErrorContext(c.Request.Context(), "request failed",
			"request_id", requestID(c), "route", c.FullPath(), "err", err)
	}
	body := errorBody{Code: apperr.CodeInternal, Message: "Internal error.", RequestID: requestID(c)}
	if ok {
		body.Code, body.Message, body.Field = e.Code, e.Message, e.Field
		if e.Retry > 0 {
			c.Header("Retry-After", strconv.Itoa(e.Retry))
		}
	}
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="aichat"`)
	}
	c.AbortWithStatusJSON(status, body)
}

// h adapts a handler that returns an error to gin.
func (s *server) h(fn func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := fn(c); err != nil {
			s.writeError(c, err)
		}
	}
}
