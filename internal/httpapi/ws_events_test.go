package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/realtime"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/gorilla/websocket"
)

// This file covers the events a socket receives, end to end through a real
// server and real WebSocket clients, on every engine: chat messages and
// acks, unread counts, presence, typing, chat changes, resuming after a
// lost connection, and a client too slow to keep up.

// wseClient wraps a test socket so that a test can see every frame, in
// order: frames it has read but not yet looked at wait in pending.
type wseClient struct {
	t       *testing.T
	ws      *apptest.WS
	name    string
	pending []apptest.Frame
	fences  int
}

// wseScan is how often until looks for new frames.
const wseScan = 2 * time.Millisecond

func wseConnect(t *testing.T, s *apptest.Server, token, query, name string) (*wseClient, apptest.Frame) {
	t.Helper()
	ws, hello := s.Connect(t, token, query)
	c := &wseClient{t: t, ws: ws, name: name}
	// hello comes before the session joins the hub; a pong proves it has
	// joined (the reader starts after), so its online announcement is out.
	// Frames before the pong stay pending for the test.
	before := c.fence()
	c.pending = append(before, c.pending...)
	return c, hello
}

// until waits for a frame matching pred and returns the frames before it
// and the frame itself; the frames after it stay pending.
func (c *wseClient) until(what string, pred func(apptest.Frame) bool) (before []apptest.Frame, match apptest.Frame) {
	c.t.Helper()
	deadline := time.Now().Add(apptest.Wait)
	for i := 0; ; {
		c.pending = append(c.pending, c.ws.Frames()...)
		for ; i < len(c.pending); i++ {
			if f := c.pending[i]; pred(f) {
				before = append([]apptest.Frame(nil), c.pending[:i]...)
				c.pending = append([]apptest.Frame(nil), c.pending[i+1:]...)
				return before, f
			}
		}
		if time.Now().After(deadline) || c.ws.Err() != nil {
			c.t.Fatalf("%s: no %s within %v; got %s; read error: %v", c.name, what, apptest.Wait, wseTypes(c.pending), c.ws.Err())
		}
		time.Sleep(wseScan)
	}
}

// expect returns the next frame of type typ, failing if another frame of a
// type in strict comes first. Frames of other types before it are dropped.
func (c *wseClient) expect(typ string, strict ...string) apptest.Frame {
	c.t.Helper()
	before, f := c.until(typ+" frame", func(f apptest.Frame) bool { return f.Type == typ })
	for _, b := range before {
		if slices.Contains(strict, b.Type) {
			c.t.Fatalf("%s: unexpected %s frame %s before %s", c.name, b.Type, b.Data, typ)
		}
	}
	return f
}

// fence sends a ping and returns every frame that arrived before the pong.
// Events the server queued for this socket before the ping was handled
// are among them: a socket's frames go out in the order they are queued.
func (c *wseClient) fence() []apptest.Frame {
	c.t.Helper()
	c.fences++
	id := c.name + "-fence-" + strconv.Itoa(c.fences)
	c.ws.Send(c.t, realtime.CmdPing, id, nil)
	before, _ := c.until("pong "+id, func(f apptest.Frame) bool { return f.Type == realtime.EventPong && f.ID == id })
	return before
}

// none fails if a frame of one of the types arrived before a fence.
func (c *wseClient) none(types ...string) {
	c.t.Helper()
	for _, f := range c.fence() {
		if slices.Contains(types, f.Type) {
			c.t.Fatalf("%s: unexpected %s frame: %s", c.name, f.Type, f.Data)
		}
	}
}

func (c *wseClient) send(typ, id string, data any) { c.t.Helper(); c.ws.Send(c.t, typ, id, data) }

func wseTypes(fs []apptest.Frame) string {
	var ts []string
	for _, f := range fs {
		ts = append(ts, f.Type)
	}
	return "[" + strings.Join(ts, " ") + "]"
}

func wseOfType(fs []apptest.Frame, typ string) []apptest.Frame {
	var out []apptest.Frame
	for _, f := range fs {
		if f.Type == typ {
			out = append(out, f)
		}
	}
	return out
}

type wseMsg struct {
	ID         string `json:"id"`
	ChatID     string `json:"chat_id"`
	Seq        int64  `json:"seq"`
	Author     string `json:"author"`
	AuthorKind string `json:"author_kind"`
	ClientID   string `json:"client_id"`
	Content    string `json:"content"`
	Status     string `json:"status"`
}

type wseAck struct {
	ClientID  string  `json:"client_id"`
	Duplicate bool    `json:"duplicate"`
	Message   *wseMsg `json:"message"`
	Unread    *struct {
		Total int            `json:"total"`
		Chats map[string]int `json:"chats"`
	} `json:"unread"`
}

type wseErr struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Field    string `json:"field"`
	ClientID string `json:"client_id"`
	Command  string `json:"command"`
}

type wseUnread struct {
	ChatID string `json:"chat_id"`
	Count  int    `json:"count"`
	Total  int    `json:"total"`
}

type wsePresence struct {
	UserID string `json:"user_id"`
	Online bool   `json:"online"`
}

type wseResumed struct {
	Chats     map[string]int64 `json:"chats"`
	Truncated []string         `json:"truncated"`
	Gone      []string         `json:"gone"`
	Unread    struct {
		Total int            `json:"total"`
		Chats map[string]int `json:"chats"`
	} `json:"unread"`
}

func wseMsgOf(t *testing.T, f apptest.Frame) wseMsg {
	t.Helper()
	if f.Type != realtime.EventChatMessage {
		t.Fatalf("frame %s, want chat_message", f.Type)
	}
	var m wseMsg
	f.Decode(t, &m)
	return m
}

// wseSeqs returns the seqs of the chat's chat_message frames in fs.
func wseSeqs(t *testing.T, fs []apptest.Frame, chatID string) []int64 {
	t.Helper()
	var out []int64
	for _, f := range wseOfType(fs, realtime.EventChatMessage) {
		if m := wseMsgOf(t, f); m.ChatID == chatID {
			out = append(out, m.Seq)
		}
	}
	return out
}

