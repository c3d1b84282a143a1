// Package llmtest is a fake OpenAI-compatible upstream for tests: an
// httptest server that speaks the Chat Completions streaming wire format
// (shared reference openai-streaming.md) and can be scripted per request to
// replay recorded streams, generate token streams at a given rate, or
// misbehave the way real providers do: comments and keep-alives, CRLF, old
// Ollama chunk layouts, mid-stream errors in each dialect, truncation, silent
// stalls, and HTTP errors of every shape. It records every request it got,
// and when each request's context ended, so tests can assert what was sent
// and that a cancellation reached the upstream.
//
// It depends on nothing of aichat, so any package's tests can use it.
package llmtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FlagWord makes the fake moderation endpoint flag an input.
const FlagWord = "FLAGME"

// Server is the fake upstream. Create it with NewServer; it is closed by
// the test's cleanup.
type Server struct {
	// URL is the base URL to configure a client with; it ends in /v1.
	URL string

	srv   *httptest.Server
	quit  chan struct{} // closed on Close, so stalled handlers let go
	conns atomic.Int64  // TCP connections accepted

	mu     sync.Mutex
	queue  []Script
	def    Script
	models []string
	reqs   []*Request
}

// Request is one request the server received.
type Request struct {
	Method, Path string
	RemoteAddr   string // the client's address: equal across requests when a connection is reused
	Header       http.Header
	// Body is the decoded JSON body (nil if there was none or it was not
	// JSON); RawBody has the bytes.
	Body       map[string]any
	RawBody    []byte
	ReceivedAt time.Time

	ctxDone chan struct{}
	mu      sync.Mutex
	endedAt time.Time
	byPeer  bool
}

// NewServer starts a fake upstream that lives until the test ends.
func NewServer(t testing.TB) *Server {
	s := &Server{quit: make(chan struct{}), models: []string{"gpt-4o-mini", "llama3.2:latest"}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	s.URL = s.srv.URL + "/v1"
	t.Cleanup(s.Close)
	return s
}

// Connections is the number of TCP connections clients opened so far.
func (s *Server) Connections() int { return int(s.conns.Load()) }

// Close stops the server, first releasing handlers that are stalled.
func (s *Server) Close() {
	select {
	case <-s.quit:
		return
	default:
		close(s.quit)
	}
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Enqueue adds scripts for the next requests, one each, in order. Once the
// queue is empty requests get the default script.
func (s *Server) Enqueue(scripts ...Script) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, scripts...)
}

// SetDefault sets the script used when the queue is empty.
func (s *Server) SetDefault(sc Script) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.def = sc
}

// SetModels sets the ids GET /v1/models lists.
func (s *Server) SetModels(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.models = append([]string(nil), ids...)
}

// Requests returns the requests received so far, oldest first.
func (s *Server) Requests() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.reqs...)
}

// Last returns the most recent request, or nil.
func (s *Server) Last() *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		return nil
	}
	return s.reqs[len(s.reqs)-1]
}

// ContextDone is closed once the request's context ended (the client went
// away, or the handler returned) and the handler has returned.
func (r *Request) ContextDone() <-chan struct{} { return r.ctxDone }

// ContextEnded reports when the request's context ended (zero if it has not)
// and whether the client ended it (went away while the handler was still
// serving), as opposed to the handler finishing. Read it after ContextDone.
func (r *Request) ContextEnded() (at time.Time, byClient bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.endedAt, r.byPeer
}

