package httpapi_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/app"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/store/storetest"
)

// Friends, blocks and notifications end to end, on every engine: what each
// person sees in their lists and on their sockets, that an address without
// an account answers like one with, and that nobody reaches another's
// requests or notifications.

type socPerson struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

type socFriends struct {
	Friends []struct {
		socPerson
		Online bool `json:"online"`
	} `json:"friends"`
	Incoming []struct {
		ID   string    `json:"id"`
		From socPerson `json:"from"`
	} `json:"incoming"`
	Outgoing []struct {
		ID    string `json:"id"`
		Email string `json:"email"`
	} `json:"outgoing"`
	Blocked []socPerson `json:"blocked"`
}

func (f socFriends) friendEmails() []string {
	out := []string{}
	for _, x := range f.Friends {
		out = append(out, x.Email)
	}
	return out
}

func (f socFriends) outgoingEmails() []string {
	out := []string{}
	for _, x := range f.Outgoing {
		out = append(out, x.Email)
	}
	return out
}

type socNote struct {
	ID      string     `json:"id"`
	Kind    string     `json:"kind"`
	Actor   *socPerson `json:"actor"`
	Subject struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"subject"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
	Read      bool      `json:"read"`
}

type socPage struct {
	Notifications []socNote `json:"notifications"`
	Unread        int       `json:"unread"`
	NextCursor    string    `json:"next_cursor"`
}

func socList(t *testing.T, s *apptest.Server, token string) socFriends {
	t.Helper()
	r := s.Do(t, "GET", "/api/v1/friends", token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /friends: %d %s", r.Status, r.Body)
	}
	var f socFriends
	r.JSON(t, &f)
	return f
}

func socRequest(t *testing.T, s *apptest.Server, token, email string) *apptest.Response {
	t.Helper()
	return s.Do(t, "POST", "/api/v1/friends/requests", token, map[string]string{"email": email})
}

func socNotes(t *testing.T, s *apptest.Server, token, query string) socPage {
	t.Helper()
	r := s.Do(t, "GET", "/api/v1/notifications"+query, token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /notifications: %d %s", r.Status, r.Body)
	}
	var p socPage
	r.JSON(t, &p)
	return p
}

// socExpectNote waits for a notification frame and the unread total after it.
func socExpectNote(t *testing.T, ws *apptest.WS, kind, text string, unread int) socNote {
	t.Helper()
	var n socNote
	ws.Expect(t, "notification").Decode(t, &n)
	if n.Kind != kind || n.Text != text || n.Read || n.ID == "" || n.CreatedAt.IsZero() {
		t.Fatalf("notification %+v, want kind %q text %q unread", n, kind, text)
	}
	socExpectUnread(t, ws, unread)
	return n
}

func socExpectUnread(t *testing.T, ws *apptest.WS, unread int) {
	t.Helper()
	var u struct {
		Unread *int `json:"unread"`
	}
	ws.Expect(t, "notifications_unread").Decode(t, &u)
	if u.Unread == nil || *u.Unread != unread {
		t.Fatalf("notifications_unread %v, want %d", u.Unread, unread)
	}
}

// socBefriend makes a and b friends through the API.
func socBefriend(t *testing.T, s *apptest.Server, a, b apptest.Session) {
	t.Helper()
	if r := socRequest(t, s, a.AccessToken, b.User.Email); r.Status != http.StatusAccepted {
		t.Fatalf("request: %d %s", r.Status, r.Body)
	}
	in := socList(t, s, b.AccessToken).Incoming
	if len(in) != 1 {
		t.Fatalf("incoming %+v, want one", in)
	}
	if r := s.Do(t, "POST", "/api/v1/friends/requests/"+in[0].ID+"/accept", b.AccessToken, nil); r.Status != http.StatusOK {
		t.Fatalf("accept: %d %s", r.Status, r.Body)
	}
}

func socChat(t *testing.T, s *apptest.Server, token, title string, emails ...string) string {
	t.Helper()
	r := s.Do(t, "POST", "/api/v1/chats", token, map[string]any{"title": title, "participants": emails})
	if r.Status != http.StatusCreated {
		t.Fatalf("create chat: %d %s", r.Status, r.Body)
	}
	var c struct{ ID string }
	r.JSON(t, &c)
	return c.ID
}