func wseRange(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func wseChat(t *testing.T, s *apptest.Server, token, title string, emails ...string) string {
	t.Helper()
	body := map[string]any{"title": title}
	if len(emails) > 0 {
		body["participants"] = emails
	}
	r := s.Do(t, "POST", "/api/v1/chats", token, body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create chat: %d %s", r.Status, r.Body)
	}
	var c struct{ ID string }
	r.JSON(t, &c)
	return c.ID
}

// wsePost sends a message through REST; it does not touch t, so a
// goroutine may call it.
func wsePost(s *apptest.Server, token, chatID, content, clientID string) (int, []byte, error) {
	b, _ := json.Marshal(map[string]string{"content": content, "client_id": clientID})
	req, err := http.NewRequest("POST", s.URL+"/api/v1/chats/"+chatID+"/messages", bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

func wseSend(t *testing.T, s *apptest.Server, token, chatID, content string) wseMsg {
	t.Helper()
	status, body, err := wsePost(s, token, chatID, content, "")
	if err != nil || status != http.StatusCreated {
		t.Fatalf("send %q: %d %s %v", content, status, body, err)
	}
	var m wseMsg
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func wseMust(t *testing.T, r *apptest.Response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
}

// wseMetric reads a counter or gauge from the app's registry (summed over
// labels).
func wseMetric(t *testing.T, s *apptest.Server, name string) float64 {
	t.Helper()
	mfs, err := s.App.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v
}

func wseEventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// 1. chat_message reaches every session of every member; send_message acks,
// retries are idempotent, bad sends are errors that leave the socket open.
func TestWSEventsChatMessage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		chatID := wseChat(t, s, alice.AccessToken, "team", "bob@example.com")

		a1, _ := wseConnect(t, s, alice.AccessToken, "", "alice1")
		a2, _ := wseConnect(t, s, alice.AccessToken, "", "alice2")
		b1, _ := wseConnect(t, s, bob.AccessToken, "", "bob1")
		c1, _ := wseConnect(t, s, carol.AccessToken, "", "carol1")
		everyone := []*wseClient{a1, a2, b1}

		// Send over the socket: the ack echoes the id and carries the
		// stored message; every session of every member gets it once.
		a1.send(realtime.CmdSendMessage, "s1", map[string]any{"chat_id": chatID, "content": "hello", "client_id": "k1"})
		beforeAck, ackF := a1.until("ack", func(f apptest.Frame) bool { return f.Type == realtime.EventAck || f.Type == realtime.EventError })
		if ackF.Type != realtime.EventAck || ackF.ID != "s1" {
			t.Fatalf("ack id %q, want s1", ackF.ID)
		}
		var ack wseAck
		ackF.Decode(t, &ack)
		if ack.ClientID != "k1" || ack.Duplicate || ack.Message == nil {
			t.Fatalf("ack %s", ackF.Data)
		}
		want := wseMsg{ID: ack.Message.ID, ChatID: chatID, Seq: 1, Author: alice.User.ID, AuthorKind: "user",
			ClientID: "k1", Content: "hello", Status: "complete"}
		if *ack.Message != want {
			t.Fatalf("acked message %+v, want %+v", *ack.Message, want)
		}
		for _, c := range everyone {
			fs := c.fence()
			if c == a1 {
				fs = append(beforeAck, fs...) // the sender's socket may get its message before the ack
			}
			msgs := wseOfType(fs, realtime.EventChatMessage)
			if len(msgs) != 1 {
				t.Fatalf("%s: %d chat_message frames, want 1", c.name, len(msgs))
			}
			if got := wseMsgOf(t, msgs[0]); got != want {
				t.Fatalf("%s: chat_message %+v, want %+v", c.name, got, want)
			}
		}
		c1.none(realtime.EventChatMessage) // not a member

		// A retry acks the same message as a duplicate and sends nothing.
		a1.send(realtime.CmdSendMessage, "s2", map[string]any{"chat_id": chatID, "content": "hello", "client_id": "k1"})
		ackF = a1.expect(realtime.EventAck, realtime.EventError, realtime.EventChatMessage)
		ack = wseAck{}
		ackF.Decode(t, &ack)
		if ackF.ID != "s2" || !ack.Duplicate || ack.ClientID != "k1" || ack.Message == nil || *ack.Message != want {
			t.Fatalf("retry ack %s %s", ackF.ID, ackF.Data)
		}
		for _, c := range everyone {
			c.none(realtime.EventChatMessage)
		}

		// Bad sends: an error naming the command id and client_id; the
		// socket stays open and nothing is delivered.
		bad := []struct {
			data      map[string]any
			code      string
			clientID  string
			fromCarol bool
		}{
			{map[string]any{"chat_id": chatID, "content": "  \n ", "client_id": "k2"}, "validation.failed", "k2", false},
			{map[string]any{"chat_id": "0190a0a0-0000-7000-8000-000000000000", "content": "x", "client_id": "k3"}, "chat.notFound", "k3", false},
			{map[string]any{"chat_id": "not-an-id", "content": "x", "client_id": "k4"}, "chat.notFound", "k4", false},
			{map[string]any{"chat_id": chatID, "content": "other", "client_id": "k1"}, "message.idempotencyConflict", "k1", false},
			{map[string]any{"chat_id": chatID, "content": "x", "client_id": "k5"}, "chat.notFound", "k5", true},
		}
		for i, b := range bad {
			c := a1
			if b.fromCarol {
				c = c1
			}
			id := "bad" + strconv.Itoa(i)
			c.send(realtime.CmdSendMessage, id, b.data)
			f := c.expect(realtime.EventError, realtime.EventAck, realtime.EventChatMessage)
			var ed wseErr
			f.Decode(t, &ed)
			if f.ID != id || ed.Code != b.code || ed.ClientID != b.clientID || ed.Command != realtime.CmdSendMessage {
				t.Fatalf("bad send %v: error %s %s; want id %s code %s client_id %s", b.data, f.ID, f.Data, id, b.code, b.clientID)
			}
			c.none(realtime.EventChatMessage) // and the socket still answers
		}
		for _, c := range everyone {
			c.none(realtime.EventChatMessage)
		}

		// REST sends produce the same events.
		m := wseSend(t, s, bob.AccessToken, chatID, "from rest")
		want = wseMsg{ID: m.ID, ChatID: chatID, Seq: 2, Author: bob.User.ID, AuthorKind: "user", Content: "from rest", Status: "complete"}
		for _, c := range everyone {
			msgs := wseOfType(c.fence(), realtime.EventChatMessage)
			if len(msgs) != 1 || wseMsgOf(t, msgs[0]) != want {
				t.Fatalf("%s: REST send delivered %d frames %v, want one %+v", c.name, len(msgs), msgs, want)
			}
		}
		// A REST retry is not delivered again.
		if status, body, err := wsePost(s, bob.AccessToken, chatID, "again", "r1"); status != http.StatusCreated {
			t.Fatalf("send: %d %s %v", status, body, err)
		}
		if status, body, err := wsePost(s, bob.AccessToken, chatID, "again", "r1"); status != http.StatusOK {
			t.Fatalf("retry: %d %s %v", status, body, err)
		}
		for _, c := range everyone {
			if got := wseSeqs(t, c.fence(), chatID); !slices.Equal(got, []int64{3}) {
				t.Fatalf("%s: after a send and its REST retry got seqs %v, want [3]", c.name, got)
			}
		}
		c1.none(realtime.EventChatMessage)
	})
}

// 2. unread_count follows every change, exactly, across several chats.
func TestWSEventsUnreadCount(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		x := wseChat(t, s, alice.AccessToken, "x", "bob@example.com", "carol@example.com")
		y := wseChat(t, s, alice.AccessToken, "y", "bob@example.com", "carol@example.com")

		a1, _ := wseConnect(t, s, alice.AccessToken, "", "alice1")
		b1, _ := wseConnect(t, s, bob.AccessToken, "", "bob1")
		b2, _ := wseConnect(t, s, bob.AccessToken, "", "bob2")
		bobs := []*wseClient{b1, b2}

		var early []apptest.Frame // frames that came before an ack, for the next counts(b1)
		counts := func(c *wseClient) []wseUnread {
			var out []wseUnread
			fs := c.fence()
			if c == b1 || c == b2 {
				fs, early = append(early, fs...), nil
			}
			for _, f := range wseOfType(fs, realtime.EventUnreadCount) {
				var u wseUnread
				f.Decode(t, &u)
				out = append(out, u)
			}
			return out
		}
		wantCounts := func(step string, cs []*wseClient, want ...wseUnread) {
			t.Helper()
			for _, c := range cs {
				if got := counts(c); !slices.Equal(got, want) {
					t.Fatalf("%s: %s got unread_count %+v, want %+v", step, c.name, got, want)
				}
			}
		}

		wseSend(t, s, alice.AccessToken, x, "x1")
		wseSend(t, s, alice.AccessToken, x, "x2")
		wseSend(t, s, alice.AccessToken, y, "y1")
		wantCounts("new messages", bobs, wseUnread{x, 1, 1}, wseUnread{x, 2, 2}, wseUnread{y, 1, 3})
		wantCounts("own messages", []*wseClient{a1}) // alice's counts did not change

		// Read in one tab (command): both tabs hear it.
		b1.send(realtime.CmdRead, "r1", map[string]any{"chat_id": x, "seq": 2})
		early, ackF := b1.until("ack", func(f apptest.Frame) bool { return f.Type == realtime.EventAck || f.Type == realtime.EventError })
		var ack wseAck
		ackF.Decode(t, &ack)
		if ackF.ID != "r1" || ack.Unread == nil || ack.Unread.Total != 1 || ack.Unread.Chats[x] != 0 || ack.Unread.Chats[y] != 1 {
			t.Fatalf("read ack %s %s", ackF.ID, ackF.Data)
		}
		wantCounts("read by command", bobs, wseUnread{x, 0, 1})

		// Read through REST: the sockets hear it too.
		wseMust(t, s.Do(t, "POST", "/api/v1/chats/"+y+"/read", bob.AccessToken, nil), http.StatusOK)
		wantCounts("read by REST", bobs, wseUnread{y, 0, 0})

		// Partial reads leave the rest counted.
		for i := 3; i <= 5; i++ {
			wseSend(t, s, alice.AccessToken, x, "x"+strconv.Itoa(i))
		}
		wseSend(t, s, alice.AccessToken, y, "y2")
		wantCounts("more messages", bobs, wseUnread{x, 1, 1}, wseUnread{x, 2, 2}, wseUnread{x, 3, 3}, wseUnread{y, 1, 4})
		b2.send(realtime.CmdRead, "r2", map[string]any{"chat_id": x, "seq": 4})
		early, ackF = b2.until("ack", func(f apptest.Frame) bool { return f.Type == realtime.EventAck || f.Type == realtime.EventError })
		if ackF.Type != realtime.EventAck {
			t.Fatalf("read: %s", ackF.Data)
		}
		wantCounts("partial read", []*wseClient{b2, b1}, wseUnread{x, 1, 2})
		wseMust(t, s.Do(t, "POST", "/api/v1/chats/"+x+"/read", bob.AccessToken, map[string]any{"seq": 5}), http.StatusOK)
		wantCounts("partial REST read", bobs, wseUnread{x, 0, 1})

		// Bob writes: alice's count moves, bob's does not.
		wseSend(t, s, bob.AccessToken, x, "from bob")
		wantCounts("bob's message, to alice", []*wseClient{a1}, wseUnread{x, 1, 1})
		wantCounts("bob's message, to bob", bobs)

		// The REST view agrees with what the sockets said last.
		var u struct {
			Total int            `json:"total"`
			Chats map[string]int `json:"chats"`
		}
		s.Do(t, "GET", "/api/v1/me/unread", bob.AccessToken, nil).JSON(t, &u)
		if u.Total != 1 || u.Chats[y] != 1 || u.Chats[x] != 0 {
			t.Fatalf("GET /me/unread: %+v", u)
		}

		// Concurrent senders in both chats: the last count each socket
		// hears for each chat, and the last total, are the true ones.
		const perSender = 10
		errs := make(chan error, 4)
		for _, w := range []struct{ token, chat string }{{alice.AccessToken, x}, {alice.AccessToken, y}, {carol.AccessToken, x}, {carol.AccessToken, y}} {
			go func() {
				for i := range perSender {
					if status, body, err := wsePost(s, w.token, w.chat, "busy "+strconv.Itoa(i), ""); status != http.StatusCreated {
						errs <- fmt.Errorf("send: %d %s %v", status, body, err)
						return
					}
				}
				errs <- nil
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		want := map[string]int{x: 2 * perSender, y: 1 + 2*perSender}
		for _, c := range bobs {
			got := counts(c)
			last := map[string]int{}
			for _, u := range got {
				last[u.ChatID] = u.Count
			}
			// At most one frame per message: a change that arrives after a
			// newer one changes no count and is not sent.
			if len(got) == 0 || len(got) > 4*perSender || last[x] != want[x] || last[y] != want[y] || got[len(got)-1].Total != want[x]+want[y] {
				t.Fatalf("%s after concurrent sends: %d unread_count frames, last counts %v, last total %d; want up to %d frames, %v, total %d",
					c.name, len(got), last, got[len(got)-1].Total, 4*perSender, want, want[x]+want[y])
			}
		}
		s.Do(t, "GET", "/api/v1/me/unread", bob.AccessToken, nil).JSON(t, &u)
		if u.Total != want[x]+want[y] || u.Chats[x] != want[x] || u.Chats[y] != want[y] {
			t.Fatalf("GET /me/unread after concurrent sends: %+v, want %v", u, want)
		}
	})
}

// 3. presence: online at once, offline only after the grace period, no
// flapping on a quick reconnect, and a new socket learns who is online.
func TestWSEventsPresence(t *testing.T) {
	const grace = 500 * time.Millisecond
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e, apptest.WithHub(func(o *realtime.Options) { o.PresenceGrace = grace }))
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com") // shares no chat with alice
		wseChat(t, s, alice.AccessToken, "ab", "bob@example.com")
		wseChat(t, s, carol.AccessToken, "alone")

		presence := func(c *wseClient) []wsePresence {
			var out []wsePresence
			for _, f := range wseOfType(c.fence(), realtime.EventPresence) {
				var p wsePresence
				f.Decode(t, &p)
				out = append(out, p)
			}
			return out
		}

		// A new socket hears who is online after its hello, from the
		// welcome, which may still be running when a first command is
		// answered: wait for the frame, then check nothing else came.
		wantOnline := func(c *wseClient, userID string) {
			t.Helper()
			before, f := c.until("presence", func(f apptest.Frame) bool { return f.Type == realtime.EventPresence })
			var p wsePresence
			f.Decode(t, &p)
			if p != (wsePresence{userID, true}) || len(wseOfType(before, realtime.EventPresence)) > 0 {
				t.Fatalf("%s: presence %+v, want only %s online", c.name, p, userID)
			}
			if got := presence(c); len(got) != 0 {
				t.Fatalf("%s: more presence %+v", c.name, got)
			}
		}

		b, hello := wseConnect(t, s, bob.AccessToken, "", "bob")
		var hd map[string]json.RawMessage
		hello.Decode(t, &hd)
		for k := range hd {
			if strings.Contains(k, "presence") || strings.Contains(k, "online") || strings.Contains(k, "contacts") {
				t.Fatalf("hello lists presence (%s): %s", k, hello.Data)
			}
		}
		if got := presence(b); len(got) != 0 {
			t.Fatalf("bob, nobody online yet: presence %+v", got)
		}
		c, _ := wseConnect(t, s, carol.AccessToken, "", "carol")

		// Alice connects: bob hears it; alice's new socket hears that bob
		// is online; carol hears nothing.
		a, _ := wseConnect(t, s, alice.AccessToken, "", "alice")
		if got, want := presence(b), []wsePresence{{alice.User.ID, true}}; !slices.Equal(got, want) {
			t.Fatalf("bob after alice connected: %+v, want %+v", got, want)
		}
		wantOnline(a, bob.User.ID)
		if got := presence(c); len(got) != 0 {
			t.Fatalf("carol: %+v", got)
		}

		// A second tab, closed again: no presence change at all.
		a2, _ := wseConnect(t, s, alice.AccessToken, "", "alice2")
		a2.ws.Conn.Close()
		wseEventually(t, "second tab gone", 2*time.Second, func() bool { return s.App.Hub.Connections() == 3 })

		// Alice goes: offline comes after the grace period, not before.
		a.ws.Conn.Close()
		gone := time.Now()
		time.Sleep(grace / 2)
		if got := presence(b); len(got) != 0 {
			t.Fatalf("bob, within the grace period: %+v", got)
		}
		f := b.expect(realtime.EventPresence)
		elapsed := time.Since(gone)
		var p wsePresence
		f.Decode(t, &p)
		if p != (wsePresence{alice.User.ID, false}) || elapsed < grace {
			t.Fatalf("bob: %+v after %v, want alice offline after at least %v", p, elapsed, grace)
		}
		t.Logf("offline announced %v after the socket closed (grace %v)", elapsed.Round(time.Millisecond), grace)

		// Back: online again.
		a, _ = wseConnect(t, s, alice.AccessToken, "", "alice")
		if got, want := presence(b), []wsePresence{{alice.User.ID, true}}; !slices.Equal(got, want) {
			t.Fatalf("bob after alice came back: %+v, want %+v", got, want)
		}

		// Abrupt loss and a quick reconnect within the grace period: no
		// offline, no online.
		a.ws.Conn.UnderlyingConn().Close()
		wseEventually(t, "alice's socket gone", 2*time.Second, func() bool { return s.App.Hub.Connections() == 2 })
		time.Sleep(grace / 10)
		a, _ = wseConnect(t, s, alice.AccessToken, "", "alice")
		time.Sleep(grace + grace/2)
		if got := presence(b); len(got) != 0 {
			t.Fatalf("bob, after a reconnect within the grace period: %+v", got)
		}
		wantOnline(a, bob.User.ID)
		if got := presence(c); len(got) != 0 {
			t.Fatalf("carol: %+v", got)
		}
	})
}

