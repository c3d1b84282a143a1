package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
)

// Kind classifies an upstream failure; callers map it to their own error
// codes and to what the user is told. The values are stable: use them as log
// fields and metric labels.
type Kind string

const (
	Auth          Kind = "auth"          // 401/403: bad or missing key, region not allowed
	RateLimit     Kind = "rateLimit"     // 429 rate limit: retried, then surfaced with RetryAfter
	Quota         Kind = "quota"         // insufficient_quota, OpenRouter 402: billing, never retried
	ModelNotFound Kind = "modelNotFound" // 404 with an error body, model_not_found, not in Provider.Models
	ContextLength Kind = "contextLength" // the conversation is longer than the model's context
	BadRequest    Kind = "badRequest"    // other 4xx, or a request this package refuses to send
	Unavailable   Kind = "unavailable"   // 5xx, HTML error pages, connection failures, breaker open
	Timeout       Kind = "timeout"       // idle watchdog fired, or the caller's deadline passed
	Truncated     Kind = "truncated"     // the stream ended without a finish_reason
	Upstream      Kind = "upstream"      // an error event in the stream, or a reply that is not a stream
	Canceled      Kind = "canceled"      // the caller canceled the context (the user pressed stop)
)

// Codes set by this package itself (upstream codes are passed through).
const (
	CodeCircuitOpen  = "circuit_open"      // the breaker refused without calling the upstream
	CodeIdleTimeout  = "idle_timeout"      // no chunk for Options.IdleTimeout
	CodeDeadline     = "deadline_exceeded" // the caller's context deadline passed
	CodeNotStreaming = "not_streaming"     // HTTP 200 with a JSON body instead of a stream
	CodeBadChunk     = "bad_chunk"         // an event that is not a chunk's JSON
)

var kindText = map[Kind]string{
	Auth:          "authentication failed",
	RateLimit:     "rate limited",
	Quota:         "quota exhausted",
	ModelNotFound: "model not found",
	ContextLength: "context length exceeded",
	BadRequest:    "bad request",
	Unavailable:   "upstream unavailable",
	Timeout:       "timed out",
	Truncated:     "response truncated",
	Upstream:      "upstream error",
	Canceled:      "canceled",
}

// Error is every error Stream and Models return. Its text is safe to show
// an admin and to log: it never holds the API key or raw HTML.
type Error struct {
	Kind       Kind
	Status     int    // HTTP status, 0 if there was no HTTP error response
	Code       string // upstream error code ("rate_limit_exceeded", "400", ...) or one of ours
	Message    string // upstream message, cleaned to one line
	RequestID  string // x-request-id of the failed response, for support tickets
	Provider   string // Provider.Name
	RetryAfter time.Duration
	Partial    bool // tokens were already delivered to onDelta before the failure

	cause error // for errors.Is/As (context.Canceled, io.ErrUnexpectedEOF, ...); never printed
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("llm")
	if e.Provider != "" {
		b.WriteString(" " + e.Provider)
	}
	b.WriteString(": ")
	if t, ok := kindText[e.Kind]; ok {
		b.WriteString(t)
	} else {
		b.WriteString(string(e.Kind))
	}
	var detail []string
	if e.Status != 0 {
		detail = append(detail, "HTTP "+strconv.Itoa(e.Status))
	}
	if e.Code != "" && e.Code != strconv.Itoa(e.Status) {
		detail = append(detail, e.Code)
	}
	if len(detail) > 0 {
		b.WriteString(" (" + strings.Join(detail, ", ") + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RetryAfter > 0 {
		b.WriteString("; retry after " + e.RetryAfter.Round(time.Millisecond).String())
	}
	if e.Partial {
		b.WriteString("; after partial output")
	}
	if e.RequestID != "" {
		b.WriteString(" [request " + e.RequestID + "]")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.cause }

// KindOf returns the Kind of an *Error in err's chain, or "" if there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

func (c *Client) newError(kind Kind, code, msg string, cause error) *Error {
	return &Error{Kind: kind, Code: c.clean(code), Message: c.clean(msg), Provider: c.p.Name, cause: cause}
}

// clean makes upstream text fit for an error string: no API key (some
// upstreams echo what they were sent), no HTML, one bounded line.
func (c *Client) clean(s string) string {
	if c.p.APIKey != "" {
		s = strings.ReplaceAll(s, c.p.APIKey, "[redacted]")
	}
	s = strings.Join(strings.Fields(s), " ")
	if strings.HasPrefix(s, "<") {
		return "" // an HTML error page: useless in one line, and may echo headers
	}
	const max = 300
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// errorFields is what the error shapes of the providers have in common.
type errorFields struct{ code, typ, message string }

// parseErrorBody reads the shapes seen in the wild (reference §1.6):
// {"error":{"message","type","code"}} with a string or integer code (OpenAI,
// Ollama, vLLM, llama.cpp, OpenRouter), {"error":"text"}, and old vLLM's
// top-level {"object":"error","message","type","code"}.
func parseErrorBody(body []byte) errorFields {
	var top struct {
		Error json.RawMessage `json:"error"`
		errorObject
	}
	if json.Unmarshal(body, &top) != nil {
		return errorFields{}
	}
	if len(top.Error) > 0 && string(top.Error) != "null" {
		return parseErrorValue(top.Error)
	}
	return top.errorObject.fields()
}

func parseErrorValue(raw json.RawMessage) errorFields {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return errorFields{message: s}
	}
	var o errorObject
	_ = json.Unmarshal(raw, &o)
	return o.fields()
}

type errorObject struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"` // "invalid_api_key", 400, or null
}

func (o errorObject) fields() errorFields {
	f := errorFields{typ: o.Type, message: o.Message}
	if len(o.Code) > 0 && string(o.Code) != "null" {
		if json.Unmarshal(o.Code, &f.code) != nil {
			f.code = string(o.Code) // an integer: keep its digits, as openai-go does
		}
	}
	return f
}

// httpError classifies a non-2xx response. openai-go parses only the
// {"error":{...}} shape (its fields are empty for the others), so the body
// it buffered back into res.Body is parsed again here.
func (c *Client) httpError(res *http.Response, apiErr *openai.Error) *Error {
	var f errorFields
	if apiErr != nil {
		f = errorFields{code: apiErr.Code, typ: apiErr.Type, message: apiErr.Message}
	}
	var body []byte
	if res.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(res.Body, 64<<10))
	}
	isJSON := json.Valid(body)
	if f.message == "" && isJSON {
		f = parseErrorBody(body)
	}
	// No cause is kept: openai.Error holds the request, Authorization header
	// included.
	e := c.newError(classify(res.StatusCode, f, isJSON), f.code, f.message, nil)
	e.Status = res.StatusCode
	e.RequestID = requestID(res.Header)
	e.RetryAfter = c.retryAfter(res.Header)
	if e.Message == "" {
		e.Message = http.StatusText(res.StatusCode) + " with no error message"
		if !isJSON {
			e.Message = http.StatusText(res.StatusCode) + " (not a JSON error body)"
		}
		if res.StatusCode == http.StatusNotFound && !isJSON {
			e.Message += "; check the base URL, it usually ends in /v1"
		}
	}
	return e
}