func TestFriendRequestAccepted(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		aws, _ := s.Connect(t, alice.AccessToken, "")
		bws, _ := s.Connect(t, bob.AccessToken, "")

		r := socRequest(t, s, alice.AccessToken, " Bob@Example.com ")
		if r.Status != http.StatusAccepted {
			t.Fatalf("request: %d %s", r.Status, r.Body)
		}
		var out struct{ ID, Email string }
		r.JSON(t, &out)
		if out.Email != "bob@example.com" || out.ID == "" {
			t.Fatalf("request answer %s", r.Body)
		}
		bws.Expect(t, "friends_updated")
		n := socExpectNote(t, bws, "friend_request", "alice@example.com wants to be your friend", 1)
		if n.Actor == nil || n.Actor.ID != alice.User.ID || n.Actor.Email != "alice@example.com" ||
			n.Subject.Type != "friend_request" || n.Subject.ID != out.ID {
			t.Fatalf("friend_request notification %+v", n)
		}

		bl := socList(t, s, bob.AccessToken)
		if len(bl.Incoming) != 1 || bl.Incoming[0].ID != out.ID || bl.Incoming[0].From.Email != "alice@example.com" {
			t.Fatalf("bob's incoming %+v", bl.Incoming)
		}
		if al := socList(t, s, alice.AccessToken); !slices.Equal(al.outgoingEmails(), []string{"bob@example.com"}) || len(al.Incoming) != 0 {
			t.Fatalf("alice's list %+v", al)
		}
		// Stored too.
		if p := socNotes(t, s, bob.AccessToken, ""); p.Unread != 1 || len(p.Notifications) != 1 || p.Notifications[0].ID != n.ID {
			t.Fatalf("bob's notifications %+v", p)
		}

		r = s.Do(t, "POST", "/api/v1/friends/requests/"+out.ID+"/accept", bob.AccessToken, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("accept: %d %s", r.Status, r.Body)
		}
		var f struct {
			socPerson
			Online bool `json:"online"`
		}
		r.JSON(t, &f)
		if f.ID != alice.User.ID || !f.Online {
			t.Fatalf("accept answer %s (alice is connected)", r.Body)
		}
		n = socExpectNote(t, aws, "friend_accepted", "bob@example.com accepted your request", 1)
		if n.Actor == nil || n.Actor.ID != bob.User.ID || n.Subject.Type != "user" || n.Subject.ID != bob.User.ID {
			t.Fatalf("friend_accepted notification %+v", n)
		}
		// Answering the request settles bob's notification about it.
		socExpectUnread(t, bws, 0)

		for who, tok := range map[string]string{"alice": alice.AccessToken, "bob": bob.AccessToken} {
			l := socList(t, s, tok)
			if len(l.Friends) != 1 || !l.Friends[0].Online || len(l.Incoming)+len(l.Outgoing) != 0 {
				t.Errorf("%s's list after accept %+v", who, l)
			}
		}
		// A second request to a friend says so.
		if r := socRequest(t, s, bob.AccessToken, "alice@example.com"); r.Status != http.StatusConflict || r.Err(t).Code != "friend.alreadyFriends" {
			t.Errorf("request to a friend: %d %s", r.Status, r.Body)
		}
		// Removing ends it for both.
		if r := s.Do(t, "DELETE", "/api/v1/friends/"+alice.User.ID, bob.AccessToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("remove: %d %s", r.Status, r.Body)
		}
		aws.Expect(t, "friends_updated")
		if l := socList(t, s, alice.AccessToken); len(l.Friends) != 0 {
			t.Errorf("alice still lists %v", l.friendEmails())
		}
		if r := s.Do(t, "DELETE", "/api/v1/friends/"+alice.User.ID, bob.AccessToken, nil); r.Status != http.StatusNotFound || r.Err(t).Code != "friend.notFound" {
			t.Errorf("remove again: %d %s", r.Status, r.Body)
		}
	})
}

