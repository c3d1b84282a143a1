package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/store/storetest"
)

func TestRegister(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		s.Register(t, "taken@example.com")

		tests := []struct {
			name      string
			body      any
			wantCode  string
			wantField string
			status    int
		}{
			{"ok", map[string]string{"email": "New@Example.com ", "password": apptest.Password}, "", "", 201},
			{"email taken", map[string]string{"email": "taken@example.com", "password": apptest.Password}, "auth.emailTaken", "email", 409},
			{"email taken other case", map[string]string{"email": "TAKEN@example.com", "password": apptest.Password}, "auth.emailTaken", "email", 409},
			{"bad email", map[string]string{"email": "not-an-email", "password": apptest.Password}, "validation.failed", "email", 400},
			{"no email", map[string]string{"password": apptest.Password}, "validation.failed", "email", 400},
			{"short password", map[string]string{"email": "a@example.com", "password": "short"}, "validation.failed", "password", 400},
			{"common password", map[string]string{"email": "b@example.com", "password": "password123"}, "auth.weakPassword", "password", 400},
			{"too long password", map[string]string{"email": "c@example.com", "password": strings.Repeat("x", 1025)}, "validation.failed", "password", 400},
			{"unknown field", map[string]any{"email": "d@example.com", "password": apptest.Password, "admin": true}, "validation.failed", "admin", 400},
			{"wrong type", map[string]any{"email": 42, "password": apptest.Password}, "validation.failed", "email", 400},
			{"malformed json", `{"email": "e@example.com",`, "validation.failed", "", 400},
			{"not an object", `[1,2]`, "validation.failed", "", 400},
			{"two objects", `{"email":"f@example.com","password":"correct horse battery staple"} {}`, "validation.failed", "", 400},
			{"empty body", ``, "validation.failed", "", 400},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := s.Do(t, "POST", "/api/v1/auth/register", "", tc.body)
				if r.Status != tc.status {
					t.Fatalf("status = %d, want %d: %s", r.Status, tc.status, r.Body)
				}
				if tc.wantCode == "" {
					var sess apptest.Session
					r.JSON(t, &sess)
					if sess.AccessToken == "" || sess.RefreshToken == "" || sess.ExpiresIn != 900 {
						t.Fatalf("session = %+v, want tokens and expires_in 900", sess)
					}
					if sess.User.Email != "new@example.com" || sess.User.Role != "user" || sess.User.Name != "new" {
						t.Fatalf("user = %+v, want normalized email, role user, name from email", sess.User)
					}
					if strings.Contains(string(r.Body), "password") {
						t.Fatalf("answer mentions the password hash: %s", r.Body)
					}
					return
				}
				e := r.Err(t)
				if e.Code != tc.wantCode || e.Field != tc.wantField || e.Message == "" {
					t.Fatalf("error = %+v, want code %s field %q", e, tc.wantCode, tc.wantField)
				}
			})
		}
	})
}

func TestRegisterOversizedBody(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t), apptest.WithConfig(func(c *config.Config) { c.MaxBodyBytes = 1024 }))
	big := `{"email":"a@example.com","password":"` + strings.Repeat("x", 2000) + `"}`
	r := s.Do(t, "POST", "/api/v1/auth/register", "", big)
	if r.Status != http.StatusRequestEntityTooLarge || r.Err(t).Code != "request.tooLarge" {
		t.Fatalf("got %d %s, want 413 request.tooLarge", r.Status, r.Body)
	}
}

func TestRegisterWrongContentType(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t))
	req, _ := http.NewRequest("POST", s.URL+"/api/v1/auth/register", strings.NewReader(`email=a@example.com`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("status = %d, want 415", res.StatusCode)
	}
}

func TestLogin(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		s.Register(t, "alice@example.com")

		ok := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": " Alice@Example.com", "password": apptest.Password})
		if ok.Status != 200 {
			t.Fatalf("login: %d %s", ok.Status, ok.Body)
		}
		if ok.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store on a token answer", ok.Header.Get("Cache-Control"))
		}
		var sess apptest.Session
		ok.JSON(t, &sess)
		if me := s.Do(t, "GET", "/api/v1/me", sess.AccessToken, nil); me.Status != 200 || !strings.Contains(string(me.Body), "alice@example.com") {
			t.Fatalf("me: %d %s", me.Status, me.Body)
		}

		// An unknown email and a wrong password are indistinguishable.
		wrong := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "alice@example.com", "password": "not the password"})
		unknown := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "nobody@example.com", "password": "not the password"})
		we, ue := wrong.Err(t), unknown.Err(t)
		if wrong.Status != 401 || unknown.Status != 401 || we.Code != ue.Code || we.Message != ue.Message || we.Code != "auth.invalidCredentials" {
			t.Fatalf("wrong password %d %+v vs unknown email %d %+v: want identical 401s", wrong.Status, we, unknown.Status, ue)
		}
	})
}