// 4. typing goes to the other members, at most once a second per chat.
func TestWSEventsTyping(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		dave := s.Register(t, "dave@example.com")
		x := wseChat(t, s, alice.AccessToken, "x", "bob@example.com", "carol@example.com")
		y := wseChat(t, s, alice.AccessToken, "y", "bob@example.com")

		a, _ := wseConnect(t, s, alice.AccessToken, "", "alice")
		a2, _ := wseConnect(t, s, alice.AccessToken, "", "alice2")
		b, _ := wseConnect(t, s, bob.AccessToken, "", "bob")
		c, _ := wseConnect(t, s, carol.AccessToken, "", "carol")
		d, _ := wseConnect(t, s, dave.AccessToken, "", "dave")

		type typing struct {
			ChatID    string `json:"chat_id"`
			UserID    string `json:"user_id"`
			ExpiresMS int    `json:"expires_in_ms"`
		}
		typings := func(cl *wseClient) []typing {
			var out []typing
			for _, f := range wseOfType(cl.fence(), realtime.EventTyping) {
				var ty typing
				f.Decode(t, &ty)
				out = append(out, ty)
			}
			return out
		}

		// Typing twice at once: one event; a command gets no answer.
		a.send(realtime.CmdTyping, "t1", map[string]any{"chat_id": x})
		a.send(realtime.CmdTyping, "t2", map[string]any{"chat_id": x})
		for _, f := range a.fence() {
			if f.Type == realtime.EventError || f.Type == realtime.EventTyping {
				t.Fatalf("alice got %s %s", f.Type, f.Data)
			}
		}
		want := []typing{{x, alice.User.ID, 5000}}
		for _, cl := range []*wseClient{b, c} {
			if got := typings(cl); !slices.Equal(got, want) {
				t.Fatalf("%s: typing %+v, want %+v", cl.name, got, want)
			}
		}
		for _, cl := range []*wseClient{a2, d} {
			if got := typings(cl); len(got) != 0 {
				t.Fatalf("%s: typing %+v, want none", cl.name, got)
			}
		}
		start := time.Now()

		// Another chat is throttled on its own.
		a.send(realtime.CmdTyping, "t3", map[string]any{"chat_id": y})
		a.fence()
		if got := typings(b); !slices.Equal(got, []typing{{y, alice.User.ID, 5000}}) {
			t.Fatalf("bob, typing in y: %+v", got)
		}
		if got := typings(c); len(got) != 0 {
			t.Fatalf("carol, not in y: %+v", got)
		}

		// Bob typing reaches alice's every socket and carol.
		b.send(realtime.CmdTyping, "t4", map[string]any{"chat_id": x})
		b.fence()
		for _, cl := range []*wseClient{a, a2, c} {
			if got := typings(cl); !slices.Equal(got, []typing{{x, bob.User.ID, 5000}}) {
				t.Fatalf("%s: bob typing: %+v", cl.name, got)
			}
		}

		// After a second, alice's typing goes out again.
		time.Sleep(time.Second + 50*time.Millisecond - time.Since(start))
		a.send(realtime.CmdTyping, "t5", map[string]any{"chat_id": x})
		a.fence()
		for _, cl := range []*wseClient{b, c} {
			if got := typings(cl); !slices.Equal(got, want) {
				t.Fatalf("%s, a second later: %+v, want %+v", cl.name, got, want)
			}
		}

		// A non-member: chat.notFound, and nobody hears anything.
		d.send(realtime.CmdTyping, "t6", map[string]any{"chat_id": x})
		f := d.expect(realtime.EventError)
		var ed wseErr
		f.Decode(t, &ed)
		if f.ID != "t6" || ed.Code != "chat.notFound" || ed.Command != realtime.CmdTyping {
			t.Fatalf("dave typing: %s %s", f.ID, f.Data)
		}
		for _, cl := range []*wseClient{a, b, c} {
			if got := typings(cl); len(got) != 0 {
				t.Fatalf("%s: typing %+v after a non-member's typing", cl.name, got)
			}
		}
	})
}