func TestFriendRequestMutual(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		aws, _ := s.Connect(t, alice.AccessToken, "")
		socRequest(t, s, alice.AccessToken, "bob@example.com")
		// Bob asks back instead of accepting: that is a yes.
		if r := socRequest(t, s, bob.AccessToken, "alice@example.com"); r.Status != http.StatusAccepted {
			t.Fatalf("request back: %d %s", r.Status, r.Body)
		}
		socExpectNote(t, aws, "friend_accepted", "bob@example.com accepted your request", 1)
		if l := socList(t, s, alice.AccessToken); !slices.Equal(l.friendEmails(), []string{"bob@example.com"}) || len(l.Outgoing) != 0 {
			t.Fatalf("alice's list %+v", l)
		}
	})
}

// An address without an account, and one whose owner blocked the sender,
// answer exactly like any other.
func TestFriendRequestNoEnumeration(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		cws, _ := s.Connect(t, carol.AccessToken, "")
		if r := s.Do(t, "PUT", "/api/v1/blocks/"+alice.User.ID, carol.AccessToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("block: %d %s", r.Status, r.Body)
		}
		cws.Expect(t, "friends_updated")

		shape := func(r *apptest.Response) string {
			var m map[string]any
			r.JSON(t, &m)
			keys := []string{}
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			return fmt.Sprintf("%d %v %s", r.Status, keys, r.Header.Get("Content-Type"))
		}
		known := socRequest(t, s, alice.AccessToken, "bob@example.com")
		for _, email := range []string{"nobody@example.com", "carol@example.com"} {
			r := socRequest(t, s, alice.AccessToken, email)
			if shape(r) != shape(known) {
				t.Errorf("request to %s answers %s %s; to a known address %s %s", email, shape(r), r.Body, shape(known), known.Body)
			}
			var out struct{ Email string }
			r.JSON(t, &out)
			if out.Email != email {
				t.Errorf("answer names %q, want %q", out.Email, email)
			}
		}
		// Alice sees all three pending; carol sees nothing and hears nothing.
		if got := socList(t, s, alice.AccessToken).outgoingEmails(); len(got) != 3 {
			t.Errorf("alice's outgoing %v, want 3", got)
		}
		if l := socList(t, s, carol.AccessToken); len(l.Incoming) != 0 || len(l.Blocked) != 1 || l.Blocked[0].ID != alice.User.ID {
			t.Errorf("carol's list %+v", l)
		}
		cws.ExpectNone(t, "notification", 300*time.Millisecond)
		if p := socNotes(t, s, carol.AccessToken, ""); len(p.Notifications) != 0 {
			t.Errorf("carol has notifications %+v", p.Notifications)
		}
		// Asking again changes nothing and notifies nobody twice.
		again := socRequest(t, s, alice.AccessToken, "bob@example.com")
		var a1, a2 struct{ ID string }
		known.JSON(t, &a1)
		again.JSON(t, &a2)
		if again.Status != http.StatusAccepted || a1.ID != a2.ID {
			t.Errorf("repeat request: %d %s, first %s", again.Status, again.Body, known.Body)
		}
		// Bad input is still an error.
		for _, email := range []string{"", "not-an-email", "alice@example.com"} {
			if r := socRequest(t, s, alice.AccessToken, email); r.Status != http.StatusBadRequest || r.Err(t).Field != "email" {
				t.Errorf("request to %q: %d %s", email, r.Status, r.Body)
			}
		}
	})
}

func TestFriendRequestRateLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		for i := range 20 {
			if r := socRequest(t, s, alice.AccessToken, fmt.Sprintf("p%d@example.com", i)); r.Status != http.StatusAccepted {
				t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
			}
		}
		r := socRequest(t, s, alice.AccessToken, "one-more@example.com")
		if r.Status != http.StatusTooManyRequests || r.Err(t).Code != "rateLimit.exceeded" {
			t.Fatalf("21st request: %d %s", r.Status, r.Body)
		}
		if sec, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || sec < 3000 || sec > 3600 {
			t.Errorf("Retry-After %q, want about an hour", r.Header.Get("Retry-After"))
		}
		// Per user: someone else may still ask.
		bob := s.Register(t, "bob@example.com")
		if r := socRequest(t, s, bob.AccessToken, "alice@example.com"); r.Status != http.StatusAccepted {
			t.Errorf("bob's request: %d %s", r.Status, r.Body)
		}
	})
}