// Field returns a value of the JSON body by a dotted path, such as
// "stream_options.include_usage" or "temperature".
func (r *Request) Field(path string) (any, bool) {
	var v any = r.Body
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// Messages returns the role and content of each message sent, in order.
func (r *Request) Messages() [][2]string {
	msgs, _ := r.Body["messages"].([]any)
	out := make([][2]string, 0, len(msgs))
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		role, _ := mm["role"].(string)
		content, _ := mm["content"].(string)
		out = append(out, [2]string{role, content})
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	rec := &Request{Method: r.Method, Path: r.URL.Path, RemoteAddr: r.RemoteAddr, Header: r.Header.Clone(), RawBody: raw,
		ReceivedAt: time.Now(), ctxDone: make(chan struct{})}
	_ = json.Unmarshal(raw, &rec.Body)
	served := make(chan struct{})
	go func() {
		<-r.Context().Done()
		rec.mu.Lock()
		rec.endedAt = time.Now()
		rec.mu.Unlock()
		<-served // so that byPeer is final when ContextDone is closed
		close(rec.ctxDone)
	}()
	defer func() {
		// net/http cancels the context only after the handler returns, so a
		// context already done here was ended by the client.
		rec.mu.Lock()
		rec.byPeer = r.Context().Err() != nil
		rec.mu.Unlock()
		close(served)
	}()

	if r.Method == http.MethodPost && r.URL.Path == "/v1/moderations" {
		// Moderation never takes a script: it flags any input containing
		// FlagWord, as OpenAI's endpoint would flag a harmful text.
		s.mu.Lock()
		s.reqs = append(s.reqs, rec)
		s.mu.Unlock()
		flagged := strings.Contains(string(raw), FlagWord)
		writeBody(w, 200, "application/json", fmt.Sprintf(`{"id":"modr-llmtest","model":"omni-moderation-latest","results":[{"flagged":%t,"categories":{"harassment":%t,"violence":false},"category_scores":{"harassment":0.9,"violence":0.01},"category_applied_input_types":{"harassment":["text"],"violence":["text"]}}]}`, flagged, flagged))
		return
	}

	s.mu.Lock()
	s.reqs = append(s.reqs, rec)
	n := len(s.reqs)
	sc := s.def
	if len(s.queue) > 0 {
		sc, s.queue = s.queue[0], s.queue[1:]
	}
	models := s.models
	s.mu.Unlock()

	w.Header().Set("x-request-id", "req_llmtest_"+strconv.Itoa(n))
	for k, v := range sc.Header {
		w.Header().Set(k, v)
	}

	route := r.Method + " " + r.URL.Path
	if route != "POST /v1/chat/completions" && route != "GET /v1/models" {
		writeBody(w, 404, "application/json", `{"error":{"message":"Unknown request URL: `+route+`","type":"invalid_request_error","param":null,"code":"unknown_url"}}`)
		return
	}
	if (sc.Status != 0 && sc.Status != 200) || sc.Body != "" {
		writeBody(w, sc.Status, sc.ContentType, sc.Body)
		return
	}
	if r.URL.Path == "/v1/models" {
		writeBody(w, 200, "application/json", modelList(models))
		return
	}
	st := &stream{w: w, req: r, quit: s.quit, sc: &sc, nl: "\n", id: fmt.Sprintf("chatcmpl-llmtest%d", n)}
	st.run(rec)
	switch {
	case sc.Hold:
		select {
		case <-r.Context().Done():
		case <-s.quit:
		}
	case sc.EndDelay > 0:
		st.sleep(sc.EndDelay)
	}
}

func writeBody(w http.ResponseWriter, status int, contentType, body string) {
	if status == 0 {
		status = 200
	}
	if contentType == "" {
		contentType = "application/json"
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func modelList(ids []string) string {
	var b strings.Builder
	b.WriteString(`{"object":"list","data":[`)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":` + jsonString(id) + `,"object":"model","created":1686935002,"owned_by":"llmtest"}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// stream writes one scripted SSE response.
type stream struct {
	w    http.ResponseWriter
	req  *http.Request
	quit chan struct{}
	sc   *Script
	nl   string // line ending
	id   string
	buf  bytes.Buffer
}

func (st *stream) run(rec *Request) {
	sc := st.sc
	if sc.CRLF {
		st.nl = "\r\n"
	}
	ct := sc.ContentType
	if ct == "" {
		ct = "text/event-stream; charset=utf-8"
	}
	h := st.w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-cache")
	st.w.WriteHeader(200)
	st.flush()

	if sc.Replay != "" {
		for _, ev := range splitEvents(sc.Replay) {
			if !st.sleep(sc.delay()) {
				return
			}
			if sc.CRLF {
				ev = strings.ReplaceAll(strings.ReplaceAll(ev, "\r\n", "\n"), "\n", "\r\n")
			}
			_, _ = io.WriteString(st.w, ev)
			st.flush()
		}
		return
	}

	includeUsage, _ := rec.Field("stream_options.include_usage")
	usage := sc.Usage
	if usage == UsageIfRequested && includeUsage != true {
		usage = UsageNever
	}
	model := sc.Model
	if model == "" {
		model, _ = rec.Body["model"].(string)
	}
	finish := sc.FinishReason
	if finish == "" {
		finish = "stop"
	}
	prompt := sc.PromptTokens
	if prompt == 0 {
		prompt = 10
	}
	// Every chunk shares id, created and model (reference §1.3).
	head := `{"id":"` + st.id + `","object":"chat.completion.chunk","created":` +
		strconv.FormatInt(time.Now().Unix(), 10) + `,"model":` + jsonString(model) +
		`,"system_fingerprint":"fp_llmtest","choices":`
	usageField := func(completion int) string {
		switch usage {
		case UsageIfRequested, UsageAlways:
			return `,"usage":null`
		case UsageCumulative:
			return `,"usage":` + usageJSON(prompt, completion)
		}
		return ""
	}
	tail := func(completion int) string {
		t := usageField(completion)
		if sc.NullError {
			t += `,"error":null`
		}
		return t + "}"
	}
	choice := func(delta, finishReason string) string {
		fr := "null"
		if finishReason != "" {
			fr = jsonString(finishReason)
		}
		return `[{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":` + fr + `}]`
	}

	st.comments()
	if !sc.RoleEveryChunk {
		st.event(head + choice(`{"role":"assistant","content":"","refusal":null}`, "") + tail(0))
	}
	toks := sc.tokens()
	for i, tok := range toks {
		if sc.Break != NoBreak && i == sc.BreakAfter {
			st.breakOff(model)
			return
		}
		if !st.sleep(sc.delay()) {
			return
		}
		delta := `{"content":` + jsonString(tok) + `}`
		if sc.RoleEveryChunk {
			delta = `{"role":"assistant","content":` + jsonString(tok) + `}`
		}
		fr := ""
		if sc.FinishOnLastChunk && i == len(toks)-1 {
			fr = finish
		}
		st.event(head + choice(delta, fr) + tail(i+1))
	}
	if sc.Break != NoBreak {
		st.breakOff(model)
		return
	}
	if !sc.FinishOnLastChunk || len(toks) == 0 {
		st.event(head + choice(`{}`, finish) + tail(len(toks)))
	}
	if usage != UsageNever {
		st.event(head + `[],"usage":` + usageJSON(prompt, len(toks)) + "}")
	}
	st.event("[DONE]")
}

func usageJSON(prompt, completion int) string {
	return `{"prompt_tokens":` + strconv.Itoa(prompt) + `,"completion_tokens":` + strconv.Itoa(completion) +
		`,"total_tokens":` + strconv.Itoa(prompt+completion) + `}`
}

// breakOff ends the stream the way sc.Break says.
func (st *stream) breakOff(model string) {
	msg := jsonString(st.sc.errorMessage())
	switch st.sc.Break {
	case BreakEOF:
		// Returning ends the chunked body cleanly: EOF with no [DONE].
	case BreakHijack:
		st.flush()
		if hj, ok := st.w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
			}
		}
	case BreakStall:
		st.flush()
		select {
		case <-st.req.Context().Done():
		case <-st.quit:
		}
	case BreakErrorOpenAI:
		// The spacing of the coder/coder fixture (reference §7 C).
		st.event(`{"error": {"message": ` + msg + `, "type": "server_error"}}`)
	case BreakErrorVLLM:
		st.event(`{"error": {"object": "error", "message": ` + msg + `, "type": "InternalServerError", "param": null, "code": 500}}`)
		st.event("[DONE]")
	case BreakErrorOpenRouter:
		st.line(": OPENROUTER PROCESSING")
		st.line("")
		st.event(`{"id":"` + st.id + `","object":"chat.completion.chunk","created":1234567890,"model":` + jsonString(model) +
			`,"provider":"openai","error":{"code":"server_error","message":` + msg +
			`},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}`)
	case BreakErrorLlamaCpp:
		st.line(`error: {"code":500,"message":` + msg + `,"type":"server_error"}`)
		st.line("")
		st.event("[DONE]")
	}
}

// event writes one `data:` event, then the scripted comments unless it was
// the last event, and flushes.
func (st *stream) event(data string) {
	st.line("data: " + data)
	st.line("")
	if data != "[DONE]" {
		st.comments()
	}
	st.flush()
}

func (st *stream) comments() {
	for _, c := range st.sc.Comments {
		st.line(c)
		st.line("")
	}
}

func (st *stream) line(s string) {
	st.buf.WriteString(s)
	st.buf.WriteString(st.nl)
}

func (st *stream) flush() {
	if st.buf.Len() > 0 {
		_, _ = st.w.Write(st.buf.Bytes())
		st.buf.Reset()
	}
	if f, ok := st.w.(http.Flusher); ok {
		f.Flush()
	}
}

// sleep waits d, or reports false if the client went away first.
func (st *stream) sleep(d time.Duration) bool {
	if d <= 0 {
		return st.req.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-st.req.Context().Done():
		return false
	case <-st.quit:
		return false
	}
}