// 5. chat_updated and chat_removed; removal ends delivery at once.
func TestWSEventsChatChanges(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		dave := s.Register(t, "dave@example.com")
		x := wseChat(t, s, alice.AccessToken, "x", "bob@example.com")

		a, _ := wseConnect(t, s, alice.AccessToken, "", "alice")
		b, _ := wseConnect(t, s, bob.AccessToken, "", "bob")
		c, _ := wseConnect(t, s, carol.AccessToken, "", "carol")
		d, _ := wseConnect(t, s, dave.AccessToken, "", "dave")
		all := []*wseClient{a, b, c, d}

		type change struct{ typ, chatID string }
		changes := func(cl *wseClient) []change {
			var out []change
			for _, f := range cl.fence() {
				if f.Type == realtime.EventChatUpdated || f.Type == realtime.EventChatRemoved {
					var r struct {
						ChatID string `json:"chat_id"`
					}
					f.Decode(t, &r)
					out = append(out, change{f.Type, r.ChatID})
				}
			}
			return out
		}
		want := func(step string, m map[*wseClient][]change) {
			t.Helper()
			for _, cl := range all {
				if got := changes(cl); !slices.Equal(got, m[cl]) {
					t.Fatalf("%s: %s got %v, want %v", step, cl.name, got, m[cl])
				}
			}
		}
		upd := []change{{realtime.EventChatUpdated, x}}
		rem := []change{{realtime.EventChatRemoved, x}}

		wseMust(t, s.Do(t, "PATCH", "/api/v1/chats/"+x, bob.AccessToken, map[string]any{"title": "renamed"}), http.StatusOK)
		want("rename", map[*wseClient][]change{a: upd, b: upd})

		wseMust(t, s.Do(t, "POST", "/api/v1/chats/"+x+"/participants", alice.AccessToken, map[string]any{"email": "carol@example.com"}), http.StatusOK)
		want("add carol", map[*wseClient][]change{a: upd, b: upd, c: upd})

		// Carol now gets the chat's messages.
		wseSend(t, s, alice.AccessToken, x, "hi carol")
		for _, cl := range []*wseClient{a, b, c} {
			if got := wseSeqs(t, cl.fence(), x); !slices.Equal(got, []int64{1}) {
				t.Fatalf("%s: seqs %v, want [1]", cl.name, got)
			}
		}

		wseMust(t, s.Do(t, "DELETE", "/api/v1/chats/"+x+"/participants/"+bob.User.ID, alice.AccessToken, nil), http.StatusNoContent)
		want("remove bob", map[*wseClient][]change{a: upd, b: rem, c: upd})

		// Bob gets nothing of the chat from then on, not even typing.
		wseSend(t, s, alice.AccessToken, x, "bob is gone")
		c.send(realtime.CmdTyping, "t", map[string]any{"chat_id": x})
		carolFrames := c.fence()
		b.none(realtime.EventChatMessage, realtime.EventTyping, realtime.EventUnreadCount)
		if got := wseSeqs(t, carolFrames, x); !slices.Equal(got, []int64{2}) {
			t.Fatalf("carol: seqs %v, want [2]", got)
		}
		if got := wseSeqs(t, a.fence(), x); !slices.Equal(got, []int64{2}) {
			t.Fatalf("alice: seqs %v, want [2]", got)
		}
		b.send(realtime.CmdSendMessage, "s", map[string]any{"chat_id": x, "content": "let me in", "client_id": "k"})
		var ed wseErr
		b.expect(realtime.EventError, realtime.EventAck).Decode(t, &ed)
		if ed.Code != "chat.notFound" {
			t.Fatalf("bob sends to the chat he left: %+v", ed)
		}

		// Carol leaves.
		wseMust(t, s.Do(t, "DELETE", "/api/v1/chats/"+x+"/participants/me", carol.AccessToken, nil), http.StatusNoContent)
		want("carol leaves", map[*wseClient][]change{a: upd, c: rem})

		// Dave joins, then the chat is deleted: everyone in it hears.
		wseMust(t, s.Do(t, "POST", "/api/v1/chats/"+x+"/participants", alice.AccessToken, map[string]any{"email": "dave@example.com"}), http.StatusOK)
		want("add dave", map[*wseClient][]change{a: upd, d: upd})
		wseMust(t, s.Do(t, "DELETE", "/api/v1/chats/"+x, alice.AccessToken, nil), http.StatusNoContent)
		want("delete", map[*wseClient][]change{a: rem, d: rem})
	})
}

