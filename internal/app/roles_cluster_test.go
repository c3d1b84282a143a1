package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/realtime"
	"github.com/aichat/aichat/internal/redistest"
	"github.com/aichat/aichat/internal/store/storetest"
)

// TestClusterAdminBlockAndKeyRevoke: an admin on instance 1 blocks a user
// whose sockets are open on both instances, and revokes a bot's key whose
// socket is on instance 2; every one of those sockets closes at once, and
// the other users' sockets stay open.
func TestClusterAdminBlockAndKeyRevoke(t *testing.T) {
	url, prefix := redistest.Shared(t)
	s1, s2 := startCluster(t, storetest.Postgres(t), url, prefix)
	admin := s1.Admin(t, "root@example.com")
	bob := s1.Register(t, "bob@example.com")
	carol := s2.Register(t, "carol@example.com")

	// A bot in carol's chat, with a key for it.
	r := s1.Do(t, "POST", "/api/v1/admin/bots", admin.AccessToken, map[string]any{"email": "ci@example.com", "name": "CI"})
	var bot struct{ ID string }
	r.JSON(t, &bot)
	r = s2.Do(t, "POST", "/api/v1/chats", carol.AccessToken, map[string]any{"title": "builds", "participants": []string{"ci@example.com", "bob@example.com"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create chat: %d %s", r.Status, r.Body)
	}
	var chat struct{ ID string }
	r.JSON(t, &chat)
	r = s1.Do(t, "POST", "/api/v1/admin/bots/"+bot.ID+"/keys", admin.AccessToken, map[string]any{"name": "ci", "chats": []string{chat.ID}})
	var issued struct {
		Key    string
		APIKey struct{ ID string } `json:"api_key"`
	}
	r.JSON(t, &issued)
	if r.Status != http.StatusCreated || issued.Key == "" {
		t.Fatalf("issue key: %d %s", r.Status, r.Body)
	}

	b1, _ := s1.Connect(t, bob.AccessToken, "")
	b2, _ := s2.Connect(t, bob.AccessToken, "")
	c2, _ := s2.Connect(t, carol.AccessToken, "")
	k2, _ := s2.Connect(t, issued.Key, "")

	// The bot hears carol's message on the other instance, and posts there.
	s1.Do(t, "POST", "/api/v1/chats/"+chat.ID+"/messages", carol.AccessToken, map[string]any{"content": "build 42?", "client_id": "c1"})
	if f := k2.Expect(t, realtime.EventChatMessage); !strings.Contains(string(f.Data), "build 42?") {
		t.Errorf("bot heard %s", f.Data)
	}
	if r := s1.Do(t, "POST", "/api/v1/chats/"+chat.ID+"/messages", issued.Key, map[string]any{"content": "green", "client_id": "b1"}); r.Status != http.StatusCreated {
		t.Errorf("bot posts on instance 1: %d %s", r.Status, r.Body)
	}

	start := time.Now()
	if r := s1.Do(t, "PATCH", "/api/v1/admin/users/"+bob.User.ID, admin.AccessToken, map[string]any{"blocked": true}); r.Status != http.StatusOK {
		t.Fatalf("block: %d %s", r.Status, r.Body)
	}
	expectClosed(t, b1, realtime.ClosePolicy, "This account was blocked.")
	expectClosed(t, b2, realtime.ClosePolicy, "This account was blocked.")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("blocking took %v to close the sockets", d)
	}
	if r := s2.Do(t, "GET", "/api/v1/me", bob.AccessToken, nil); r.Status != http.StatusForbidden {
		t.Errorf("blocked user on instance 2: %d, want 403", r.Status)
	}
	if _, resp, err := s2.Dial(t, "", http.Header{"Authorization": {"Bearer " + bob.AccessToken}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("blocked user opens a socket on instance 2: %v", err)
	}

	if r := s1.Do(t, "DELETE", "/api/v1/admin/keys/"+issued.APIKey.ID, admin.AccessToken, nil); r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	expectClosed(t, k2, realtime.ClosePolicy, "This API key was revoked.")
	if r := s2.Do(t, "POST", "/api/v1/chats/"+chat.ID+"/messages", issued.Key, map[string]any{"content": "late", "client_id": "b2"}); r.Status != http.StatusUnauthorized {
		t.Errorf("revoked key on instance 2: %d, want 401", r.Status)
	}
	c2.ExpectNone(t, realtime.EventError, 200*time.Millisecond)
	if c2.Err() != nil {
		t.Errorf("carol's socket closed too: %v", c2.Err())
	}

	var audit struct {
		Entries []struct{ Action, TargetID string } `json:"entries"`
	}
	s2.Do(t, "GET", "/api/v1/admin/audit", admin.AccessToken, nil).JSON(t, &audit)
	var actions []string
	for _, e := range audit.Entries {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, ","); got != "apiKey.revoke,user.block,apiKey.issue,bot.create" {
		t.Errorf("audit actions, newest first: %s", got)
	}
	_ = apptest.Wait
}