func classify(status int, f errorFields, isJSON bool) Kind {
	msg := strings.ToLower(f.message)
	switch {
	case f.code == "insufficient_quota" || f.typ == "insufficient_quota" || status == http.StatusPaymentRequired:
		return Quota
	case f.code == "context_length_exceeded" || f.typ == "exceed_context_size_error" ||
		strings.Contains(msg, "context length") || strings.Contains(msg, "context window") ||
		strings.Contains(msg, "context size"): // vLLM and llama.cpp say it only in words
		return ContextLength
	case f.code == "model_not_found" || (status == http.StatusNotFound && isJSON):
		return ModelNotFound
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Auth
	case status == http.StatusTooManyRequests:
		return RateLimit
	case status >= 500:
		return Unavailable
	default:
		return BadRequest // includes a 404 without a JSON body: a wrong URL, not a missing model
	}
}

// streamError turns a mid-stream error event into an error. It reports false
// for `"error":null`, which some servers put in normal chunks and which
// openai-go's own Stream would wrongly abort on.
func (c *Client) streamError(data []byte) (*Error, bool) {
	if !bytes.Contains(data, []byte(`"error"`)) {
		return nil, false // the common case: skip a second JSON decode
	}
	var probe struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &probe) != nil || len(probe.Error) == 0 || string(probe.Error) == "null" {
		return nil, false
	}
	f := parseErrorValue(probe.Error)
	if f.message == "" {
		f.message = "error event without a message"
	}
	return c.newError(Upstream, f.code, f.message, nil), true
}

// transportError classifies an error that is not an HTTP error response.
// ctx is the attempt's context; its cause tells the idle watchdog from the
// caller. Before the response a network error means the upstream is
// unreachable (retryable); during the stream it means the reply was cut.
func (c *Client) transportError(ctx context.Context, err error, midStream bool) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(context.Cause(ctx), errIdle):
		return c.newError(Timeout, CodeIdleTimeout, "no data from the upstream for "+c.opt.IdleTimeout.String(), errIdle)
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		return c.newError(Timeout, CodeDeadline, "the request's deadline passed", context.DeadlineExceeded)
	case ctx.Err() != nil:
		return c.newError(Canceled, "", "", context.Canceled)
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Err.Error() // without the URL, which may carry credentials
	}
	switch {
	case midStream:
		return c.newError(Truncated, "", "connection lost mid-stream: "+msg, err)
	case ue != nil:
		return c.newError(Unavailable, "", msg, err)
	default:
		return c.newError(Upstream, "", msg, err)
	}
}

func requestID(h http.Header) string {
	for _, k := range []string{"x-request-id", "request-id"} {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// retryAfter reads Retry-After-Ms, then Retry-After in seconds or as an
// HTTP date, like openai-go does.
func (c *Client) retryAfter(h http.Header) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 && s < 1e6 {
			return time.Duration(s * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(c.opt.Now()); d > 0 {
			return d
		}
	}
	return 0
}
