package llm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm/llmtest"
)

// testKey is distinctive so that a leak is easy to find in any string.
const testKey = "sk-llmtest-DO-NOT-LEAK-7f3a9c1e5b"

// newTestClient returns a client for s with fast retries. mod may adjust the
// provider and options before the client is built.
func newTestClient(t testing.TB, s *llmtest.Server, mod ...func(*Provider, *Options)) *Client {
	t.Helper()
	p := Provider{Name: "fake", BaseURL: s.URL, APIKey: testKey}
	opt := Options{IdleTimeout: 5 * time.Second}
	for _, m := range mod {
		m(&p, &opt)
	}
	c := New(p, opt)
	c.backoff = 10 * time.Millisecond
	return c
}

func noRetries(_ *Provider, o *Options) { o.MaxRetries = -1 }

func hi() Request {
	return Request{Model: "gpt-4o-mini", Messages: []Message{{"system", "You are a helpful assistant"}, {"user", "Say hi in Portuguese"}}}
}

// run streams req and returns the text delivered, the result and the error.
func run(t testing.TB, c *Client, ctx context.Context, req Request) (string, *Result, error) {
	t.Helper()
	var b strings.Builder
	res, err := c.Stream(ctx, req, func(d string, _ time.Time) {
		if d == "" {
			t.Error("onDelta got an empty delta")
		}
		b.WriteString(d)
	})
	if res == nil {
		t.Fatal("Stream returned a nil Result")
	}
	if err != nil && strings.Contains(fmt.Sprintf("%v %+v %s", err, err, err), testKey) {
		t.Errorf("the API key leaked into the error: %v", err)
	}
	return b.String(), res, err
}

func chatHits(s *llmtest.Server) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Path == "/v1/chat/completions" {
			n++
		}
	}
	return n
}

// streamAUntilFinish is stream A cut after its finish_reason chunk: no usage
// chunk, no [DONE].
func streamAUntilFinish() string {
	i := strings.Index(llmtest.StreamA, `data: {"id":"chatcmpl-CRdytk5LO0hrSMS9Co5OPHLFCuLSF","object":"chat.completion.chunk","created":1760704579,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559","choices":[],`)
	return llmtest.StreamA[:i]
}

// TestStreams covers the §8 checklist cases that end in a result.
func TestStreams(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		script llmtest.Script
		text   string
		finish string
		usage  *Usage
		model  string
	}{
		{"A replayed", llmtest.Script{Replay: llmtest.StreamA},
			`Hi! In Portuguese, you say "Olá!"`, "stop", &Usage{20, 10}, "gpt-4o-mini-2024-07-18"},
		{"A replayed slowly", llmtest.Script{Replay: llmtest.StreamA, TokenDelay: 3 * time.Millisecond},
			`Hi! In Portuguese, you say "Olá!"`, "stop", &Usage{20, 10}, "gpt-4o-mini-2024-07-18"},
		{"A replayed with CRLF", llmtest.Script{Replay: llmtest.StreamA, CRLF: true},
			`Hi! In Portuguese, you say "Olá!"`, "stop", &Usage{20, 10}, "gpt-4o-mini-2024-07-18"},
		{"B replayed: length", llmtest.Script{Replay: llmtest.StreamB},
			`{"`, "length", &Usage{79, 1}, "gpt-4o-2024-08-06"},
		{"old Ollama replayed", llmtest.Script{Replay: llmtest.StreamOllamaOld},
			"Hi", "stop", &Usage{32, 4}, "qwen2.5:0.5b"},
		{"llama.cpp replayed: no content", llmtest.Script{Replay: llmtest.StreamLlamaCpp},
			"", "stop", &Usage{84, 62}, "openai/gpt-oss-20b"},
		{"generated", llmtest.Script{},
			llmtest.DefaultText, "stop", &Usage{10, 3}, "gpt-4o-mini"},
		{"generated at 500 tokens/s", llmtest.Script{Text: "one two three four five", TokensPerSecond: 500},
			"one two three four five", "stop", &Usage{10, 5}, "gpt-4o-mini"},
		{"comments and keep-alives", llmtest.Script{Comments: []string{": OPENROUTER PROCESSING", ":"}},
			llmtest.DefaultText, "stop", &Usage{10, 3}, "gpt-4o-mini"},
		{"CRLF", llmtest.Script{CRLF: true, Comments: []string{":"}},
			llmtest.DefaultText, "stop", &Usage{10, 3}, "gpt-4o-mini"},
		{"role in every chunk, finish on last content chunk", llmtest.Script{RoleEveryChunk: true, FinishOnLastChunk: true, Model: "llama3.2:latest"},
			llmtest.DefaultText, "stop", &Usage{10, 3}, "llama3.2:latest"},
		{"finish length", llmtest.Script{Text: "a b", FinishReason: "length"},
			"a b", "length", &Usage{10, 2}, "gpt-4o-mini"},
		{"content_filter", llmtest.Script{Text: "a", FinishReason: "content_filter"},
			"a", "content_filter", &Usage{10, 1}, "gpt-4o-mini"},
		{`"error":null in every chunk is no error`, llmtest.Script{NullError: true},
			llmtest.DefaultText, "stop", &Usage{10, 3}, "gpt-4o-mini"},
		{"cumulative usage: the last one, not the sum", llmtest.Script{Text: "a b c d", Usage: llmtest.UsageCumulative, PromptTokens: 6},
			"a b c d", "stop", &Usage{6, 4}, "gpt-4o-mini"},
		{"no usage chunk", llmtest.Script{Usage: llmtest.UsageNever},
			llmtest.DefaultText, "stop", nil, "gpt-4o-mini"},
		{"finish then EOF: complete, usage lost", llmtest.Script{Replay: streamAUntilFinish()},
			`Hi! In Portuguese, you say "Olá!"`, "stop", nil, "gpt-4o-mini-2024-07-18"},
		{"a stream labelled application/json", llmtest.Script{ContentType: "application/json"},
			llmtest.DefaultText, "stop", &Usage{10, 3}, "gpt-4o-mini"},
		{"unicode and escapes", llmtest.Script{Tokens: []string{"Olá", " \"mundo\"", "\n", " 👋", " <b>&</b>"}},
			"Olá \"mundo\"\n 👋 <b>&</b>", "stop", &Usage{10, 5}, "gpt-4o-mini"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.NewServer(t)
			s.Enqueue(tc.script)
			text, res, err := run(t, newTestClient(t, s), context.Background(), hi())
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			if text != tc.text {
				t.Errorf("text = %q, want %q", text, tc.text)
			}
			if res.FinishReason != tc.finish {
				t.Errorf("finish = %q, want %q", res.FinishReason, tc.finish)
			}
			if fmt.Sprint(res.Usage) != fmt.Sprint(tc.usage) {
				t.Errorf("usage = %+v, want %+v", res.Usage, tc.usage)
			}
			if res.Model != tc.model {
				t.Errorf("model = %q, want %q", res.Model, tc.model)
			}
			if res.RequestID != "req_llmtest_1" {
				t.Errorf("request id = %q", res.RequestID)
			}
			if tc.text != "" && res.TimeToFirst <= 0 {
				t.Errorf("TimeToFirst = %v", res.TimeToFirst)
			}
		})
	}
}