func TestFriendRequestDeclineCancel(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		bws, _ := s.Connect(t, bob.AccessToken, "")

		// Declined: bob no longer sees it; alice still sees it pending and
		// asking again does not reach bob.
		socRequest(t, s, alice.AccessToken, "bob@example.com")
		socExpectNote(t, bws, "friend_request", "alice@example.com wants to be your friend", 1)
		id := socList(t, s, bob.AccessToken).Incoming[0].ID
		if r := s.Do(t, "POST", "/api/v1/friends/requests/"+id+"/decline", bob.AccessToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("decline: %d %s", r.Status, r.Body)
		}
		socExpectUnread(t, bws, 0)
		if l := socList(t, s, bob.AccessToken); len(l.Incoming) != 0 {
			t.Errorf("bob still sees %+v", l.Incoming)
		}
		if got := socList(t, s, alice.AccessToken).outgoingEmails(); !slices.Equal(got, []string{"bob@example.com"}) {
			t.Errorf("alice's outgoing after decline %v", got)
		}
		socRequest(t, s, alice.AccessToken, "bob@example.com")
		bws.ExpectNone(t, "notification", 300*time.Millisecond)

		// Cancelled: carol's request and her notification about it are gone.
		socRequest(t, s, carol.AccessToken, "bob@example.com")
		socExpectNote(t, bws, "friend_request", "carol@example.com wants to be your friend", 1)
		var cid string
		for _, o := range socList(t, s, carol.AccessToken).Outgoing {
			cid = o.ID
		}
		if r := s.Do(t, "DELETE", "/api/v1/friends/requests/"+cid, carol.AccessToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("cancel: %d %s", r.Status, r.Body)
		}
		socExpectUnread(t, bws, 0)
		if l := socList(t, s, bob.AccessToken); len(l.Incoming) != 0 {
			t.Errorf("bob still sees %+v", l.Incoming)
		}
		if p := socNotes(t, s, bob.AccessToken, ""); len(p.Notifications) != 1 || p.Notifications[0].Text != "alice@example.com wants to be your friend" {
			t.Errorf("bob's notifications after cancel %+v", p.Notifications)
		}
	})
}

// Nobody reaches another user's requests or notifications: each answers
// 404 exactly like one that does not exist.
func TestSocialOtherUsersData(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		mallory := s.Register(t, "mallory@example.com")
		bws, _ := s.Connect(t, bob.AccessToken, "")
		socRequest(t, s, alice.AccessToken, "bob@example.com")
		note := socExpectNote(t, bws, "friend_request", "alice@example.com wants to be your friend", 1)
		req := socList(t, s, bob.AccessToken).Incoming[0].ID
		missing := "01920000-0000-7000-8000-000000000000"

		tests := []struct {
			name, method, path, token, code string
		}{
			{"accept another's request", "POST", "/api/v1/friends/requests/" + req + "/accept", mallory.AccessToken, "friend.requestNotFound"},
			{"accept one's own sent request", "POST", "/api/v1/friends/requests/" + req + "/accept", alice.AccessToken, "friend.requestNotFound"},
			{"decline another's request", "POST", "/api/v1/friends/requests/" + req + "/decline", mallory.AccessToken, "friend.requestNotFound"},
			{"cancel another's request", "DELETE", "/api/v1/friends/requests/" + req, bob.AccessToken, "friend.requestNotFound"},
			{"accept a missing request", "POST", "/api/v1/friends/requests/" + missing + "/accept", bob.AccessToken, "friend.requestNotFound"},
			{"accept a malformed id", "POST", "/api/v1/friends/requests/nope/accept", bob.AccessToken, "friend.requestNotFound"},
			{"mark another's notification read", "POST", "/api/v1/notifications/" + note.ID + "/read", mallory.AccessToken, "notification.notFound"},
			{"mark a missing notification read", "POST", "/api/v1/notifications/" + missing + "/read", bob.AccessToken, "notification.notFound"},
			{"mark a malformed id read", "POST", "/api/v1/notifications/x/read", bob.AccessToken, "notification.notFound"},
			{"remove a stranger", "DELETE", "/api/v1/friends/" + bob.User.ID, mallory.AccessToken, "friend.notFound"},
			{"direct chat with a stranger", "POST", "/api/v1/friends/" + bob.User.ID + "/chat", mallory.AccessToken, "friend.notFound"},
			{"block a missing user", "PUT", "/api/v1/blocks/" + missing, mallory.AccessToken, "user.notFound"},
		}
		for _, tc := range tests {
			r := s.Do(t, tc.method, tc.path, tc.token, nil)
			if r.Status != http.StatusNotFound || r.Err(t).Code != tc.code {
				t.Errorf("%s: %d %s, want 404 %s", tc.name, r.Status, r.Body, tc.code)
			}
		}
		// Mallory's own lists hold nothing of theirs.
		if p := socNotes(t, s, mallory.AccessToken, ""); len(p.Notifications) != 0 || p.Unread != 0 {
			t.Errorf("mallory's notifications %+v", p)
		}
		if l := socList(t, s, mallory.AccessToken); len(l.Incoming)+len(l.Outgoing)+len(l.Friends) != 0 {
			t.Errorf("mallory's list %+v", l)
		}
		// Nothing changed for bob.
		if p := socNotes(t, s, bob.AccessToken, ""); p.Unread != 1 || p.Notifications[0].Read {
			t.Errorf("bob's notifications after the attempts %+v", p)
		}
		if l := socList(t, s, bob.AccessToken); len(l.Incoming) != 1 {
			t.Errorf("bob's incoming after the attempts %+v", l.Incoming)
		}
		for _, path := range []string{"/api/v1/friends", "/api/v1/notifications", "/api/v1/notifications/read-all"} {
			method := "GET"
			if path == "/api/v1/notifications/read-all" {
				method = "POST"
			}
			if r := s.Do(t, method, path, "", nil); r.Status != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d", method, path, r.Status)
			}
		}
	})
}

