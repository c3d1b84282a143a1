package httpapi_test

// End-to-end tests of the assistant's turn over real WebSockets: a whole
// aichat (apptest) talking to a fake OpenAI-compatible upstream (llmtest),
// on SQLite and PostgreSQL. Helpers are prefixed "aie" to stay clear of the
// package's other test files.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm"
	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/app"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/store/storetest"
)

// aieWait bounds every wait for frames; generous, since -race and
// PostgreSQL slow things down.
const aieWait = 10 * time.Second

// aieModel is the only model the fake upstream lists, so it is the default.
const aieModel = "gpt-test"

// aieNotice is prompt.Notice: what the chat shows instead of an answer that
// may not be shown.
const aieNotice = "The assistant's answer could not be shown."

// ---- frames ----------------------------------------------------------------

type aieStartData struct {
	ChatID    string `json:"chat_id"`
	MessageID string `json:"message_id"`
	Seq       int64  `json:"seq"`
	Model     string `json:"model"`
	ReplyTo   int64  `json:"reply_to"`
}

type aieDeltaData struct {
	ChatID    string `json:"chat_id"`
	MessageID string `json:"message_id"`
	Seq       int64  `json:"seq"`
	Offset    int    `json:"offset"`
	Delta     string `json:"delta"`
}

type aieUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

type aieDoneData struct {
	ChatID       string    `json:"chat_id"`
	MessageID    string    `json:"message_id"`
	Seq          int64     `json:"seq"`
	Status       string    `json:"status"`
	Content      string    `json:"content"`
	FinishReason string    `json:"finish_reason"`
	Model        string    `json:"model"`
	Usage        *aieUsage `json:"usage"`
	Notice       string    `json:"notice"`
}

