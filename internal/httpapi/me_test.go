package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
)

func TestAccessTokenRejected(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t))
	sess := s.Register(t, "gina@example.com")
	parts := strings.Split(sess.AccessToken, ".")

	// alg=none: same claims, header says none, no signature.
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt","kid":"` + s.App.Keys.JWT.Current().ID + `"}`))
	// Claims tampered: role raised to admin, signature kept.
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	json.Unmarshal(claims, &m)
	m["role"] = "admin"
	tampered, _ := json.Marshal(m)

	tests := []struct {
		name   string
		header string
		code   string
	}{
		{"none", "", "auth.required"},
		{"not bearer", "Basic " + sess.AccessToken, "auth.invalidToken"},
		{"bearer without token", "Bearer ", "auth.invalidToken"},
		{"garbage", "Bearer not.a.token", "auth.invalidToken"},
		{"alg none", "Bearer " + noneHeader + "." + parts[1] + ".", "auth.invalidToken"},
		{"tampered claims", "Bearer " + parts[0] + "." + base64.RawURLEncoding.EncodeToString(tampered) + "." + parts[2], "auth.invalidToken"},
		{"refresh token as access token", "Bearer " + sess.RefreshToken, "auth.invalidToken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.DoHeader(t, "GET", "/api/v1/me", map[string]string{"Authorization": tc.header})
			if r.Status != 401 || r.Err(t).Code != tc.code {
				t.Fatalf("got %d %s, want 401 %s", r.Status, r.Body, tc.code)
			}
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestTokenSignedByAnotherServer(t *testing.T) {
	a := apptest.Start(t, storetest.SQLite(t))
	b := apptest.Start(t, storetest.SQLite(t))
	sess := a.Register(t, "hal@example.com")
	if r := b.Do(t, "GET", "/api/v1/me", sess.AccessToken, nil); r.Status != 401 || r.Err(t).Code != "auth.invalidToken" {
		t.Fatalf("foreign token: %d %s, want 401 auth.invalidToken", r.Status, r.Body)
	}
}

func TestPasswordChangeRevokesTokens(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		first := s.Register(t, "ivan@example.com")
		other := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "ivan@example.com", "password": apptest.Password})
		var second apptest.Session
		other.JSON(t, &second)

		change := func(tok, cur, next string) *apptest.Response {
			return s.Do(t, "POST", "/api/v1/me/password", tok, map[string]string{"current_password": cur, "new_password": next})
		}
		if r := change(first.AccessToken, "wrong current pw", "a brand new passphrase"); r.Status != 403 || r.Err(t).Code != "auth.wrongPassword" {
			t.Fatalf("wrong current: %d %s", r.Status, r.Body)
		}
		if r := change(first.AccessToken, apptest.Password, "password1"); r.Status != 400 || r.Err(t).Field != "new_password" {
			t.Fatalf("weak new: %d %s", r.Status, r.Body)
		}
		r := change(first.AccessToken, apptest.Password, "a brand new passphrase")
		if r.Status != 200 {
			t.Fatalf("change: %d %s", r.Status, r.Body)
		}
		var fresh apptest.Session
		r.JSON(t, &fresh)
		for name, tok := range map[string]string{"changer's old": first.AccessToken, "other session's": second.AccessToken} {
			if r := s.Do(t, "GET", "/api/v1/me", tok, nil); r.Status != 401 {
				t.Errorf("%s access token after password change: %d, want 401", name, r.Status)
			}
		}
		if r := s.Do(t, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": second.RefreshToken}); r.Status != 401 {
			t.Errorf("other session's refresh token after password change: %d, want 401", r.Status)
		}
		if r := s.Do(t, "GET", "/api/v1/me", fresh.AccessToken, nil); r.Status != 200 {
			t.Errorf("fresh session: %d", r.Status)
		}
		if r := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "ivan@example.com", "password": "a brand new passphrase"}); r.Status != 200 {
			t.Errorf("login with new password: %d", r.Status)
		}
	})
}

func TestSessions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		a1 := s.Register(t, "judy@example.com")
		var a2 apptest.Session
		s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "judy@example.com", "password": apptest.Password}).JSON(t, &a2)
		mallory := s.Register(t, "mallory@example.com")

		var list struct {
			Sessions []struct {
				ID      string `json:"id"`
				Current bool   `json:"current"`
			} `json:"sessions"`
		}
		s.Do(t, "GET", "/api/v1/me/sessions", a1.AccessToken, nil).JSON(t, &list)
		if len(list.Sessions) != 2 {
			t.Fatalf("sessions = %+v, want 2", list.Sessions)
		}
		var otherID string
		for _, ss := range list.Sessions {
			if !ss.Current {
				otherID = ss.ID
			}
		}
		if otherID == "" {
			t.Fatal("no session marked as not current")
		}
		// Someone else's session: 404, exactly like a session that does not exist.
		r := s.Do(t, "DELETE", "/api/v1/me/sessions/"+otherID, mallory.AccessToken, nil)
		missing := s.Do(t, "DELETE", "/api/v1/me/sessions/00000000-0000-0000-0000-000000000000", mallory.AccessToken, nil)
		if r.Status != 404 || missing.Status != 404 || r.Err(t).Message != missing.Err(t).Message {
			t.Fatalf("other user's session: %d %s; missing: %d %s", r.Status, r.Body, missing.Status, missing.Body)
		}
		if r := s.Do(t, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": a2.RefreshToken}); r.Status != 200 {
			t.Fatalf("session must survive another user's delete: %d", r.Status)
		}
		// The owner signs the other device out.
		s.Do(t, "GET", "/api/v1/me/sessions", a1.AccessToken, nil).JSON(t, &list)
		for _, ss := range list.Sessions {
			if !ss.Current {
				otherID = ss.ID
			}
		}
		if r := s.Do(t, "DELETE", "/api/v1/me/sessions/"+otherID, a1.AccessToken, nil); r.Status != 204 {
			t.Fatalf("delete own session: %d %s", r.Status, r.Body)
		}
		s.Do(t, "GET", "/api/v1/me/sessions", a1.AccessToken, nil).JSON(t, &list)
		if len(list.Sessions) != 1 || !list.Sessions[0].Current {
			t.Fatalf("after delete: %+v", list.Sessions)
		}
	})
}
