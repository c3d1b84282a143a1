package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/admin"
	"github.com/aichat/aichat/internal/ai"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/store/storetest"
)

// roleWorld is one account of each role and a bot with a key: the bot is a
// member of two chats owned by owner, and its key names only shared (where
// admin and support are members too), not private.
type roleWorld struct {
	s                       *apptest.Server
	admin, support, owner   string // access tokens
	adminID, ownerID        string
	botID, botEmail, botKey string
	shared, private         string
}

func newRoleWorld(t *testing.T, s *apptest.Server) *roleWorld {
	t.Helper()
	w := &roleWorld{s: s, botEmail: "bot@example.com"}
	adm := s.Admin(t, "root@example.com")
	w.admin, w.adminID = adm.AccessToken, adm.User.ID
	sup := s.Register(t, "support@example.com")
	if r := s.Do(t, "PATCH", "/api/v1/admin/users/"+sup.User.ID, w.admin, map[string]any{"role": "support"}); r.Status != 200 {
		t.Fatalf("make support: %d %s", r.Status, r.Body)
	}
	w.support = w.login(t, "support@example.com")
	owner := s.Register(t, "owner@example.com")
	w.owner, w.ownerID = owner.AccessToken, owner.User.ID

	r := s.Do(t, "POST", "/api/v1/admin/bots", w.admin, map[string]any{"email": w.botEmail, "name": "Helper bot"})
	if r.Status != 201 || !strings.Contains(string(r.Body), `"role":"bot"`) {
		t.Fatalf("create bot: %d %s", r.Status, r.Body)
	}
	var bot struct{ ID string }
	r.JSON(t, &bot)
	w.botID = bot.ID
	w.shared = w.chat(t, "shared", "root@example.com", "support@example.com")
	w.private = w.chat(t, "private")
	for _, c := range []string{w.shared, w.private} {
		if r := s.Do(t, "POST", "/api/v1/chats/"+c+"/participants", w.owner, map[string]any{"email": w.botEmail}); r.Status != 200 {
			t.Fatalf("add the bot: %d %s", r.Status, r.Body)
		}
	}
	raw, r := w.key(t, w.shared)
	if r.Status != 201 {
		t.Fatalf("issue key: %d %s", r.Status, r.Body)
	}
	w.botKey = raw
	return w
}

func (w *roleWorld) login(t *testing.T, email string) string {
	t.Helper()
	var sess apptest.Session
	r := w.s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": apptest.Password})
	if r.Status != 200 {
		t.Fatalf("login %s: %d %s", email, r.Status, r.Body)
	}
	r.JSON(t, &sess)
	return sess.AccessToken
}

func (w *roleWorld) chat(t *testing.T, title string, participants ...string) string {
	t.Helper()
	body := map[string]any{"title": title, "settings": map[string]any{"ai_mode": "off"}}
	if len(participants) > 0 {
		body["participants"] = participants
	}
	r := w.s.Do(t, "POST", "/api/v1/chats", w.owner, body)
	if r.Status != 201 {
		t.Fatalf("create chat: %d %s", r.Status, r.Body)
	}
	var c struct{ ID string }
	r.JSON(t, &c)
	return c.ID
}

// key asks for an API key for the bot in chats; the raw key is "" when
// refused.
func (w *roleWorld) key(t *testing.T, chats ...string) (string, *apptest.Response) {
	t.Helper()
	r := w.s.Do(t, "POST", "/api/v1/admin/bots/"+w.botID+"/keys", w.admin, map[string]any{"name": "test key", "chats": chats})
	var out struct{ Key string }
	if r.Status == 201 {
		r.JSON(t, &out)
	}
	return out.Key, r
}

// flag records a moderation flag as the assistant would, and returns its id.
func (w *roleWorld) flag(t *testing.T, userID string) string {
	t.Helper()
	admin.FlagRecorder(w.s.App.DB, nil)(context.Background(), ai.Flag{ChatID: w.shared, UserID: userID,
		Stage: ai.FlagQuestion, Source: ai.FlagPattern, Matched: "forbiddenword", At: time.Now()})
	var page struct{ Flags []struct{ ID string } }
	r := w.s.Do(t, "GET", "/api/v1/admin/flags", w.admin, nil)
	r.JSON(t, &page)
	if r.Status != 200 || len(page.Flags) == 0 {
		t.Fatalf("flags: %d %s", r.Status, r.Body)
	}
	return page.Flags[0].ID
}

