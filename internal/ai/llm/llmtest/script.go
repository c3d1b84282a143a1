package llmtest

import (
	"strconv"
	"strings"
	"time"
)

// Script tells the server how to answer one request. The zero Script streams
// a short default text the way OpenAI does.
//
// Precedence: a Status other than 0/200 or a Body answers with that body and
// nothing else; otherwise Replay is sent verbatim; otherwise a stream is
// generated from Tokens (or Text).
type Script struct {
	// Status is the HTTP status (0 means 200).
	Status int
	// Header holds extra response headers (Retry-After, x-request-id,
	// x-ratelimit-*). Every answer gets an x-request-id unless set here.
	Header map[string]string
	// ContentType overrides the default: "application/json" for a Body,
	// "text/event-stream; charset=utf-8" (OpenAI's) for a stream.
	ContentType string
	// Body is written as is: an error body, an HTML page, or a 200
	// non-streaming completion (an upstream that ignored stream=true).
	Body string

	// Replay is recorded SSE bytes (StreamA, StreamB, ...) sent verbatim,
	// flushed after each event, with TokenDelay before each event.
	Replay string

	// Text is split into word tokens (see Tokens) unless Tokens is set.
	Text   string
	Tokens []string
	// TokenDelay is slept before each content token; TokensPerSecond is the
	// same thing as a rate (used when TokenDelay is 0).
	TokenDelay      time.Duration
	TokensPerSecond float64
	// Model is reported in the chunks (default: the request's model).
	Model string
	// FinishReason is sent at the end (default "stop").
	FinishReason string
	// RoleEveryChunk puts "role":"assistant" in every content chunk and drops
	// the role-only first chunk (old Ollama, OpenRouter).
	RoleEveryChunk bool
	// FinishOnLastChunk carries finish_reason on the last content chunk
	// instead of a separate chunk with an empty delta.
	FinishOnLastChunk bool
	// Usage says when usage is sent; PromptTokens is reported (default 10)
	// and completion_tokens counts the tokens sent.
	Usage        UsageMode
	PromptTokens int
	// Comments are comment or keep-alive lines (": OPENROUTER PROCESSING",
	// ":") sent before the first event and after every event.
	Comments []string
	// CRLF ends every line with \r\n instead of \n.
	CRLF bool
	// NullError adds "error":null to every chunk, which openai-go (v3.96.0)
	// mistakes for an error event.
	NullError bool

	// Break ends the stream early after BreakAfter content tokens.
	Break      Break
	BreakAfter int
	// ErrorMessage is the message of the mid-stream error breaks.
	ErrorMessage string
	// EndDelay holds the response open this long after the stream was
	// written, as a proxy or a busy server may before it ends the chunked
	// body; Hold instead keeps it open until the client goes away.
	EndDelay time.Duration
	Hold     bool
}

// UsageMode selects when a generated stream reports usage.
type UsageMode int

const (
	// UsageIfRequested sends "usage":null in every chunk and one usage chunk
	// before [DONE] only when the request has stream_options.include_usage
	// (OpenAI, Ollama); otherwise no usage field at all.
	UsageIfRequested UsageMode = iota
	// UsageAlways sends the final usage chunk even when not asked (llama.cpp).
	UsageAlways
	// UsageNever sends no usage, even when asked.
	UsageNever
	// UsageCumulative puts the running usage in every chunk, plus the final
	// usage chunk (vLLM continuous_usage_stats): a client must keep the last
	// one, not add them up.
	UsageCumulative
)

// Break is how a generated stream ends early.
type Break int

const (
	// NoBreak ends normally: finish chunk, usage chunk, [DONE].
	NoBreak Break = iota
	// BreakEOF returns from the handler with no finish_reason and no [DONE]:
	// a clean EOF that openai-go does not report (truncation a).
	BreakEOF
	// BreakHijack hijacks the connection and closes it in the middle of the
	// chunked body: the client reads "unexpected EOF" (truncation b).
	BreakHijack
	// BreakStall sends nothing more and holds the connection until the
	// request's context ends (a silent upstream).
	BreakStall
	// BreakErrorOpenAI sends `data: {"error":{...}}` and then EOF (OpenAI).
	BreakErrorOpenAI
	// BreakErrorVLLM sends `data: {"error":{...,"code":500}}` then [DONE].
	BreakErrorVLLM
	// BreakErrorOpenRouter sends a comment, then a chunk with an "error"
	// object and finish_reason "error", then EOF.
	BreakErrorOpenRouter
	// BreakErrorLlamaCpp sends the legacy llama.cpp `error: {...}` SSE field
	// then `data: [DONE]`; SSE parsers drop that field.
	BreakErrorLlamaCpp
)

// Tokens splits text into word tokens that keep their leading space, as
// tokenizers do: "Hello big world" → "Hello", " big", " world".
func Tokens(text string) []string {
	var out []string
	start := 0
	for i := 1; i < len(text); i++ {
		if text[i] == ' ' && text[i-1] != ' ' {
			out = append(out, text[start:i])
			start = i
		}
	}
	if start < len(text) {
		out = append(out, text[start:])
	}
	return out
}

// DefaultText is what the zero Script streams.
const DefaultText = "Hello from llmtest."

func jsonError(status int, body string, header ...string) Script {
	s := Script{Status: status, Body: body, Header: map[string]string{}}
	for i := 0; i+1 < len(header); i += 2 {
		s.Header[header[i]] = header[i+1]
	}
	return s
}

