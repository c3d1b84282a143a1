package app_test

// Cluster tests: two aichat instances on one PostgreSQL schema and one Redis,
// with user A on instance 1 and user B on instance 2, checking that every
// kind of real-time event crosses between them, and that both recover by
// themselves from a Redis restart.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/realtime"
	"github.com/aichat/aichat/internal/realtime/redisbroker"
	"github.com/aichat/aichat/internal/redistest"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/gorilla/websocket"
)

// clusterWait bounds every poll of these tests; a healthy cluster answers
// in milliseconds, so only a broken one ever waits this long.
const clusterWait = 15 * time.Second

func clusterKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// startCluster starts two instances on engine e and the Redis at url (keys
// under prefix), sharing their key material. The first instance migrates
// the schema; the second must find nothing to do.
func startCluster(t *testing.T, e storetest.Engine, url, prefix string) (*apptest.Server, *apptest.Server) {
	t.Helper()
	jwt, enc, idx := "k1="+clusterKey(), "e1="+clusterKey(), "i1="+clusterKey()
	opts := []apptest.Option{
		apptest.WithRedis(url, prefix),
		apptest.WithConfig(func(c *config.Config) {
			c.JWTKeys, c.EncryptionKeys, c.IndexKeys = jwt, enc, idx
		}),
		apptest.WithHub(func(o *realtime.Options) {
			o.PresenceGrace = 150 * time.Millisecond
		}),
	}
	s1 := apptest.Start(t, e, opts...)
	s2 := apptest.Start(t, e, opts...)
	if !strings.Contains(s1.Logs(), `"migration applied"`) {
		t.Errorf("instance 1 applied no migration on a fresh schema:\n%s", s1.Logs())
	}
	if strings.Contains(s2.Logs(), `"migration applied"`) {
		t.Errorf("instance 2 applied migrations again on a migrated schema:\n%s", s2.Logs())
	}
	if strings.Contains(s1.Logs()+s2.Logs(), "generated secrets") {
		t.Error("an instance generated its own secrets although both were given keys")
	}
	b1, ok1 := s1.App.Broker.(*redisbroker.Broker)
	b2, ok2 := s2.App.Broker.(*redisbroker.Broker)
	if !ok1 || !ok2 {
		t.Fatalf("instances do not run the Redis broker: %s, %s", s1.App.Broker.Name(), s2.App.Broker.Name())
	}
	if b1.Instance() == b2.Instance() {
		t.Fatalf("both instances have the id %q", b1.Instance())
	}
	return s1, s2
}

