package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The ai scenario's fake model: an OpenAI-compatible Chat Completions
// server (the SSE format of shared/reference/openai-streaming.md §1 and
// §7A) that streams a set number of tokens at a set rate after a set time
// to first token. Every token's text says when it was written:
//
//	" <k>:<CLOCK_MONOTONIC ns>"
//
// (k counts the answer's tokens from 0), so whoever receives the token,
// here the generator's own sockets, can time the relay from the moment the
// upstream wrote it. The question names the stream it opens with an
// "ai1 <run> <stream>" marker at its start; the upstream finds the last
// such marker in the request (the history holds earlier ones) and records
// when the request arrived and when each token left.

const aiMarkerTag = "ai1"

// streamPlan is what the upstream sends for one request.
type streamPlan struct {
	tokens int           // content chunks
	rate   float64       // tokens per second
	ttft   time.Duration // request received → first token written
	words  bool          // tokens are prose (answerWord), timed through upstreamStream.writes
}

// tokenDue is when token k is due, counted from the request's arrival:
// the first after ttft, then one every 1/rate, on a fixed schedule so a
// late token does not delay the ones after it.
func (p streamPlan) tokenDue(k int) time.Duration {
	if p.rate <= 0 {
		return p.ttft
	}
	return p.ttft + time.Duration(float64(k)*float64(time.Second)/p.rate)
}

// length is how long the upstream takes over the whole stream.
func (p streamPlan) length() time.Duration {
	if p.tokens <= 0 {
		return p.ttft
	}
	return p.tokenDue(p.tokens - 1)
}

// appendToken appends a token stamped with its write time.
func appendToken(b []byte, k int, ns int64) []byte {
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, ':')
	return strconv.AppendInt(b, ns, 10)
}

// answerWords is the prose a words-mode answer is made of, one word per
// token, over and over: like a real answer it repeats common words, so
// the server's search index sees a natural vocabulary (~100 distinct words
// in 250 tokens) instead of a new number in every token.
var answerWords = strings.Fields(`Sure, here is a short answer. The server keeps each chat in its own
database rows and sends every new message to the people in the chat over one socket per tab. When
you ask the assistant a question, the server reads the last messages of the chat, builds the prompt
with the chat's context and persona, and calls the model you chose. The answer streams back token
by token, and each token reaches every open tab as soon as it arrives. If you close the tab, the
answer goes on and you see it when you come back. You can stop an answer at any time, and you can
ask for a new one if the first is not what you wanted. Messages are stored encrypted, so a copy of
the database does not show what was said, and you can still search your own chats by word. If you
want to know more about how the server works, the documentation explains each part, with examples
of the frames it sends and the settings you can change. Let me know if you have another question.`)

// appendWord appends token k of a words-mode answer.
func appendWord(b []byte, k int) []byte {
	return append(append(b, ' '), answerWords[k%len(answerWords)]...)
}

// wordOffsets returns where each of n words-mode tokens starts in the
// answer, and the answer's length last.
func wordOffsets(n int) []int64 {
	offs := make([]int64, n+1)
	for k := range n {
		offs[k+1] = offs[k] + 1 + int64(len(answerWords[k%len(answerWords)]))
	}
	return offs
}

// eachWord calls fn with every words-mode token that starts in the
// delta [off, off+n) of an answer whose token offsets are offs, and
// returns how many there were.
func eachWord(offs []int64, off int64, n int, fn func(k int)) int {
	k, _ := slices.BinarySearch(offs[:len(offs)-1], off)
	c := 0
	for ; k < len(offs)-1 && offs[k] < off+int64(n); k++ {
		fn(k)
		c++
	}
	return c
}