// A block keeps the blocked person from adding the blocker to chats and
// stops a direct chat both ways; a group chat goes on.
func TestBlockedUser(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		s.Register(t, "carol@example.com")
		socBefriend(t, s, alice, bob)
		direct := socChat(t, s, alice.AccessToken, "Us", "bob@example.com")
		group := socChat(t, s, alice.AccessToken, "Three", "bob@example.com", "carol@example.com")
		solo := socChat(t, s, alice.AccessToken, "Solo")

		if r := s.Do(t, "PUT", "/api/v1/blocks/"+alice.User.ID, bob.AccessToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("block: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "PUT", "/api/v1/blocks/"+alice.User.ID, bob.AccessToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("block twice: %d %s", r.Status, r.Body)
		}
		if l := socList(t, s, alice.AccessToken); len(l.Friends) != 0 {
			t.Errorf("still friends after the block: %v", l.friendEmails())
		}
		send := func(token, chatID string) *apptest.Response {
			return s.Do(t, "POST", "/api/v1/chats/"+chatID+"/messages", token, map[string]string{"content": "hi"})
		}
		tests := []struct {
			name string
			do   func() *apptest.Response
			code string
		}{
			{"blocked writes in the direct chat", func() *apptest.Response { return send(alice.AccessToken, direct) }, "chat.blocked"},
			{"blocker writes in the direct chat", func() *apptest.Response { return send(bob.AccessToken, direct) }, "chat.blocked"},
			{"blocked creates a chat with the blocker", func() *apptest.Response {
				return s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "x", "participants": []string{"bob@example.com"}})
			}, "chat.blocked"},
			{"blocked adds the blocker to a chat", func() *apptest.Response {
				return s.Do(t, "POST", "/api/v1/chats/"+solo+"/participants", alice.AccessToken, map[string]string{"email": "bob@example.com"})
			}, "chat.blocked"},
			{"blocker asks the blocked to be friends", func() *apptest.Response { return socRequest(t, s, bob.AccessToken, "alice@example.com") }, "friend.blocked"},
		}
		for _, tc := range tests {
			r := tc.do()
			want := http.StatusForbidden
			if tc.code == "friend.blocked" {
				want = http.StatusConflict
			}
			if r.Status != want || r.Err(t).Code != tc.code {
				t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Body, want, tc.code)
			}
		}
		// Over the socket too.
		aws, _ := s.Connect(t, alice.AccessToken, "")
		aws.Send(t, "send_message", "1", map[string]string{"chat_id": direct, "content": "hi", "client_id": "c1"})
		var ef struct{ Code string }
		aws.Expect(t, "error").Decode(t, &ef)
		if ef.Code != "chat.blocked" {
			t.Errorf("socket send: %s", ef.Code)
		}
		// A group of three goes on; the blocker may still add the blocked.
		if r := send(alice.AccessToken, group); r.Status != http.StatusCreated {
			t.Errorf("group chat send: %d %s", r.Status, r.Body)
		}
		// A request from the blocked person is dropped in silence.
		if r := socRequest(t, s, alice.AccessToken, "bob@example.com"); r.Status != http.StatusAccepted {
			t.Errorf("request to the blocker: %d %s", r.Status, r.Body)
		}
		if l := socList(t, s, bob.AccessToken); len(l.Incoming) != 0 {
			t.Errorf("bob sees %+v", l.Incoming)
		}

		if r := s.Do(t, "DELETE", "/api/v1/blocks/"+alice.User.ID, bob.AccessToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("unblock: %d %s", r.Status, r.Body)
		}
		if r := send(alice.AccessToken, direct); r.Status != http.StatusCreated {
			t.Errorf("direct chat send after unblock: %d %s", r.Status, r.Body)
		}
		if l := socList(t, s, bob.AccessToken); len(l.Blocked) != 0 {
			t.Errorf("bob still blocks %+v", l.Blocked)
		}
	})
}