// InvalidAPIKey is OpenAI's 401. The message quotes shownKey as given, the
// way a careless upstream might echo a whole key.
func InvalidAPIKey(shownKey string) Script {
	return jsonError(401, `{"error":{"message":`+jsonString("Incorrect API key provided: "+shownKey+
		". You can find your API key at https://platform.openai.com/account/api-keys.")+`,"type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
}

// ContextLengthExceeded is OpenAI's pretty-printed 400 (reference §1.6).
func ContextLengthExceeded() Script {
	return jsonError(400, `{
  "error": {
    "message": "Input tokens exceed the configured limit of 272000 tokens. Your messages resulted in 3148588 tokens. Please reduce the length of the messages.",
    "type": "invalid_request_error",
    "param": "messages",
    "code": "context_length_exceeded"
  }
}`)
}

// RateLimited is a 429 rate_limit_exceeded with Retry-After (seconds, or ""
// for none) and the x-ratelimit-* headers.
func RateLimited(retryAfter string) Script {
	s := jsonError(429, `{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
		"x-ratelimit-limit-requests", "60",
		"x-ratelimit-limit-tokens", "150000",
		"x-ratelimit-remaining-requests", "0",
		"x-ratelimit-remaining-tokens", "149984",
		"x-ratelimit-reset-requests", "1s",
		"x-ratelimit-reset-tokens", "6m0s")
	if retryAfter != "" {
		s.Header["Retry-After"] = retryAfter
	}
	return s
}

// InsufficientQuota is the 429 that must not be retried.
func InsufficientQuota() Script {
	return jsonError(429, `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`)
}

// ServerError is a 5xx with OpenAI's server_error body (500, 503, ...).
func ServerError(status int) Script {
	msg := "The server had an error while processing your request. Sorry about that!"
	if status == 503 {
		msg = "The engine is currently overloaded, please try again later."
	}
	return jsonError(status, `{"error":{"message":"`+msg+`","type":"server_error","param":null,"code":null}}`)
}

// ModelNotFound is OpenAI's 404 with code model_not_found.
func ModelNotFound(model string) Script {
	return jsonError(404, `{"error":{"message":`+jsonString("The model '"+model+"' does not exist or you do not have access to it.")+`,"type":"invalid_request_error","param":null,"code":"model_not_found"}}`)
}

// OllamaNotFound is Ollama's 404 shape: type not_found_error, code null.
func OllamaNotFound(model string) Script {
	return jsonError(404, `{"error":{"message":`+jsonString("model '"+model+"' not found")+`,"type":"not_found_error","param":null,"code":null}}`)
}

// IntCodeError is the vLLM / llama.cpp shape whose code is the HTTP status
// as an integer.
func IntCodeError(status int, message string) Script {
	return jsonError(status, `{"error":{"message":`+jsonString(message)+`,"type":"BadRequestError","param":null,"code":`+strconv.Itoa(status)+`}}`)
}

// OldVLLMError is vLLM's pre-2024 top-level shape, with no "error" wrapper.
func OldVLLMError(status int, message string) Script {
	return jsonError(status, `{"object":"error","message":`+jsonString(message)+`,"type":"NotFoundError","param":null,"code":`+strconv.Itoa(status)+`}`)
}

// OpenRouterNoCredits is OpenRouter's 402, whose error.code is the status.
func OpenRouterNoCredits() Script {
	return jsonError(402, `{"error":{"code":402,"message":"Insufficient credits. Add more using https://openrouter.ai/settings/credits","metadata":{}}}`)
}

// HTMLBadGateway is a proxy's HTML 502 page.
func HTMLBadGateway() Script {
	s := jsonError(502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
	s.ContentType = "text/html"
	return s
}

// NonStreamCompletion is a 200 application/json chat.completion: an upstream
// that ignored stream=true.
func NonStreamCompletion(text string) Script {
	return Script{Body: `{"id":"chatcmpl-llmtest","object":"chat.completion","created":1760704579,"model":"llmtest","choices":[{"index":0,"message":{"role":"assistant","content":` +
		jsonString(text) + `},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}}`}
}

// tokens returns the content tokens of a generated stream.
func (s *Script) tokens() []string {
	if s.Tokens != nil {
		return s.Tokens
	}
	if s.Text != "" {
		return Tokens(s.Text)
	}
	return Tokens(DefaultText)
}

// delay is the pause before each token or replayed event.
func (s *Script) delay() time.Duration {
	if s.TokenDelay > 0 {
		return s.TokenDelay
	}
	if s.TokensPerSecond > 0 {
		return time.Duration(float64(time.Second) / s.TokensPerSecond)
	}
	return 0
}

func (s *Script) errorMessage() string {
	if s.ErrorMessage != "" {
		return s.ErrorMessage
	}
	return "The server had an error while processing your request. Sorry about that!"
}

// splitEvents cuts recorded SSE bytes after each blank line, keeping every
// byte, so a replay can flush event by event.
func splitEvents(raw string) []string {
	var out []string
	for raw != "" {
		i := strings.Index(raw, "\n\n")
		j := strings.Index(raw, "\r\n\r\n")
		switch {
		case i < 0 && j < 0:
			return append(out, raw)
		case j >= 0 && (i < 0 || j < i):
			out, raw = append(out, raw[:j+4]), raw[j+4:]
		default:
			out, raw = append(out, raw[:i+2]), raw[i+2:]
		}
	}
	return out
}