// eachToken calls fn with every stamped token in text (one ai_delta may
// hold several when the server coalesces) and returns how many it found;
// anything else in the text is skipped.
func eachToken(text []byte, fn func(k int, ns int64)) int {
	n := 0
	for len(text) > 0 {
		var f []byte
		if i := bytes.IndexByte(text, ' '); i >= 0 {
			f, text = text[:i], text[i+1:]
		} else {
			f, text = text, nil
		}
		c := bytes.IndexByte(f, ':')
		if c <= 0 {
			continue
		}
		k, err1 := strconv.Atoi(string(f[:c]))
		ns, err2 := strconv.ParseInt(string(f[c+1:]), 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		fn(k, ns)
		n++
	}
	return n
}

// aiMarker is the start of a question: "ai1 <run> <stream> ".
func aiMarker(run string, stream int64) string {
	return aiMarkerTag + " " + run + " " + strconv.FormatInt(stream, 10) + " "
}

// questionText is a question of size bytes for stream in run.
func questionText(run string, stream int64, size int) string {
	s := aiMarker(run, stream) + "please answer"
	for len(s) < size {
		s += " x"
	}
	return s
}

// findStream returns the stream number of the last marker of run in a
// request body (the question is the last message; earlier questions are
// in the history before it).
func findStream(body []byte, run string) (int64, bool) {
	key := []byte(aiMarkerTag + " " + run + " ")
	i := bytes.LastIndex(body, key)
	if i < 0 {
		return 0, false
	}
	rest := body[i+len(key):]
	j := 0
	if j < len(rest) && rest[j] == '-' {
		j++
	}
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}

// chunkHead is the part of every chunk before the choices; OpenAI sends
// the same id, created and model in each.
func chunkHead(b []byte, id, model string, created int64) []byte {
	b = append(b, `data: {"id":"`...)
	b = append(b, id...)
	b = append(b, `","object":"chat.completion.chunk","created":`...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"model":"`...)
	b = append(b, model...)
	return append(b, `","system_fingerprint":"fp_aichatload","choices":[`...)
}

// appendRoleChunk is OpenAI's first chunk: the role and an empty content.
func appendRoleChunk(b []byte, id, model string, created int64) []byte {
	b = chunkHead(b, id, model, created)
	return append(b, `{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`+"\n\n"...)
}

// appendContentChunk is one content delta; content must need no JSON
// escaping (the tokens are digits, colons and spaces).
func appendContentChunk(b []byte, id, model string, created int64, content []byte) []byte {
	b = chunkHead(b, id, model, created)
	b = append(b, `{"index":0,"delta":{"content":"`...)
	b = append(b, content...)
	return append(b, `"},"logprobs":null,"finish_reason":null}],"usage":null}`+"\n\n"...)
}

// appendEnd is the finish chunk, the usage chunk (include_usage) and
// [DONE].
func appendEnd(b []byte, id, model string, created int64, promptTokens, completionTokens int) []byte {
	b = chunkHead(b, id, model, created)
	b = append(b, `{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}`+"\n\n"...)
	b = chunkHead(b, id, model, created)
	b = append(b, `],"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(promptTokens), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(completionTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(promptTokens+completionTokens), 10)
	return append(b, "}}\n\ndata: [DONE]\n\n"...)
}

// upstreamStream is what the upstream records of one stream.
type upstreamStream struct {
	recv   atomic.Int64 // request received (handler entered), mono ns
	first  atomic.Int64 // first token written, mono ns
	last   atomic.Int64 // last token written
	tokens atomic.Int32 // tokens written
	writes []int64      // words mode: when each token was written (mono ns, atomic)
}

// upstream is the fake model server.
type upstream struct {
	URL   string // base URL ending in /v1
	model string
	run   string
	def   streamPlan // for a request with no marker of this run
	// plan returns the plan of a stream and its record (nil: not timed);
	// recv is when the request arrived.
	plan func(stream, recv int64) (streamPlan, *upstreamStream)

	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup

	conns, requests, unknown, canceled, active, maxActive atomic.Int64
	paceLag                                               *stripedHist // token due → written: the generator's own scheduling delay
}

// startUpstream listens on addr (host:port; port 0 picks one) and serves
// until close.
func startUpstream(addr, model, run string, def streamPlan, plan func(stream, recv int64) (streamPlan, *upstreamStream)) (*upstream, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fake upstream: %w", err)
	}
	u := &upstream{URL: "http://" + ln.Addr().String() + "/v1", model: model, run: run, def: def, plan: plan, ln: ln,
		paceLag: newStripedHist(16)}
	u.srv = &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.conns.Add(1)
			}
		}}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		u.srv.Serve(ln)
	}()
	return u, nil
}

func (u *upstream) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := u.srv.Shutdown(ctx); err != nil {
		u.srv.Close()
	}
	u.wg.Wait()
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	recv := monoNow()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"`+u.model+`","object":"model","created":1686935002,"owned_by":"aichat-load"}]}`)
		return
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions":
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"message":"Unknown request URL","type":"invalid_request_error","param":null,"code":"unknown_url"}}`)
		return
	}
	n := u.requests.Add(1)
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		return
	}
	plan := u.def
	var rec *upstreamStream
	if stream, ok := findStream(body, u.run); ok && u.plan != nil {
		plan, rec = u.plan(stream, recv)
	} else {
		u.unknown.Add(1)
	}
	if rec != nil {
		rec.recv.Store(recv)
	}
	a := u.active.Add(1)
	for m := u.maxActive.Load(); a > m && !u.maxActive.CompareAndSwap(m, a); m = u.maxActive.Load() {
	}
	defer u.active.Add(-1)

	fl, _ := w.(http.Flusher)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("x-request-id", "req_aichatload_"+strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	id := "chatcmpl-aichatload" + strconv.FormatInt(n, 10)
	created := time.Now().Unix()
	buf := appendRoleChunk(make([]byte, 0, 512), id, u.model, created)
	if _, err := w.Write(buf); err != nil {
		return
	}
	if fl != nil {
		fl.Flush()
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var tok []byte
	for k := 0; k < plan.tokens; k++ {
		due := recv + int64(plan.tokenDue(k))
		if wait := time.Duration(due - monoNow()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-r.Context().Done():
				u.canceled.Add(1)
				return
			}
		}
		now := monoNow()
		u.paceLag.record(int(n), time.Duration(now-due))
		if plan.words {
			tok = appendWord(tok[:0], k)
			if rec != nil && k < len(rec.writes) {
				atomic.StoreInt64(&rec.writes[k], now)
			}
		} else {
			tok = appendToken(tok[:0], k, now)
		}
		buf = appendContentChunk(buf[:0], id, u.model, created, tok)
		if rec != nil {
			if k == 0 {
				rec.first.Store(now)
			}
			rec.last.Store(now)
		}
		if _, err := w.Write(buf); err != nil {
			u.canceled.Add(1)
			return
		}
		if fl != nil {
			fl.Flush()
		}
		if rec != nil {
			rec.tokens.Add(1)
		}
	}
	buf = appendEnd(buf[:0], id, u.model, created, len(body)/4, plan.tokens)
	if _, err := w.Write(buf); err == nil && fl != nil {
		fl.Flush()
	}
}

// waitHealthy polls base/healthz until it answers 200 or ctx ends.
func waitHealthy(ctx context.Context, hc *http.Client, base string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		res, err := hc.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("not healthy")
			}
			return fmt.Errorf("server %s not ready within %s: %w", base, within, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