// clusterChat registers A on instance 1 and B on instance 2, and has A
// create a group chat with B.
func clusterChat(t *testing.T, s1, s2 *apptest.Server) (a, b apptest.Session, chatID string) {
	t.Helper()
	a = s1.Register(t, "alice@example.com")
	b = s2.Register(t, "bob@example.com")
	// Tokens minted by one instance are good on the other.
	if r := s2.Do(t, "GET", "/api/v1/me", a.AccessToken, nil); r.Status != http.StatusOK {
		t.Fatalf("instance 1's token on instance 2: %d %s", r.Status, r.Body)
	}
	r := s1.Do(t, "POST", "/api/v1/chats", a.AccessToken, map[string]any{"title": "cluster", "participants": []string{"bob@example.com"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create chat: %d %s", r.Status, r.Body)
	}
	var c struct{ ID string }
	r.JSON(t, &c)
	return a, b, c.ID
}

type wsMessage struct {
	ID      string `json:"id"`
	ChatID  string `json:"chat_id"`
	Seq     int64  `json:"seq"`
	Author  string `json:"author"`
	Content string `json:"content"`
}

type wsUnread struct {
	ChatID string `json:"chat_id"`
	Count  int    `json:"count"`
	Total  int    `json:"total"`
}

type wsPresence struct {
	UserID string `json:"user_id"`
	Online bool   `json:"online"`
}

type unreadBody struct {
	Total int            `json:"total"`
	Chats map[string]int `json:"chats"`
}

func expectMessage(t *testing.T, ws *apptest.WS, chatID string, seq int64, content string) wsMessage {
	t.Helper()
	var m wsMessage
	ws.Expect(t, realtime.EventChatMessage).Decode(t, &m)
	if m.ChatID != chatID || m.Seq != seq || m.Content != content {
		t.Fatalf("chat_message = %+v, want chat %s seq %d %q", m, chatID, seq, content)
	}
	return m
}

func expectUnread(t *testing.T, ws *apptest.WS, chatID string, count, total int) {
	t.Helper()
	var u wsUnread
	ws.Expect(t, realtime.EventUnreadCount).Decode(t, &u)
	if u != (wsUnread{ChatID: chatID, Count: count, Total: total}) {
		t.Fatalf("unread_count = %+v, want chat %s count %d total %d", u, chatID, count, total)
	}
}

func expectPresence(t *testing.T, ws *apptest.WS, userID string, online bool) {
	t.Helper()
	// Frames about other users (a new socket's snapshot of who is online
	// arrives after its hello) are skipped; the next one about userID must
	// say online.
	for {
		var p wsPresence
		ws.Expect(t, realtime.EventPresence).Decode(t, &p)
		if p.UserID != userID {
			continue
		}
		if p.Online != online {
			t.Fatalf("presence = %+v, want %s online=%v", p, userID, online)
		}
		return
	}
}

func getUnread(t *testing.T, s *apptest.Server, token string) unreadBody {
	t.Helper()
	r := s.Do(t, "GET", "/api/v1/me/unread", token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /me/unread: %d %s", r.Status, r.Body)
	}
	var u unreadBody
	r.JSON(t, &u)
	return u
}

func sendREST(t *testing.T, s *apptest.Server, token, chatID, content string) wsMessage {
	t.Helper()
	r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/messages", token, map[string]string{"content": content})
	if r.Status != http.StatusCreated {
		t.Fatalf("send %q: %d %s", content, r.Status, r.Body)
	}
	var m wsMessage
	r.JSON(t, &m)
	return m
}

func readREST(t *testing.T, s *apptest.Server, token, chatID string) {
	t.Helper()
	r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/read", token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("read: %d %s", r.Status, r.Body)
	}
	var body struct {
		UnreadCount int `json:"unread_count"`
		Total       int `json:"total"`
	}
	r.JSON(t, &body)
	if body.UnreadCount != 0 || body.Total != 0 {
		t.Fatalf("read answered %s, want 0 unread", r.Body)
	}
}

// closeWS closes a client socket cleanly.
func closeWS(ws *apptest.WS) {
	ws.Conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	ws.Conn.Close()
}

// expectClosed waits for the final error frame and the close code.
func expectClosed(t *testing.T, ws *apptest.WS, code int, message string) {
	t.Helper()
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	ws.Expect(t, realtime.EventError).Decode(t, &e)
	if e.Code != "webSocket.closed" || e.Message != message {
		t.Errorf("final error frame = %+v, want webSocket.closed %q", e, message)
	}
	if got := ws.Closed(t); got != code {
		t.Errorf("close code = %d, want %d", got, code)
	}
}

// waitReady polls /readyz until it answers want.
func waitReady(t *testing.T, s *apptest.Server, want int) {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		r := s.Do(t, "GET", "/readyz", "", nil)
		if r.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answers %d %s, want %d", r.Status, r.Body, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// drainUntil reads every frame of ws until one of type typ has arrived, and
// returns all of them, including any that came after it.
func drainUntil(t *testing.T, ws *apptest.WS, typ string) []apptest.Frame {
	t.Helper()
	var all []apptest.Frame
	deadline := time.Now().Add(clusterWait)
	for {
		all = append(all, ws.Frames()...)
		for _, f := range all {
			if f.Type == typ {
				return all
			}
		}
		if time.Now().After(deadline) || ws.Err() != nil {
			t.Fatalf("no %q frame within %v (read error %v); got %d frames", typ, clusterWait, ws.Err(), len(all))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClusterMessages: messages sent on one instance, by socket or REST,
// reach sockets on the other with their unread counts, and reads on one
// instance show at once in the other's REST answers.
func TestClusterMessages(t *testing.T) {
	url, prefix := redistest.Shared(t)
	s1, s2 := startCluster(t, storetest.Postgres(t), url, prefix)
	alice, bob, chatID := clusterChat(t, s1, s2)
	a, _ := s1.Connect(t, alice.AccessToken, "")
	b, _ := s2.Connect(t, bob.AccessToken, "")

	// Socket send on instance 1.
	a.Send(t, realtime.CmdSendMessage, "m1", map[string]any{"chat_id": chatID, "content": "hello bob", "client_id": "c1"})
	// The sender gets its ack and, like every member, the chat_message.
	gotOwn := false
	for _, f := range drainUntil(t, a, realtime.EventAck) {
		switch f.Type {
		case realtime.EventAck:
			var ackData struct {
				ClientID  string    `json:"client_id"`
				Duplicate bool      `json:"duplicate"`
				Message   wsMessage `json:"message"`
			}
			f.Decode(t, &ackData)
			if f.ID != "m1" || ackData.ClientID != "c1" || ackData.Duplicate || ackData.Message.Seq != 1 || ackData.Message.Content != "hello bob" {
				t.Fatalf("ack = %s %s", f.ID, f.Data)
			}
		case realtime.EventChatMessage:
			var m wsMessage
			f.Decode(t, &m)
			gotOwn = m.Seq == 1
		}
	}
	if !gotOwn {
		expectMessage(t, a, chatID, 1, "hello bob")
	}
	if m := expectMessage(t, b, chatID, 1, "hello bob"); m.Author != alice.User.ID {
		t.Fatalf("author = %q, want alice %q", m.Author, alice.User.ID)
	}
	expectUnread(t, b, chatID, 1, 1)

	// REST send on instance 1, then with A's token on instance 2.
	sendREST(t, s1, alice.AccessToken, chatID, "via rest on 1")
	expectMessage(t, b, chatID, 2, "via rest on 1")
	expectUnread(t, b, chatID, 2, 2)
	sendREST(t, s2, alice.AccessToken, chatID, "via rest on 2")
	expectMessage(t, b, chatID, 3, "via rest on 2")
	expectUnread(t, b, chatID, 3, 3)
	expectMessage(t, a, chatID, 2, "via rest on 1")
	expectMessage(t, a, chatID, 3, "via rest on 2")
	a.ExpectNone(t, realtime.EventUnreadCount, 100*time.Millisecond) // the author's own count does not move

	for i, s := range []*apptest.Server{s1, s2} {
		if u := getUnread(t, s, bob.AccessToken); u.Total != 3 || u.Chats[chatID] != 3 {
			t.Fatalf("bob's unread on instance %d = %+v, want 3", i+1, u)
		}
	}

	// B answers from instance 2; A on instance 1 hears it with its count.
	b.Send(t, realtime.CmdSendMessage, "m2", map[string]any{"chat_id": chatID, "content": "hi alice"})
	b.Expect(t, realtime.EventAck)
	expectMessage(t, a, chatID, 4, "hi alice")
	expectUnread(t, a, chatID, 1, 1)

	// B reads on instance 2 by socket: its count on instance 1 is 0 at once.
	b.Send(t, realtime.CmdRead, "r1", map[string]any{"chat_id": chatID})
	var readAck struct {
		Unread unreadBody `json:"unread"`
	}
	b.Expect(t, realtime.EventAck).Decode(t, &readAck)
	if readAck.Unread.Total != 0 {
		t.Fatalf("read ack = %+v, want 0 unread", readAck.Unread)
	}
	waitUnread(t, s1, bob.AccessToken, 0)

	// A reads on instance 1 (REST); instance 2, whose cache holds A's
	// counts, follows. (That it must do so at once, not merely soon, is
	// TestClusterUnreadReadYourWrites.)
	if u := getUnread(t, s2, alice.AccessToken); u.Total != 1 {
		t.Fatalf("alice's unread on instance 2 = %+v, want 1", u)
	}
	// Her socket on instance 2 hears the new count too.
	a2, hello := s2.Connect(t, alice.AccessToken, "")
	var hi struct {
		Unread unreadBody `json:"unread"`
	}
	hello.Decode(t, &hi)
	if hi.Unread.Total != 1 {
		t.Fatalf("hello on instance 2: unread %+v, want 1", hi.Unread)
	}
	readREST(t, s1, alice.AccessToken, chatID)
	expectUnread(t, a, chatID, 0, 0)
	expectUnread(t, a2, chatID, 0, 0)
	waitUnread(t, s2, alice.AccessToken, 0)
	// Every message reached each socket once.
	a.ExpectNone(t, realtime.EventChatMessage, 100*time.Millisecond)
	b.ExpectNone(t, realtime.EventChatMessage, 0)
	a2.ExpectNone(t, realtime.EventChatMessage, 0)
}

// waitUnread polls GET /me/unread until the total is want.
func waitUnread(t *testing.T, s *apptest.Server, token string, want int) {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		u := getUnread(t, s, token)
		if u.Total == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("unread = %+v, want total %d", u, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClusterUnreadReadYourWrites: once a read on instance 1 has been
// answered, GET /me/unread on instance 2 must already reflect it, also in a
// busy cluster. Instance 2 answers from its cache, which learns of the read
// only when it has applied the envelope: asynchronously, after every
// envelope of the cluster published before it. Here carol, connected to
// instance 2, stands for that traffic: instance 1 publishes changes of her
// chats and counts just before alice's read, and instance 2 reloads her
// counts from the database for each, on its one subscription goroutine.
func TestClusterUnreadReadYourWrites(t *testing.T) {
	url, prefix := redistest.Shared(t)
	s1, s2 := startCluster(t, storetest.Postgres(t), url, prefix)
	alice, bob, chatID := clusterChat(t, s1, s2)
	carol := s1.Register(t, "carol@example.com")
	s2.Connect(t, carol.AccessToken, "")
	s2.Connect(t, alice.AccessToken, "")
	stale := 0
	const rounds = 10
	for i := range rounds {
		sendREST(t, s2, bob.AccessToken, chatID, fmt.Sprintf("round %d", i))
		if u := getUnread(t, s2, alice.AccessToken); u.Total != 1 {
			t.Fatalf("round %d: alice's unread on instance 2 right after bob's send there = %+v, want 1", i, u)
		}
		for range 100 {
			s1.App.Hub.ChatChanged("other", []string{carol.User.ID}, nil)
			s1.App.Hub.UnreadChanged(chat.UnreadChange{UserID: carol.User.ID, ChatID: "other", LastSeq: 1})
		}
		readREST(t, s1, alice.AccessToken, chatID)
		if u := getUnread(t, s2, alice.AccessToken); u.Total != 0 {
			stale++
		}
		waitUnread(t, s2, alice.AccessToken, 0) // it does catch up
	}
	if stale > 0 {
		t.Errorf("alice's unread on instance 2 right after she read on instance 1 was stale in %d of %d rounds", stale, rounds)
	}
}

// TestClusterPresenceAndTyping: presence and typing cross instances, and a
// user online on both instances goes offline only when the last socket
// anywhere closes.
func TestClusterPresenceAndTyping(t *testing.T) {
	url, prefix := redistest.Shared(t)
	s1, s2 := startCluster(t, storetest.Postgres(t), url, prefix)
	alice, bob, chatID := clusterChat(t, s1, s2)

	b, _ := s2.Connect(t, bob.AccessToken, "")
	b.ExpectNone(t, realtime.EventPresence, 100*time.Millisecond) // alice is not online yet
	a, _ := s1.Connect(t, alice.AccessToken, "")
	expectPresence(t, a, bob.User.ID, true) // welcome: bob is online on instance 2
	expectPresence(t, b, alice.User.ID, true)

	// A new socket of bob on instance 2 learns in its welcome that alice is
	// online on instance 1.
	b2, _ := s2.Connect(t, bob.AccessToken, "")
	expectPresence(t, b2, alice.User.ID, true)
	closeWS(b2)

	// Typing crosses both ways; nobody hears their own.
	a.Send(t, realtime.CmdTyping, "", map[string]string{"chat_id": chatID})
	var ty struct {
		ChatID    string `json:"chat_id"`
		UserID    string `json:"user_id"`
		ExpiresMS int    `json:"expires_in_ms"`
	}
	b.Expect(t, realtime.EventTyping).Decode(t, &ty)
	if ty.ChatID != chatID || ty.UserID != alice.User.ID || ty.ExpiresMS <= 0 {
		t.Fatalf("typing = %+v", ty)
	}
	b.Send(t, realtime.CmdTyping, "", map[string]string{"chat_id": chatID})
	a.Expect(t, realtime.EventTyping).Decode(t, &ty)
	if ty.ChatID != chatID || ty.UserID != bob.User.ID {
		t.Fatalf("typing = %+v", ty)
	}
	a.ExpectNone(t, realtime.EventTyping, 100*time.Millisecond)

	// Alice on both instances; closing the socket on instance 2 leaves her
	// online (instance 1 still has one), closing the last one on instance 1
	// takes her offline for bob on instance 2.
	a2, _ := s2.Connect(t, alice.AccessToken, "")
	closeWS(a2)
	b.ExpectNone(t, realtime.EventPresence, 600*time.Millisecond) // 4x the grace
	closeWS(a)
	expectPresence(t, b, alice.User.ID, false)

	// Back online on instance 1.
	s1.Connect(t, alice.AccessToken, "")
	expectPresence(t, b, alice.User.ID, true)
}

// TestClusterForcedClose: a password change or a block on instance 2 closes
// the user's sockets on instance 1 with a final error frame and the code.
func TestClusterForcedClose(t *testing.T) {
	url, prefix := redistest.Shared(t)
	s1, s2 := startCluster(t, storetest.Postgres(t), url, prefix)
	alice, bob, _ := clusterChat(t, s1, s2)

	a1, _ := s1.Connect(t, alice.AccessToken, "")
	a2, _ := s2.Connect(t, alice.AccessToken, "")
	b, _ := s1.Connect(t, bob.AccessToken, "")

	// Signing out one session on instance 2 closes only that session's
	// socket on instance 1.
	r := s1.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "alice@example.com", "password": apptest.Password})
	if r.Status != http.StatusOK {
		t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	var second apptest.Session
	r.JSON(t, &second)
	ax, _ := s1.Connect(t, second.AccessToken, "")
	if r := s2.Do(t, "POST", "/api/v1/auth/logout", "", map[string]string{"refresh_token": second.RefreshToken}); r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	expectClosed(t, ax, realtime.CloseTokenExpired, "Signed out.")
	a1.ExpectNone(t, realtime.EventError, 200*time.Millisecond)
	if a1.Err() != nil || a2.Err() != nil {
		t.Fatalf("signing out one session closed another: %v, %v", a1.Err(), a2.Err())
	}

	// A password change on instance 2 closes every socket of the user.
	r = s2.Do(t, "POST", "/api/v1/me/password", alice.AccessToken,
		map[string]string{"current_password": apptest.Password, "new_password": "another long passphrase 42"})
	if r.Status != http.StatusOK {
		t.Fatalf("change password: %d %s", r.Status, r.Body)
	}
	expectClosed(t, a1, realtime.CloseTokenExpired, "Password changed; sign in again.")
	expectClosed(t, a2, realtime.CloseTokenExpired, "Password changed; sign in again.")
	if r := s1.Do(t, "GET", "/api/v1/me", alice.AccessToken, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("old token on instance 1 after the change: %d, want 401", r.Status)
	}

	admin := s2.Admin(t, "admin@example.com")
	r = s2.Do(t, "PATCH", "/api/v1/admin/users/"+bob.User.ID, admin.AccessToken, map[string]any{"blocked": true})
	if r.Status != http.StatusOK {
		t.Fatalf("block: %d %s", r.Status, r.Body)
	}
	expectClosed(t, b, realtime.ClosePolicy, "This account was blocked.")
	if r := s1.Do(t, "GET", "/api/v1/me", bob.AccessToken, nil); r.Status == http.StatusOK {
		t.Errorf("blocked user's token still works on instance 1")
	}
}

// restartCluster is two instances on a private redis-server that the test
// stops and restarts, with A on instance 1 and B on instance 2 connected
// and one message delivered.
type restartCluster struct {
	redis      *redistest.Server
	s1, s2     *apptest.Server
	alice, bob apptest.Session
	chatID     string
	a, b       *apptest.WS
}

func startRestartCluster(t *testing.T) *restartCluster {
	t.Helper()
	rs := redistest.Start(t)
	s1, s2 := startCluster(t, storetest.Postgres(t), rs.URL(), "cluster:")
	alice, bob, chatID := clusterChat(t, s1, s2)
	c := &restartCluster{redis: rs, s1: s1, s2: s2, alice: alice, bob: bob, chatID: chatID}
	c.a, _ = s1.Connect(t, alice.AccessToken, "")
	c.b, _ = s2.Connect(t, bob.AccessToken, "")
	sendREST(t, s1, alice.AccessToken, chatID, "before")
	expectMessage(t, c.b, chatID, 1, "before")
	expectMessage(t, c.a, chatID, 1, "before")
	for _, s := range []*apptest.Server{s1, s2} {
		waitReady(t, s, http.StatusOK)
	}
	return c
}

// TestClusterRedisRestart: while Redis is down messages are still stored
// and /readyz says unready; once it is back both instances reconnect by
// themselves, tell their clients to resync, a resume replays what was
// missed exactly once and in order, and live delivery works again.
func TestClusterRedisRestart(t *testing.T) {
	c := startRestartCluster(t)
	c.redis.Stop()
	for _, s := range []*apptest.Server{c.s1, c.s2} {
		waitReady(t, s, http.StatusServiceUnavailable)
	}

	// Sends while Redis is down are stored and answered 201; A's own
	// socket on instance 1 still gets them (local delivery).
	missed := []string{"missed 2", "missed 3", "missed 4"}
	for i, content := range missed {
		start := time.Now()
		m := sendREST(t, c.s1, c.alice.AccessToken, c.chatID, content)
		if m.Seq != int64(i+2) {
			t.Fatalf("seq = %d, want %d", m.Seq, i+2)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("send took %v while Redis was down", d)
		}
		expectMessage(t, c.a, c.chatID, int64(i+2), content)
	}
	r := c.s2.Do(t, "GET", "/api/v1/chats/"+c.chatID+"/messages?after=0", c.bob.AccessToken, nil)
	var page struct{ Messages []wsMessage }
	r.JSON(t, &page)
	if r.Status != http.StatusOK || len(page.Messages) != 4 {
		t.Fatalf("history on instance 2 during the outage: %d %s", r.Status, r.Body)
	}

	c.redis.Restart()
	// Both instances resubscribe by themselves and ask their clients to
	// resume.
	waitFrame := func(ws *apptest.WS, name string) {
		t.Helper()
		drained := drainUntil(t, ws, realtime.EventResync)
		for _, f := range drained {
			if f.Type == realtime.EventChatMessage {
				t.Errorf("%s got a chat_message around the resync: %s", name, f.Data)
			}
		}
	}
	waitFrame(c.b, "bob")
	waitFrame(c.a, "alice")
	for _, s := range []*apptest.Server{c.s1, c.s2} {
		waitReady(t, s, http.StatusOK)
	}

	// The resync dropped instance 2's cached counts: bob's are right.
	if u := c.s2.Do(t, "GET", "/api/v1/me/unread", c.bob.AccessToken, nil); true {
		var ub unreadBody
		u.JSON(t, &ub)
		if ub.Total != 4 || ub.Chats[c.chatID] != 4 {
			t.Errorf("bob's unread on instance 2 after the resync = %s, want 4", u.Body)
		}
	}

	// A message sent after the resync but before bob resumes is held, and
	// then comes once, after the replay.
	sendREST(t, c.s1, c.alice.AccessToken, c.chatID, "after restart 5")
	c.b.Send(t, realtime.CmdResume, "res", map[string]any{"chats": map[string]int64{c.chatID: 1}})
	frames := drainUntil(t, c.b, realtime.EventResumed)
	var seqs []int64
	var resumed struct {
		Chats     map[string]int64 `json:"chats"`
		Truncated []string         `json:"truncated"`
		Unread    unreadBody       `json:"unread"`
	}
	want := []string{"missed 2", "missed 3", "missed 4", "after restart 5"}
	for _, f := range frames {
		switch f.Type {
		case realtime.EventChatMessage:
			var m wsMessage
			f.Decode(t, &m)
			seqs = append(seqs, m.Seq)
			if m.Seq >= 2 && int(m.Seq-2) < len(want) && m.Content != want[m.Seq-2] {
				t.Errorf("seq %d content %q, want %q", m.Seq, m.Content, want[m.Seq-2])
			}
		case realtime.EventResumed:
			if f.ID != "res" {
				t.Errorf("resumed id = %q", f.ID)
			}
			f.Decode(t, &resumed)
		}
	}
	if fmt.Sprint(seqs) != "[2 3 4 5]" {
		t.Fatalf("bob's messages after resume: seqs %v, want [2 3 4 5] once each in order", seqs)
	}
	if resumed.Chats[c.chatID] != 5 || len(resumed.Truncated) != 0 || resumed.Unread.Total != 5 {
		t.Errorf("resumed = %+v, want chat at 5, nothing truncated, 5 unread", resumed)
	}
	c.b.ExpectNone(t, realtime.EventChatMessage, 200*time.Millisecond)

	// Alice saw 2..4 live on instance 1 but 5 only if not held: she
	// resumes from 4.
	c.a.Send(t, realtime.CmdResume, "res", map[string]any{"chats": map[string]int64{c.chatID: 4}})
	frames = drainUntil(t, c.a, realtime.EventResumed)
	seqs = nil
	for _, f := range frames {
		if f.Type == realtime.EventChatMessage {
			var m wsMessage
			f.Decode(t, &m)
			seqs = append(seqs, m.Seq)
		}
	}
	if fmt.Sprint(seqs) != "[5]" {
		t.Fatalf("alice's messages after resume: seqs %v, want [5]", seqs)
	}

	// Live delivery across instances works again, both ways.
	c.a.Send(t, realtime.CmdSendMessage, "m", map[string]any{"chat_id": c.chatID, "content": "live 6"})
	expectMessage(t, c.a, c.chatID, 6, "live 6")
	expectMessage(t, c.b, c.chatID, 6, "live 6")
	expectUnread(t, c.b, c.chatID, 6, 6)
	sendREST(t, c.s2, c.bob.AccessToken, c.chatID, "live 7")
	expectMessage(t, c.a, c.chatID, 7, "live 7")
	expectUnread(t, c.a, c.chatID, 1, 1)
}

// TestClusterKickDuringRedisOutage: a password change made while Redis is
// down must still close the user's sockets on the other instance once
// Redis is back; otherwise a revoked credential keeps its socket open.
func TestClusterKickDuringRedisOutage(t *testing.T) {
	c := startRestartCluster(t)
	c.redis.Stop()
	waitReady(t, c.s2, http.StatusServiceUnavailable)
	r := c.s2.Do(t, "POST", "/api/v1/me/password", c.alice.AccessToken,
		map[string]string{"current_password": apptest.Password, "new_password": "another long passphrase 42"})
	if r.Status != http.StatusOK {
		t.Fatalf("change password: %d %s", r.Status, r.Body)
	}
	c.redis.Restart()
	drainUntil(t, c.a, realtime.EventResync)
	// The socket of the revoked credential on instance 1 must close.
	if code := c.a.Closed(t); code != realtime.CloseTokenExpired {
		t.Fatalf("close code = %d, want %d", code, realtime.CloseTokenExpired)
	}
}

// TestClusterPresenceAfterRedisRestart: presence changes during an outage
// reach the contacts once Redis is back, and users still connected count as
// online again right after the restart (Redis restarts empty).
func TestClusterPresenceAfterRedisRestart(t *testing.T) {
	c := startRestartCluster(t)
	carol := c.s1.Register(t, "carol@example.com")
	r := c.s1.Do(t, "POST", "/api/v1/chats/"+c.chatID+"/participants", c.alice.AccessToken, map[string]string{"email": "carol@example.com"})
	if r.Status != http.StatusOK {
		t.Fatalf("add carol: %d %s", r.Status, r.Body)
	}
	cw, _ := c.s1.Connect(t, carol.AccessToken, "")
	expectPresence(t, c.b, carol.User.ID, true)

	c.redis.Stop()
	waitReady(t, c.s1, http.StatusServiceUnavailable)
	// Alice leaves during the outage: her offline announcement cannot be
	// published.
	closeWS(c.a)
	time.Sleep(300 * time.Millisecond) // 2x the presence grace
	c.redis.Restart()
	early := drainUntil(t, c.b, realtime.EventResync) // may hold frames sent after the resync
	drainUntil(t, cw, realtime.EventResync)           // both instances are back

	// Carol is still connected on instance 1: a new socket of bob on
	// instance 2 must see her online.
	b2, _ := c.s2.Connect(t, c.bob.AccessToken, "")
	if p := presenceWithin(b2, 2*time.Second); !p[carol.User.ID+"=true"] {
		t.Errorf("a socket opened after the restart does not see carol online on instance 1; presence frames: %v", p)
	}
	// Bob's old socket must learn that alice went offline.
	c.b.Send(t, realtime.CmdResume, "res", map[string]any{"chats": map[string]int64{c.chatID: 1}})
	p := presenceWithin(c.b, 2*time.Second)
	for _, f := range early {
		var wp wsPresence
		if f.Type == realtime.EventPresence && json.Unmarshal(f.Data, &wp) == nil {
			p[wp.UserID+"="+strconv.FormatBool(wp.Online)] = true
		}
	}
	if !p[c.alice.User.ID+"=false"] {
		t.Errorf("bob never learns that alice went offline during the outage; presence frames: %v", p)
	}
}

// presenceWithin collects the presence frames ws receives within d, as
// "userID=online" keys.
func presenceWithin(ws *apptest.WS, d time.Duration) map[string]bool {
	got := map[string]bool{}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, f := range ws.Frames() {
			if f.Type != realtime.EventPresence {
				continue
			}
			var p wsPresence
			if json.Unmarshal(f.Data, &p) == nil {
				got[fmt.Sprintf("%s=%v", p.UserID, p.Online)] = true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return got
}

// TestClusterPresenceReconnectRace: a user who reconnects just as the
// presence grace of their previous socket runs out must stay online. The
// race is timing-dependent, so many users try at once, each reconnecting at
// a slightly different moment around the grace. (Before goOffline learnt
// to say online again when a socket came back during its broker.Offline,
// broker.Offline could delete the record a concurrent broker.Online had
// just written, leaving a connected user offline for the whole cluster.)
func TestClusterPresenceReconnectRace(t *testing.T) {
	url, prefix := redistest.Shared(t)
	s1, s2 := startCluster(t, storetest.Postgres(t), url, prefix)
	const grace = 150 * time.Millisecond // as startCluster sets
	// Workers run as goroutines, not parallel subtests, so that all of them
	// run at once whatever -parallel says; they report through t.Errorf.
	users := make([]apptest.Session, 32)
	for u := range users {
		users[u] = s1.Register(t, fmt.Sprintf("flap%d@example.com", u))
	}
	var wg sync.WaitGroup
	for u, sess := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 3 {
				offset := time.Duration((u*3+round)%25-12) * 250 * time.Microsecond // -3 ms .. +3 ms
				a, err := dialHello(t, s1, sess.AccessToken)
				if err != nil {
					t.Errorf("user %d: %v", u, err)
					return
				}
				closeWS(a)
				time.Sleep(grace + offset)
				if a, err = dialHello(t, s1, sess.AccessToken); err != nil {
					t.Errorf("user %d: %v", u, err)
					return
				}
				// Let every presence update of the flap settle (the
				// grace is 150 ms), then she must count as online.
				time.Sleep(4 * grace)
				on, err := s2.App.Broker.AreOnline(t.Context(), []string{sess.User.ID})
				if err != nil {
					t.Errorf("user %d: %v", u, err)
					return
				}
				if !on[sess.User.ID] {
					t.Errorf("user %d round %d (reconnect at grace%+v): connected on instance 1 but offline for instance 2", u, round, offset)
				}
				closeWS(a)
				time.Sleep(2 * grace)
			}
		}()
	}
	wg.Wait()
}

// dialHello opens a socket and waits for its hello without failing the
// test, for use off the test goroutine.
func dialHello(t *testing.T, s *apptest.Server, token string) (*apptest.WS, error) {
	ws, _, err := s.Dial(t, "", http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(clusterWait)
	for time.Now().Before(deadline) {
		for _, f := range ws.Frames() {
			if f.Type == realtime.EventHello {
				return ws, nil
			}
		}
		if err := ws.Err(); err != nil {
			return nil, err
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil, fmt.Errorf("no hello within %v", clusterWait)
}

// TestClusterUnreadLoadRace: instance 2 loads alice's counts from the
// database while alice reads on instance 1. When the read's envelope is
// applied while the load is in flight, the cache skips it (alice is not
// cached yet) and the load then stores the count from before the read: the
// stale count stays until alice's next change. The race is narrow, so it
// is tried many times, the load starting at varying moments.
func TestClusterUnreadLoadRace(t *testing.T) {
	url, prefix := redistest.Shared(t)
	s1, s2 := startCluster(t, storetest.Postgres(t), url, prefix)
	alice, bob, chatID := clusterChat(t, s1, s2)
	ctx := t.Context()
	stale := 0
	const rounds = 300
	for i := range rounds {
		if _, err := s2.App.Chats.Send(ctx, bob.User.ID, chatID, "x", ""); err != nil {
			t.Fatal(err)
		}
		s2.App.Chats.InvalidateUnread(alice.User.ID)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i%20) * 50 * time.Microsecond)
			s2.App.Chats.Unread(ctx, alice.User.ID)
		}()
		if _, err := s1.App.Chats.MarkRead(ctx, alice.User.ID, chatID, 0); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		time.Sleep(10 * time.Millisecond)
		if u, err := s2.App.Chats.Unread(ctx, alice.User.ID); err != nil || u.Total == 0 {
			continue
		}
		// Give a late envelope every chance before calling it stale.
		time.Sleep(300 * time.Millisecond)
		if u, _ := s2.App.Chats.Unread(ctx, alice.User.ID); u.Total != 0 {
			stale++
			t.Logf("round %d: alice read everything on instance 1, instance 2 still says %+v", i, u)
		}
	}
	if stale > 0 {
		t.Errorf("instance 2 kept a stale unread count in %d of %d rounds", stale, rounds)
	}
}

// TestClusterUnreadSnapshotRace: run with -race. A request on instance 2
// loads alice's counts, puts them in the cache and then reads them again
// without the cache's lock, while instance 2's subscription applies a
// message bob sent on instance 1 to the same map. Each round's loader is a
// fresh goroutine that does nothing after its load, as a request's would.
func TestClusterUnreadSnapshotRace(t *testing.T) {
	url, prefix := redistest.Shared(t)
	s1, s2 := startCluster(t, storetest.Postgres(t), url, prefix)
	alice, bob, chatID := clusterChat(t, s1, s2)
	const rounds = 40
	for i := range rounds {
		s2.App.Chats.InvalidateUnread(alice.User.ID)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i%10) * 100 * time.Microsecond)
			s2.App.Chats.Unread(context.Background(), alice.User.ID)
		}()
		sendREST(t, s1, bob.AccessToken, chatID, fmt.Sprint("msg ", i))
		wg.Wait()
	}
	waitUnread(t, s1, alice.AccessToken, rounds)
}
