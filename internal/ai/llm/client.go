// Package llm streams chat completions from one OpenAI-compatible upstream
// (OpenAI, Ollama, vLLM, llama.cpp, OpenRouter, ...). It is a thin wrapper
// over github.com/openai/openai-go/v3 that adds what a chat server needs and
// the SDK lacks (see the shared reference openai-streaming.md §5):
//
//   - a stream that ends without a finish_reason is an error (Truncated): the
//     SDK reports a clean EOF, and llama.cpp's legacy `error:` line, as success;
//   - an idle watchdog (the SDK has none, and a request timeout would cap the
//     length of a reply);
//   - retries only before the first token, and a circuit breaker;
//   - one Error type with a Kind for every failure, whose text never holds
//     the API key or an HTML page;
//   - usage is the last usage object seen, not a sum;
//   - `"error":null` in a chunk is tolerated, where the SDK aborts.
//
// It is a leaf package: of aichat it imports only netstamp.
package llm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"time"

	"github.com/aichat/aichat/internal/netstamp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

// Provider describes one upstream.
type Provider struct {
	Name           string   // "openai", "ollama", "vllm", ... (for logs and metrics)
	BaseURL        string   // e.g. https://api.openai.com/v1, http://localhost:11434/v1 (default: OpenAI's)
	APIKey         string   // may be empty (Ollama); never logged, never in errors
	MaxTokensField string   // "max_completion_tokens" (default) or "max_tokens" (Ollama ignores the former)
	Models         []string // optional allow-list: Stream refuses others, Models lists only these
}

// String leaves the API key out, so that logging a Provider cannot leak it.
func (p Provider) String() string { return p.Name + " (" + p.BaseURL + ")" }

// GoString keeps %#v from printing the API key too.
func (p Provider) GoString() string { return "llm.Provider{" + p.String() + "}" }

// LogValue leaves the API key out of structured logs.
func (p Provider) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", p.Name), slog.String("base_url", p.BaseURL))
}

// Options tune a Client. Zero values mean the defaults.
type Options struct {
	IdleTimeout time.Duration  // no chunk for this long cancels with Kind Timeout (default 60s; negative: none)
	MaxRetries  int            // retries before the first token (default 2; negative: none)
	Breaker     BreakerOptions // circuit breaker (defaults 5 failures, 30s)
	HTTPClient  *http.Client   // default: one with no timeout, since a timeout would cap the stream
	Now         func() time.Time
}

// Message is one turn of the conversation.
type Message struct{ Role, Content string } // system, user, assistant (developer is passed through too)

// Request is one completion to stream.
type Request struct {
	Model       string
	Messages    []Message
	Temperature *float64 // nil: not sent; 0 is sent as 0
	MaxTokens   int      // 0: not sent; else sent under Provider.MaxTokensField
	Stop        []string // at most 4
	User        string   // optional: sent as safety_identifier
}

// Usage is the token count the upstream reported.
type Usage struct{ PromptTokens, CompletionTokens int }

// Result describes a finished (or failed) stream.
type Result struct {
	FinishReason string        // stop, length, content_filter, tool_calls, ...
	Usage        *Usage        // the last usage object seen (not a sum); nil if none
	Model        string        // as reported by the upstream
	RequestID    string        // x-request-id response header, for logs
	TimeToFirst  time.Duration // from the call to the first content delta; 0 if none
	Sent         time.Time     // when the request was first written to the upstream; zero if never
}

// Client streams from one Provider. It is safe for concurrent use.
type Client struct {
	p       Provider
	opt     Options
	chat    openai.ChatCompletionService
	models  openai.ModelService
	br      *breaker
	backoff time.Duration // first retry's base delay; tests shorten it
	reqOpts []option.RequestOption
}