// Friends see each other's presence without sharing a chat, and start a
// direct chat in one call.
func TestFriendsPresenceAndDirectChat(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		socBefriend(t, s, alice, bob)
		bws, _ := s.Connect(t, bob.AccessToken, "")
		aws, _ := s.Connect(t, alice.AccessToken, "")
		var p struct {
			UserID string `json:"user_id"`
			Online bool   `json:"online"`
		}
		bws.Expect(t, "presence").Decode(t, &p)
		if p.UserID != alice.User.ID || !p.Online {
			t.Fatalf("bob got presence %+v", p)
		}
		aws.Expect(t, "presence").Decode(t, &p) // the snapshot on connect
		if p.UserID != bob.User.ID || !p.Online {
			t.Fatalf("alice got presence %+v", p)
		}
		if l := socList(t, s, bob.AccessToken); len(l.Friends) != 1 || !l.Friends[0].Online {
			t.Fatalf("bob's friends %+v", l.Friends)
		}

		r := s.Do(t, "POST", "/api/v1/friends/"+bob.User.ID+"/chat", alice.AccessToken, nil)
		if r.Status != http.StatusCreated {
			t.Fatalf("direct chat: %d %s", r.Status, r.Body)
		}
		var c struct {
			ID           string
			Kind         string
			Participants []socPerson
			Settings     struct {
				AIMode string `json:"ai_mode"`
			}
		}
		r.JSON(t, &c)
		if c.Kind != "group" || len(c.Participants) != 2 || c.Settings.AIMode != "mention" {
			t.Fatalf("direct chat %s", r.Body)
		}
		// The same chat again, from either side.
		for _, tok := range []string{alice.AccessToken, bob.AccessToken} {
			uid := bob.User.ID
			if tok == bob.AccessToken {
				uid = alice.User.ID
			}
			r := s.Do(t, "POST", "/api/v1/friends/"+uid+"/chat", tok, nil)
			var again struct{ ID string }
			r.JSON(t, &again)
			if r.Status != http.StatusOK || again.ID != c.ID {
				t.Errorf("direct chat again: %d %s, want 200 %s", r.Status, r.Body, c.ID)
			}
		}
	})
}

