package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
)

func TestTicketEndpoint(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		sess := s.Register(t, "tina@example.com")

		r := s.Do(t, "POST", "/api/v1/ws/ticket", "", nil)
		if r.Status != 401 || r.Err(t).Code != "auth.required" {
			t.Fatalf("without token: %d %s, want 401 auth.required", r.Status, r.Body)
		}
		if r := s.Do(t, "POST", "/api/v1/ws/ticket", "not.a.token", nil); r.Status != 401 || r.Err(t).Code != "auth.invalidToken" {
			t.Fatalf("bad token: %d %s, want 401 auth.invalidToken", r.Status, r.Body)
		}

		r = s.Do(t, "POST", "/api/v1/ws/ticket", sess.AccessToken, nil)
		if r.Status != 200 {
			t.Fatalf("ticket: %d %s", r.Status, r.Body)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", cc)
		}
		var shape map[string]json.RawMessage
		r.JSON(t, &shape)
		if len(shape) != 2 || shape["ticket"] == nil || shape["expires_in"] == nil {
			t.Fatalf("body %s: want exactly ticket and expires_in", r.Body)
		}
		var body struct {
			Ticket    string `json:"ticket"`
			ExpiresIn int    `json:"expires_in"`
		}
		r.JSON(t, &body)
		if body.ExpiresIn != 30 {
			t.Errorf("expires_in = %d, want 30", body.ExpiresIn)
		}
		if raw, err := base64.RawURLEncoding.DecodeString(body.Ticket); err != nil || len(raw) != 32 {
			t.Fatalf("ticket %q: want 32 random bytes base64url (%d, %v)", body.Ticket, len(raw), err)
		}

		var again struct {
			Ticket string `json:"ticket"`
		}
		s.Do(t, "POST", "/api/v1/ws/ticket", sess.AccessToken, nil).JSON(t, &again)
		if again.Ticket == "" || again.Ticket == body.Ticket {
			t.Fatalf("second ticket %q, first %q: want a new one each time", again.Ticket, body.Ticket)
		}

		p, err := s.App.Auth.RedeemTicket(context.Background(), body.Ticket)
		if err != nil {
			t.Fatalf("redeem: %v", err)
		}
		if p.UserID != sess.User.ID || p.Expires.IsZero() {
			t.Fatalf("redeemed %+v, want user %s with an expiry", p, sess.User.ID)
		}
		if _, err := s.App.Auth.RedeemTicket(context.Background(), body.Ticket); err == nil {
			t.Fatal("ticket redeemed twice")
		}
	})
}