// New returns a Client for p. It does not contact the upstream.
func New(p Provider, opt Options) *Client {
	if p.BaseURL == "" {
		p.BaseURL = "https://api.openai.com/v1"
	}
	if opt.IdleTimeout == 0 {
		opt.IdleTimeout = 60 * time.Second
	}
	if opt.MaxRetries == 0 {
		opt.MaxRetries = 2
	} else if opt.MaxRetries < 0 {
		opt.MaxRetries = 0
	}
	if opt.Breaker.Failures == 0 {
		opt.Breaker.Failures = 5
	}
	if opt.Breaker.CoolDown <= 0 {
		opt.Breaker.CoolDown = 30 * time.Second
	}
	if opt.HTTPClient == nil {
		// The default transport keeps 2 idle connections per host, so
		// concurrent answers would keep opening new ones (a TLS handshake
		// each on a remote provider). No client timeout: it would cap the
		// stream's length; the idle watchdog covers a stalled upstream.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// Stamped connections: a chunk's arrival is the kernel's receive time.
		tr.DialContext = netstamp.Dialer(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}) // as the default's
		tr.MaxIdleConnsPerHost = 256
		tr.MaxIdleConns = 512
		opt.HTTPClient = &http.Client{Transport: tr}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	// The services are built directly, not through openai.NewClient, which
	// would read OPENAI_API_KEY, OPENAI_ORG_ID, ... from the environment and
	// send them to whatever upstream this is (an Ollama box, say).
	opts := []option.RequestOption{
		option.WithBaseURL(p.BaseURL),
		option.WithHTTPClient(opt.HTTPClient),
		option.WithMaxRetries(0), // see retry
	}
	if p.APIKey != "" {
		opts = append(opts, option.WithAPIKey(p.APIKey)) // with none, no Authorization header is sent
	}
	return &Client{
		p:       p,
		opt:     opt,
		chat:    openai.NewChatCompletionService(opts...),
		models:  openai.NewModelService(opts...),
		br:      &breaker{opt: opt.Breaker, now: opt.Now},
		backoff: 500 * time.Millisecond,
		reqOpts: opts,
	}
}

// Provider returns the provider the Client was made for.
func (c *Client) Provider() Provider { return c.p }

// Stream sends the request with stream=true and stream_options.include_usage
// and calls onDelta with each non-empty content delta, in order, on the
// calling goroutine, with the time its chunk reached this machine (on
// Linux with the default HTTP client over HTTP/1.1, when the kernel
// received it; else when it was read). It returns when the stream ends, with an *Error on
// failure. The Result is never nil: after an error it holds what was seen
// (RequestID, Model, ...). Canceling ctx stops the stream and closes the
// upstream connection; the error then has Kind Canceled.
func (c *Client) Stream(ctx context.Context, req Request, onDelta func(delta string, arrived time.Time)) (*Result, error) {
	start := c.opt.Now()
	res := &Result{}
	params, err := c.params(req)
	if err != nil {
		return res, err
	}
	if onDelta == nil {
		onDelta = func(string, time.Time) {}
	}
	w := &wire{}
	ctx = httptrace.WithClientTrace(ctx, w.trace())
	err = c.retry(ctx, func() error { return c.attempt(ctx, params, res, start, w, onDelta) })
	res.Sent = w.firstSent()
	return res, err
}

// wire is what the transport tells of a request, from its own goroutines:
// when the request was first written, and the connection of the latest
// attempt.
type wire struct {
	mu   sync.Mutex
	sent time.Time
	conn func() time.Time // the connection's stamps; nil: none
}

func (w *wire) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			src := netstamp.Source(info.Conn)
			// Over HTTP/2 the connection's own goroutine reads ahead for
			// every stream on it: its last stamp is not this chunk's.
			if tc, ok := info.Conn.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
				src = nil
			}
			w.mu.Lock()
			w.conn = src
			w.mu.Unlock()
		},
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			now := time.Now()
			w.mu.Lock()
			if w.sent.IsZero() && info.Err == nil {
				w.sent = now
			}
			w.mu.Unlock()
		},
	}
}

func (w *wire) firstSent() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent
}

// arrived is when the data just read reached this machine: the kernel's
// stamp when the connection has one, else now.
func (w *wire) arrived() time.Time {
	w.mu.Lock()
	c := w.conn
	w.mu.Unlock()
	if c != nil {
		if t := c(); !t.IsZero() {
			return t
		}
	}
	return time.Now()
}

