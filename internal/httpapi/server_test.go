package httpapi_test

import (
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
)

func TestUnknownRouteAndMethod(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t))
	if r := s.Do(t, "GET", "/api/v1/nothing", "", nil); r.Status != 404 || r.Err(t).Code != "route.notFound" {
		t.Errorf("unknown route: %d %s", r.Status, r.Body)
	}
	if r := s.Do(t, "DELETE", "/api/v1/auth/login", "", nil); r.Status != 405 || r.Err(t).Code != "route.methodNotAllowed" {
		t.Errorf("wrong method: %d %s", r.Status, r.Body)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		if r := s.Do(t, "GET", "/healthz", "", nil); r.Status != 200 {
			t.Fatalf("healthz: %d", r.Status)
		}
		if r := s.Do(t, "GET", "/readyz", "", nil); r.Status != 200 {
			t.Fatalf("readyz: %d %s", r.Status, r.Body)
		}
		s.App.DB.Close() // the database goes away
		if r := s.Do(t, "GET", "/readyz", "", nil); r.Status != 503 || r.Err(t).Code != "internal.unavailable" {
			t.Fatalf("readyz without database: %d %s, want 503", r.Status, r.Body)
		}
		if r := s.Do(t, "GET", "/healthz", "", nil); r.Status != 200 {
			t.Fatalf("healthz without database: %d, want 200 (the process is up)", r.Status)
		}
	})
}

func TestRequestIDAndLogs(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t))
	sess := s.Register(t, "leo@example.com")
	s.Do(t, "GET", "/api/v1/me?token="+sess.AccessToken, sess.AccessToken, nil)
	s.Do(t, "POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": sess.RefreshToken})
	s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "leo@example.com", "password": "wrong password 1"})

	r := s.DoHeader(t, "GET", "/healthz", map[string]string{"X-Request-ID": "trace-123"})
	if got := r.Header.Get("X-Request-ID"); got != "trace-123" {
		t.Errorf("X-Request-ID = %q, want the caller's", got)
	}
	r = s.DoHeader(t, "GET", "/healthz", map[string]string{"X-Request-ID": "bad id with spaces;drop"})
	if got := r.Header.Get("X-Request-ID"); got == "" || strings.Contains(got, " ") {
		t.Errorf("X-Request-ID = %q, want a fresh id for an insane one", got)
	}
	r = s.Do(t, "GET", "/api/v1/me", "", nil)
	if r.Err(t).RequestID == "" || r.Err(t).RequestID != r.Header.Get("X-Request-ID") {
		t.Errorf("error body request_id = %q, header %q", r.Err(t).RequestID, r.Header.Get("X-Request-ID"))
	}

	logs := s.Logs()
	for name, secret := range map[string]string{
		"access token": sess.AccessToken, "refresh token": sess.RefreshToken,
		"password": apptest.Password, "wrong password": "wrong password 1",
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
	if !strings.Contains(logs, `"route":"/api/v1/me"`) || !strings.Contains(logs, `"user_id":"`+sess.User.ID+`"`) {
		t.Errorf("request log lacks route or user id:\n%s", logs)
	}
}