func TestLoginThrottle(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		clock := &now
		s := apptest.Start(t, e, apptest.WithClock(func() time.Time { return *clock }))
		s.Register(t, "bob@example.com")
		login := func(email, pw string) *apptest.Response {
			return s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": pw})
		}
		for _, email := range []string{"bob@example.com", "ghost@example.com"} {
			for i := 0; i < 5; i++ {
				if r := login(email, "wrong password!"); r.Status != 401 {
					t.Fatalf("%s attempt %d: %d %s, want 401", email, i+1, r.Status, r.Body)
				}
			}
			// Locked now, even with the right password: known and unknown
			// accounts behave the same.
			r := login(email, apptest.Password)
			if r.Status != 429 || r.Err(t).Code != "auth.tooManyAttempts" || r.Header.Get("Retry-After") != "30" {
				t.Fatalf("%s after 5 failures: %d %s Retry-After=%q, want 429 with Retry-After 30", email, r.Status, r.Body, r.Header.Get("Retry-After"))
			}
		}
		// Another account is not affected.
		s.Register(t, "carol@example.com")
		if r := login("carol@example.com", apptest.Password); r.Status != 200 {
			t.Fatalf("other account: %d %s", r.Status, r.Body)
		}
		// The lock lifts after its time; a further failure doubles it.
		now = now.Add(31 * time.Second)
		if r := login("bob@example.com", "wrong password!"); r.Status != 401 {
			t.Fatalf("after lock: %d %s", r.Status, r.Body)
		}
		if r := login("bob@example.com", apptest.Password); r.Status != 429 || r.Header.Get("Retry-After") != "60" {
			t.Fatalf("second lock: %d Retry-After=%q, want 429 with 60", r.Status, r.Header.Get("Retry-After"))
		}
		now = now.Add(61 * time.Second)
		if r := login("bob@example.com", apptest.Password); r.Status != 200 {
			t.Fatalf("right password after lock: %d %s", r.Status, r.Body)
		}
		// Success cleared the count.
		for i := 0; i < 4; i++ {
			login("bob@example.com", "wrong password!")
		}
		if r := login("bob@example.com", apptest.Password); r.Status != 200 {
			t.Fatalf("4 failures after success must not lock: %d", r.Status)
		}
	})
}

func TestRefreshRotationAndReuse(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		first := s.Register(t, "dave@example.com")
		refresh := func(tok string) *apptest.Response {
			return s.Do(t, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": tok})
		}
		r := refresh(first.RefreshToken)
		if r.Status != 200 {
			t.Fatalf("refresh: %d %s", r.Status, r.Body)
		}
		var second apptest.Session
		r.JSON(t, &second)
		if second.RefreshToken == first.RefreshToken || second.AccessToken == "" {
			t.Fatal("refresh must rotate the refresh token")
		}
		if me := s.Do(t, "GET", "/api/v1/me", second.AccessToken, nil); me.Status != 200 {
			t.Fatalf("new access token: %d", me.Status)
		}
		// Replaying the spent token revokes the family: the newest one dies too.
		if r := refresh(first.RefreshToken); r.Status != 401 || r.Err(t).Code != "auth.refreshTokenReused" {
			t.Fatalf("reuse: %d %s, want 401 auth.refreshTokenReused", r.Status, r.Body)
		}
		if r := refresh(second.RefreshToken); r.Status != 401 {
			t.Fatalf("token of a revoked family: %d %s, want 401", r.Status, r.Body)
		}
		if r := refresh("made-up-token"); r.Status != 401 || r.Err(t).Code != "auth.invalidRefreshToken" {
			t.Fatalf("unknown token: %d %s", r.Status, r.Body)
		}
		if r := refresh(""); r.Status != 400 || r.Err(t).Field != "refresh_token" {
			t.Fatalf("empty token: %d %s", r.Status, r.Body)
		}
		// A second session of the same user is unaffected by the first's theft.
		other := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "dave@example.com", "password": apptest.Password})
		var o apptest.Session
		other.JSON(t, &o)
		if r := refresh(o.RefreshToken); r.Status != 200 {
			t.Fatalf("other session: %d %s", r.Status, r.Body)
		}
	})
}

func TestRefreshExpires(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := apptest.Start(t, storetest.SQLite(t), apptest.WithClock(func() time.Time { return now }))
	sess := s.Register(t, "erin@example.com")
	now = now.Add(31 * 24 * time.Hour)
	r := s.Do(t, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": sess.RefreshToken})
	if r.Status != 401 || r.Err(t).Code != "auth.invalidRefreshToken" {
		t.Fatalf("expired refresh: %d %s", r.Status, r.Body)
	}
	if r := s.Do(t, "GET", "/api/v1/me", sess.AccessToken, nil); r.Status != 401 || r.Err(t).Code != "auth.tokenExpired" {
		t.Fatalf("expired access token: %d %s, want 401 auth.tokenExpired", r.Status, r.Body)
	}
}

func TestLogout(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		sess := s.Register(t, "frank@example.com")
		if r := s.Do(t, "POST", "/api/v1/auth/logout", "", map[string]string{"refresh_token": sess.RefreshToken}); r.Status != 204 {
			t.Fatalf("logout: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": sess.RefreshToken}); r.Status != 401 {
			t.Fatalf("refresh after logout: %d %s, want 401", r.Status, r.Body)
		}
		if r := s.Do(t, "POST", "/api/v1/auth/logout", "", map[string]string{"refresh_token": sess.RefreshToken}); r.Status != 204 {
			t.Fatalf("second logout: %d, want 204", r.Status)
		}
	})
}