// 6. Resume after a lost connection while messages keep coming: every seq
// arrives exactly once, in order, across the gap and into live delivery.
func TestWSEventsResumeUnderLoad(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		x := wseChat(t, s, alice.AccessToken, "x", "bob@example.com")

		b1, _ := wseConnect(t, s, bob.AccessToken, "", "bob1")

		var sent atomic.Int64
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			for i := 1; ; i++ {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				status, body, err := wsePost(s, alice.AccessToken, x, "m"+strconv.Itoa(i), "k"+strconv.Itoa(i))
				if err != nil || status != http.StatusCreated {
					done <- fmt.Errorf("send %d: %d %s %v", i, status, body, err)
					return
				}
				sent.Store(int64(i))
				time.Sleep(2 * time.Millisecond)
			}
		}()
		stopped := false
		stopSender := func() {
			if !stopped {
				stopped = true
				close(stop)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
		}
		defer stopSender()

		// Live for a while, then the connection dies without a close.
		seen, _ := b1.until("seq 15", func(f apptest.Frame) bool {
			return f.Type == realtime.EventChatMessage && wseMsgOf(t, f).Seq >= 15
		})
		b1.ws.Conn.UnderlyingConn().Close()
		wseEventually(t, "old socket read error", 2*time.Second, func() bool { return b1.ws.Err() != nil })
		first := slices.Concat(wseSeqs(t, seen, x), []int64{15}, wseSeqs(t, append(b1.pending, b1.ws.Frames()...), x))
		lastSeen := first[len(first)-1]
		if !slices.Equal(first, wseRange(1, lastSeen)) {
			t.Fatalf("first connection: seqs %v", first)
		}

		// Messages keep coming meanwhile.
		wseEventually(t, "messages sent while disconnected", 5*time.Second, func() bool { return sent.Load() >= lastSeen+10 })

		b2, hello := wseConnect(t, s, bob.AccessToken, "resume=1", "bob2")
		var hd struct {
			Holding bool `json:"holding"`
		}
		hello.Decode(t, &hd)
		if !hd.Holding {
			t.Fatalf("hello with ?resume=1: %s", hello.Data)
		}
		time.Sleep(30 * time.Millisecond) // live events pile up while held
		b2.send(realtime.CmdResume, "r1", map[string]any{"chats": map[string]int64{x: lastSeen}})
		before, resumedF := b2.until("resumed", func(f apptest.Frame) bool { return f.Type == realtime.EventResumed })
		if resumedF.ID != "r1" {
			t.Fatalf("resumed id %q", resumedF.ID)
		}
		var res wseResumed
		resumedF.Decode(t, &res)
		replayed := wseSeqs(t, before, x)
		if len(replayed) == 0 || res.Chats[x] <= lastSeen || res.Chats[x] > replayed[len(replayed)-1] ||
			len(res.Truncated) != 0 || len(res.Gone) != 0 {
			t.Fatalf("resumed %s after seqs %v", resumedF.Data, replayed)
		}

		// Live delivery goes on after the resume.
		top := replayed[len(replayed)-1]
		after, liveF := b2.until("live seq", func(f apptest.Frame) bool {
			return f.Type == realtime.EventChatMessage && wseMsgOf(t, f).Seq >= top+20
		})
		liveSeq := wseMsgOf(t, liveF).Seq
		stopSender()
		total := sent.Load()
		var rest []apptest.Frame
		if liveSeq < total {
			r, last := b2.until("last seq", func(f apptest.Frame) bool {
				return f.Type == realtime.EventChatMessage && wseMsgOf(t, f).Seq >= total
			})
			rest = append(r, last)
		}
		rest = append(rest, b2.fence()...)
		got := slices.Concat(replayed, wseSeqs(t, after, x), []int64{liveSeq}, wseSeqs(t, rest, x))
		if !slices.Equal(got, wseRange(lastSeen+1, total)) {
			t.Fatalf("after resume from %d: seqs %v, want %d..%d once each in order", lastSeen, got, lastSeen+1, total)
		}
		t.Logf("%d sent; first connection saw 1..%d; resume replayed %d (%d..%d, resumed.chats=%d); %d live after",
			total, lastSeen, len(replayed), replayed[0], top, res.Chats[x], total-top)
	})
}

