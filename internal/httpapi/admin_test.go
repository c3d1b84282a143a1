package httpapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/store/storetest"
)

func TestAdminRoutesByRole(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		admin := s.Admin(t, "root@example.com")
		target := s.Register(t, "target@example.com")
		tokens := map[auth.Role]string{auth.RoleAdmin: admin.AccessToken}
		for _, role := range []auth.Role{auth.RoleUser, auth.RoleSupport, auth.RoleBot} {
			sess := s.Register(t, string(role)+"@example.com")
			r := role
			s.Do(t, "PATCH", "/api/v1/admin/users/"+sess.User.ID, admin.AccessToken, map[string]any{"role": r})
			var fresh apptest.Session
			s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": string(role) + "@example.com", "password": apptest.Password}).JSON(t, &fresh)
			tokens[role] = fresh.AccessToken
		}
		routes := []struct {
			method, path string
			body         any
		}{
			{"GET", "/api/v1/admin/users/" + target.User.ID, nil},
			{"PATCH", "/api/v1/admin/users/" + target.User.ID, map[string]any{"blocked": false}},
		}
		for _, rt := range routes {
			for role, tok := range tokens {
				r := s.Do(t, rt.method, rt.path, tok, rt.body)
				want := 403
				if role == auth.RoleAdmin {
					want = 200
				}
				if r.Status != want {
					t.Errorf("%s %s as %s: %d %s, want %d", rt.method, rt.path, role, r.Status, r.Body, want)
				}
				if want == 403 && r.Err(t).Code != "auth.forbidden" {
					t.Errorf("%s %s as %s: code %s, want auth.forbidden", rt.method, rt.path, role, r.Err(t).Code)
				}
			}
			if r := s.Do(t, rt.method, rt.path, "", rt.body); r.Status != 401 {
				t.Errorf("%s %s anonymous: %d, want 401", rt.method, rt.path, r.Status)
			}
		}
		if r := s.Do(t, "GET", "/api/v1/admin/users/00000000-0000-0000-0000-000000000000", admin.AccessToken, nil); r.Status != 404 || r.Err(t).Code != "user.notFound" {
			t.Errorf("unknown user: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "PATCH", "/api/v1/admin/users/"+target.User.ID, admin.AccessToken, map[string]any{"role": "root"}); r.Status != 400 || r.Err(t).Field != "role" {
			t.Errorf("bad role: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "PATCH", "/api/v1/admin/users/"+target.User.ID, admin.AccessToken, map[string]any{}); r.Status != 400 {
			t.Errorf("empty update: %d %s", r.Status, r.Body)
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