// TestStreamFailures covers the §8 checklist cases that end in an error.
func TestStreamFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		script  llmtest.Script
		kind    Kind
		text    string // delivered before the failure
		status  int
		code    string
		msg     string // a part of Error()
		partial bool
		retry   time.Duration
	}{
		// Mid-stream errors, in each dialect.
		{name: "C replayed: OpenAI error event", script: llmtest.Script{Replay: llmtest.StreamC},
			kind: Upstream, text: `The question "`, msg: "The server had an error", partial: true},
		{name: "OpenAI error event", script: llmtest.Script{Break: llmtest.BreakErrorOpenAI, BreakAfter: 2, ErrorMessage: "boom"},
			kind: Upstream, text: "Hello from", msg: "boom", partial: true},
		{name: "vLLM error event then [DONE]", script: llmtest.Script{Break: llmtest.BreakErrorVLLM, BreakAfter: 1, ErrorMessage: "engine died"},
			kind: Upstream, text: "Hello", code: "500", msg: "engine died", partial: true},
		{name: "error event before any token", script: llmtest.Script{Break: llmtest.BreakErrorOpenAI, ErrorMessage: "boom"},
			kind: Upstream, msg: "boom"},
		{name: "OpenRouter error chunk replayed", script: llmtest.Script{Replay: llmtest.StreamOpenRouterError},
			kind: Upstream, code: "server_error", msg: "Provider disconnected unexpectedly"},
		{name: "OpenRouter error chunk", script: llmtest.Script{Break: llmtest.BreakErrorOpenRouter, BreakAfter: 2, ErrorMessage: "provider gone"},
			kind: Upstream, text: "Hello from", code: "server_error", msg: "provider gone", partial: true},
		{name: "legacy llama.cpp error: line", script: llmtest.Script{Break: llmtest.BreakErrorLlamaCpp, BreakAfter: 1},
			kind: Truncated, text: "Hello", msg: "without a finish_reason", partial: true},
		{name: "error event with a string error", script: llmtest.Script{Replay: "data: {\"error\":\"model unloaded\"}\n\ndata: [DONE]\n\n"},
			kind: Upstream, msg: "model unloaded"},
		{name: "an event that is not JSON", script: llmtest.Script{Replay: "data: not json\n\n"},
			kind: Upstream, code: CodeBadChunk, msg: "undecodable chunk"},
		// Truncation.
		{name: "clean EOF without [DONE]", script: llmtest.Script{Break: llmtest.BreakEOF, BreakAfter: 2},
			kind: Truncated, text: "Hello from", msg: "without a finish_reason", partial: true},
		{name: "connection closed mid-body", script: llmtest.Script{Break: llmtest.BreakHijack, BreakAfter: 2},
			kind: Truncated, text: "Hello from", msg: "connection lost", partial: true},
		{name: "empty stream", script: llmtest.Script{Break: llmtest.BreakEOF},
			kind: Truncated, msg: "without a finish_reason"},
		{name: "200 with a JSON body", script: llmtest.NonStreamCompletion("hi"),
			kind: Upstream, code: CodeNotStreaming, msg: "instead of a stream"},
		// HTTP errors (§8.7).
		{name: "401 invalid_api_key, key echoed", script: llmtest.InvalidAPIKey(testKey),
			kind: Auth, status: 401, code: "invalid_api_key", msg: "Incorrect API key provided: [redacted]"},
		{name: "403", script: llmtest.IntCodeError(403, "Country, region, or territory not supported"),
			kind: Auth, status: 403, msg: "not supported"},
		{name: "400 context_length_exceeded", script: llmtest.ContextLengthExceeded(),
			kind: ContextLength, status: 400, code: "context_length_exceeded", msg: "Input tokens exceed"},
		{name: "400 vLLM context, integer code", script: llmtest.IntCodeError(400, "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens."),
			kind: ContextLength, status: 400, code: "400", msg: "maximum context length"},
		{name: "400 integer code", script: llmtest.IntCodeError(400, "temperature must be in [0, 2]"),
			kind: BadRequest, status: 400, code: "400", msg: "temperature must be"},
		{name: "429 with Retry-After", script: llmtest.RateLimited("1"),
			kind: RateLimit, status: 429, code: "rate_limit_exceeded", msg: "Rate limit reached", retry: time.Second},
		{name: "429 insufficient_quota", script: llmtest.InsufficientQuota(),
			kind: Quota, status: 429, code: "insufficient_quota", msg: "exceeded your current quota"},
		{name: "402 OpenRouter credits", script: llmtest.OpenRouterNoCredits(),
			kind: Quota, status: 402, msg: "Insufficient credits"},
		{name: "500 server_error", script: llmtest.ServerError(500),
			kind: Unavailable, status: 500, msg: "server had an error"},
		{name: "503 overloaded", script: llmtest.ServerError(503),
			kind: Unavailable, status: 503, msg: "overloaded"},
		{name: "404 Ollama not_found_error", script: llmtest.OllamaNotFound("llama9"),
			kind: ModelNotFound, status: 404, msg: "model 'llama9' not found"},
		{name: "404 model_not_found", script: llmtest.ModelNotFound("gpt-9"),
			kind: ModelNotFound, status: 404, code: "model_not_found", msg: "gpt-9"},
		{name: "404 old vLLM top-level shape", script: llmtest.OldVLLMError(404, "The model `x` does not exist."),
			kind: ModelNotFound, status: 404, code: "404", msg: "does not exist"},
		{name: "404 plain text: wrong base URL", script: llmtest.Script{Status: 404, ContentType: "text/plain", Body: "404 page not found"},
			kind: BadRequest, status: 404, msg: "ends in /v1"},
		{name: "500 Ollama native shape", script: llmtest.Script{Status: 500, Body: `{"error":"llama runner process has terminated"}`},
			kind: Unavailable, status: 500, msg: "runner process has terminated"},
		{name: "502 HTML", script: llmtest.HTMLBadGateway(),
			kind: Unavailable, status: 502, msg: "not a JSON error body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.NewServer(t)
			s.Enqueue(tc.script)
			text, res, err := run(t, newTestClient(t, s, noRetries), context.Background(), hi())
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if e.Kind != tc.kind || e.Status != tc.status || e.Partial != tc.partial {
				t.Errorf("kind %s status %d partial %v, want %s %d %v (%v)", e.Kind, e.Status, e.Partial, tc.kind, tc.status, tc.partial, err)
			}
			if tc.code != "" && e.Code != tc.code {
				t.Errorf("code = %q, want %q", e.Code, tc.code)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Error() = %q, want it to contain %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), "<") || strings.Contains(err.Error(), "\n") {
				t.Errorf("Error() is not one clean line: %q", err)
			}
			if e.Provider != "fake" || !strings.HasPrefix(err.Error(), "llm fake: ") {
				t.Errorf("provider missing: %q", err)
			}
			if text != tc.text {
				t.Errorf("delivered %q, want %q", text, tc.text)
			}
			if e.RetryAfter != tc.retry {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tc.retry)
			}
			if e.RequestID != "req_llmtest_1" && res.RequestID != "req_llmtest_1" {
				t.Errorf("no request id: error %q, result %q", e.RequestID, res.RequestID)
			}
			if n := chatHits(s); n != 1 {
				t.Errorf("%d requests, want 1 (no retries here)", n)
			}
		})
	}
}