// 6b. Resume variants: everything (seq 0), since a time, a chat the user
// left, an unknown chat, and truncation past ResumeLimit.
func TestWSEventsResumeVariants(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e, apptest.WithHub(func(o *realtime.Options) { o.ResumeLimit = 3 }))
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		x := wseChat(t, s, alice.AccessToken, "x", "bob@example.com")
		y := wseChat(t, s, alice.AccessToken, "y", "bob@example.com")
		z := wseChat(t, s, alice.AccessToken, "z", "bob@example.com")
		for _, c := range []string{x, x, y, z} {
			wseSend(t, s, alice.AccessToken, c, "before")
		}

		n := 0
		resume := func(data any) ([]apptest.Frame, wseResumed) {
			t.Helper()
			n++
			c, _ := wseConnect(t, s, bob.AccessToken, "resume=1", "bob"+strconv.Itoa(n))
			defer c.ws.Conn.Close()
			c.send(realtime.CmdResume, "r", data)
			before, f := c.until("resumed", func(f apptest.Frame) bool {
				return f.Type == realtime.EventResumed || f.Type == realtime.EventError
			})
			if f.Type != realtime.EventResumed {
				t.Fatalf("resume %v: %s %s", data, f.Type, f.Data)
			}
			var r wseResumed
			f.Decode(t, &r)
			return append(before, c.fence()...), r
		}
		check := func(name string, r wseResumed, chats map[string]int64, truncated, gone []string) {
			t.Helper()
			sort.Strings(r.Truncated)
			sort.Strings(r.Gone)
			sort.Strings(truncated)
			sort.Strings(gone)
			if len(r.Chats) != len(chats) || !slices.Equal(r.Truncated, truncated) || !slices.Equal(r.Gone, gone) {
				t.Fatalf("%s: resumed %+v, want chats %v truncated %v gone %v", name, r, chats, truncated, gone)
			}
			for k, v := range chats {
				if r.Chats[k] != v {
					t.Fatalf("%s: resumed chats %v, want %v", name, r.Chats, chats)
				}
			}
		}

		// seq 0: everything (within the limit).
		fs, r := resume(map[string]any{"chats": map[string]int64{x: 0}})
		if got := wseSeqs(t, fs, x); !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("resume x from 0: seqs %v", got)
		}
		check("from 0", r, map[string]int64{x: 2}, nil, nil)
		if r.Unread.Total != 4 || r.Unread.Chats[x] != 2 {
			t.Fatalf("resumed unread %+v", r.Unread)
		}
		// Up to date: nothing replayed.
		fs, r = resume(map[string]any{"chats": map[string]int64{x: 2, y: 1}})
		if got := wseOfType(fs, realtime.EventChatMessage); len(got) != 0 {
			t.Fatalf("up to date: %d messages replayed", len(got))
		}
		check("up to date", r, map[string]int64{x: 2, y: 1}, nil, nil)

		// More than ResumeLimit missed: the first ResumeLimit, and the chat
		// is listed as truncated.
		for range 5 {
			wseSend(t, s, alice.AccessToken, x, "more")
		}
		fs, r = resume(map[string]any{"chats": map[string]int64{x: 2, y: 1}})
		if got := wseSeqs(t, fs, x); !slices.Equal(got, []int64{3, 4, 5}) {
			t.Fatalf("truncated resume: seqs %v, want [3 4 5]", got)
		}
		check("truncated", r, map[string]int64{x: 5, y: 1}, []string{x}, nil)
		fs, r = resume(map[string]any{"chats": map[string]int64{x: 5}})
		if got := wseSeqs(t, fs, x); !slices.Equal(got, []int64{6, 7}) {
			t.Fatalf("resume after truncation: seqs %v, want [6 7]", got)
		}
		check("after truncation", r, map[string]int64{x: 7}, nil, nil)

		// A chat bob left, and one that never existed, are gone.
		wseMust(t, s.Do(t, "DELETE", "/api/v1/chats/"+z+"/participants/me", bob.AccessToken, nil), http.StatusNoContent)
		unknown := "0190a0a0-0000-7000-8000-000000000000"
		fs, r = resume(map[string]any{"chats": map[string]int64{z: 0, unknown: 3, x: 7}})
		if got := wseOfType(fs, realtime.EventChatMessage); len(got) != 0 {
			t.Fatalf("gone chats: %d messages replayed", len(got))
		}
		check("gone", r, map[string]int64{x: 7}, nil, []string{z, unknown})

		// since: every chat with messages after the time, from then on.
		time.Sleep(20 * time.Millisecond)
		since := time.Now().UTC()
		time.Sleep(20 * time.Millisecond)
		wseSend(t, s, alice.AccessToken, y, "y after") // y seq 2
		wseSend(t, s, alice.AccessToken, y, "y after") // y seq 3
		fs, r = resume(map[string]any{"since": since})
		if got := wseSeqs(t, fs, y); !slices.Equal(got, []int64{2, 3}) {
			t.Fatalf("resume since: y seqs %v, want [2 3]", got)
		}
		if got := wseSeqs(t, fs, x); len(got) != 0 {
			t.Fatalf("resume since: x seqs %v, want none (no activity since)", got)
		}
		check("since", r, map[string]int64{y: 3}, nil, nil)
		// The same time in another zone means the same instant.
		fs, r = resume(map[string]any{"since": since.In(time.FixedZone("X", -5*3600))})
		if got := wseSeqs(t, fs, y); !slices.Equal(got, []int64{2, 3}) {
			t.Fatalf("resume since (UTC-5): y seqs %v, want [2 3]", got)
		}
		check("since UTC-5", r, map[string]int64{y: 3}, nil, nil)
		// since together with chats: listed chats go by seq.
		fs, r = resume(map[string]any{"since": since, "chats": map[string]int64{x: 6, y: 2}})
		if got := wseSeqs(t, fs, x); !slices.Equal(got, []int64{7}) {
			t.Fatalf("resume since+chats: x seqs %v, want [7]", got)
		}
		if got := wseSeqs(t, fs, y); !slices.Equal(got, []int64{3}) {
			t.Fatalf("resume since+chats: y seqs %v, want [3]", got)
		}
		check("since+chats", r, map[string]int64{x: 7, y: 3}, nil, nil)

		// A bad resume is an error; the socket stays open.
		c, _ := wseConnect(t, s, bob.AccessToken, "resume=1", "bad")
		c.send(realtime.CmdResume, "rb", map[string]any{"chats": map[string]int64{x: 1}, "extra": true})
		var ed wseErr
		f := c.expect(realtime.EventError, realtime.EventResumed)
		f.Decode(t, &ed)
		if f.ID != "rb" || ed.Code != "webSocket.badCommand" {
			t.Fatalf("bad resume: %s %s", f.ID, f.Data)
		}
		c.fence()
	})
}