// Chat events become notifications: added, mentioned, removed, deleted.
func TestNotificationsFromChats(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob.smith@example.com")
		s.Register(t, "carol@example.com")
		bws, _ := s.Connect(t, bob.AccessToken, "")
		aws, _ := s.Connect(t, alice.AccessToken, "")

		chatID := socChat(t, s, alice.AccessToken, "Team", "bob.smith@example.com", "carol@example.com")
		n := socExpectNote(t, bws, "chat_added", "alice@example.com added you to Team", 1)
		if n.Subject.Type != "chat" || n.Subject.ID != chatID || n.Actor == nil || n.Actor.ID != alice.User.ID {
			t.Fatalf("chat_added %+v", n)
		}
		aws.ExpectNone(t, "notification", 200*time.Millisecond) // not for the one who acted

		send := func(token, text string) {
			t.Helper()
			if r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/messages", token, map[string]string{"content": text}); r.Status != http.StatusCreated {
				t.Fatalf("send: %d %s", r.Status, r.Body)
			}
		}
		tests := []struct {
			text    string
			mention bool
		}{
			{"hey @bob.smith, look", true},
			{"@BOB.SMITH!", true},
			{"thanks @bob.smith.", true},
			{"cc @bob", false},
			{"@bob.smithers", false},
			{"mail bob.smith@example.com", false},
			{"@ai what do you think", false},
		}
		unread := 1
		for _, tc := range tests {
			send(alice.AccessToken, tc.text)
			if tc.mention {
				unread++
				n := socExpectNote(t, bws, "mention", "alice@example.com mentioned you in Team", unread)
				if n.Subject.ID != chatID {
					t.Errorf("mention subject %+v", n.Subject)
				}
			} else {
				bws.ExpectNone(t, "notification", 250*time.Millisecond)
			}
		}
		// Authors are not notified of their own mentions.
		send(bob.AccessToken, "note to self @bob.smith")
		bws.ExpectNone(t, "notification", 250*time.Millisecond)

		if r := s.Do(t, "DELETE", "/api/v1/chats/"+chatID+"/participants/"+bob.User.ID, alice.AccessToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("remove: %d %s", r.Status, r.Body)
		}
		unread++
		socExpectNote(t, bws, "chat_removed", "alice@example.com removed you from Team", unread)

		other := socChat(t, s, alice.AccessToken, "Later", "bob.smith@example.com")
		unread++
		socExpectNote(t, bws, "chat_added", "alice@example.com added you to Later", unread)
		if r := s.Do(t, "DELETE", "/api/v1/chats/"+other, alice.AccessToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		unread++
		socExpectNote(t, bws, "chat_removed", "alice@example.com deleted Later", unread)
	})
}

func TestNotificationsPagesAndRead(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		bws, _ := s.Connect(t, bob.AccessToken, "")
		var ids []string // oldest first
		for i := range 5 {
			socChat(t, s, alice.AccessToken, fmt.Sprintf("C%d", i), "bob@example.com")
			ids = append(ids, socExpectNote(t, bws, "chat_added", fmt.Sprintf("alice@example.com added you to C%d", i), i+1).ID)
		}
		// Read the second oldest: it moves after every unread one.
		r := s.Do(t, "POST", "/api/v1/notifications/"+ids[1]+"/read", bob.AccessToken, nil)
		if r.Status != http.StatusOK || string(r.Body) != `{"unread":4}` {
			t.Fatalf("read: %d %s", r.Status, r.Body)
		}
		socExpectUnread(t, bws, 4)
		// Reading it again changes nothing and pushes nothing.
		if r := s.Do(t, "POST", "/api/v1/notifications/"+ids[1]+"/read", bob.AccessToken, nil); r.Status != http.StatusOK {
			t.Fatalf("read again: %d %s", r.Status, r.Body)
		}
		bws.ExpectNone(t, "notifications_unread", 200*time.Millisecond)

		want := []string{ids[4], ids[3], ids[2], ids[0], ids[1]}
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			q := "?limit=2"
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			p := socNotes(t, s, bob.AccessToken, q)
			if p.Unread != 4 {
				t.Errorf("page unread %d, want 4", p.Unread)
			}
			for _, n := range p.Notifications {
				got = append(got, n.ID)
				if n.Read != (n.ID == ids[1]) {
					t.Errorf("notification %s read=%v", n.Text, n.Read)
				}
			}
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("order %v, want %v (unread first, newest first)", got, want)
		}
		for _, q := range []string{"?limit=0", "?limit=101", "?limit=x", "?cursor=bogus"} {
			if r := s.Do(t, "GET", "/api/v1/notifications"+q, bob.AccessToken, nil); r.Status != http.StatusBadRequest {
				t.Errorf("GET %s: %d %s", q, r.Status, r.Body)
			}
		}

		if r := s.Do(t, "POST", "/api/v1/notifications/read-all", bob.AccessToken, nil); r.Status != http.StatusOK || string(r.Body) != `{"unread":0}` {
			t.Fatalf("read-all: %d %s", r.Status, r.Body)
		}
		socExpectUnread(t, bws, 0)
		if p := socNotes(t, s, bob.AccessToken, ""); p.Unread != 0 || len(p.Notifications) != 5 {
			t.Errorf("after read-all %+v", p)
		}
	})
}