func TestUnexpectedEOFUnwraps(t *testing.T) {
	t.Parallel()
	s := llmtest.NewServer(t)
	s.Enqueue(llmtest.Script{Break: llmtest.BreakHijack, BreakAfter: 1})
	_, _, err := run(t, newTestClient(t, s, noRetries), context.Background(), hi())
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want it to wrap io.ErrUnexpectedEOF", err)
	}
}

// TestRequestBody checks what goes on the wire (§8.8).
func TestRequestBody(t *testing.T) {
	zero := 0.0
	cases := []struct {
		name  string
		field string // Provider.MaxTokensField
		req   Request
		want  map[string]any // dotted path → value; nil value means absent
	}{
		{"all fields, OpenAI", "", Request{Model: "gpt-4o-mini", Temperature: &zero, MaxTokens: 256, Stop: []string{"\n\n", "END"}, User: "user-42",
			Messages: []Message{{"system", "sys"}, {"user", "u1"}, {"assistant", "a1"}, {"user", "u2"}}},
			map[string]any{"model": "gpt-4o-mini", "stream": true, "stream_options.include_usage": true, "temperature": 0.0,
				"max_completion_tokens": 256.0, "max_tokens": nil, "stop": []any{"\n\n", "END"}, "safety_identifier": "user-42"}},
		{"Ollama max_tokens", "max_tokens", Request{Model: "llama3.2", MaxTokens: 100, Messages: []Message{{"user", "u1"}}},
			map[string]any{"max_tokens": 100.0, "max_completion_tokens": nil, "temperature": nil, "stop": nil, "safety_identifier": nil}},
		{"nothing optional", "", Request{Model: "m", Messages: []Message{{"user", "u1"}}},
			map[string]any{"max_tokens": nil, "max_completion_tokens": nil, "temperature": nil, "stop": nil, "stream": true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := llmtest.NewServer(t)
			c := newTestClient(t, s, func(p *Provider, _ *Options) { p.MaxTokensField = tc.field })
			if _, _, err := run(t, c, context.Background(), tc.req); err != nil {
				t.Fatal(err)
			}
			r := s.Last()
			if r.Method != http.MethodPost || r.Path != "/v1/chat/completions" {
				t.Errorf("%s %s", r.Method, r.Path)
			}
			for path, want := range tc.want {
				got, ok := r.Field(path)
				if want == nil {
					if ok {
						t.Errorf("%s = %v, want it absent", path, got)
					}
					continue
				}
				if !ok || fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s = %v (present %v), want %v", path, got, ok, want)
				}
			}
			var want [][2]string
			for _, m := range tc.req.Messages {
				want = append(want, [2]string{m.Role, m.Content})
			}
			if got := r.Messages(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("messages = %q, want %q", got, want)
			}
			if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
				t.Errorf("Authorization = %q", got)
			}
		})
	}
}

