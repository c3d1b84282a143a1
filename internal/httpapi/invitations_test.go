package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
)

type invitation struct {
	ID        string `json:"id"`
	ChatID    string `json:"chat_id"`
	ChatTitle string `json:"chat_title"`
	User      struct {
		ID, Email string
	} `json:"user"`
	InvitedBy *struct{ Email string } `json:"invited_by"`
}

// TestInvitations: in a chat whose settings ask newcomers to accept,
// adding someone invites them (notified at once, not a member, nothing of
// the chat readable); they accept to join or decline; the owner sees and
// withdraws pending invitations; nobody else can act on them.
func TestInvitations(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		dave := s.Register(t, "dave@example.com")
		bobWS, _ := s.Connect(t, bob.AccessToken, "")
		aliceWS, _ := s.Connect(t, alice.AccessToken, "")

		var c struct {
			ID           string
			Participants []struct{ ID string }
		}
		s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "Private",
			"settings": map[string]any{"require_acceptance": true}}).JSON(t, &c)

		add := func(email string) *apptest.Response {
			return s.Do(t, "POST", "/api/v1/chats/"+c.ID+"/participants", alice.AccessToken, map[string]string{"email": email})
		}
		r := add("bob@example.com")
		var added struct{ Invitation invitation }
		if r.Status != http.StatusAccepted {
			t.Fatalf("add with acceptance required: %d %s, want 202\n%s", r.Status, r.Body, s.Logs())
		}
		r.JSON(t, &added)
		inv := added.Invitation
		if inv.ChatTitle != "Private" || inv.User.Email != "bob@example.com" || inv.InvitedBy == nil || inv.InvitedBy.Email != "alice@example.com" {
			t.Fatalf("invitation: %+v", inv)
		}
		var again struct{ Invitation invitation }
		if r := add("bob@example.com"); r.Status != http.StatusAccepted {
			t.Fatalf("inviting again: %d %s", r.Status, r.Body)
		} else {
			r.JSON(t, &again)
		}
		if again.Invitation.ID != inv.ID {
			t.Fatal("inviting twice made a second invitation")
		}

		// Bob is told, is not a member, and reads nothing of the chat.
		var note struct {
			Kind    string
			Text    string
			Subject struct{ Type, ID string }
		}
		bobWS.Expect(t, "notification").Decode(t, &note)
		if note.Kind != "chat_invite" || note.Subject.Type != "invitation" || note.Subject.ID != inv.ID || note.Text != "alice@example.com invited you to Private" {
			t.Fatalf("notification: %+v", note)
		}
		for _, path := range []string{"/api/v1/chats/" + c.ID, "/api/v1/chats/" + c.ID + "/messages", "/api/v1/chats/" + c.ID + "/invitations"} {
			if r := s.Do(t, "GET", path, bob.AccessToken, nil); r.Status != 404 {
				t.Fatalf("invitee GET %s: %d, want 404", path, r.Status)
			}
		}
		var mine struct{ Invitations []invitation }
		s.Do(t, "GET", "/api/v1/invitations", bob.AccessToken, nil).JSON(t, &mine)
		if len(mine.Invitations) != 1 || mine.Invitations[0].ID != inv.ID || mine.Invitations[0].ChatTitle != "Private" {
			t.Fatalf("bob's invitations: %+v", mine.Invitations)
		}
		var pending struct{ Invitations []invitation }
		s.Do(t, "GET", "/api/v1/chats/"+c.ID+"/invitations", alice.AccessToken, nil).JSON(t, &pending)
		if len(pending.Invitations) != 1 || pending.Invitations[0].User.Email != "bob@example.com" {
			t.Fatalf("chat's pending invitations: %+v", pending.Invitations)
		}

		// Nobody else can accept, decline or withdraw it.
		for _, tc := range []struct {
			who, method, path string
			status            int
			code              string
		}{
			{carol.AccessToken, "POST", "/api/v1/invitations/" + inv.ID + "/accept", 404, "invitation.notFound"},
			{alice.AccessToken, "POST", "/api/v1/invitations/" + inv.ID + "/accept", 404, "invitation.notFound"},
			{carol.AccessToken, "POST", "/api/v1/invitations/" + inv.ID + "/decline", 404, "invitation.notFound"},
			{carol.AccessToken, "DELETE", "/api/v1/chats/" + c.ID + "/invitations/" + inv.ID, 404, "chat.notFound"},
			{bob.AccessToken, "POST", "/api/v1/invitations/not-an-id/accept", 404, "invitation.notFound"},
		} {
			r := s.Do(t, tc.method, tc.path, tc.who, nil)
			if r.Status != tc.status || r.Err(t).Code != tc.code {
				t.Fatalf("%s %s: %d %s, want %d %s", tc.method, tc.path, r.Status, r.Body, tc.status, tc.code)
			}
		}

		// Bob accepts: he is a member, Alice's tabs hear the chat changed.
		r = s.Do(t, "POST", "/api/v1/invitations/"+inv.ID+"/accept", bob.AccessToken, nil)
		if r.Status != 200 {
			t.Fatalf("accept: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &c)
		if len(c.Participants) != 2 {
			t.Fatalf("after accepting the chat has %d participants", len(c.Participants))
		}
		aliceWS.Expect(t, "chat_updated")
		if r := s.Do(t, "GET", "/api/v1/chats/"+c.ID+"/messages", bob.AccessToken, nil); r.Status != 200 {
			t.Fatalf("member reads history: %d", r.Status)
		}
		if r := s.Do(t, "POST", "/api/v1/invitations/"+inv.ID+"/accept", bob.AccessToken, nil); r.Status != 404 {
			t.Fatalf("accepting twice: %d, want 404", r.Status)
		}
		s.Do(t, "GET", "/api/v1/invitations", bob.AccessToken, nil).JSON(t, &mine)
		if len(mine.Invitations) != 0 {
			t.Fatalf("an accepted invitation is still listed: %+v", mine.Invitations)
		}

		// Carol declines; Dave's invitation is withdrawn by the owner (a
		// member who is not the owner may not).
		var ci, di struct{ Invitation invitation }
		add("carol@example.com").JSON(t, &ci)
		add("dave@example.com").JSON(t, &di)
		if r := s.Do(t, "POST", "/api/v1/invitations/"+ci.Invitation.ID+"/decline", carol.AccessToken, nil); r.Status != 204 {
			t.Fatalf("decline: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "POST", "/api/v1/invitations/"+ci.Invitation.ID+"/accept", carol.AccessToken, nil); r.Status != 404 {
			t.Fatalf("accept after declining: %d", r.Status)
		}
		if r := s.Do(t, "DELETE", "/api/v1/chats/"+c.ID+"/invitations/"+di.Invitation.ID, bob.AccessToken, nil); r.Status != 403 || r.Err(t).Code != "chat.forbidden" {
			t.Fatalf("member withdraws: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "DELETE", "/api/v1/chats/"+c.ID+"/invitations/"+di.Invitation.ID, alice.AccessToken, nil); r.Status != 204 {
			t.Fatalf("owner withdraws: %d %s", r.Status, r.Body)
		}
		if r := s.Do(t, "POST", "/api/v1/invitations/"+di.Invitation.ID+"/accept", dave.AccessToken, nil); r.Status != 404 {
			t.Fatalf("accept a withdrawn invitation: %d", r.Status)
		}

		// Creating a chat that asks for acceptance invites the people named.
		var g struct {
			ID           string
			Participants []struct{ ID string }
		}
		s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "Club", "participants": []string{"dave@example.com"},
			"settings": map[string]any{"require_acceptance": true}}).JSON(t, &g)
		if len(g.Participants) != 1 {
			t.Fatalf("created chat has %d participants before anyone accepted", len(g.Participants))
		}
		s.Do(t, "GET", "/api/v1/invitations", dave.AccessToken, nil).JSON(t, &mine)
		if len(mine.Invitations) != 1 || mine.Invitations[0].ChatTitle != "Club" {
			t.Fatalf("dave's invitations: %+v", mine.Invitations)
		}

		// Someone who blocked the owner cannot be invited.
		if r := s.Do(t, "PUT", "/api/v1/blocks/"+alice.User.ID, carol.AccessToken, nil); r.Status != 204 {
			t.Fatalf("block: %d %s", r.Status, r.Body)
		}
		if r := add("carol@example.com"); r.Status != 403 || r.Err(t).Code != "chat.blocked" {
			t.Fatalf("invite someone who blocked you: %d %s", r.Status, r.Body)
		}
	})
}