type auditPage struct {
	Entries []struct {
		ActorID    *string        `json:"actor_id"`
		ActorEmail string         `json:"actor_email"`
		Action     string         `json:"action"`
		TargetType string         `json:"target_type"`
		TargetID   string         `json:"target_id"`
		Details    map[string]any `json:"details"`
		CreatedAt  time.Time      `json:"created_at"`
	} `json:"entries"`
	Next string `json:"next"`
}

func audit(t *testing.T, s *apptest.Server, token, query string) auditPage {
	t.Helper()
	var p auditPage
	r := s.Do(t, "GET", "/api/v1/admin/audit"+query, token, nil)
	if r.Status != 200 {
		t.Fatalf("audit: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &p)
	return p
}

// TestBotAPIKey: a bot posts and reads only in its key's chats, over REST
// and the socket; it cannot sign in with a password; a revoked key fails
// at once and its socket closes; the key is shown once and never logged.
func TestBotAPIKey(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		w := newRoleWorld(t, s)
		if !strings.HasPrefix(w.botKey, "aichat_bot_") || len(w.botKey) != len("aichat_bot_")+43 {
			t.Fatalf("key %q: want aichat_bot_ and 43 characters", w.botKey)
		}
		// A chat the bot is not in cannot be named in a key.
		outside := w.chat(t, "outside")
		if _, r := w.key(t, w.shared, outside); r.Status != 400 || r.Err(t).Field != "chats" {
			t.Errorf("key for a chat without the bot: %d %s", r.Status, r.Body)
		}
		if _, r := w.key(t); r.Status != 400 || r.Err(t).Field != "chats" {
			t.Errorf("key without chats: %d %s", r.Status, r.Body)
		}
		// Keys are for bots only.
		if r := s.Do(t, "POST", "/api/v1/admin/bots/"+w.ownerID+"/keys", w.admin, map[string]any{"name": "x", "chats": []string{w.shared}}); r.Status != 400 {
			t.Errorf("key for a person: %d %s", r.Status, r.Body)
		}
		// The list shows the prefix, never the key or its hash.
		r := s.Do(t, "GET", "/api/v1/admin/bots/"+w.botID+"/keys", w.admin, nil)
		var keys struct {
			APIKeys []struct {
				ID, Prefix string
				Chats      []string
			} `json:"api_keys"`
		}
		r.JSON(t, &keys)
		if len(keys.APIKeys) != 1 || !strings.HasPrefix(w.botKey, keys.APIKeys[0].Prefix) || len(keys.APIKeys[0].Prefix) > 20 ||
			len(keys.APIKeys[0].Chats) != 1 || keys.APIKeys[0].Chats[0] != w.shared {
			t.Errorf("keys: %s", r.Body)
		}
		if strings.Contains(string(r.Body), w.botKey[len("aichat_bot_")+6:]) || strings.Contains(string(r.Body), "hash") {
			t.Errorf("the key list shows the key or its hash: %s", r.Body)
		}
		keyID := keys.APIKeys[0].ID

		// A bot cannot use a password (it has none anyone knows, and login refuses bots).
		if r := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": w.botEmail, "password": apptest.Password}); r.Status != 401 {
			t.Errorf("bot password login: %d %s", r.Status, r.Body)
		}

		// A person turned into a bot loses password sign-in, refresh and access tokens.
		former := s.Register(t, "former@example.com")
		s.Do(t, "PATCH", "/api/v1/admin/users/"+former.User.ID, w.admin, map[string]any{"role": "bot"})
		if r := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "former@example.com", "password": apptest.Password}); r.Status != 403 || r.Err(t).Code != "auth.forbidden" {
			t.Errorf("login as a bot: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": former.RefreshToken}); r.Status != 401 {
			t.Errorf("refresh as a bot: %d %s", r.Status, r.Body)
		}

		// REST: its chats only.
		var list struct{ Chats []struct{ ID string } }
		s.Do(t, "GET", "/api/v1/chats", w.botKey, nil).JSON(t, &list)
		if len(list.Chats) != 1 || list.Chats[0].ID != w.shared {
			t.Errorf("bot's chat list: %+v, want only the key's chat", list.Chats)
		}
		if r := s.Do(t, "POST", "/api/v1/chats/"+w.shared+"/messages", w.botKey, map[string]any{"content": "Build passed.", "client_id": "ci-1"}); r.Status != 201 ||
			!strings.Contains(string(r.Body), `"author":"`+w.botID+`"`) {
			t.Errorf("bot posts: %d %s", r.Status, r.Body)
		}

		// Socket: hello counts only its chats; it hears its chat, not the other.
		ws, hello := s.Connect(t, w.botKey, "")
		var h struct {
			UserID string `json:"user_id"`
			Unread struct {
				Chats map[string]int `json:"chats"`
			} `json:"unread"`
		}
		hello.Decode(t, &h)
		if h.UserID != w.botID {
			t.Errorf("hello user %s, want the bot", h.UserID)
		}
		for id := range h.Unread.Chats {
			if id != w.shared {
				t.Errorf("hello counts chat %s outside the key", id)
			}
		}
		s.Do(t, "POST", "/api/v1/chats/"+w.private+"/messages", w.owner, map[string]any{"content": "secret", "client_id": "p-1"})
		s.Do(t, "POST", "/api/v1/chats/"+w.shared+"/messages", w.owner, map[string]any{"content": "deploy please", "client_id": "s-1"})
		f := ws.Expect(t, "chat_message")
		if !strings.Contains(string(f.Data), "deploy please") {
			t.Errorf("first message the bot heard: %s, want the one in its chat", f.Data)
		}
		time.Sleep(100 * time.Millisecond)
		for _, f := range ws.Frames() {
			if strings.Contains(string(f.Data), w.private) {
				t.Errorf("the bot's socket got a frame about a chat outside its key: %s %s", f.Type, f.Data)
			}
		}
		// Commands: in its chat yes, elsewhere chat.notFound.
		ws.Send(t, "send_message", "1", map[string]any{"chat_id": w.shared, "content": "on it", "client_id": "ws-1"})
		if a := ws.Expect(t, "ack"); a.ID != "1" {
			t.Errorf("ack %+v", a)
		}
		for _, cmd := range []struct {
			typ  string
			data map[string]any
		}{
			{"send_message", map[string]any{"chat_id": w.private, "content": "x", "client_id": "ws-2"}},
			{"read", map[string]any{"chat_id": w.private, "seq": 0}},
			{"typing", map[string]any{"chat_id": w.private}},
			{"ai_stop", map[string]any{"chat_id": w.private}},
		} {
			ws.Send(t, cmd.typ, "x", cmd.data)
			if f := ws.Expect(t, "error"); !strings.Contains(string(f.Data), "chat.notFound") {
				t.Errorf("%s outside the key: %s", cmd.typ, f.Data)
			}
		}
		ws.Send(t, "resume", "r", map[string]any{"chats": map[string]int64{w.private: 0, w.shared: 0}})
		res := ws.Expect(t, "resumed")
		var rd struct {
			Chats map[string]int64 `json:"chats"`
			Gone  []string         `json:"gone"`
		}
		res.Decode(t, &rd)
		if _, ok := rd.Chats[w.private]; ok || len(rd.Gone) != 1 || rd.Gone[0] != w.private {
			t.Errorf("resume outside the key: %s", res.Data)
		}

		// Revoking ends the key at once: REST 401 and the socket closes.
		r = s.Do(t, "DELETE", "/api/v1/admin/keys/"+keyID, w.admin, nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"revoked_at":"`) {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
		if code := ws.Closed(t); code != 1008 {
			t.Errorf("socket of a revoked key closed with %d, want 1008", code)
		}
		if r := s.Do(t, "GET", "/api/v1/me", w.botKey, nil); r.Status != 401 || r.Err(t).Code != "auth.invalidToken" {
			t.Errorf("revoked key: %d %s", r.Status, r.Body)
		}
		if _, resp, err := s.Dial(t, "", map[string][]string{"Authorization": {"Bearer " + w.botKey}}); err == nil || resp == nil || resp.StatusCode != 401 {
			t.Errorf("socket with a revoked key: %v %v", err, resp)
		}
		if r := s.Do(t, "DELETE", "/api/v1/admin/keys/00000000-0000-0000-0000-000000000000", w.admin, nil); r.Status != 404 || r.Err(t).Code != "apiKey.notFound" {
			t.Errorf("revoke unknown key: %d %s", r.Status, r.Body)
		}

		// A new key works; blocking the bot ends it; removing the bot from the chat ends access too.
		key2, _ := w.key(t, w.shared)
		if r := s.Do(t, "GET", "/api/v1/chats/"+w.shared, key2, nil); r.Status != 200 {
			t.Errorf("second key: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "DELETE", "/api/v1/chats/"+w.shared+"/participants/"+w.botID, w.owner, nil); r.Status != 204 {
			t.Fatalf("remove the bot: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "GET", "/api/v1/chats/"+w.shared+"/messages", key2, nil); r.Status != 404 {
			t.Errorf("bot removed from the chat reads it: %d %s", r.Status, r.Body)
		}
		s.Do(t, "PATCH", "/api/v1/admin/users/"+w.botID, w.admin, map[string]any{"blocked": true})
		if r := s.Do(t, "GET", "/api/v1/me", key2, nil); r.Status != 403 || r.Err(t).Code != "auth.userBlocked" {
			t.Errorf("blocked bot's key: %d %s", r.Status, r.Body)
		}

		// The audit log names the key by id and prefix, never the key; no
		// log line holds it either.
		body := string(s.Do(t, "GET", "/api/v1/admin/audit?limit=200", w.admin, nil).Body)
		for _, k := range []string{w.botKey, key2} {
			secret := k[len("aichat_bot_"):]
			if strings.Contains(body, secret[6:]) || strings.Contains(s.Logs(), secret[6:]) {
				t.Errorf("a key's secret part is in the audit log or the server log")
			}
		}
		p := audit(t, s, w.admin, "?action=apiKey.revoke")
		if len(p.Entries) != 1 || p.Entries[0].TargetID != keyID || p.Entries[0].ActorEmail != "root@example.com" {
			t.Errorf("revoke audit: %+v", p.Entries)
		}
	})
}