// 7. A client that stops reading is dropped; the others in the chat keep
// getting every message without delay.
func TestWSEventsSlowConsumer(t *testing.T) {
	const (
		queue    = 16
		filler   = 1 << 20 // big messages that fill the stalled socket's buffers
		fillers  = 6       // more than the loopback socket buffers hold (about 4 MiB)
		baseline = 10
		maxSends = 100
		// Long enough for the messages below to overflow the stalled
		// socket's queue while its write is blocked, even on a busy machine.
		writeWait = 4 * time.Second
	)
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e,
			apptest.WithConfig(func(c *config.Config) {
				c.WSQueueSize, c.MaxMessageBytes, c.MaxBodyBytes = queue, filler, 2*filler
			}),
			apptest.WithHub(func(o *realtime.Options) { o.WriteWait = writeWait }))
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		dave := s.Register(t, "dave@example.com")
		x := wseChat(t, s, alice.AccessToken, "x", "bob@example.com", "carol@example.com", "dave@example.com")
		notes := wseChat(t, s, dave.AccessToken, "dave's notes") // only dave's sockets hear of it

		a, _ := wseConnect(t, s, alice.AccessToken, "", "alice")
		b, _ := wseConnect(t, s, bob.AccessToken, "", "bob")
		c, _ := wseConnect(t, s, carol.AccessToken, "", "carol")
		fast := []*wseClient{a, b, c}
		received := map[*wseClient][]int64{}

		var seq int64
		// sendOne sends a message to x and waits until every fast client
		// has it; the latency is from the request to the last arrival.
		sendOne := func() time.Duration {
			t.Helper()
			start := time.Now()
			m := wseSend(t, s, alice.AccessToken, x, "message "+strconv.FormatInt(seq+1, 10))
			seq++
			if m.Seq != seq {
				t.Fatalf("sent seq %d, want %d", m.Seq, seq)
			}
			for _, cl := range fast {
				before, f := cl.until("seq "+strconv.FormatInt(seq, 10), func(f apptest.Frame) bool {
					return f.Type == realtime.EventChatMessage && wseMsgOf(t, f).Seq == seq
				})
				received[cl] = append(received[cl], wseSeqs(t, before, x)...)
				received[cl] = append(received[cl], wseMsgOf(t, f).Seq)
			}
			return time.Since(start)
		}
		stats := func(ds []time.Duration) string {
			s := slices.Clone(ds)
			slices.Sort(s)
			return fmt.Sprintf("n=%d p50=%v p90=%v max=%v", len(s), s[len(s)/2].Round(time.Microsecond),
				s[len(s)*9/10].Round(time.Microsecond), s[len(s)-1].Round(time.Microsecond))
		}

		var without []time.Duration
		for range baseline {
			without = append(without, sendOne())
		}

		// Dave connects and never reads. His own big messages fill the
		// socket's buffers, so the server's write to him blocks.
		stalled, _, err := websocket.DefaultDialer.Dial(s.WSURL(""), http.Header{"Authorization": {"Bearer " + dave.AccessToken}})
		if err != nil {
			t.Fatal(err)
		}
		defer stalled.Close()
		wseEventually(t, "dave connected", 2*time.Second, func() bool { return s.App.Hub.Connections() == 4 })
		big := strings.Repeat("x", filler)
		for i := range fillers {
			if status, body, err := wsePost(s, dave.AccessToken, notes, big, ""); status != http.StatusCreated {
				t.Fatalf("filler %d: %d %.200s %v", i, status, body, err)
			}
		}
		if got := wseMetric(t, s, "aichat_ws_queue_drops_total"); got != 0 {
			t.Fatalf("queue drops = %v before the chat got busy", got)
		}

		// Messages to x now pile up in dave's queue until he is dropped.
		var with []time.Duration
		for len(with) < maxSends && wseMetric(t, s, "aichat_ws_queue_drops_total") == 0 && s.App.Hub.Connections() == 4 {
			with = append(with, sendOne())
		}
		if got := wseMetric(t, s, "aichat_ws_queue_drops_total"); got != 1 || len(with) == 0 {
			t.Fatalf("queue drops = %v after %d messages to a client that does not read; %d sockets open\n%s", got, len(with),
				s.App.Hub.Connections(), grepLines(string(s.Do(t, "GET", "/metrics", "", nil).Body), "aichat_ws_disconnects"))
		}
		dropped := time.Now()
		var after []time.Duration
		for range baseline {
			after = append(after, sendOne())
		}
		// The stalled socket is gone once its blocked write times out,
		// not at the next pong timeout.
		wseEventually(t, "stalled socket closed", writeWait+2*time.Second, func() bool { return s.App.Hub.Connections() == 3 })
		t.Logf("stalled client dropped after %d messages; its socket closed %v later (write wait %v)",
			len(with), time.Since(dropped).Round(time.Millisecond), writeWait)

		for _, cl := range fast {
			cl.fence()
			if got := received[cl]; !slices.Equal(got, wseRange(1, seq)) {
				t.Fatalf("%s: seqs %v, want 1..%d", cl.name, got, seq)
			}
			cl.none(realtime.EventError)
		}
		metrics := string(s.Do(t, "GET", "/metrics", "", nil).Body)
		if !strings.Contains(metrics, "aichat_ws_queue_drops_total 1\n") || !strings.Contains(metrics, `aichat_ws_disconnects_total{reason="slow"} 1`) {
			t.Fatalf("/metrics lacks the drop:\n%s", grepLines(metrics, "aichat_ws_"))
		}
		t.Logf("fast clients' delivery latency: without a stalled client %s; with it %s; after the drop %s",
			stats(without), stats(with), stats(after))
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