type aieErrData struct {
	ChatID     string `json:"chat_id"`
	MessageID  string `json:"message_id"`
	Seq        int64  `json:"seq"`
	ReplyTo    int64  `json:"reply_to"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	Content    string `json:"content"`
	RetryAfter int    `json:"retry_after"`
}

type aieMsg struct {
	ID         string `json:"id"`
	ChatID     string `json:"chat_id"`
	Seq        int64  `json:"seq"`
	Author     string `json:"author"`
	AuthorKind string `json:"author_kind"`
	Content    string `json:"content"`
	Status     string `json:"status"`
	Model      string `json:"model"`
}

// aieCmdErr is the data of a socket error frame.
type aieCmdErr struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Command string `json:"command"`
}

func aieChatOf(f apptest.Frame) string {
	var d struct {
		ChatID string `json:"chat_id"`
	}
	_ = json.Unmarshal(f.Data, &d)
	return d.ChatID
}

// ---- sockets ---------------------------------------------------------------

// aieSock wraps a test socket with a buffer, so a test can pick frames by
// type and chat without losing the others (WS.Expect drops every frame
// before the one it returns).
type aieSock struct {
	t    *testing.T
	name string
	ws   *apptest.WS
	buf  []apptest.Frame
}

func aieConnect(t *testing.T, s *apptest.Server, token, query, name string) *aieSock {
	t.Helper()
	ws, _ := s.Connect(t, token, query)
	return &aieSock{t: t, name: name, ws: ws}
}

func (c *aieSock) pull() { c.buf = append(c.buf, c.ws.Frames()...) }

func (c *aieSock) types() string {
	var out []string
	for _, f := range c.buf {
		out = append(out, f.Type)
	}
	return "[" + strings.Join(out, " ") + "]"
}

// wait returns the index in c.buf of the first frame matching pred, waiting
// for it.
func (c *aieSock) wait(what string, pred func(apptest.Frame) bool) int {
	c.t.Helper()
	deadline := time.Now().Add(aieWait)
	for {
		c.pull()
		for i, f := range c.buf {
			if pred(f) {
				return i
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: no %s within %v; got %s; read error: %v", c.name, what, aieWait, c.types(), c.ws.Err())
		}
		if err := c.ws.Err(); err != nil {
			c.t.Fatalf("%s: socket closed waiting for %s: %v; got %s", c.name, what, err, c.types())
		}
		time.Sleep(3 * time.Millisecond)
	}
}

// take removes and returns the first frame matching pred; the frames before
// it stay.
func (c *aieSock) take(what string, pred func(apptest.Frame) bool) apptest.Frame {
	c.t.Helper()
	i := c.wait(what, pred)
	f := c.buf[i]
	c.buf = append(c.buf[:i:i], c.buf[i+1:]...)
	return f
}

// count waits until n frames match pred.
func (c *aieSock) count(what string, n int, pred func(apptest.Frame) bool) {
	c.t.Helper()
	seen := 0
	c.wait(fmt.Sprintf("%d× %s", n, what), func(f apptest.Frame) bool {
		if pred(f) {
			seen++
		}
		return seen >= n
	})
}

// none fails if a frame matching pred arrives (or is already buffered)
// within d. Nothing is removed.
func (c *aieSock) none(what string, d time.Duration, pred func(apptest.Frame) bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		c.pull()
		for _, f := range c.buf {
			if pred(f) {
				c.t.Fatalf("%s: unexpected %s: %s %s", c.name, what, f.Type, f.Data)
			}
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func aieIs(typ, chatID string) func(apptest.Frame) bool {
	return func(f apptest.Frame) bool { return f.Type == typ && aieChatOf(f) == chatID }
}

var aieClientSeq atomic.Int64

// send sends a message over the socket and returns it from the ack.
func (c *aieSock) send(chatID, content string) aieMsg {
	c.t.Helper()
	n := aieClientSeq.Add(1)
	id := "cmd-" + strconv.FormatInt(n, 10)
	c.ws.Send(c.t, "send_message", id, map[string]any{"chat_id": chatID, "content": content, "client_id": "aie-" + strconv.FormatInt(n, 10)})
	f := c.take("ack "+id, func(f apptest.Frame) bool { return (f.Type == "ack" || f.Type == "error") && f.ID == id })
	if f.Type != "ack" {
		c.t.Fatalf("%s: send_message refused: %s", c.name, f.Data)
	}
	var d struct {
		Message aieMsg `json:"message"`
	}
	f.Decode(c.t, &d)
	return d.Message
}

// aieTurn is one answer as a socket saw it: the chat's ai_* frames (and
// chat_message frames) up to and including ai_done or ai_error.
type aieTurn struct {
	frames []apptest.Frame
	start  *aieStartData
	deltas []aieDeltaData
	done   *aieDoneData
	err    *aieErrData
	msg    *aieMsg // the assistant's chat_message, if one came
}

// turn waits for the end of the chat's current answer and takes its frames.
func (c *aieSock) turn(chatID string) *aieTurn {
	c.t.Helper()
	end := c.wait("ai_done/ai_error in chat "+chatID, func(f apptest.Frame) bool {
		return (f.Type == "ai_done" || f.Type == "ai_error") && aieChatOf(f) == chatID
	})
	tr := &aieTurn{}
	var rest []apptest.Frame
	for i, f := range c.buf {
		mine := i <= end && aieChatOf(f) == chatID && (strings.HasPrefix(f.Type, "ai_") || f.Type == "chat_message")
		if !mine {
			rest = append(rest, f)
			continue
		}
		tr.frames = append(tr.frames, f)
		switch f.Type {
		case "ai_start":
			if tr.start != nil {
				c.t.Errorf("%s: second ai_start in one turn: %s", c.name, f.Data)
			}
			tr.start = &aieStartData{}
			f.Decode(c.t, tr.start)
		case "ai_delta":
			var d aieDeltaData
			f.Decode(c.t, &d)
			tr.deltas = append(tr.deltas, d)
		case "ai_done":
			tr.done = &aieDoneData{}
			f.Decode(c.t, tr.done)
		case "ai_error":
			tr.err = &aieErrData{}
			f.Decode(c.t, tr.err)
		case "chat_message":
			var m aieMsg
			f.Decode(c.t, &m)
			if m.AuthorKind == "assistant" {
				tr.msg = &m
			}
		}
	}
	c.buf = rest
	return tr
}

// text rebuilds the answer from the deltas, requiring each to continue
// exactly where the previous one ended.
func (tr *aieTurn) text() (string, error) {
	var b []byte
	for i, d := range tr.deltas {
		if d.Offset != len(b) {
			return string(b), fmt.Errorf("delta %d has offset %d, but %d bytes came before it", i, d.Offset, len(b))
		}
		b = append(b, d.Delta...)
	}
	return string(b), nil
}

func (tr *aieTurn) summary() string {
	var out []string
	for _, f := range tr.frames {
		out = append(out, f.Type+" "+string(f.Data))
	}
	return strings.Join(out, "\n")
}

// complete checks a turn that streamed want to the end.
func (tr *aieTurn) complete(t *testing.T, who, want string) {
	t.Helper()
	if tr.err != nil {
		t.Fatalf("%s: ai_error instead of an answer: %+v", who, *tr.err)
	}
	if tr.start == nil {
		t.Fatalf("%s: no ai_start; frames:\n%s", who, tr.summary())
	}
	if tr.frames[0].Type != "ai_start" && tr.frames[0].Type != "chat_message" {
		t.Errorf("%s: turn begins with %s, not ai_start", who, tr.frames[0].Type)
	}
	got, err := tr.text()
	if err != nil {
		t.Errorf("%s: %v; frames:\n%s", who, err, tr.summary())
	}
	if got != want {
		t.Errorf("%s: deltas make %q, want %q", who, got, want)
	}
	if tr.done.Status != "complete" || tr.done.Content != want {
		t.Errorf("%s: ai_done %+v, want complete with %q", who, *tr.done, want)
	}
	for _, d := range tr.deltas {
		if d.MessageID != tr.start.MessageID || d.Seq != tr.start.Seq {
			t.Errorf("%s: delta of message %s/%d inside the turn of %s/%d", who, d.MessageID, d.Seq, tr.start.MessageID, tr.start.Seq)
		}
	}
	if tr.done.MessageID != tr.start.MessageID || tr.done.Seq != tr.start.Seq {
		t.Errorf("%s: ai_done names %s/%d, ai_start %s/%d", who, tr.done.MessageID, tr.done.Seq, tr.start.MessageID, tr.start.Seq)
	}
}

// ---- server, chats, history --------------------------------------------------

// aieBoot starts a fake upstream listing aieModel and an aichat using it.
func aieBoot(t *testing.T, e storetest.Engine, opts ...apptest.Option) (*apptest.Server, *llmtest.Server) {
	t.Helper()
	up := llmtest.NewServer(t)
	up.SetModels(aieModel)
	s := apptest.Start(t, e, append([]apptest.Option{apptest.WithAI(up.URL)}, opts...)...)
	return s, up
}

// aieLLM overrides the LLM client options WithAI sets (put it after WithAI).
func aieLLM(o llm.Options) apptest.Option {
	return func(_ *config.Config, ao *app.Options) { ao.LLM = &o }
}

func aieCfg(f func(*config.Config)) apptest.Option { return apptest.WithConfig(f) }

// aieChat creates a chat and returns its id.
func aieChat(t *testing.T, s *apptest.Server, token string, settings map[string]any, participants ...string) string {
	t.Helper()
	body := map[string]any{"title": "ai e2e"}
	if settings != nil {
		body["settings"] = settings
	}
	if len(participants) > 0 {
		body["participants"] = participants
	}
	r := s.Do(t, "POST", "/api/v1/chats", token, body)
	if r.Status != 201 {
		t.Fatalf("create chat: %d %s", r.Status, r.Body)
	}
	var c struct{ ID string }
	r.JSON(t, &c)
	return c.ID
}

func aiePatch(t *testing.T, s *apptest.Server, token, chatID string, settings map[string]any) {
	t.Helper()
	if r := s.Do(t, "PATCH", "/api/v1/chats/"+chatID, token, map[string]any{"settings": settings}); r.Status != 200 {
		t.Fatalf("patch settings %v: %d %s", settings, r.Status, r.Body)
	}
}

// aiePost sends a message through REST.
func aiePost(t *testing.T, s *apptest.Server, token, chatID, content string) aieMsg {
	t.Helper()
	n := aieClientSeq.Add(1)
	r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/messages", token,
		map[string]any{"content": content, "client_id": "aie-rest-" + strconv.FormatInt(n, 10)})
	if r.Status != 201 {
		t.Fatalf("send %q: %d %s", content, r.Status, r.Body)
	}
	var m aieMsg
	r.JSON(t, &m)
	return m
}

// aieHistory returns the chat's messages, oldest first.
func aieHistory(t *testing.T, s *apptest.Server, token, chatID string) []aieMsg {
	t.Helper()
	r := s.Do(t, "GET", "/api/v1/chats/"+chatID+"/messages?limit=200", token, nil)
	if r.Status != 200 {
		t.Fatalf("history: %d %s", r.Status, r.Body)
	}
	var page struct {
		Messages []aieMsg `json:"messages"`
	}
	r.JSON(t, &page)
	out := make([]aieMsg, 0, len(page.Messages))
	for i := len(page.Messages) - 1; i >= 0; i-- {
		out = append(out, page.Messages[i])
	}
	for i := 1; i < len(out); i++ {
		if out[i].Seq <= out[i-1].Seq {
			// The API pages newest first; flip back if it ever changes.
			for a, b := 0, len(out)-1; a < b; a, b = a+1, b-1 {
				out[a], out[b] = out[b], out[a]
			}
			break
		}
	}
	return out
}

func aieMsgAt(t *testing.T, s *apptest.Server, token, chatID string, seq int64) aieMsg {
	t.Helper()
	for _, m := range aieHistory(t, s, token, chatID) {
		if m.Seq == seq {
			return m
		}
	}
	t.Fatalf("no message %d in chat %s", seq, chatID)
	return aieMsg{}
}

// aieCompletions lists the chat-completion requests the upstream got (not
// the model listings).
func aieCompletions(up *llmtest.Server) []*llmtest.Request {
	var out []*llmtest.Request
	for _, r := range up.Requests() {
		if r.Path == "/v1/chat/completions" {
			out = append(out, r)
		}
	}
	return out
}

// aieTokens makes n word tokens: "w0 w1 w2 ...".
func aieTokens(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = " w" + strconv.Itoa(i)
	}
	out[0] = "w0"
	return out
}

// aieEnded waits for the upstream request's context to end, at most d.
func aieEnded(t *testing.T, r *llmtest.Request, d time.Duration, what string) {
	t.Helper()
	select {
	case <-r.ContextDone():
	case <-time.After(d):
		t.Fatalf("%s: the upstream request was still open %v later", what, d)
	}
}

func aieMetric(t *testing.T, s *apptest.Server, series string) float64 {
	t.Helper()
	r := s.Do(t, "GET", "/metrics", "", nil)
	if r.Status != 200 {
		t.Fatalf("GET /metrics: %d", r.Status)
	}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", series, line)
			}
			return f
		}
	}
	return -1
}

// ---- 1. streaming to everyone -------------------------------------------------

func TestAIE2EStreamingToEveryone(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		chatID := aieChat(t, s, alice.AccessToken, map[string]any{
			"ai_mode": "always", "temperature": 0, "max_tokens": 256, "stop": []string{"END", "STOP"},
		}, "bob@example.com")

		const answer = "Streaming works: every member sees the same words, in the same order, and nothing is lost or doubled on the way."
		up.SetDefault(llmtest.Script{Text: answer, TokenDelay: 12 * time.Millisecond})
		a1 := aieConnect(t, s, alice.AccessToken, "", "alice tab 1")
		a2 := aieConnect(t, s, alice.AccessToken, "", "alice tab 2")
		b := aieConnect(t, s, bob.AccessToken, "", "bob")

		const question = "How does streaming work?"
		sent := a1.send(chatID, question)

		var msgID string
		for _, c := range []*aieSock{a1, a2, b} {
			tr := c.turn(chatID)
			tr.complete(t, c.name, answer)
			if tr.start.ReplyTo != sent.Seq || tr.start.Seq != sent.Seq+1 || tr.start.Model != aieModel {
				t.Errorf("%s: ai_start %+v, want reply_to %d, seq %d, model %s", c.name, *tr.start, sent.Seq, sent.Seq+1, aieModel)
			}
			if len(tr.deltas) < 3 {
				t.Errorf("%s: %d deltas for %d tokens streamed over ~300ms: not streamed", c.name, len(tr.deltas), len(llmtest.Tokens(answer)))
			}
			if tr.done.FinishReason != "stop" || tr.done.Model != aieModel {
				t.Errorf("%s: ai_done finish_reason %q model %q", c.name, tr.done.FinishReason, tr.done.Model)
			}
			if u := tr.done.Usage; u == nil || u.PromptTokens != 10 || u.CompletionTokens != len(llmtest.Tokens(answer)) {
				t.Errorf("%s: ai_done usage %+v, want 10/%d", c.name, u, len(llmtest.Tokens(answer)))
			}
			// The answer is a message too: its chat_message (streaming)
			// comes just before ai_start.
			if tr.msg == nil || tr.msg.Status != "streaming" || tr.msg.Seq != tr.start.Seq || tr.msg.ID != tr.start.MessageID {
				t.Errorf("%s: assistant chat_message %+v, want the streaming message %s/%d", c.name, tr.msg, tr.start.MessageID, tr.start.Seq)
			}
			iMsg, iStart := -1, -1
			for i, f := range tr.frames {
				switch {
				case f.Type == "chat_message" && strings.Contains(string(f.Data), `"author_kind":"assistant"`) && iMsg < 0:
					iMsg = i
				case f.Type == "ai_start":
					iStart = i
				}
			}
			if iMsg < 0 || iMsg > iStart {
				t.Errorf("%s: the assistant's chat_message (%d) does not precede ai_start (%d)", c.name, iMsg, iStart)
			}
			if msgID == "" {
				msgID = tr.start.MessageID
			} else if tr.start.MessageID != msgID {
				t.Errorf("%s: message id %s, another socket saw %s", c.name, tr.start.MessageID, msgID)
			}
		}

		for _, tok := range []string{alice.AccessToken, bob.AccessToken} {
			h := aieHistory(t, s, tok, chatID)
			if len(h) != 2 {
				t.Fatalf("history has %d messages, want 2: %+v", len(h), h)
			}
			m := h[1]
			if m.ID != msgID || m.AuthorKind != "assistant" || m.Status != "complete" || m.Content != answer || m.Model != aieModel {
				t.Errorf("stored answer %+v, want complete %q by %s", m, answer, aieModel)
			}
		}

		reqs := aieCompletions(up)
		if len(reqs) != 1 {
			t.Fatalf("upstream got %d completions, want 1", len(reqs))
		}
		r := reqs[0]
		if v, _ := r.Field("model"); v != aieModel {
			t.Errorf("model %v, want %s", v, aieModel)
		}
		msgs := r.Messages()
		if len(msgs) != 2 || msgs[0][0] != "system" {
			t.Fatalf("messages %q: want the system message, then the question", msgs)
		}
		if !strings.Contains(msgs[0][1], "alice@example.com") || !strings.Contains(msgs[0][1], "bob@example.com") {
			t.Errorf("system message does not name the participants: %q", msgs[0][1])
		}
		last := msgs[len(msgs)-1]
		if last[0] != "user" || last[1] != "[alice@example.com]: "+question {
			t.Errorf("last message %q, want the question labelled with its author", last)
		}
		if v, ok := r.Field("temperature"); !ok || v != float64(0) {
			t.Errorf("temperature %v (present %v), want an explicit 0", v, ok)
		}
		if v, _ := r.Field("max_completion_tokens"); v != float64(256) {
			t.Errorf("max_completion_tokens %v, want 256", v)
		}
		if _, ok := r.Field("max_tokens"); ok {
			t.Errorf("max_tokens sent as well as max_completion_tokens: %s", r.RawBody)
		}
		if v, _ := r.Field("stop"); fmt.Sprint(v) != "[END STOP]" {
			t.Errorf("stop %v, want [END STOP]", v)
		}
		if v, _ := r.Field("stream_options.include_usage"); v != true {
			t.Errorf("stream_options.include_usage %v, want true", v)
		}
		if v, _ := r.Field("stream"); v != true {
			t.Errorf("stream %v, want true", v)
		}

		// GET /models lists what the provider serves, and nothing secret.
		var models struct {
			Models     []struct{ ID, Provider string } `json:"models"`
			Configured bool                            `json:"configured"`
		}
		mr := s.Do(t, "GET", "/api/v1/models", bob.AccessToken, nil)
		mr.JSON(t, &models)
		if mr.Status != 200 || !models.Configured || len(models.Models) != 1 || models.Models[0].ID != aieModel || models.Models[0].Provider != "fake" {
			t.Errorf("GET /models: %d %s", mr.Status, mr.Body)
		}
		if strings.Contains(string(mr.Body), strings.TrimSuffix(up.URL, "/v1")) {
			t.Errorf("GET /models shows the provider's address: %s", mr.Body)
		}
	})
}

// ---- 2. ai_mode --------------------------------------------------------------

func TestAIE2EMode(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e)
		alice := s.Register(t, "alice@example.com")
		s.Register(t, "bob@example.com")
		// A group chat answers mentions by default.
		chatID := aieChat(t, s, alice.AccessToken, nil, "bob@example.com")
		var c struct {
			Settings struct {
				AIMode string `json:"ai_mode"`
			} `json:"settings"`
		}
		s.Do(t, "GET", "/api/v1/chats/"+chatID, alice.AccessToken, nil).JSON(t, &c)
		if c.Settings.AIMode != "mention" {
			t.Fatalf("group chat ai_mode %q, want mention", c.Settings.AIMode)
		}
		up.SetDefault(llmtest.Script{Text: "Hi, I am here."})
		a := aieConnect(t, s, alice.AccessToken, "", "alice")

		plain := aiePost(t, s, alice.AccessToken, chatID, "just chatting among people")
		email := aiePost(t, s, alice.AccessToken, chatID, "write to support@ai.com about it")
		a.none("ai frame for a message without @ai", 400*time.Millisecond, func(f apptest.Frame) bool {
			return strings.HasPrefix(f.Type, "ai_") && aieChatOf(f) == chatID
		})
		if n := len(aieCompletions(up)); n != 0 {
			t.Fatalf("upstream called %d times for messages without @ai (seqs %d, %d)", n, plain.Seq, email.Seq)
		}

		q := aiePost(t, s, alice.AccessToken, chatID, "@ai hello")
		tr := a.turn(chatID)
		tr.complete(t, "alice", "Hi, I am here.")
		if tr.start.ReplyTo != q.Seq {
			t.Errorf("answer replies to %d, want %d", tr.start.ReplyTo, q.Seq)
		}
		if n := len(aieCompletions(up)); n != 1 {
			t.Fatalf("upstream called %d times, want 1", n)
		}

		aiePatch(t, s, alice.AccessToken, chatID, map[string]any{"ai_mode": "off"})
		aiePost(t, s, alice.AccessToken, chatID, "@ai are you still there?")
		aiePost(t, s, alice.AccessToken, chatID, "plain words")
		a.none("ai frame with ai_mode off", 500*time.Millisecond, func(f apptest.Frame) bool {
			return strings.HasPrefix(f.Type, "ai_") && aieChatOf(f) == chatID
		})
		if n := len(aieCompletions(up)); n != 1 {
			t.Fatalf("upstream called %d times with ai_mode off, want still 1", n)
		}
		if h := aieHistory(t, s, alice.AccessToken, chatID); len(h) != 6 {
			t.Errorf("history has %d messages, want 6 (5 people's, 1 answer)", len(h))
		}
	})
}

// ---- 3. depth, persona, context ---------------------------------------------

func TestAIE2EDepthPersonaContext(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e)
		alice := s.Register(t, "alice@example.com")
		chatID := aieChat(t, s, alice.AccessToken, map[string]any{
			"depth": 2, "persona": "seller", "context": "Our shop sells <b>teapots</b> & cups.",
		})
		a := aieConnect(t, s, alice.AccessToken, "", "alice")
		turn := func(q, answer string) [][2]string {
			t.Helper()
			up.Enqueue(llmtest.Script{Text: answer})
			aiePost(t, s, alice.AccessToken, chatID, q)
			a.turn(chatID).complete(t, "alice", answer)
			return up.Last().Messages()
		}
		want := func(got [][2]string, rest ...[2]string) {
			t.Helper()
			if len(got) != len(rest)+1 {
				t.Fatalf("upstream got %d messages %q, want the system message and %q", len(got), got, rest)
			}
			for i, m := range rest {
				if got[i+1] != m {
					t.Errorf("message %d is %q, want %q", i+1, got[i+1], m)
				}
			}
		}
		first := turn("first question", "Answer one.")
		want(first, [2]string{"user", "first question"})
		sys := first[0]
		if sys[0] != "system" {
			t.Fatalf("first message is %q, want system", sys[0])
		}
		if !strings.Contains(sys[1], "You are a friendly sales assistant.") {
			t.Errorf("system message lacks the seller persona: %q", sys[1])
		}
		if !strings.Contains(sys[1], "<chat_context>\nOur shop sells &lt;b&gt;teapots&lt;/b&gt; &amp; cups.\n</chat_context>") {
			t.Errorf("system message lacks the escaped chat context: %q", sys[1])
		}
		if !strings.Contains(sys[1], "<rules>\n") {
			t.Errorf("system message lacks the operator's rules: %q", sys[1])
		}
		want(turn("second question", "Answer two."),
			[2]string{"user", "first question"}, [2]string{"assistant", "Answer one."}, [2]string{"user", "second question"})
		// Depth 2: only the last two earlier messages.
		want(turn("third question", "Answer three."),
			[2]string{"user", "second question"}, [2]string{"assistant", "Answer two."}, [2]string{"user", "third question"})

		aiePatch(t, s, alice.AccessToken, chatID, map[string]any{"depth": 0, "persona": "support", "context": ""})
		got := turn("fourth question", "Answer four.")
		want(got, [2]string{"user", "fourth question"})
		if !strings.Contains(got[0][1], "customer-support agent") || strings.Contains(got[0][1], "sales assistant") || strings.Contains(got[0][1], "<chat_context>") {
			t.Errorf("system message after the change: %q", got[0][1])
		}
	})
}

// The question is found by counting back from the answer's seq, so a
// message that lands between the question and the answer's start takes
// its place: with depth 0 the question is lost (message.notFound), with
// depth N the model sees one earlier message fewer.
func TestAIE2EDepthZeroWithMessageInBetween(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e)
		alice := s.Register(t, "alice@example.com")
		s.Register(t, "bob@example.com")
		chatID := aieChat(t, s, alice.AccessToken, map[string]any{"depth": 0}, "bob@example.com") // mention mode
		up.SetDefault(llmtest.Script{Text: "ok"})
		a := aieConnect(t, s, alice.AccessToken, "", "alice")
		for i := 0; i < 5; i++ {
			// Two messages back to back, without waiting for the acks: the
			// second usually lands before the answer to the first starts.
			n := aieClientSeq.Add(1)
			a.ws.Send(t, "send_message", "", map[string]any{"chat_id": chatID, "content": "@ai hi", "client_id": fmt.Sprintf("aie-q-%d", n)})
			a.ws.Send(t, "send_message", "", map[string]any{"chat_id": chatID, "content": "by the way", "client_id": fmt.Sprintf("aie-b-%d", n)})
			tr := a.turn(chatID)
			if tr.err != nil {
				t.Fatalf("attempt %d: ai_error %+v", i, *tr.err)
			}
			tr.complete(t, "alice", "ok")
			if msgs := up.Last().Messages(); len(msgs) != 2 || msgs[1] != [2]string{"user", "[alice@example.com]: @ai hi"} {
				t.Fatalf("attempt %d: upstream got %q", i, msgs)
			}
		}
	})
}

// ---- 4. stop -------------------------------------------------------------------

func TestAIE2EStop(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		chatID := aieChat(t, s, alice.AccessToken, map[string]any{"ai_mode": "always"}, "bob@example.com")
		slow := llmtest.Script{Tokens: aieTokens(200), TokenDelay: 50 * time.Millisecond}
		full := strings.Join(slow.Tokens, "")
		a1 := aieConnect(t, s, alice.AccessToken, "", "alice tab 1")
		a2 := aieConnect(t, s, alice.AccessToken, "", "alice tab 2")
		b := aieConnect(t, s, bob.AccessToken, "", "bob")

		checkStopped := func(round string, req *llmtest.Request) {
			t.Helper()
			var partial string
			for _, c := range []*aieSock{a1, a2, b} {
				tr := c.turn(chatID)
				if tr.err != nil || tr.done == nil {
					t.Fatalf("%s %s: no ai_done: %+v", round, c.name, tr.err)
				}
				got, err := tr.text()
				if err != nil {
					t.Errorf("%s %s: %v", round, c.name, err)
				}
				if tr.done.Status != "stopped" || tr.done.Content != got {
					t.Errorf("%s %s: ai_done status %q content %q, want stopped with the %q streamed", round, c.name, tr.done.Status, tr.done.Content, got)
				}
				if got == "" || got == full || !strings.HasPrefix(full, got) {
					t.Errorf("%s %s: stopped text %q is not a proper part of the answer", round, c.name, got)
				}
				if partial == "" {
					partial = tr.done.Content
				} else if tr.done.Content != partial {
					t.Errorf("%s %s: stopped text %q, another socket got %q", round, c.name, tr.done.Content, partial)
				}
			}
			if _, byClient := req.ContextEnded(); !byClient {
				t.Errorf("%s: the upstream request was not ended by aichat going away", round)
			}
			h := aieHistory(t, s, bob.AccessToken, chatID)
			m := h[len(h)-1]
			if m.AuthorKind != "assistant" || m.Status != "stopped" || m.Content != partial {
				t.Errorf("%s: stored %+v, want stopped with %q", round, m, partial)
			}
		}
		deltas := func(c *aieSock, n int) {
			t.Helper()
			c.count("ai_delta", n, aieIs("ai_delta", chatID))
		}

		// Round 1: alice's other tab stops over the socket.
		up.Enqueue(slow)
		aiePost(t, s, alice.AccessToken, chatID, "tell me a long story")
		deltas(a2, 3)
		req := aieCompletions(up)[0]
		a2.ws.Send(t, "ai_stop", "stop-1", map[string]any{"chat_id": chatID})
		ack := a2.take("ack stop-1", func(f apptest.Frame) bool { return f.ID == "stop-1" })
		if ack.Type != "ack" || !strings.Contains(string(ack.Data), `"stopping":true`) {
			t.Fatalf("ai_stop answered %s %s", ack.Type, ack.Data)
		}
		aieEnded(t, req, time.Second, "socket stop")
		checkStopped("socket stop", req)

		// Round 2: bob stops over REST.
		up.Enqueue(slow)
		aiePost(t, s, alice.AccessToken, chatID, "another long story")
		deltas(b, 3)
		req = aieCompletions(up)[1]
		if r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/ai/stop", bob.AccessToken, nil); r.Status != 202 {
			t.Fatalf("REST stop: %d %s", r.Status, r.Body)
		}
		aieEnded(t, req, time.Second, "REST stop")
		checkStopped("REST stop", req)

		// Nothing generating.
		r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/ai/stop", alice.AccessToken, nil)
		if r.Status != 409 || r.Err(t).Code != "ai.notGenerating" {
			t.Errorf("REST stop with nothing running: %d %s, want 409 ai.notGenerating", r.Status, r.Body)
		}
		a1.ws.Send(t, "ai_stop", "stop-3", map[string]any{"chat_id": chatID})
		f := a1.take("answer to stop-3", func(f apptest.Frame) bool { return f.ID == "stop-3" })
		var ce aieCmdErr
		f.Decode(t, &ce)
		if f.Type != "error" || ce.Code != "ai.notGenerating" || ce.Command != "ai_stop" {
			t.Errorf("socket stop with nothing running: %s %s, want error ai.notGenerating", f.Type, f.Data)
		}
		// Someone outside the chat cannot stop (or probe) it.
		if r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/ai/stop", carol.AccessToken, nil); r.Status != 404 {
			t.Errorf("outsider stop: %d %s, want 404", r.Status, r.Body)
		}

		// The chat answers normally after a stop.
		up.Enqueue(llmtest.Script{Text: "Short one."})
		aiePost(t, s, alice.AccessToken, chatID, "short please")
		b.turn(chatID).complete(t, "bob", "Short one.")
		a1.turn(chatID)
		a2.turn(chatID)
	})
}

// ---- 5. closing the sender's tab ----------------------------------------------

func TestAIE2ESenderTabClosed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		chatID := aieChat(t, s, alice.AccessToken, map[string]any{"ai_mode": "always"}, "bob@example.com")
		sc := llmtest.Script{Tokens: aieTokens(30), TokenDelay: 25 * time.Millisecond}
		full := strings.Join(sc.Tokens, "")
		up.Enqueue(sc)
		a := aieConnect(t, s, alice.AccessToken, "", "alice")
		b := aieConnect(t, s, bob.AccessToken, "", "bob")

		a.send(chatID, "answer even if I leave")
		a.count("ai_delta", 1, aieIs("ai_delta", chatID))
		a.ws.Conn.Close()

		b.turn(chatID).complete(t, "bob", full)
		req := aieCompletions(up)[0]
		aieEnded(t, req, aieWait, "complete answer")
		if _, byClient := req.ContextEnded(); byClient {
			t.Errorf("the upstream request was cut by aichat although the answer completed")
		}
		h := aieHistory(t, s, alice.AccessToken, chatID)
		if m := h[len(h)-1]; m.AuthorKind != "assistant" || m.Status != "complete" || m.Content != full {
			t.Errorf("stored %+v, want the complete answer", m)
		}
	})
}

// ---- 6. reload mid-answer -------------------------------------------------------

// aieResumeFrames runs the reload scenario and returns what the new socket
// got up to ai_done, the final text and the assistant message's seq.
func aieResumeFrames(t *testing.T, e storetest.Engine) (frames []apptest.Frame, full string, msgSeq int64) {
	t.Helper()
	s, up := aieBoot(t, e, aieCfg(func(c *config.Config) { c.AISaveEvery = 150 * time.Millisecond }))
	alice := s.Register(t, "alice@example.com")
	chatID := aieChat(t, s, alice.AccessToken, nil) // personal: always
	sc := llmtest.Script{Tokens: aieTokens(50), TokenDelay: 35 * time.Millisecond}
	up.Enqueue(sc)
	tab := aieConnect(t, s, alice.AccessToken, "", "alice before reload")
	sent := tab.send(chatID, "tell me a story")
	tab.count("ai_delta", 4, aieIs("ai_delta", chatID))
	tab.ws.Conn.Close()

	re := aieConnect(t, s, alice.AccessToken, "resume=1", "alice after reload")
	// A client may take a moment between hello and resume; the answer
	// keeps streaming meanwhile.
	time.Sleep(150 * time.Millisecond)
	re.ws.Send(t, "resume", "r1", map[string]any{"chats": map[string]int64{chatID: sent.Seq}})
	end := re.wait("ai_done", aieIs("ai_done", chatID))
	return re.buf[:end+1], strings.Join(sc.Tokens, ""), sent.Seq + 1
}

func TestAIE2EResumeMidAnswer(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		frames, full, seq := aieResumeFrames(t, e)
		var types []string
		for _, f := range frames {
			types = append(types, f.Type)
		}
		iMsg := -1
		for i, f := range frames {
			if f.Type == "chat_message" {
				var m aieMsg
				f.Decode(t, &m)
				if m.Seq == seq {
					if m.AuthorKind != "assistant" || m.Status != "streaming" || !strings.HasPrefix(full, m.Content) {
						t.Errorf("replayed answer %+v, want the streaming assistant message with a prefix of the text", m)
					}
					iMsg = i
					break
				}
			}
		}
		if iMsg < 0 {
			t.Fatalf("the streaming answer was not replayed; got %v", types)
		}
		iStart := -1
		for i := iMsg + 1; i < len(frames); i++ {
			if frames[i].Type == "ai_start" {
				iStart = i
				break
			}
		}
		if iStart < 0 {
			t.Fatalf("no ai_start after the replayed answer; got %v", types)
		}
		var st aieStartData
		frames[iStart].Decode(t, &st)
		if st.Seq != seq || st.ReplyTo != seq-1 {
			t.Errorf("ai_start %+v, want seq %d reply_to %d", st, seq, seq-1)
		}
		// The snapshot: the next ai_delta, at offset 0, with the text so far.
		var text []byte
		snap := false
		var done *aieDoneData
		for i := iStart + 1; i < len(frames); i++ {
			f := frames[i]
			switch f.Type {
			case "ai_delta":
				var d aieDeltaData
				f.Decode(t, &d)
				if !snap {
					if d.Offset != 0 || d.Delta == "" || !strings.HasPrefix(full, d.Delta) {
						t.Fatalf("first delta after ai_start: offset %d %q, want offset 0 with the text so far", d.Offset, d.Delta)
					}
					snap = true
				} else if d.Offset != len(text) {
					t.Fatalf("delta at offset %d after %d bytes; got %v", d.Offset, len(text), types)
				}
				text = append(text[:d.Offset], d.Delta...)
			case "ai_done":
				done = &aieDoneData{}
				f.Decode(t, done)
			}
		}
		if !snap {
			t.Fatalf("no snapshot delta after ai_start; got %v", types)
		}
		if string(text) != full || done == nil || done.Content != full || done.Status != "complete" {
			t.Errorf("rebuilt %q, ai_done %+v; want %q", text, done, full)
		}
		// Rebuilding every delta the socket got by offset also gives the text.
		var all []byte
		for _, f := range frames {
			if f.Type != "ai_delta" {
				continue
			}
			var d aieDeltaData
			f.Decode(t, &d)
			if d.Offset > len(all) {
				continue // a delta for text this socket has not seen yet
			}
			all = append(all[:d.Offset], d.Delta...)
		}
		if string(all) != full {
			t.Errorf("all deltas by offset make %q, want %q", all, full)
		}
	})
}

// The protocol promises that chat events are held until the resume is
// answered, so that the client meets each message in order. The answer's
// ai_* frames are not held: they reach the socket before the replayed
// chat_message of the answer they belong to.
func TestAIE2EResumeHoldsAIFrames(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		frames, _, seq := aieResumeFrames(t, e)
		for _, f := range frames {
			if f.Type == "chat_message" && strings.Contains(string(f.Data), `"seq":`+strconv.FormatInt(seq, 10)+`,`) {
				return
			}
			if strings.HasPrefix(f.Type, "ai_") {
				t.Fatalf("%s before the replayed answer it belongs to: %s", f.Type, f.Data)
			}
		}
		t.Fatal("the answer was not replayed")
	})
}

// ---- 7. errors -------------------------------------------------------------------

func TestAIE2EErrors(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e)
		alice := s.Register(t, "alice@example.com")
		chatID := aieChat(t, s, alice.AccessToken, nil)
		a := aieConnect(t, s, alice.AccessToken, "", "alice")

		// fails sends q with the upstream answering sc (nil: the upstream
		// must not be called) and checks the ai_error and the stored answer.
		fails := func(name string, sc *llmtest.Script, q, code, partial string) *aieErrData {
			t.Helper()
			before := len(aieCompletions(up))
			if sc != nil {
				up.Enqueue(*sc)
			}
			sent := aiePost(t, s, alice.AccessToken, chatID, q)
			tr := a.turn(chatID)
			if tr.err == nil {
				t.Fatalf("%s: no ai_error; frames:\n%s", name, tr.summary())
			}
			ae := tr.err
			if ae.Code != code || ae.ReplyTo != sent.Seq || ae.Message == "" {
				t.Errorf("%s: ai_error %+v, want %s replying to %d", name, *ae, code, sent.Seq)
			}
			if got, err := tr.text(); err != nil || got != partial || ae.Content != partial {
				t.Errorf("%s: deltas %q (%v), ai_error content %q; want %q", name, got, err, ae.Content, partial)
			}
			calls := len(aieCompletions(up)) - before
			if want := map[bool]int{true: 1, false: 0}[sc != nil]; calls != want {
				t.Errorf("%s: upstream called %d times, want %d", name, calls, want)
			}
			if ae.MessageID != "" {
				m := aieMsgAt(t, s, alice.AccessToken, chatID, ae.Seq)
				if m.ID != ae.MessageID || m.Status != "failed" || m.Content != partial {
					t.Errorf("%s: stored %+v, want failed with %q", name, m, partial)
				}
			}
			return ae
		}
		sc := func(s llmtest.Script) *llmtest.Script { return &s }

		ae := fails("HTTP 500", sc(llmtest.ServerError(500)), "q1", "ai.providerDown", "")
		if ae.MessageID == "" {
			t.Errorf("HTTP 500: the ai_error names no message, though the answer was started")
		}
		fails("HTTP 503", sc(llmtest.ServerError(503)), "q2", "ai.providerDown", "")
		if ae := fails("rate limit", sc(llmtest.RateLimited("7")), "q3", "ai.rateLimited", ""); ae.RetryAfter != 7 {
			t.Errorf("rate limit: retry_after %d, want 7 (the upstream's Retry-After)", ae.RetryAfter)
		}
		fails("insufficient quota", sc(llmtest.InsufficientQuota()), "q4", "ai.providerQuota", "")
		fails("context length", sc(llmtest.ContextLengthExceeded()), "q5", "ai.contextTooLong", "")

		// A model the provider does not have, named as provider/model.
		aiePatch(t, s, alice.AccessToken, chatID, map[string]any{"model": "fake/no-such-model"})
		fails("model not found", sc(llmtest.ModelNotFound("no-such-model")), "q6", "ai.modelNotFound", "")
		if v, _ := up.Last().Field("model"); v != "no-such-model" {
			t.Errorf("the upstream was asked for model %v, want no-such-model", v)
		}
		aiePatch(t, s, alice.AccessToken, chatID, map[string]any{"model": ""})

		// Errors after some tokens keep the partial text.
		fails("mid-stream error event", sc(llmtest.Script{Text: "Partial answer that breaks off here", Break: llmtest.BreakErrorOpenAI, BreakAfter: 3}),
			"q7", "ai.upstreamError", "Partial answer that")
		fails("connection cut", sc(llmtest.Script{Text: "Cut off in the middle", Break: llmtest.BreakHijack, BreakAfter: 2}),
			"q8", "ai.truncated", "Cut off")

		// Too long for the model's window: refused before the upstream.
		aiePatch(t, s, alice.AccessToken, chatID, map[string]any{"max_tokens": 6000})
		fails("prompt over budget", nil, strings.Repeat("語", 5000), "ai.contextTooLong", "")
		aiePatch(t, s, alice.AccessToken, chatID, map[string]any{"max_tokens": 0})

		// After all that the chat still answers.
		up.Enqueue(llmtest.Script{Text: "Back to normal."})
		aiePost(t, s, alice.AccessToken, chatID, "are you back?")
		a.turn(chatID).complete(t, "alice", "Back to normal.")
	})
}

// With retries, a provider that keeps failing is retried before the chat
// hears ai.providerDown; once the breaker opens, turns fail fast without
// calling it.
func TestAIE2EProviderDownRetriesAndBreaker(t *testing.T) {
	s, up := aieBoot(t, storetest.SQLite(t),
		aieLLM(llm.Options{IdleTimeout: 3 * time.Second, MaxRetries: 2, Breaker: llm.BreakerOptions{Failures: 3, CoolDown: time.Minute}}))
	alice := s.Register(t, "alice@example.com")
	chatID := aieChat(t, s, alice.AccessToken, nil)
	a := aieConnect(t, s, alice.AccessToken, "", "alice")
	up.Enqueue(llmtest.ServerError(500), llmtest.ServerError(503), llmtest.ServerError(500))
	aiePost(t, s, alice.AccessToken, chatID, "hello?")
	tr := a.turn(chatID)
	if tr.err == nil || tr.err.Code != "ai.providerDown" {
		t.Fatalf("after three 5xx: %s", tr.summary())
	}
	if n := len(aieCompletions(up)); n != 3 {
		t.Errorf("upstream called %d times, want 3 (two retries)", n)
	}
	aiePost(t, s, alice.AccessToken, chatID, "hello again?")
	tr = a.turn(chatID)
	if tr.err == nil || tr.err.Code != "ai.providerDown" || tr.err.RetryAfter <= 0 {
		t.Fatalf("with the breaker open: %s", tr.summary())
	}
	if n := len(aieCompletions(up)); n != 3 {
		t.Errorf("upstream called %d times with the breaker open, want still 3", n)
	}
}

func TestAIE2ENotConfigured(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		chatID := aieChat(t, s, alice.AccessToken, nil)
		a := aieConnect(t, s, alice.AccessToken, "", "alice")
		sent := a.send(chatID, "hello?")
		tr := a.turn(chatID)
		if tr.err == nil || tr.start != nil {
			t.Fatalf("want ai_error alone; got:\n%s", tr.summary())
		}
		if tr.err.Code != "ai.notConfigured" || tr.err.ReplyTo != sent.Seq || tr.err.MessageID != "" {
			t.Errorf("ai_error %+v", *tr.err)
		}
		for _, what := range []string{"OPENAI_API_KEY", "AICHAT_AI_PROVIDERS", "restart"} {
			if !strings.Contains(tr.err.Message, what) {
				t.Errorf("the message does not tell the admin about %s: %q", what, tr.err.Message)
			}
		}
		if h := aieHistory(t, s, alice.AccessToken, chatID); len(h) != 1 {
			t.Errorf("history has %d messages, want only the question", len(h))
		}
		var models struct {
			Models     []json.RawMessage `json:"models"`
			Configured *bool             `json:"configured"`
		}
		r := s.Do(t, "GET", "/api/v1/models", alice.AccessToken, nil)
		r.JSON(t, &models)
		if r.Status != 200 || models.Configured == nil || *models.Configured || len(models.Models) != 0 {
			t.Errorf("GET /models: %d %s, want configured:false and no models", r.Status, r.Body)
		}
		if r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/ai/stop", alice.AccessToken, nil); r.Status != 409 {
			t.Errorf("stop: %d %s, want 409", r.Status, r.Body)
		}
	})
}

// ---- 8. one generation per chat, quotas, usage ------------------------------------

func TestAIE2EBusy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		chatID := aieChat(t, s, alice.AccessToken, map[string]any{"ai_mode": "always"}, "bob@example.com")
		a := aieConnect(t, s, alice.AccessToken, "", "alice")
		b := aieConnect(t, s, bob.AccessToken, "", "bob")
		up.Enqueue(llmtest.Script{Tokens: aieTokens(200), TokenDelay: 40 * time.Millisecond})
		aiePost(t, s, alice.AccessToken, chatID, "long answer please")
		st := a.take("ai_start", aieIs("ai_start", chatID))
		var start aieStartData
		st.Decode(t, &start)
		a.count("ai_delta", 1, aieIs("ai_delta", chatID))

		// Regenerating the answer that is streaming.
		r := s.Do(t, "POST", fmt.Sprintf("/api/v1/chats/%s/messages/%d/regenerate", chatID, start.Seq), alice.AccessToken, nil)
		if r.Status != 409 || r.Err(t).Code != "ai.busy" {
			t.Errorf("regenerate while streaming: %d %s, want 409 ai.busy", r.Status, r.Body)
		}
		// A second trigger.
		q := aiePost(t, s, bob.AccessToken, chatID, "and me?")
		for _, c := range []*aieSock{a, b} {
			f := c.take("ai_error", aieIs("ai_error", chatID))
			var ae aieErrData
			f.Decode(t, &ae)
			if ae.Code != "ai.busy" || ae.ReplyTo != q.Seq || ae.MessageID != "" {
				t.Errorf("%s: second trigger got %+v, want ai.busy replying to %d", c.name, ae, q.Seq)
			}
		}
		if n := len(aieCompletions(up)); n != 1 {
			t.Errorf("upstream called %d times, want 1", n)
		}
		if r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/ai/stop", alice.AccessToken, nil); r.Status != 202 {
			t.Fatalf("stop: %d %s", r.Status, r.Body)
		}
		tr := a.turn(chatID)
		if tr.done == nil || tr.done.Status != "stopped" || tr.done.MessageID != start.MessageID {
			t.Fatalf("the first answer did not end stopped:\n%s", tr.summary())
		}
		// The busy refusal left no answer behind: only one assistant message.
		n := 0
		for _, m := range aieHistory(t, s, alice.AccessToken, chatID) {
			if m.AuthorKind == "assistant" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d assistant messages, want 1", n)
		}
	})
}

func TestAIE2EConcurrencyCap(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e, aieCfg(func(c *config.Config) { c.AIMaxConcurrent = 1 }))
		alice := s.Register(t, "alice@example.com")
		chatA := aieChat(t, s, alice.AccessToken, nil)
		chatB := aieChat(t, s, alice.AccessToken, nil)
		a := aieConnect(t, s, alice.AccessToken, "", "alice")
		up.Enqueue(llmtest.Script{Tokens: aieTokens(200), TokenDelay: 40 * time.Millisecond})
		aiePost(t, s, alice.AccessToken, chatA, "long one")
		a.count("ai_delta", 1, aieIs("ai_delta", chatA))

		q := aiePost(t, s, alice.AccessToken, chatB, "meanwhile, here")
		tr := a.turn(chatB)
		if tr.err == nil || tr.start != nil {
			t.Fatalf("second chat: want ai_error alone, got:\n%s", tr.summary())
		}
		if tr.err.Code != "ai.quotaExceeded" || tr.err.ReplyTo != q.Seq || tr.err.RetryAfter <= 0 {
			t.Errorf("second chat: %+v, want ai.quotaExceeded with retry_after", *tr.err)
		}
		if n := len(aieCompletions(up)); n != 1 {
			t.Errorf("upstream called %d times, want 1", n)
		}
		if r := s.Do(t, "POST", "/api/v1/chats/"+chatA+"/ai/stop", alice.AccessToken, nil); r.Status != 202 {
			t.Fatalf("stop: %d %s", r.Status, r.Body)
		}
		a.turn(chatA)
		// The slot is free again.
		up.Enqueue(llmtest.Script{Text: "Now it is my turn."})
		aiePost(t, s, alice.AccessToken, chatB, "and now?")
		a.turn(chatB).complete(t, "alice", "Now it is my turn.")
	})
}

func TestAIE2EDailyQuotaAndUsage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e, aieCfg(func(c *config.Config) { c.AIDailyTokens = 15 }))
		admin := s.Admin(t, "root@example.com")
		alice := s.Register(t, "alice@example.com")
		up.SetDefault(llmtest.Script{Text: "one two three four five six"}) // 10 prompt + 6 completion tokens
		chatID := aieChat(t, s, alice.AccessToken, nil)
		a := aieConnect(t, s, alice.AccessToken, "", "alice")

		aiePost(t, s, alice.AccessToken, chatID, "first")
		tr := a.turn(chatID)
		tr.complete(t, "alice", "one two three four five six")
		if u := tr.done.Usage; u == nil || u.PromptTokens != 10 || u.CompletionTokens != 6 {
			t.Fatalf("usage %+v, want 10/6", u)
		}
		calls := len(aieCompletions(up))
		q := aiePost(t, s, alice.AccessToken, chatID, "second")
		tr = a.turn(chatID)
		if tr.err == nil || tr.start != nil {
			t.Fatalf("over the quota: want ai_error alone, got:\n%s", tr.summary())
		}
		if tr.err.Code != "ai.quotaExceeded" || tr.err.ReplyTo != q.Seq || tr.err.RetryAfter <= 0 || tr.err.RetryAfter > 86401 {
			t.Errorf("over the quota: %+v", *tr.err)
		}
		if n := len(aieCompletions(up)); n != calls {
			t.Errorf("upstream called %d more times over the quota", n-calls)
		}

		// Admins have no quota.
		adminChat := aieChat(t, s, admin.AccessToken, nil)
		ad := aieConnect(t, s, admin.AccessToken, "", "admin")
		for i := 0; i < 2; i++ {
			aiePost(t, s, admin.AccessToken, adminChat, "admin question")
			ad.turn(adminChat).complete(t, "admin", "one two three four five six")
		}

		today := time.Now().UTC().Format(time.DateOnly)
		var mine struct {
			Days  int `json:"days"`
			Usage []struct {
				UserID           string `json:"user_id"`
				Day              string `json:"day"`
				Model            string `json:"model"`
				Provider         string `json:"provider"`
				Requests         int    `json:"requests"`
				PromptTokens     int64  `json:"prompt_tokens"`
				CompletionTokens int64  `json:"completion_tokens"`
			} `json:"usage"`
		}
		r := s.Do(t, "GET", "/api/v1/me/usage", alice.AccessToken, nil)
		r.JSON(t, &mine)
		if r.Status != 200 || mine.Days != 30 || len(mine.Usage) != 1 {
			t.Fatalf("GET /me/usage: %d %s", r.Status, r.Body)
		}
		u := mine.Usage[0]
		if u.Model != aieModel || u.Provider != "fake" || u.Requests != 1 || u.PromptTokens != 10 || u.CompletionTokens != 6 {
			t.Errorf("alice's usage %+v, want 1 request of %s: 10 prompt, 6 completion tokens", u, aieModel)
		}
		if _, err := time.Parse(time.DateOnly, u.Day[:min(len(u.Day), 10)]); err != nil || !strings.HasPrefix(u.Day, today) {
			t.Errorf("usage day %q, want today, %q (its exact form: TestAIE2EUsageDayIsADate)", u.Day, today)
		}
		if r := s.Do(t, "GET", "/api/v1/me/usage?days=0", alice.AccessToken, nil); r.Status != 400 {
			t.Errorf("days=0: %d, want 400", r.Status)
		}

		r = s.Do(t, "GET", "/api/v1/admin/usage", admin.AccessToken, nil)
		var all struct {
			Usage []struct {
				UserID           string `json:"user_id"`
				Requests         int    `json:"requests"`
				PromptTokens     int64  `json:"prompt_tokens"`
				CompletionTokens int64  `json:"completion_tokens"`
			} `json:"usage"`
		}
		r.JSON(t, &all)
		if r.Status != 200 || len(all.Usage) != 2 {
			t.Fatalf("GET /admin/usage: %d %s", r.Status, r.Body)
		}
		byUser := map[string][3]int64{}
		for _, u := range all.Usage {
			byUser[u.UserID] = [3]int64{int64(u.Requests), u.PromptTokens, u.CompletionTokens}
		}
		if byUser[alice.User.ID] != [3]int64{1, 10, 6} || byUser[admin.User.ID] != [3]int64{2, 20, 12} {
			t.Errorf("admin usage %v", byUser)
		}
		if all.Usage[0].UserID != admin.User.ID {
			t.Errorf("totals are not ordered biggest first: %s", r.Body)
		}
		if r := s.Do(t, "GET", "/api/v1/admin/usage", alice.AccessToken, nil); r.Status != 403 || r.Err(t).Code != "auth.forbidden" {
			t.Errorf("GET /admin/usage as a user: %d %s, want 403", r.Status, r.Body)
		}
	})
}

// GET /me/usage reports each day as YYYY-MM-DD, as SQLite stores it.
func TestAIE2EUsageDayIsADate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e)
		alice := s.Register(t, "alice@example.com")
		up.SetDefault(llmtest.Script{Text: "ok"})
		chatID := aieChat(t, s, alice.AccessToken, nil)
		a := aieConnect(t, s, alice.AccessToken, "", "alice")
		aiePost(t, s, alice.AccessToken, chatID, "hi")
		a.turn(chatID).complete(t, "alice", "ok")
		var mine struct {
			Usage []struct {
				Day string `json:"day"`
			} `json:"usage"`
		}
		r := s.Do(t, "GET", "/api/v1/me/usage?days=1", alice.AccessToken, nil)
		r.JSON(t, &mine)
		today := time.Now().UTC().Format(time.DateOnly)
		if r.Status != 200 || len(mine.Usage) != 1 || mine.Usage[0].Day != today {
			t.Errorf("GET /me/usage: %d %s, want one row for day %q", r.Status, r.Body, today)
		}
	})
}

// A regenerate the quota refuses must not leave the answer wiped and stuck
// in "streaming" (which also locks the chat until housekeeping fails it).
func TestAIE2EQuotaRefusedRegenerate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e, aieCfg(func(c *config.Config) { c.AIDailyTokens = 15 }))
		alice := s.Register(t, "alice@example.com")
		up.SetDefault(llmtest.Script{Text: "one two three four five six"})
		chatID := aieChat(t, s, alice.AccessToken, nil)
		a := aieConnect(t, s, alice.AccessToken, "", "alice")
		aiePost(t, s, alice.AccessToken, chatID, "first")
		tr := a.turn(chatID)
		tr.complete(t, "alice", "one two three four five six")

		r := s.Do(t, "POST", fmt.Sprintf("/api/v1/chats/%s/messages/%d/regenerate", chatID, tr.start.Seq), alice.AccessToken, nil)
		if r.Status == 202 {
			tr := a.turn(chatID)
			if tr.err == nil || tr.err.Code != "ai.quotaExceeded" {
				t.Fatalf("regenerate over the quota:\n%s", tr.summary())
			}
		} else if r.Status != 429 {
			t.Fatalf("regenerate over the quota: %d %s, want 429 or 202 then ai_error", r.Status, r.Body)
		}
		m := aieMsgAt(t, s, alice.AccessToken, chatID, tr.start.Seq)
		if m.Status == "streaming" {
			t.Errorf("the refused regenerate left the answer streaming: %+v", m)
		}
		if r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/ai/stop", alice.AccessToken, nil); r.Status != 409 {
			t.Errorf("stop after the refused regenerate: %d %s, want 409 ai.notGenerating", r.Status, r.Body)
		}
	})
}

// ---- 9. regenerate ---------------------------------------------------------------

func TestAIE2ERegenerate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e)
		alice := s.Register(t, "alice@example.com")
		carol := s.Register(t, "carol@example.com")
		chatID := aieChat(t, s, alice.AccessToken, nil)
		a := aieConnect(t, s, alice.AccessToken, "", "alice")
		regen := func(tok string, seq any) *apptest.Response {
			return s.Do(t, "POST", fmt.Sprintf("/api/v1/chats/%s/messages/%v/regenerate", chatID, seq), tok, nil)
		}

		up.Enqueue(llmtest.Script{Text: "Go is a language."})
		q := aiePost(t, s, alice.AccessToken, chatID, "What is Go?")
		first := a.turn(chatID)
		first.complete(t, "alice", "Go is a language.")

		const better = "Go is a statically typed, compiled programming language designed at Google."
		up.Enqueue(llmtest.Script{Text: better, TokenDelay: 10 * time.Millisecond})
		r := regen(alice.AccessToken, first.start.Seq)
		var m aieMsg
		r.JSON(t, &m)
		if r.Status != 202 || m.ID != first.start.MessageID || m.Seq != first.start.Seq || m.Status != "streaming" {
			t.Fatalf("regenerate: %d %s, want 202 with message %s/%d streaming", r.Status, r.Body, first.start.MessageID, first.start.Seq)
		}
		tr := a.turn(chatID)
		tr.complete(t, "alice", better)
		if tr.start.MessageID != m.ID || tr.start.Seq != m.Seq || tr.start.ReplyTo != q.Seq {
			t.Errorf("regenerated ai_start %+v, want message %s/%d replying to %d", *tr.start, m.ID, m.Seq, q.Seq)
		}
		if tr.msg != nil {
			t.Errorf("a regenerate announced a new message: %+v", *tr.msg)
		}
		h := aieHistory(t, s, alice.AccessToken, chatID)
		if len(h) != 2 || h[1].ID != m.ID || h[1].Content != better || h[1].Status != "complete" {
			t.Errorf("history after regenerate: %+v", h)
		}
		msgs := up.Last().Messages()
		if len(msgs) != 2 || msgs[1] != [2]string{"user", "What is Go?"} {
			t.Errorf("regenerate sent %q, want the system message and the question only", msgs)
		}

		// Only the last message, when it is the assistant's, can be regenerated.
		up.Enqueue(llmtest.Script{Text: "Yes."})
		aiePost(t, s, alice.AccessToken, chatID, "Is it fast?")
		a.turn(chatID).complete(t, "alice", "Yes.")
		if r := regen(alice.AccessToken, first.start.Seq); r.Status != 400 || r.Err(t).Code != "validation.failed" {
			t.Errorf("regenerate a non-last answer: %d %s, want 400", r.Status, r.Body)
		}
		aiePatch(t, s, alice.AccessToken, chatID, map[string]any{"ai_mode": "off"})
		last := aiePost(t, s, alice.AccessToken, chatID, "thanks")
		if r := regen(alice.AccessToken, last.Seq); r.Status != 400 || r.Err(t).Code != "validation.failed" {
			t.Errorf("regenerate a person's message: %d %s, want 400", r.Status, r.Body)
		}
		if r := regen(alice.AccessToken, "abc"); r.Status != 400 {
			t.Errorf("regenerate seq abc: %d %s, want 400", r.Status, r.Body)
		}
		if r := regen(alice.AccessToken, 999); r.Status != 404 {
			t.Errorf("regenerate a missing seq: %d %s, want 404", r.Status, r.Body)
		}
		if r := regen(carol.AccessToken, first.start.Seq+2); r.Status != 404 {
			t.Errorf("regenerate by an outsider: %d %s, want 404", r.Status, r.Body)
		}
		if n := len(aieCompletions(up)); n != 3 {
			t.Errorf("upstream called %d times, want 3", n)
		}
	})
}

// ---- 10. moderation and the output filter -----------------------------------------

func TestAIE2EModerationAndFilter(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e, aieCfg(func(c *config.Config) { c.AIBlockedPatterns = "forbiddenword" }))
		alice := s.Register(t, "alice@example.com")
		chatID := aieChat(t, s, alice.AccessToken, nil)
		a := aieConnect(t, s, alice.AccessToken, "", "alice")

		q := aiePost(t, s, alice.AccessToken, chatID, "tell me about the forbiddenword please")
		tr := a.turn(chatID)
		if tr.err == nil || tr.err.Code != "ai.moderated" || tr.err.ReplyTo != q.Seq {
			t.Fatalf("moderated question:\n%s", tr.summary())
		}
		if strings.Contains(tr.err.Message, "forbiddenword") {
			t.Errorf("the refusal repeats the blocked pattern: %q", tr.err.Message)
		}
		if n := len(aieCompletions(up)); n != 0 {
			t.Fatalf("upstream called %d times for a moderated question", n)
		}

		answers := []struct{ name, text, notice string }{
			{"moderated answer", "Sure, here is the forbiddenword you asked about.", "moderated"},
			{"JSON-only answer", `{"chat_id":"123","user_id":"456"}`, ""},
			{"fenced JSON answer", "```json\n[1, 2, 3]\n```", ""},
		}
		for _, c := range answers {
			up.Enqueue(llmtest.Script{Text: c.text})
			aiePost(t, s, alice.AccessToken, chatID, "question for the "+c.name)
			tr := a.turn(chatID)
			if tr.done == nil {
				t.Fatalf("%s: no ai_done:\n%s", c.name, tr.summary())
			}
			if tr.done.Status != "complete" || tr.done.Content != aieNotice || tr.done.Notice == "" || (c.notice != "" && tr.done.Notice != c.notice) {
				t.Errorf("%s: ai_done %+v, want the notice instead of the text", c.name, *tr.done)
			}
			m := aieMsgAt(t, s, alice.AccessToken, chatID, tr.done.Seq)
			if m.Content != aieNotice || m.Status != "complete" {
				t.Errorf("%s: stored %+v, want the notice", c.name, m)
			}
		}
		// JSON explained in prose passes.
		const prose = `Here is the object you asked for: {"a": 1}`
		up.Enqueue(llmtest.Script{Text: prose})
		aiePost(t, s, alice.AccessToken, chatID, "show me JSON")
		a.turn(chatID).complete(t, "alice", prose)
	})
}

// docs/protocol.md: "Before an answer exists (no provider, quota,
// moderation of the question, busy) [ai_error] names reply_to". A moderated
// question creates and fails an empty assistant message instead.
func TestAIE2EModeratedQuestionCreatesNoAnswer(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, _ := aieBoot(t, e, aieCfg(func(c *config.Config) { c.AIBlockedPatterns = "forbiddenword" }))
		alice := s.Register(t, "alice@example.com")
		chatID := aieChat(t, s, alice.AccessToken, nil)
		a := aieConnect(t, s, alice.AccessToken, "", "alice")
		aiePost(t, s, alice.AccessToken, chatID, "forbiddenword")
		tr := a.turn(chatID)
		if tr.start != nil || tr.msg != nil || tr.err == nil || tr.err.MessageID != "" {
			t.Errorf("moderated question produced an answer:\n%s", tr.summary())
		}
		if h := aieHistory(t, s, alice.AccessToken, chatID); len(h) != 1 {
			t.Errorf("history has %d messages, want the question alone: %+v", len(h), h)
		}
	})
}

// ---- 11. metrics ---------------------------------------------------------------------

func TestAIE2EMetrics(t *testing.T) {
	s, up := aieBoot(t, storetest.SQLite(t))
	alice := s.Register(t, "alice@example.com")
	chatID := aieChat(t, s, alice.AccessToken, nil)
	a := aieConnect(t, s, alice.AccessToken, "", "alice")

	up.Enqueue(llmtest.Script{Text: "Done."})
	aiePost(t, s, alice.AccessToken, chatID, "one")
	a.turn(chatID).complete(t, "alice", "Done.")

	up.Enqueue(llmtest.Script{Tokens: aieTokens(100), TokenDelay: 40 * time.Millisecond})
	aiePost(t, s, alice.AccessToken, chatID, "two")
	a.count("ai_delta", 1, aieIs("ai_delta", chatID))
	if r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/ai/stop", alice.AccessToken, nil); r.Status != 202 {
		t.Fatalf("stop: %d %s", r.Status, r.Body)
	}
	a.turn(chatID)

	up.Enqueue(llmtest.ServerError(500))
	aiePost(t, s, alice.AccessToken, chatID, "three")
	a.turn(chatID)

	want := map[string]float64{
		"aichat_ai_generations_started_total":                             3,
		`aichat_ai_generations_finished_total{outcome="complete"}`:        1,
		`aichat_ai_generations_finished_total{outcome="stopped"}`:         1,
		`aichat_ai_generations_finished_total{outcome="ai.providerDown"}`: 1,
		"aichat_ai_active_streams":                                        0,
		"aichat_ai_prompt_tokens_total":                                   10,
		"aichat_ai_completion_tokens_total":                               1,
		`aichat_ai_upstream_errors_total{kind="unavailable"}`:             1,
	}
	for series, v := range want {
		if got := aieMetric(t, s, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	if got := aieMetric(t, s, "aichat_ai_deltas_sent_total"); got < 2 {
		t.Errorf("aichat_ai_deltas_sent_total = %v, want at least 2", got)
	}
	// What the server adds: each question's way to the model (the failed
	// one's request was written too), and each ai_delta frame's time from
	// the hub to the socket.
	if n, sum := aieMetric(t, s, "aichat_ai_request_delay_seconds_count"), aieMetric(t, s, "aichat_ai_request_delay_seconds_sum"); n != 3 || sum <= 0 || sum > 30 {
		t.Errorf("aichat_ai_request_delay_seconds: count %v, sum %v s; want 3 questions timed", n, sum)
	}
	sent := aieMetric(t, s, `aichat_ws_events_sent_total{type="ai_delta"}`)
	if n := aieMetric(t, s, `aichat_ws_frame_delay_seconds_count{type="ai_delta"}`); n < 2 || n != sent {
		t.Errorf("aichat_ws_frame_delay_seconds{type=ai_delta}: %v timed, %v sent", n, sent)
	}
	// And from each chunk's arrival: every live delta is timed, and from
	// earlier than the hub got it (reading and decoding the chunk count).
	if n := aieMetric(t, s, `aichat_ws_arrival_delay_seconds_count{type="ai_delta"}`); n != sent {
		t.Errorf("aichat_ws_arrival_delay_seconds{type=ai_delta}: %v timed, %v sent", n, sent)
	}
	arrival := aieMetric(t, s, `aichat_ws_arrival_delay_seconds_sum{type="ai_delta"}`)
	if hub := aieMetric(t, s, `aichat_ws_frame_delay_seconds_sum{type="ai_delta"}`); arrival <= hub || arrival > 30 {
		t.Errorf("ai_delta frames: %v s from the chunks' arrival, %v s from the hub; want more from the arrival", arrival, hub)
	}
}