// TestNoKeyNoEnvironment: with no APIKey (Ollama) no Authorization header is
// sent, even when the process has OPENAI_* variables meant for OpenAI.
func TestNoKeyNoEnvironment(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-env-must-not-be-sent")
	t.Setenv("OPENAI_ORG_ID", "org-env")
	t.Setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
	s := llmtest.NewServer(t)
	c := New(Provider{Name: "ollama", BaseURL: s.URL, MaxTokensField: "max_tokens"}, Options{})
	if _, _, err := run(t, c, context.Background(), hi()); err != nil {
		t.Fatal(err)
	}
	h := s.Last().Header
	if h.Get("Authorization") != "" || h.Get("OpenAI-Organization") != "" {
		t.Errorf("headers leaked from the environment: %v", h)
	}
}

// TestAPIKeyNeverInErrors: upstreams that echo the key, in every place an
// error message comes from, never get it into an error.
func TestAPIKeyNeverInErrors(t *testing.T) {
	t.Parallel()
	scripts := []llmtest.Script{
		llmtest.InvalidAPIKey(testKey),
		llmtest.InvalidAPIKey("Bearer " + testKey),
		llmtest.IntCodeError(400, "bad key "+testKey),
		llmtest.OldVLLMError(404, testKey),
		{Status: 500, Body: `{"error":"` + testKey + `"}`},
		{Status: 502, ContentType: "text/html", Body: "<html>Authorization: Bearer " + testKey + "</html>"},
		{Status: 400, Body: `{"error":{"message":"x","code":"` + testKey + `"}}`},
		{Break: llmtest.BreakErrorOpenAI, BreakAfter: 1, ErrorMessage: "key " + testKey},
		{Break: llmtest.BreakErrorOpenRouter, ErrorMessage: testKey},
		{Break: llmtest.BreakErrorVLLM, ErrorMessage: testKey},
		llmtest.NonStreamCompletion(testKey),
		{Status: 200, Body: `{"error":{"message":"` + testKey + `"}}`},
	}
	s := llmtest.NewServer(t)
	s.Enqueue(scripts...)
	c := newTestClient(t, s, noRetries, func(_ *Provider, o *Options) { o.Breaker.Failures = -1 })
	for i := range scripts {
		_, err := c.Stream(context.Background(), hi(), nil)
		var e *Error
		if !errors.As(err, &e) || e.Code == CodeCircuitOpen {
			t.Fatalf("script %d: err = %v", i, err)
		}
		all := fmt.Sprintf("%v|%+v|%#v|%s|%s|%s", err, err, err, e.Message, e.Code, e.RequestID)
		if strings.Contains(all, testKey) || strings.Contains(all, "DO-NOT-LEAK") {
			t.Errorf("script %d leaked the key: %s", i, all)
		}
	}
}