// TestAdminUsersAndAudit: search, filters and pages of the user list; role
// changes and blocks are audited; an admin cannot demote or block
// themselves.
func TestAdminUsersAndAudit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		adm := s.Admin(t, "root@example.com")
		var ids []string
		for _, em := range []string{"ann.lee@example.com", "bob@example.com", "Carol_100%@example.com", "dan@corp.example.org"} {
			ids = append(ids, s.Register(t, strings.ToLower(em)).User.ID)
		}
		type page struct {
			Users []struct {
				ID, Email string
				Role      string
				Blocked   bool
			}
			Total int64
			Next  string
		}
		get := func(q string) page {
			t.Helper()
			var p page
			r := s.Do(t, "GET", "/api/v1/admin/users"+q, adm.AccessToken, nil)
			if r.Status != 200 {
				t.Fatalf("users%s: %d %s", q, r.Status, r.Body)
			}
			r.JSON(t, &p)
			return p
		}
		if p := get(""); p.Total != 5 || len(p.Users) != 5 || p.Users[0].Email != "dan@corp.example.org" || p.Next != "" {
			t.Errorf("all users: %+v", p)
		}
		if p := get("?q=CORP"); p.Total != 1 || p.Users[0].ID != ids[3] {
			t.Errorf("search by email, any case: %+v", p)
		}
		if p := get("?q=100%25"); p.Total != 1 || p.Users[0].ID != ids[2] {
			t.Errorf("search with %%: %+v", p)
		}
		if p := get("?q=_"); p.Total != 1 {
			t.Errorf("search with _ matches only a literal underscore: %+v", p)
		}
		// Pages of two, newest first, with the total on each.
		p1 := get("?limit=2")
		p2 := get("?limit=2&before=" + p1.Next)
		p3 := get("?limit=2&before=" + p2.Next)
		if len(p1.Users) != 2 || len(p2.Users) != 2 || len(p3.Users) != 1 || p3.Next != "" || p1.Total != 5 || p1.Users[1].ID == p2.Users[0].ID {
			t.Errorf("pages: %+v / %+v / %+v", p1, p2, p3)
		}
		for _, bad := range []string{"?limit=0", "?limit=500", "?before=x", "?role=root", "?blocked=maybe"} {
			if r := s.Do(t, "GET", "/api/v1/admin/users"+bad, adm.AccessToken, nil); r.Status != 400 {
				t.Errorf("users%s: %d, want 400", bad, r.Status)
			}
		}

		s.Do(t, "PATCH", "/api/v1/admin/users/"+ids[1], adm.AccessToken, map[string]any{"role": "support"})
		s.Do(t, "PATCH", "/api/v1/admin/users/"+ids[0], adm.AccessToken, map[string]any{"blocked": true})
		if p := get("?role=support"); p.Total != 1 || p.Users[0].ID != ids[1] {
			t.Errorf("role filter: %+v", p)
		}
		if p := get("?blocked=true"); p.Total != 1 || p.Users[0].ID != ids[0] {
			t.Errorf("blocked filter: %+v", p)
		}
		if p := get("?blocked=false&q=example.com"); p.Total != 3 {
			t.Errorf("combined filters: %+v", p)
		}

		// Self-protection.
		for _, body := range []map[string]any{{"role": "user"}, {"blocked": true}} {
			if r := s.Do(t, "PATCH", "/api/v1/admin/users/"+adm.User.ID, adm.AccessToken, body); r.Status != 409 || r.Err(t).Code != "admin.selfChange" {
				t.Errorf("admin changes own account %v: %d %s", body, r.Status, r.Body)
			}
		}

		a := audit(t, s, adm.AccessToken, "")
		if len(a.Entries) != 2 || a.Entries[0].Action != "user.block" || a.Entries[1].Action != "user.role" {
			t.Fatalf("audit: %+v", a.Entries)
		}
		e0, e1 := a.Entries[0], a.Entries[1]
		if e0.ActorID == nil || *e0.ActorID != adm.User.ID || e0.TargetType != "user" || e0.TargetID != ids[0] || e0.CreatedAt.IsZero() {
			t.Errorf("block entry: %+v", e0)
		}
		if role, _ := e1.Details["role"].(map[string]any); role["from"] != "user" || role["to"] != "support" {
			t.Errorf("role entry details: %+v", e1.Details)
		}
		if p := audit(t, s, adm.AccessToken, "?limit=1"); len(p.Entries) != 1 || p.Next == "" {
			t.Errorf("audit page: %+v", p)
		} else if p2 := audit(t, s, adm.AccessToken, "?limit=1&before="+p.Next); len(p2.Entries) != 1 || p2.Entries[0].Action != "user.role" {
			t.Errorf("audit second page: %+v", p2)
		}
		if p := audit(t, s, adm.AccessToken, "?target="+ids[1]); len(p.Entries) != 1 {
			t.Errorf("audit by target: %+v", p)
		}
		if p := audit(t, s, adm.AccessToken, "?actor="+adm.User.ID+"&action=user.block"); len(p.Entries) != 1 {
			t.Errorf("audit by actor and action: %+v", p)
		}
	})
}

