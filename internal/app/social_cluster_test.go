package app_test

import (
	"net/http"
	"testing"

	"github.com/aichat/aichat/internal/redistest"
	"github.com/aichat/aichat/internal/store/storetest"
)

// A friend request sent on instance 1 reaches the addressee's socket on
// instance 2 at once, as do the unread total and the acceptance going back;
// friends' presence crosses too.
func TestClusterFriendNotifications(t *testing.T) {
	url, prefix := redistest.Shared(t)
	s1, s2 := startCluster(t, storetest.Postgres(t), url, prefix)
	alice := s1.Register(t, "alice@example.com")
	bob := s2.Register(t, "bob@example.com")
	a, _ := s1.Connect(t, alice.AccessToken, "")
	b, _ := s2.Connect(t, bob.AccessToken, "")

	r := s1.Do(t, "POST", "/api/v1/friends/requests", alice.AccessToken, map[string]string{"email": "bob@example.com"})
	if r.Status != http.StatusAccepted {
		t.Fatalf("request on instance 1: %d %s", r.Status, r.Body)
	}
	var n struct {
		ID, Kind, Text string
		Subject        struct{ Type, ID string }
	}
	b.Expect(t, "notification").Decode(t, &n)
	if n.Kind != "friend_request" || n.Text != "alice@example.com wants to be your friend" {
		t.Fatalf("bob on instance 2 got %+v", n)
	}
	var u struct{ Unread int }
	b.Expect(t, "notifications_unread").Decode(t, &u)
	if u.Unread != 1 {
		t.Fatalf("bob's unread %d, want 1", u.Unread)
	}

	if r := s2.Do(t, "POST", "/api/v1/friends/requests/"+n.Subject.ID+"/accept", bob.AccessToken, nil); r.Status != http.StatusOK {
		t.Fatalf("accept on instance 2: %d %s", r.Status, r.Body)
	}
	a.Expect(t, "notification").Decode(t, &n)
	if n.Kind != "friend_accepted" || n.Text != "bob@example.com accepted your request" {
		t.Fatalf("alice on instance 1 got %+v", n)
	}
	b.Expect(t, "notifications_unread").Decode(t, &u)
	if u.Unread != 0 {
		t.Fatalf("bob's unread after accepting %d, want 0", u.Unread)
	}
	// Friends without a shared chat: bob's list on instance 2 sees alice
	// online on instance 1.
	var l struct {
		Friends []struct {
			ID     string `json:"id"`
			Online bool   `json:"online"`
		} `json:"friends"`
	}
	s2.Do(t, "GET", "/api/v1/friends", bob.AccessToken, nil).JSON(t, &l)
	if len(l.Friends) != 1 || l.Friends[0].ID != alice.User.ID || !l.Friends[0].Online {
		t.Fatalf("bob's friends on instance 2 %+v", l.Friends)
	}
}