func TestRefusedLocally(t *testing.T) {
	t.Parallel()
	s := llmtest.NewServer(t)
	c := newTestClient(t, s, func(p *Provider, _ *Options) { p.Models = []string{"gpt-4o-mini"} })
	cases := []struct {
		req  Request
		kind Kind
	}{
		{Request{Messages: hi().Messages}, BadRequest},
		{Request{Model: "gpt-4o-mini"}, BadRequest},
		{Request{Model: "gpt-4o", Messages: hi().Messages}, ModelNotFound},
		{Request{Model: "gpt-4o-mini", Messages: []Message{{"tool", "x"}}}, BadRequest},
		{Request{Model: "gpt-4o-mini", Messages: hi().Messages, Stop: []string{"1", "2", "3", "4", "5"}}, BadRequest},
	}
	for _, tc := range cases {
		if _, _, err := run(t, c, context.Background(), tc.req); KindOf(err) != tc.kind {
			t.Errorf("%+v: err = %v, want kind %s", tc.req, err, tc.kind)
		}
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		scripts []llmtest.Script
		kind    Kind // "" for success
		hits    int
		minTime time.Duration
		maxTime time.Duration
	}{
		{"500, 500, 200 succeeds", []llmtest.Script{llmtest.ServerError(500), llmtest.ServerError(500), {}}, "", 3, 0, 2 * time.Second},
		{"503 then 200", []llmtest.Script{llmtest.ServerError(503), {}}, "", 2, 0, 2 * time.Second},
		{"HTML 502 then 200", []llmtest.Script{llmtest.HTMLBadGateway(), {}}, "", 2, 0, 2 * time.Second},
		{"three 500s: gives up after 2 retries", []llmtest.Script{llmtest.ServerError(500), llmtest.ServerError(500), llmtest.ServerError(500), {}}, Unavailable, 3, 0, 2 * time.Second},
		{"429 Retry-After 1 is honoured", []llmtest.Script{llmtest.RateLimited("1"), {}}, "", 2, time.Second, 3 * time.Second},
		{"429 without Retry-After backs off", []llmtest.Script{llmtest.RateLimited(""), {}}, "", 2, 0, 2 * time.Second},
		{"429 Retry-After beyond the cap is returned at once", []llmtest.Script{llmtest.RateLimited("60"), {}}, RateLimit, 1, 0, time.Second},
		{"insufficient_quota is never retried", []llmtest.Script{llmtest.InsufficientQuota(), {}}, Quota, 1, 0, time.Second},
		{"400 is not retried", []llmtest.Script{llmtest.ContextLengthExceeded(), {}}, ContextLength, 1, 0, time.Second},
		{"401 is not retried", []llmtest.Script{llmtest.InvalidAPIKey("sk-x"), {}}, Auth, 1, 0, time.Second},
		{"408 is retried", []llmtest.Script{{Status: 408, Body: `{"error":{"message":"timeout"}}`}, {}}, "", 2, 0, 2 * time.Second},
		{"409 is retried", []llmtest.Script{{Status: 409, Body: `{"error":{"message":"conflict"}}`}, {}}, "", 2, 0, 2 * time.Second},
		{"a stream cut after tokens is not retried", []llmtest.Script{{Break: llmtest.BreakHijack, BreakAfter: 2}, {}}, Truncated, 1, 0, time.Second},
		{"a mid-stream error is not retried", []llmtest.Script{{Break: llmtest.BreakErrorOpenAI}, {}}, Upstream, 1, 0, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.NewServer(t)
			s.Enqueue(tc.scripts...)
			start := time.Now()
			text, _, err := run(t, newTestClient(t, s), context.Background(), hi())
			took := time.Since(start)
			if KindOf(err) != tc.kind {
				t.Fatalf("err = %v, want kind %q", err, tc.kind)
			}
			if tc.kind == "" && text != llmtest.DefaultText {
				t.Errorf("text = %q", text)
			}
			if n := chatHits(s); n != tc.hits {
				t.Errorf("%d requests, want %d", n, tc.hits)
			}
			if took < tc.minTime || took > tc.maxTime {
				t.Errorf("took %v, want %v..%v", took, tc.minTime, tc.maxTime)
			}
			var e *Error
			if errors.As(err, &e) && e.Kind == Truncated && !e.Partial {
				t.Errorf("Partial = false after tokens were delivered")
			}
		})
	}
}

func TestRetryConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := New(Provider{Name: "down", BaseURL: "http://" + addr + "/v1", APIKey: testKey}, Options{})
	c.backoff = time.Millisecond
	_, _, err = run(t, c, context.Background(), hi())
	var e *Error
	if !errors.As(err, &e) || e.Kind != Unavailable || !strings.Contains(e.Message, "refused") {
		t.Fatalf("err = %v, want Unavailable connection refused", err)
	}
	if strings.Contains(err.Error(), "http://") || strings.Contains(err.Error(), "/v1") {
		t.Errorf("the URL is in the error (only host:port should be): %v", err)
	}
	if c.br.failures != 3 {
		t.Errorf("breaker saw %d failures, want 3 (1 + 2 retries)", c.br.failures)
	}
}

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

