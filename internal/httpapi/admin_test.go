package httpapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/store/storetest"
)

// TestAdminRoutesByRole is the permission table: every admin, support and
// bot route against each role (user, admin, support, a bot's API key) and
// anonymous callers, allowed and denied.
func TestAdminRoutesByRole(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		w := newRoleWorld(t, s)
		target := s.Register(t, "target@example.com")
		flagID := w.flag(t, target.User.ID)
		_, spare := w.key(t, w.shared)
		var spareKey struct {
			APIKey struct{ ID string } `json:"api_key"`
		}
		spare.JSON(t, &spareKey)

		const (
			admin   = "admin"
			support = "support"
			user    = "user"
			bot     = "bot"
			anon    = "anonymous"
		)
		roles := []string{admin, support, user, bot, anon}
		tokens := map[string]string{admin: w.admin, support: w.support, user: w.owner, bot: w.botKey, anon: ""}
		// want: role -> status; roles not named get deny (403, 401 when anonymous).
		type row struct {
			method, path string
			body         any
			want         map[string]int
			deny         int // 0: 403
		}
		adminOnly := func(code int) map[string]int { return map[string]int{admin: code} }
		staff := map[string]int{admin: 200, support: 200}
		people := func(code int) map[string]int { return map[string]int{admin: code, support: code, user: code} }
		everyone := func(code int) map[string]int {
			return map[string]int{admin: code, support: code, user: code, bot: code}
		}
		rows := []row{
			// Admin only.
			{"GET", "/api/v1/admin/users", nil, adminOnly(200), 0},
			{"GET", "/api/v1/admin/users?q=target&role=user&blocked=false", nil, adminOnly(200), 0},
			{"GET", "/api/v1/admin/users/" + target.User.ID, nil, adminOnly(200), 0},
			{"PATCH", "/api/v1/admin/users/" + target.User.ID, map[string]any{"blocked": false}, adminOnly(200), 0},
			{"POST", "/api/v1/admin/users/" + target.User.ID + "/quota/reset", nil, adminOnly(200), 0},
			{"POST", "/api/v1/admin/bots", map[string]any{"email": "newbot@example.com", "name": "New bot"}, adminOnly(201), 0},
			{"GET", "/api/v1/admin/bots/" + w.botID + "/keys", nil, adminOnly(200), 0},
			{"POST", "/api/v1/admin/bots/" + w.botID + "/keys", map[string]any{"name": "matrix", "chats": []string{w.shared}}, adminOnly(201), 0},
			{"DELETE", "/api/v1/admin/keys/" + spareKey.APIKey.ID, nil, adminOnly(200), 0},
			{"GET", "/api/v1/admin/audit", nil, adminOnly(200), 0},
			// Admin and support.
			{"GET", "/api/v1/admin/usage", nil, staff, 0},
			{"GET", "/api/v1/admin/status", nil, staff, 0},
			{"GET", "/api/v1/admin/flags", nil, staff, 0},
			{"POST", "/api/v1/admin/flags/" + flagID + "/review", nil, staff, 0},
			// What a bot's key may do, in its chat: everyone who is a member may.
			{"GET", "/api/v1/me", nil, everyone(200), 0},
			{"GET", "/api/v1/chats", nil, everyone(200), 0},
			{"GET", "/api/v1/chats/" + w.shared, nil, everyone(200), 0},
			{"GET", "/api/v1/chats/" + w.shared + "/messages", nil, everyone(200), 0},
			{"POST", "/api/v1/chats/" + w.shared + "/messages", map[string]any{"content": "hi", "client_id": "matrix-1"}, everyone(201), 0},
			{"POST", "/api/v1/chats/" + w.shared + "/read", map[string]any{}, everyone(200), 0},
			// A chat the bot is in but its key does not name: as if it did not exist.
			{"GET", "/api/v1/chats/" + w.private, nil, map[string]int{user: 200}, 404},
			{"GET", "/api/v1/chats/" + w.private + "/messages", nil, map[string]int{user: 200}, 404},
			{"POST", "/api/v1/chats/" + w.private + "/messages", map[string]any{"content": "hi", "client_id": "matrix-2"}, map[string]int{user: 201}, 404},
			// Everything else is closed to a key.
			{"POST", "/api/v1/chats", map[string]any{"title": "new"}, people(201), 0},
			{"PATCH", "/api/v1/chats/" + w.shared, map[string]any{"title": "renamed"}, people(200), 0},
			{"POST", "/api/v1/chats/" + w.shared + "/participants", map[string]any{"email": "target@example.com"}, map[string]int{user: 200}, 0},
			{"POST", "/api/v1/ws/ticket", nil, people(200), 0},
			{"GET", "/api/v1/me/unread", nil, people(200), 0},
			{"GET", "/api/v1/me/usage", nil, people(200), 0},
			{"POST", "/api/v1/render", map[string]any{"items": []map[string]any{{"text": "x"}}}, people(200), 0},
		}
		for _, rt := range rows {
			for _, role := range roles {
				want, ok := rt.want[role]
				if !ok {
					want = 403
					if rt.deny != 0 && role != anon {
						want = rt.deny
					}
					if role == anon {
						want = 401
					}
				}
				r := s.Do(t, rt.method, rt.path, tokens[role], rt.body)
				if r.Status != want {
					t.Errorf("%s %s as %s: %d %s, want %d", rt.method, rt.path, role, r.Status, r.Body, want)
					continue
				}
				if want >= 400 {
					code := r.Err(t).Code
					switch {
					case want == 401 && code != "auth.required":
						t.Errorf("%s %s as %s: code %s, want auth.required", rt.method, rt.path, role, code)
					case want == 404 && code != "chat.notFound":
						t.Errorf("%s %s as %s: code %s, want chat.notFound", rt.method, rt.path, role, code)
					case want == 403 && strings.HasPrefix(rt.path, "/api/v1/admin/") && code != "auth.forbidden":
						t.Errorf("%s %s as %s: code %s, want auth.forbidden", rt.method, rt.path, role, code)
					case want == 403 && role == bot && code != "auth.forbidden":
						t.Errorf("%s %s as bot: code %s, want auth.forbidden", rt.method, rt.path, code)
					}
				}
			}
		}
		if r := s.Do(t, "GET", "/api/v1/admin/users/00000000-0000-0000-0000-000000000000", w.admin, nil); r.Status != 404 || r.Err(t).Code != "user.notFound" {
			t.Errorf("unknown user: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "GET", "/api/v1/admin/users/not-an-id", w.admin, nil); r.Status != 404 || r.Err(t).Code != "user.notFound" {
			t.Errorf("malformed user id: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "PATCH", "/api/v1/admin/users/"+target.User.ID, w.admin, map[string]any{"role": "root"}); r.Status != 400 || r.Err(t).Field != "role" {
			t.Errorf("bad role: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "PATCH", "/api/v1/admin/users/"+target.User.ID, w.admin, map[string]any{}); r.Status != 400 {
			t.Errorf("empty update: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "GET", "/api/v1/admin/users", "aichat_bot_"+strings.Repeat("x", 43), nil); r.Status != 401 || r.Err(t).Code != "auth.invalidToken" {
			t.Errorf("unknown API key: %d %s", r.Status, r.Body)
		}
	})
}

func TestRoleChangeAndBlockRevokeTokens(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		admin := s.Admin(t, "root@example.com")
		kim := s.Register(t, "kim@example.com")

		// A role change makes the old token (which names the old role) fail.
		if r := s.Do(t, "PATCH", "/api/v1/admin/users/"+kim.User.ID, admin.AccessToken, map[string]any{"role": "support"}); r.Status != 200 || !strings.Contains(string(r.Body), `"role":"support"`) {
			t.Fatalf("role change: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "GET", "/api/v1/me", kim.AccessToken, nil); r.Status != 401 {
			t.Fatalf("token after role change: %d, want 401", r.Status)
		}
		// Refreshing yields a token with the new role.
		var refreshed apptest.Session
		s.Do(t, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": kim.RefreshToken}).JSON(t, &refreshed)
		if refreshed.User.Role != "support" {
			t.Fatalf("refreshed role = %q, want support", refreshed.User.Role)
		}

		// Blocking ends everything at once.
		if r := s.Do(t, "PATCH", "/api/v1/admin/users/"+kim.User.ID, admin.AccessToken, map[string]any{"blocked": true}); r.Status != 200 {
			t.Fatalf("block: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "GET", "/api/v1/me", refreshed.AccessToken, nil); r.Status == 200 {
			t.Fatal("blocked user's token still works")
		}
		if r := s.Do(t, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": refreshed.RefreshToken}); r.Status != 401 {
			t.Fatalf("blocked user's refresh: %d %s, want 401", r.Status, r.Body)
		}
		if r := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "kim@example.com", "password": apptest.Password}); r.Status != 403 || r.Err(t).Code != "auth.userBlocked" {
			t.Fatalf("blocked login: %d %s, want 403 auth.userBlocked", r.Status, r.Body)
		}
		// Unblocked, they can sign in again.
		s.Do(t, "PATCH", "/api/v1/admin/users/"+kim.User.ID, admin.AccessToken, map[string]any{"blocked": false})
		if r := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "kim@example.com", "password": apptest.Password}); r.Status != 200 {
			t.Fatalf("unblocked login: %d %s", r.Status, r.Body)
		}
	})
}

func TestAdminFromEnvironment(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t))
	u, res, err := s.App.Auth.EnsureAdmin(context.Background(), "Boss@Example.com", apptest.Password)
	if err != nil || res != auth.AdminCreated || u.Role != auth.RoleAdmin {
		t.Fatalf("EnsureAdmin = %v, %v, %v", u, res, err)
	}
	if _, res, _ := s.App.Auth.EnsureAdmin(context.Background(), "boss@example.com", "other password here"); res != auth.AdminUnchanged {
		t.Fatalf("second EnsureAdmin = %v, want unchanged", res)
	}
	plain := s.Register(t, "plain@example.com")
	if _, res, _ := s.App.Auth.EnsureAdmin(context.Background(), "plain@example.com", "whatever password"); res != auth.AdminPromoted {
		t.Fatalf("EnsureAdmin on a user = %v, want promoted", res)
	}
	if r := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "plain@example.com", "password": apptest.Password}); r.Status != 200 || !strings.Contains(string(r.Body), `"role":"admin"`) {
		t.Fatalf("promoted user keeps password and is admin: %d %s", r.Status, r.Body)
	}
	_ = plain
}