// An answer finished in a chat a member has not read: answer_finished,
// once per chat until read; none for a member who read it in time, nor for
// the one who asked while their app is open; the one who asked and closed
// the app finds it stored.
func TestNotificationAnswerFinished(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, up := aieBoot(t, e, func(_ *config.Config, o *app.Options) {
			o.AnswerNotifyDelay = 300 * time.Millisecond
			o.Hub.PresenceGrace = 50 * time.Millisecond
		})
		up.SetDefault(llmtest.Script{Text: "Done."})
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		aws, _ := s.Connect(t, alice.AccessToken, "")
		bws, _ := s.Connect(t, bob.AccessToken, "")
		r := s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "Team",
			"participants": []string{"bob@example.com"}, "settings": map[string]string{"ai_mode": "always"}})
		if r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		var team struct{ ID string }
		r.JSON(t, &team)
		socExpectNote(t, bws, "chat_added", "alice@example.com added you to Team", 1)
		ask := func(token, chatID string) int64 {
			t.Helper()
			r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/messages", token, map[string]string{"content": "question"})
			if r.Status != http.StatusCreated {
				t.Fatalf("send: %d %s", r.Status, r.Body)
			}
			var d struct {
				ChatID string `json:"chat_id"`
				Seq    int64  `json:"seq"`
				Status string `json:"status"`
			}
			bws.Expect(t, "ai_done").Decode(t, &d)
			if d.ChatID != chatID || d.Status != "complete" {
				t.Fatalf("ai_done %+v", d)
			}
			return d.Seq
		}

		// Both read at once (the chat is on their screens): nothing.
		seq := ask(alice.AccessToken, team.ID)
		for _, tok := range []string{bob.AccessToken, alice.AccessToken} {
			if r := s.Do(t, "POST", "/api/v1/chats/"+team.ID+"/read", tok, map[string]int64{"seq": seq}); r.Status != http.StatusOK {
				t.Fatalf("read: %d %s", r.Status, r.Body)
			}
		}
		bws.ExpectNone(t, "notification", 800*time.Millisecond)
		aws.ExpectNone(t, "notification", 10*time.Millisecond)

		// Bob does not read: told once. Alice, who asked, has the chat on
		// screen (her client marks it read): not told.
		readAs := func(token string, seq int64) {
			t.Helper()
			if r := s.Do(t, "POST", "/api/v1/chats/"+team.ID+"/read", token, map[string]int64{"seq": seq}); r.Status != http.StatusOK {
				t.Fatalf("read: %d %s", r.Status, r.Body)
			}
		}
		readAs(alice.AccessToken, ask(alice.AccessToken, team.ID))
		n := socExpectNote(t, bws, "answer_finished", "The assistant answered in Team", 2)
		if n.Actor != nil || n.Subject.Type != "chat" || n.Subject.ID != team.ID {
			t.Fatalf("answer_finished %+v", n)
		}
		readAs(alice.AccessToken, ask(alice.AccessToken, team.ID))
		bws.ExpectNone(t, "notification", 800*time.Millisecond) // one unread per chat at most
		aws.ExpectNone(t, "notification", 10*time.Millisecond)

		// Alice asks in her own chat but stays in Team (Notes is not on her
		// screen, so nothing reads it): she is told, live.
		notes := socChat(t, s, alice.AccessToken, "Notes")
		if r := s.Do(t, "POST", "/api/v1/chats/"+notes+"/messages", alice.AccessToken, map[string]string{"content": "q"}); r.Status != http.StatusCreated {
			t.Fatalf("send: %d %s", r.Status, r.Body)
		}
		socExpectNote(t, aws, "answer_finished", "The assistant answered in Notes", 1)
	})
}