// TestAdminQuotaUsageStatus: a quota reset gives the day's allowance back
// without changing the usage totals; usage is reported per user and model,
// per model and per day; the status shows the dependencies and sockets.
func TestAdminQuotaUsageStatus(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e, apptest.WithConfig(func(c *config.Config) { c.AIDailyTokens = 1000 }))
		adm := s.Admin(t, "root@example.com")
		kim := s.Register(t, "kim@example.com")
		sup := s.Register(t, "sup@example.com")
		s.Do(t, "PATCH", "/api/v1/admin/users/"+sup.User.ID, adm.AccessToken, map[string]any{"role": "support"})
		var supSess apptest.Session
		s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "sup@example.com", "password": apptest.Password}).JSON(t, &supSess)

		today := time.Now().UTC().Format(time.DateOnly)
		yesterday := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
		for _, row := range []struct {
			day, model string
			p, c       int
		}{{today, "m1", 700, 500}, {yesterday, "m1", 10, 5}, {today, "m2", 1, 1}} {
			if err := s.App.DB.Exec(`INSERT INTO ai_usage (user_id, day, model, provider, requests, prompt_tokens, completion_tokens)
				VALUES (?, ?, ?, 'fake', 1, ?, ?)`, kim.User.ID, row.day, row.model, row.p, row.c).Error; err != nil {
				t.Fatal(err)
			}
		}
		type detail struct {
			Email string
			Quota struct{ Used, Limit int64 }
		}
		var d detail
		s.Do(t, "GET", "/api/v1/admin/users/"+kim.User.ID, adm.AccessToken, nil).JSON(t, &d)
		if d.Email != "kim@example.com" || d.Quota.Used != 1202 || d.Quota.Limit != 1000 {
			t.Errorf("before reset: %+v", d)
		}
		r := s.Do(t, "POST", "/api/v1/admin/users/"+kim.User.ID+"/quota/reset", adm.AccessToken, nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"used":0`) {
			t.Errorf("reset: %d %s", r.Status, r.Body)
		}
		s.Do(t, "GET", "/api/v1/admin/users/"+kim.User.ID, adm.AccessToken, nil).JSON(t, &d)
		if d.Quota.Used != 0 {
			t.Errorf("after reset: %+v", d)
		}
		// Spending after the reset counts again.
		s.App.DB.Exec(`UPDATE ai_usage SET prompt_tokens = prompt_tokens + 50 WHERE user_id = ? AND day = ? AND model = 'm2'`, kim.User.ID, today)
		if q, err := s.App.AI.QuotaOf(context.Background(), kim.User.ID); err != nil || q.Used != 50 {
			t.Errorf("after spending 50 more: %+v %v", q, err)
		}
		if p := audit(t, s, adm.AccessToken, "?action=user.quotaReset"); len(p.Entries) != 1 || p.Entries[0].Details["used_before"] != float64(1202) {
			t.Errorf("quota audit: %+v", p.Entries)
		}

		var rep struct {
			Usage []struct {
				UserID, Email, Model string
				Requests             int64
				PromptTokens         int64 `json:"prompt_tokens"`
			}
			ByModel []struct {
				Model        string
				PromptTokens int64 `json:"prompt_tokens"`
			} `json:"by_model"`
			ByDay []struct{ Day string } `json:"by_day"`
			Total struct {
				Requests     int64
				PromptTokens int64 `json:"prompt_tokens"`
			}
		}
		r = s.Do(t, "GET", "/api/v1/admin/usage?days=7", supSess.AccessToken, nil)
		r.JSON(t, &rep)
		if r.Status != 200 || len(rep.Usage) != 2 || rep.Usage[0].Email != "kim@example.com" || rep.Usage[0].Model != "m1" || rep.Usage[0].PromptTokens != 710 {
			t.Errorf("usage per user: %d %s", r.Status, r.Body)
		}
		if len(rep.ByModel) != 2 || len(rep.ByDay) != 2 || rep.ByDay[0].Day != yesterday || rep.Total.Requests != 3 || rep.Total.PromptTokens != 761 {
			t.Errorf("usage totals: %s", r.Body)
		}
		r = s.Do(t, "GET", "/api/v1/admin/usage?days=1&user="+adm.User.ID, adm.AccessToken, nil)
		r.JSON(t, &rep)
		if len(rep.Usage) != 0 || rep.Total.Requests != 0 {
			t.Errorf("usage of a user without any: %s", r.Body)
		}

		ws, _ := s.Connect(t, kim.AccessToken, "")
		_ = ws
		var st struct {
			Version           string
			UptimeSeconds     int64 `json:"uptime_seconds"`
			Connections       int
			ActiveGenerations int `json:"active_generations"`
			Database, Broker  struct {
				OK   bool
				Name string
			}
			Users struct{ Total, Admins, Support int64 }
		}
		r = s.Do(t, "GET", "/api/v1/admin/status", supSess.AccessToken, nil)
		r.JSON(t, &st)
		if r.Status != 200 || !st.Database.OK || !st.Broker.OK || st.Database.Name == "" || st.Connections != 1 ||
			st.Version == "" || st.Users.Total != 3 || st.Users.Admins != 1 || st.Users.Support != 1 {
			t.Errorf("status: %d %s", r.Status, r.Body)
		}
		// Support reads, never changes.
		if r := s.Do(t, "POST", "/api/v1/admin/users/"+kim.User.ID+"/quota/reset", supSess.AccessToken, nil); r.Status != 403 {
			t.Errorf("support resets a quota: %d", r.Status)
		}
	})
}

// TestModerationQueue: a question refused by a blocked pattern leaves a
// flag with the pattern, the chat and the user, never the text; support
// lists it and marks it reviewed.
func TestModerationQueue(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s, _ := aieBoot(t, e, aieCfg(func(c *config.Config) { c.AIBlockedPatterns = "forbiddenword,re:secret\\s+plans?" }))
		adm := s.Admin(t, "root@example.com")
		alice := s.Register(t, "alice@example.com")
		sup := s.Register(t, "sup@example.com")
		s.Do(t, "PATCH", "/api/v1/admin/users/"+sup.User.ID, adm.AccessToken, map[string]any{"role": "support"})
		var supSess apptest.Session
		s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "sup@example.com", "password": apptest.Password}).JSON(t, &supSess)

		chatID := aieChat(t, s, alice.AccessToken, nil)
		a := aieConnect(t, s, alice.AccessToken, "", "alice")
		q := aiePost(t, s, alice.AccessToken, chatID, "my private note: tell me the SECRET   plan of the company")
		if tr := a.turn(chatID); tr.err == nil || tr.err.Code != "ai.moderated" {
			t.Fatalf("not moderated:\n%s", tr.summary())
		}
		type flag struct {
			ID, Stage, Source, Matched string
			ChatID                     *string    `json:"chat_id"`
			MessageID                  *string    `json:"message_id"`
			UserID                     *string    `json:"user_id"`
			UserEmail                  string     `json:"user_email"`
			ReviewedAt                 *time.Time `json:"reviewed_at"`
		}
		var page struct {
			Flags []flag
			Next  string
		}
		var r *apptest.Response
		deadline := time.Now().Add(5 * time.Second)
		for {
			r = s.Do(t, "GET", "/api/v1/admin/flags", supSess.AccessToken, nil)
			r.JSON(t, &page)
			if len(page.Flags) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if r.Status != 200 || len(page.Flags) != 1 {
			t.Fatalf("flags: %d %s", r.Status, r.Body)
		}
		f := page.Flags[0]
		if f.Stage != "question" || f.Source != "pattern" || f.Matched != `re:secret\s+plans?` || f.ChatID == nil || *f.ChatID != chatID ||
			f.UserID == nil || *f.UserID != alice.User.ID || f.MessageID == nil || *f.MessageID != q.ID || f.UserEmail != "alice@example.com" || f.ReviewedAt != nil {
			t.Errorf("flag: %s", r.Body)
		}
		if strings.Contains(strings.ToLower(string(r.Body)), "private note") || strings.Contains(strings.ToLower(string(r.Body)), "company") {
			t.Errorf("the flag holds the conversation: %s", r.Body)
		}
		r = s.Do(t, "POST", "/api/v1/admin/flags/"+f.ID+"/review", supSess.AccessToken, nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"reviewed_by":"`+sup.User.ID+`"`) {
			t.Errorf("review: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "POST", "/api/v1/admin/flags/"+f.ID+"/review", supSess.AccessToken, nil); r.Status != 200 {
			t.Errorf("review again: %d", r.Status)
		}
		s.Do(t, "GET", "/api/v1/admin/flags", supSess.AccessToken, nil).JSON(t, &page)
		if len(page.Flags) != 0 {
			t.Errorf("open flags after review: %+v", page.Flags)
		}
		s.Do(t, "GET", "/api/v1/admin/flags?status=reviewed", supSess.AccessToken, nil).JSON(t, &page)
		if len(page.Flags) != 1 {
			t.Errorf("reviewed flags: %+v", page.Flags)
		}
		if r := s.Do(t, "GET", "/api/v1/admin/flags?status=bogus", supSess.AccessToken, nil); r.Status != 400 {
			t.Errorf("bad status: %d", r.Status)
		}
		if r := s.Do(t, "POST", "/api/v1/admin/flags/00000000-0000-0000-0000-000000000000/review", supSess.AccessToken, nil); r.Status != 404 || r.Err(t).Code != "moderation.flagNotFound" {
			t.Errorf("review unknown flag: %d %s", r.Status, r.Body)
		}
		// Reviewing is audited once, by the support account.
		if p := audit(t, s, adm.AccessToken, "?action=flag.review"); len(p.Entries) != 1 || p.Entries[0].ActorEmail != "sup@example.com" {
			t.Errorf("review audit: %+v", p.Entries)
		}
		// A moderated answer is flagged at the answer stage.
		var st struct {
			OpenFlags int64 `json:"open_flags"`
		}
		s.Do(t, "GET", "/api/v1/admin/status", adm.AccessToken, nil).JSON(t, &st)
		if st.OpenFlags != 0 {
			t.Errorf("open flags in status: %d", st.OpenFlags)
		}
	})
}