func TestBreaker(t *testing.T) {
	t.Parallel()
	s := llmtest.NewServer(t)
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	c := newTestClient(t, s, noRetries, func(_ *Provider, o *Options) {
		o.Breaker = BreakerOptions{Failures: 3, CoolDown: 30 * time.Second}
		o.Now = clock.Now
	})
	s.SetDefault(llmtest.ServerError(500))
	for i := range 3 {
		if _, _, err := run(t, c, context.Background(), hi()); KindOf(err) != Unavailable {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// Open: fails fast without a request.
	_, _, err := run(t, c, context.Background(), hi())
	var e *Error
	if !errors.As(err, &e) || e.Kind != Unavailable || e.Code != CodeCircuitOpen || e.RetryAfter != 30*time.Second {
		t.Fatalf("err = %v, want an open circuit with RetryAfter 30s", err)
	}
	if n := chatHits(s); n != 3 {
		t.Fatalf("%d requests, want 3: the open breaker called the upstream", n)
	}
	// Half-open, failing trial: open again for another cool-down.
	clock.Add(31 * time.Second)
	if _, _, err := run(t, c, context.Background(), hi()); KindOf(err) != Unavailable || strings.Contains(err.Error(), CodeCircuitOpen) {
		t.Fatalf("trial: %v", err)
	}
	if _, _, err := run(t, c, context.Background(), hi()); !strings.Contains(fmt.Sprint(err), CodeCircuitOpen) {
		t.Fatalf("after a failed trial: %v", err)
	}
	// Half-open, slow successful trial: a concurrent call fails fast meanwhile.
	clock.Add(31 * time.Second)
	s.SetDefault(llmtest.Script{})
	s.Enqueue(llmtest.Script{TokenDelay: 100 * time.Millisecond})
	trialDone := make(chan error)
	go func() {
		_, err := c.Stream(context.Background(), hi(), nil)
		trialDone <- err
	}()
	for chatHits(s) < 5 {
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, err := run(t, c, context.Background(), hi()); !strings.Contains(fmt.Sprint(err), CodeCircuitOpen) {
		t.Errorf("during the trial: %v, want fail fast", err)
	}
	if err := <-trialDone; err != nil {
		t.Fatalf("trial: %v", err)
	}
	// Closed again.
	for i := range 2 {
		if _, _, err := run(t, c, context.Background(), hi()); err != nil {
			t.Fatalf("after recovery %d: %v", i, err)
		}
	}
	if n := chatHits(s); n != 7 {
		t.Errorf("%d requests, want 7", n)
	}
}

func TestBreakerIgnoresClientErrors(t *testing.T) {
	t.Parallel()
	s := llmtest.NewServer(t)
	c := newTestClient(t, s, noRetries, func(_ *Provider, o *Options) { o.Breaker.Failures = 2 })
	s.SetDefault(llmtest.ContextLengthExceeded())
	for range 4 {
		if _, _, err := run(t, c, context.Background(), hi()); KindOf(err) != ContextLength {
			t.Fatalf("err = %v", err)
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = 200 * time.Millisecond
	cases := []struct {
		name    string
		script  llmtest.Script
		kind    Kind
		text    string
		partial bool
	}{
		{"silent after headers", llmtest.Script{Break: llmtest.BreakStall}, Timeout, "", false},
		{"silent after two tokens", llmtest.Script{Break: llmtest.BreakStall, BreakAfter: 2}, Timeout, "Hello from", true},
		{"keep-alive comments are not chunks", llmtest.Script{Break: llmtest.BreakStall, Comments: []string{": OPENROUTER PROCESSING"}}, Timeout, "", false},
		{"slow but steady tokens are fine", llmtest.Script{Text: "a b c d e f", TokenDelay: idle / 2}, "", "a b c d e f", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.NewServer(t)
			s.Enqueue(tc.script)
			c := newTestClient(t, s, func(_ *Provider, o *Options) { o.IdleTimeout = idle })
			start := time.Now()
			text, _, err := run(t, c, context.Background(), hi())
			took := time.Since(start)
			if KindOf(err) != tc.kind || text != tc.text {
				t.Fatalf("err = %v, text %q; want kind %q, text %q", err, text, tc.kind, tc.text)
			}
			if tc.kind == "" {
				return
			}
			var e *Error
			errors.As(err, &e)
			if e.Code != CodeIdleTimeout || e.Partial != tc.partial {
				t.Errorf("code %q partial %v", e.Code, e.Partial)
			}
			if took < idle || took > idle+time.Second {
				t.Errorf("fired after %v, want about %v", took, idle)
			}
			if n := chatHits(s); n != 1 {
				t.Errorf("%d requests: a timeout must not be retried", n)
			}
			select {
			case <-s.Last().ContextDone():
			case <-time.After(time.Second):
				t.Error("the upstream request's context did not end")
			}
		})
	}
}

// TestSlowConsumerIsNotIdle: time spent in onDelta does not count as the
// upstream being idle.
func TestSlowConsumerIsNotIdle(t *testing.T) {
	t.Parallel()
	s := llmtest.NewServer(t)
	c := newTestClient(t, s, func(_ *Provider, o *Options) { o.IdleTimeout = 100 * time.Millisecond })
	_, err := c.Stream(context.Background(), hi(), func(string, time.Time) { time.Sleep(150 * time.Millisecond) })
	if err != nil {
		t.Fatal(err)
	}
}

// TestDeltaArrival: each delta comes with the time its chunk reached this
// machine, not when it was read, so a consumer that falls behind still
// times the relay from the chunk's arrival (the server's histograms of
// what it adds rely on it).
func TestDeltaArrival(t *testing.T) {
	t.Parallel()
	s := llmtest.NewServer(t)
	s.Enqueue(llmtest.Script{Tokens: []string{"one", " two", " three", " four"}, TokenDelay: 20 * time.Millisecond})
	c := newTestClient(t, s)
	start := time.Now()
	type seen struct{ arrived, called time.Time }
	var got []seen
	_, err := c.Stream(context.Background(), hi(), func(_ string, arrived time.Time) {
		got = append(got, seen{arrived, time.Now()})
		if len(got) == 1 {
			time.Sleep(250 * time.Millisecond) // the next chunks wait in the socket
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d deltas, want 4", len(got))
	}
	for i, g := range got {
		if g.arrived.Before(start) || g.arrived.After(g.called) {
			t.Errorf("delta %d: arrived %v, outside the call (%v) and its callback (%v)", i, g.arrived, start, g.called)
		}
	}
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		return // arrivals are timed at the read there
	}
	// The other chunks were written within 60 ms of the first, while its
	// callback slept 250 ms: the second waited in the socket for ~190 ms or more.
	if waited := got[1].called.Sub(got[1].arrived); waited < 100*time.Millisecond {
		t.Errorf("delta 1 is timed %v before its callback, want the ~190 ms it waited in the socket", waited)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		script  llmtest.Script
		partial bool
	}{
		{"mid-stream", llmtest.Script{Text: strings.Repeat("word ", 200), TokenDelay: 20 * time.Millisecond}, true},
		{"silent upstream", llmtest.Script{Break: llmtest.BreakStall}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.NewServer(t)
			s.Enqueue(tc.script)
			c := newTestClient(t, s)
			ctx, cancel := context.WithCancel(context.Background())
			var canceledAt time.Time
			stop := func() {
				if canceledAt.IsZero() {
					canceledAt = time.Now()
					cancel()
				}
			}
			if !tc.partial {
				time.AfterFunc(100*time.Millisecond, stop)
			}
			_, err := c.Stream(ctx, hi(), func(string, time.Time) { stop() })
			returned := time.Now()
			var e *Error
			if !errors.As(err, &e) || e.Kind != Canceled || !errors.Is(err, context.Canceled) || e.Partial != tc.partial {
				t.Fatalf("err = %v, want Canceled (partial %v)", err, tc.partial)
			}
			if d := returned.Sub(canceledAt); d > time.Second {
				t.Errorf("Stream returned %v after the cancel", d)
			}
			r := s.Last()
			select {
			case <-r.ContextDone():
			case <-time.After(time.Second):
				t.Fatal("the upstream did not see the request end within 1s")
			}
			at, byClient := r.ContextEnded()
			if !byClient || at.Sub(canceledAt) > time.Second {
				t.Errorf("upstream context ended at +%v (by client %v)", at.Sub(canceledAt), byClient)
			}
			if n := chatHits(s); n != 1 {
				t.Errorf("%d requests: a cancel must not be retried", n)
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	s := llmtest.NewServer(t)
	s.Enqueue(llmtest.Script{Break: llmtest.BreakStall})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err := run(t, newTestClient(t, s), ctx, hi())
	var e *Error
	if !errors.As(err, &e) || e.Kind != Timeout || e.Code != CodeDeadline {
		t.Fatalf("err = %v, want Timeout deadline_exceeded", err)
	}
}

// TestCancelDuringRetryWait: a stop during the backoff returns at once.
func TestCancelDuringRetryWait(t *testing.T) {
	t.Parallel()
	s := llmtest.NewServer(t)
	s.Enqueue(llmtest.RateLimited("10"), llmtest.Script{})
	c := newTestClient(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := run(t, c, ctx, hi())
	if KindOf(err) != Canceled || time.Since(start) > time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	s := llmtest.NewServer(t)
	s.SetModels("gpt-4o-mini", "gpt-4o", "o3")
	ids, err := newTestClient(t, s).Models(context.Background())
	if err != nil || strings.Join(ids, ",") != "gpt-4o-mini,gpt-4o,o3" {
		t.Fatalf("Models = %v, %v", ids, err)
	}
	if r := s.Last(); r.Method != http.MethodGet || r.Path != "/v1/models" || r.Header.Get("Authorization") != "Bearer "+testKey {
		t.Errorf("request %s %s %q", r.Method, r.Path, r.Header.Get("Authorization"))
	}
	allow := newTestClient(t, s, func(p *Provider, _ *Options) { p.Models = []string{"o3", "gpt-4o-mini", "absent"} })
	if ids, err = allow.Models(context.Background()); err != nil || strings.Join(ids, ",") != "gpt-4o-mini,o3" {
		t.Errorf("with an allow-list: %v, %v", ids, err)
	}
	s.Enqueue(llmtest.InvalidAPIKey(testKey))
	if _, err = newTestClient(t, s).Models(context.Background()); KindOf(err) != Auth || strings.Contains(err.Error(), testKey) {
		t.Errorf("401: %v", err)
	}
	s.Enqueue(llmtest.ServerError(500), llmtest.Script{})
	if _, err = newTestClient(t, s).Models(context.Background()); err != nil {
		t.Errorf("500 then 200: %v", err)
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	e := &Error{Kind: RateLimit, Status: 429, Code: "rate_limit_exceeded", Message: "Rate limit reached", RequestID: "req_1",
		Provider: "openai", RetryAfter: 1500 * time.Millisecond, Partial: true}
	want := "llm openai: rate limited (HTTP 429, rate_limit_exceeded): Rate limit reached; retry after 1.5s; after partial output [request req_1]"
	if e.Error() != want {
		t.Errorf("got  %q\nwant %q", e.Error(), want)
	}
	if got := (&Error{Kind: Canceled}).Error(); got != "llm: canceled" {
		t.Errorf("got %q", got)
	}
	c := New(Provider{APIKey: testKey}, Options{})
	long := c.clean(strings.Repeat("é", 400) + testKey)
	if strings.Contains(long, testKey) || len(long) > 310 {
		t.Errorf("clean: %q", long)
	}
	p := Provider{Name: "openai", BaseURL: "https://api.openai.com/v1", APIKey: testKey}
	if s := fmt.Sprintf("%v %+v %#v %s", p, p, p, p); strings.Contains(s, testKey) {
		t.Errorf("a printed Provider shows the key: %s", s)
	}
}

// BenchmarkStreamRelay measures the per-chunk cost of Stream: decoding,
// bookkeeping and the onDelta call, against the local fake upstream.
func BenchmarkStreamRelay(b *testing.B) {
	const perStream = 500
	s := llmtest.NewServer(b)
	toks := make([]string, perStream)
	for i := range toks {
		toks[i] = " tok"
	}
	s.SetDefault(llmtest.Script{Tokens: toks})
	c := newTestClient(b, s)
	chunks := 0
	start := time.Now()
	for b.Loop() {
		n := 0
		if _, err := c.Stream(context.Background(), hi(), func(string, time.Time) { n++ }); err != nil || n != perStream {
			b.Fatalf("err %v, %d chunks", err, n)
		}
		chunks += n
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(chunks), "ns/chunk")
	b.ReportMetric(float64(chunks)/elapsed.Seconds(), "chunks/s")
}

// TestConnectionReused: answers one after another share one upstream
// connection. A response body closed before its end closes the connection
// (Go's transport cannot reuse it), and every answer would then pay a new
// TCP and TLS handshake before its first token.
func TestConnectionReused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		script llmtest.Script
	}{
		{"recorded stream with [DONE]", llmtest.Script{Replay: llmtest.StreamA}},
		{"generated stream", llmtest.Script{}},
		{"body ends 20 ms after [DONE]", llmtest.Script{EndDelay: 20 * time.Millisecond}},
		{"stream ending after finish_reason, no [DONE]", llmtest.Script{Replay: streamAUntilFinish()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.NewServer(t)
			s.SetDefault(tc.script)
			c := newTestClient(t, s)
			for i := range 5 {
				if _, res, err := run(t, c, context.Background(), hi()); err != nil || res.FinishReason == "" {
					t.Fatalf("answer %d: finish %q, err %v", i, res.FinishReason, err)
				}
			}
			if n := s.Connections(); n != 1 {
				t.Errorf("5 answers in a row opened %d connections to the upstream, want 1", n)
			}
		})
	}
}

// TestOpenAfterDone: an upstream that keeps the response open after [DONE]
// costs the answer at most drainWait, and the answer is complete.
func TestOpenAfterDone(t *testing.T) {
	t.Parallel()
	s := llmtest.NewServer(t)
	s.SetDefault(llmtest.Script{Hold: true})
	c := newTestClient(t, s)
	start := time.Now()
	text, res, err := run(t, c, context.Background(), hi())
	if err != nil || res.FinishReason != "stop" || text == "" {
		t.Fatalf("text %q, finish %q, err %v", text, res.FinishReason, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the answer took %v: it waited for the end of a response held open after [DONE]", d)
	}
}

// TestResultSent: the result says when the request was written to the
// upstream (the end of the server's part before the model answers): after
// the call, before the first token; never when nothing was written.
func TestResultSent(t *testing.T) {
	t.Parallel()
	s := llmtest.NewServer(t)
	s.Enqueue(llmtest.ServerError(503))
	s.Enqueue(llmtest.Script{Text: "a b c", TokenDelay: 30 * time.Millisecond})
	c := newTestClient(t, s)
	before := time.Now()
	var first time.Time
	res, err := c.Stream(context.Background(), hi(), func(string, time.Time) {
		if first.IsZero() {
			first = time.Now()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if hits := chatHits(s); hits != 2 {
		t.Fatalf("%d requests, want a retry after the 503", hits)
	}
	if res.Sent.Before(before) || !res.Sent.Before(first) {
		t.Fatalf("sent at %v: call at %v, first token at %v", res.Sent.Sub(before), 0, first.Sub(before))
	}
	if first.Sub(res.Sent) < 30*time.Millisecond {
		t.Fatalf("sent %v before the first token, which came 30 ms after the response began", first.Sub(res.Sent))
	}

	down := New(Provider{Name: "down", BaseURL: "http://127.0.0.1:1/v1", APIKey: testKey}, Options{MaxRetries: -1})
	if res, err := down.Stream(context.Background(), hi(), nil); err == nil || !res.Sent.IsZero() {
		t.Fatalf("nothing listening: sent %v, err %v", res.Sent, err)
	}
}
