// Package apperr defines the error value every layer of aichat returns to its
// callers: a stable machine-readable code ("area.reason"), a message that is
// safe to show to the user, and optionally the input field at fault. The
// mapping from codes to HTTP statuses lives in one table in httpapi; the
// WebSocket layer reuses the same codes.
package apperr

import (
	"errors"
	"fmt"
)

// Stable error codes. Clients may switch on these; never rename one.
const (
	CodeInternal           = "internal.error"
	CodeUnavailable        = "internal.unavailable"
	CodeValidation         = "validation.failed"
	CodeTooLarge           = "request.tooLarge"
	CodeNotFound           = "route.notFound"
	CodeMethodNotAllowed   = "route.methodNotAllowed"
	CodeRateLimited        = "rateLimit.exceeded"
	CodeInvalidToken       = "auth.invalidToken"
	CodeTokenExpired       = "auth.tokenExpired"
	CodeUnauthenticated    = "auth.required"
	CodeInvalidCredentials = "auth.invalidCredentials"
	CodeEmailTaken         = "auth.emailTaken"
	CodeWeakPassword       = "auth.weakPassword"
	CodeTooManyAttempts    = "auth.tooManyAttempts"
	CodeRefreshInvalid     = "auth.invalidRefreshToken"
	CodeRefreshReused      = "auth.refreshTokenReused"
	CodeUserBlocked        = "auth.userBlocked"
	CodeForbidden          = "auth.forbidden"
	CodeWrongPassword      = "auth.wrongPassword"
	CodeUserNotFound       = "user.notFound"
	CodeSessionNotFound    = "session.notFound"
	CodeAPIKeyNotFound     = "apiKey.notFound"
	CodeFlagNotFound       = "moderation.flagNotFound"
	CodeAdminSelf          = "admin.selfChange"
	CodeUnsupportedMedia   = "request.unsupportedMediaType"
	CodeChatNotFound       = "chat.notFound"
	CodeChatForbidden      = "chat.forbidden"
	CodeOwnerCannotLeave   = "chat.ownerCannotLeave"
	CodeAlreadyMember      = "chat.alreadyMember"
	CodeMessageNotFound    = "message.notFound"
	CodeIdempotency        = "message.idempotencyConflict"
	CodeWSUpgradeRequired  = "webSocket.upgradeRequired"
	CodeWSOrigin           = "webSocket.originForbidden"
	CodeWSClosed           = "webSocket.closed"
	CodeWSBadCommand       = "webSocket.badCommand"
	CodeWSUnknownCommand   = "webSocket.unknownCommand"
	CodeAINotGenerating    = "ai.notGenerating"
	CodeAINotConfigured    = "ai.notConfigured"
	CodeAIBusy             = "ai.busy"
	CodeAIQuota            = "ai.quotaExceeded"
	CodeAIModerated        = "ai.moderated"
	CodeAIRateLimited      = "ai.rateLimited"
	CodeAIProviderQuota    = "ai.providerQuota"
	CodeAIUnavailable      = "ai.providerDown"
	CodeAIModelNotFound    = "ai.modelNotFound"
	CodeAIContextLength    = "ai.contextTooLong"
	CodeAITimeout          = "ai.timeout"
	CodeAITruncated        = "ai.truncated"
	CodeAIUpstream         = "ai.upstreamError"
	CodeAIAuth             = "ai.providerAuth"
	CodeAIFiltered         = "ai.filtered"
	// Friends and notifications (package social).
	CodeChatBlocked          = "chat.blocked"
	CodeFriendNotFound       = "friend.notFound"
	CodeFriendRequestMissing = "friend.requestNotFound"
	CodeAlreadyFriends       = "friend.alreadyFriends"
	CodeFriendBlocked        = "friend.blocked"
	CodeNotificationNotFound = "notification.notFound"
	CodeInvitationNotFound   = "invitation.notFound"
)

// Error is an error with a stable code and a message safe for the client.
// Err, when set, is the underlying cause: it is logged, never sent.
type Error struct {
	Code    string
	Message string
	Field   string // the input field at fault, for validation errors
	Retry   int    // seconds the client should wait, for rate limits
	Err     error  // cause, for logs only
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error with a code and a client-safe message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with a code and message that keeps err as its cause.
func Wrap(err error, code, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// Invalid reports bad input in one field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeValidation, Field: field, Message: fmt.Sprintf(format, args...)}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// Code returns err's code, or CodeInternal for errors that carry none.
func Code(err error) string {
	if e, ok := As(err); ok {
		return e.Code
	}
	return CodeInternal
}

// Is reports whether err carries the given code.
func Is(err error, code string) bool {
	e, ok := As(err)
	return ok && e.Code == code
}