// params validates req and returns the request body. It is marshaled
// here with encoding/json from a struct of the fields we send, not by the
// SDK: ChatCompletionNewParams.MarshalJSON walks every field of the
// params by reflection (~250 µs for a prompt of 20 messages, on the path
// from a question to the model). The SDK still sends it (auth, headers,
// base URL) and adds "stream": true.
func (c *Client) params(req Request) ([]byte, error) {
	switch {
	case req.Model == "":
		return nil, c.newError(BadRequest, "", "no model given", nil)
	case len(c.p.Models) > 0 && !slices.Contains(c.p.Models, req.Model):
		return nil, c.newError(ModelNotFound, "", "model "+req.Model+" is not offered by this provider", nil)
	case len(req.Messages) == 0:
		return nil, c.newError(BadRequest, "", "no messages", nil)
	case len(req.Stop) > 4:
		return nil, c.newError(BadRequest, "", "at most 4 stop sequences are allowed", nil)
	}
	w := wireRequest{Model: req.Model, Messages: make([]wireMessage, 0, len(req.Messages)),
		Temperature: req.Temperature, Stop: req.Stop, SafetyIdentifier: req.User, Stream: true}
	w.StreamOptions.IncludeUsage = true
	for _, m := range req.Messages {
		switch m.Role {
		case "system", "user", "assistant", "developer":
			w.Messages = append(w.Messages, wireMessage(m))
		default:
			return nil, c.newError(BadRequest, "", "unknown message role "+m.Role, nil)
		}
	}
	if req.MaxTokens > 0 {
		n := req.MaxTokens
		if c.p.MaxTokensField == "max_tokens" {
			w.MaxTokens = &n
		} else {
			w.MaxCompletionTokens = &n
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as the SDK: "<" stays "<"
	if err := enc.Encode(&w); err != nil {
		return nil, c.newError(BadRequest, "", "cannot encode the request: "+err.Error(), err)
	}
	return buf.Bytes(), nil
}

// wireRequest is the chat completion request body as we send it.
type wireRequest struct {
	Model               string        `json:"model"`
	Messages            []wireMessage `json:"messages"`
	Temperature         *float64      `json:"temperature,omitempty"` // an explicit 0 is sent
	MaxTokens           *int          `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int          `json:"max_completion_tokens,omitempty"`
	Stop                []string      `json:"stop,omitempty"`
	SafetyIdentifier    string        `json:"safety_identifier,omitempty"`
	Stream              bool          `json:"stream"`
	StreamOptions       struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type wireMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// errIdle is the cancel cause the idle watchdog sets.
var errIdle = errors.New("llm: idle timeout")

var doneData = []byte("[DONE]")

// attempt makes one request and reads its stream to the end.
func (c *Client) attempt(parent context.Context, params []byte, res *Result, start time.Time, w *wire, onDelta func(string, time.Time)) (err error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	// The watchdog covers the wait for the response headers too: an upstream
	// that never answers is as stuck as one that stops mid-stream.
	idle := c.watchdog(func() { cancel(errIdle) })
	defer idle.Stop()

	// NewStreaming builds and sends the request (auth, stream:true). We take
	// the raw response and decode the events ourselves, because the SDK's
	// Stream aborts on `"error":null` and cannot tell a clean EOF from the end.
	var raw *http.Response
	sdk := c.chat.NewStreaming(ctx, openai.ChatCompletionNewParams{}, option.WithResponseInto(&raw),
		option.WithRequestBody("application/json", params))
	defer sdk.Close() // closes raw.Body: stopping early ends the upstream request
	if raw != nil {
		res.RequestID = requestID(raw.Header)
	}
	if err := sdk.Err(); err != nil {
		var apiErr *openai.Error
		if raw != nil && raw.StatusCode >= 400 {
			errors.As(err, &apiErr)
			return c.httpError(raw, apiErr)
		}
		return c.transportError(ctx, err, false)
	}

	body := bufio.NewReader(raw.Body)
	if isJSONBody(raw, body) {
		return c.notStreaming(body)
	}
	raw.Body = struct {
		io.Reader
		io.Closer
	}{body, raw.Body}

	delivered := false
	defer func() {
		if e, ok := err.(*Error); ok && delivered {
			e.Partial = true
		}
	}()
	dec := ssestream.NewDecoder(raw) // the SDK's SSE parser: comments, CRLF, "data:" without space
	sawDone := false
	for dec.Next() {
		c.kick(idle)
		arrived := w.arrived()
		data := dec.Event().Data
		if bytes.HasPrefix(data, doneData) {
			sawDone = true
			break
		}
		if e, ok := c.streamError(data); ok {
			return e
		}
		var chunk chunk
		if err := chunk.decode(data); err != nil {
			return c.newError(Upstream, CodeBadChunk, "undecodable chunk: "+err.Error(), err)
		}
		for _, ch := range chunk.Choices {
			if ch.Index != 0 {
				continue // n is never more than 1 here
			}
			if d := ch.Delta.Content; d != "" {
				if !delivered {
					delivered = true
					res.TimeToFirst = c.opt.Now().Sub(start)
				}
				// The watchdog times the upstream, not a slow onDelta.
				idle.Stop()
				onDelta(d, arrived)
				c.kick(idle)
			}
			if ch.FinishReason != "" {
				res.FinishReason = ch.FinishReason
			}
		}
		if chunk.Usage != nil {
			res.Usage = &Usage{PromptTokens: int(chunk.Usage.PromptTokens), CompletionTokens: int(chunk.Usage.CompletionTokens)}
		}
		if chunk.Model != "" {
			res.Model = chunk.Model
		}
	}
	// Once a finish_reason arrived the answer is complete: losing the
	// connection (or going idle) before the usage chunk or [DONE] costs only
	// the usage. A stop by the caller is still reported.
	if err := dec.Err(); (err != nil || ctx.Err() != nil) && (res.FinishReason == "" || parent.Err() != nil) {
		if err == nil {
			err = ctx.Err()
		}
		return c.transportError(ctx, err, true)
	}
	switch {
	case res.FinishReason == "error": // OpenRouter, when the error object is missing
		return c.newError(Upstream, "", "the upstream ended the stream with finish_reason \"error\"", nil)
	case res.FinishReason == "" && sawDone:
		return c.newError(Truncated, "", "stream ended ([DONE]) without a finish_reason; the upstream may have sent an error in a form SSE drops (llama.cpp's legacy error: line)", io.ErrUnexpectedEOF)
	case res.FinishReason == "":
		return c.newError(Truncated, "", "stream ended without a finish_reason", io.ErrUnexpectedEOF)
	}
	if sawDone {
		drain(raw.Body, func() { cancel(errDrain) })
	}
	return nil
}

// errDrain is the cancel cause when an upstream keeps a stream open after
// [DONE].
var errDrain = errors.New("llm: nothing but the end may follow [DONE]")

// drainWait bounds the wait for the end of a response after [DONE].
const drainWait = 100 * time.Millisecond

// drain reads what follows [DONE] (normally nothing but the end of the
// chunked body) so that the transport puts the connection back in its pool:
// a body closed before its end closes its connection, and the next answer
// then pays a new TCP and TLS handshake before its first token. An upstream
// that keeps the response open is cut after drainWait by stop.
func drain(body io.Reader, stop func()) {
	t := time.AfterFunc(drainWait, stop)
	defer t.Stop()
	_, _ = io.CopyN(io.Discard, body, 64<<10)
}

// watchdog starts the idle timer. When IdleTimeout is negative (disabled)
// the timer never fires, which keeps the code paths alike.
func (c *Client) watchdog(fire func()) *time.Timer {
	if c.opt.IdleTimeout < 0 {
		return time.AfterFunc(math.MaxInt64, fire)
	}
	return time.AfterFunc(c.opt.IdleTimeout, fire)
}

func (c *Client) kick(t *time.Timer) {
	if c.opt.IdleTimeout > 0 {
		t.Reset(c.opt.IdleTimeout)
	}
}

// isJSONBody tells a 200 JSON body (an upstream that ignored stream=true)
// from a stream; openai-go would read it as a stream with zero events.
func isJSONBody(res *http.Response, body *bufio.Reader) bool {
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if mt != "application/json" {
		return false
	}
	for {
		b, err := body.Peek(1)
		if err != nil {
			return false
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			_, _ = body.ReadByte()
			continue
		}
		return b[0] == '{'
	}
}

func (c *Client) notStreaming(body io.Reader) error {
	data, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	msg := "the upstream answered with a JSON body instead of a stream (does it support stream=true?)"
	if f := parseErrorBody(data); f.message != "" {
		msg = f.message
	}
	return c.newError(Upstream, CodeNotStreaming, msg, nil)
}

// Models lists the model ids the upstream advertises (GET {base}/models),
// keeping only those in Provider.Models when that is set.
func (c *Client) Models(ctx context.Context) ([]string, error) {
	var ids []string
	err := c.retry(ctx, func() error {
		ctx := ctx
		if c.opt.IdleTimeout > 0 {
			var cancel context.CancelCauseFunc
			ctx, cancel = context.WithCancelCause(ctx)
			t := time.AfterFunc(c.opt.IdleTimeout, func() { cancel(errIdle) })
			defer t.Stop()
			defer cancel(nil)
		}
		var raw *http.Response
		page, err := c.models.List(ctx, option.WithResponseInto(&raw))
		if err != nil {
			if raw != nil && raw.StatusCode >= 400 {
				var apiErr *openai.Error
				errors.As(err, &apiErr)
				return c.httpError(raw, apiErr)
			}
			return c.transportError(ctx, err, false)
		}
		ids = ids[:0]
		for _, m := range page.Data {
			if len(c.p.Models) == 0 || slices.Contains(c.p.Models, m.ID) {
				ids = append(ids, m.ID)
			}
		}
		return nil
	})
	return ids, err
}
