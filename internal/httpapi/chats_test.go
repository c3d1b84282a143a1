package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

// This file covers chats end to end through the HTTP API, on every engine:
// creating, listing, reading, renaming, AI settings, deleting, members
// joining, leaving and being removed, and above all that nobody outside a
// chat can read, change or even detect it. Messages themselves are covered
// in messages_test.go. Checks marked "regression" guard bugs fixed once.

func TestChatsCreate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		// Non-default defaults, so the test tells config from hard-coded values.
		s := apptest.Start(t, e, apptest.WithConfig(func(c *config.Config) {
			c.AIModel, c.AITemperature, c.AIDepth = "house-model", 1.25, 7
		}))
		defaults := ctSettings{Model: "house-model", Temperature: 1.25, Depth: 7, Persona: "assistant", Stop: []string{}}
		alice := s.Register(t, "alice@example.com")
		s.Register(t, "bob@example.com")
		s.Register(t, "carol@example.com")
		const A, B, C = "alice@example.com", "bob@example.com", "carol@example.com"

		tests := []struct {
			name        string
			body        map[string]any
			title, kind string // the kind sets the default AI mode
			emails      []string
			bug         string
		}{
			{"personal, no participants", map[string]any{"title": "Notes"}, "Notes", "personal", []string{A}, ""},
			{"personal, empty participants", map[string]any{"title": "Notes", "participants": []string{}}, "Notes", "personal", []string{A}, ""},
			{"group", map[string]any{"title": "Team", "participants": []string{B, C}}, "Team", "group", []string{A, B, C}, ""},
			{"duplicate emails count once", map[string]any{"title": "Dup", "participants": []string{B, "BOB@Example.com", "  bob@example.com "}}, "Dup", "group", []string{A, B}, ""},
			{"creator's own email is not added twice", map[string]any{"title": "Self", "participants": []string{A, B}}, "Self", "group", []string{A, B}, ""},
			{"only the creator's own email", map[string]any{"title": "Alone", "participants": []string{"Alice@Example.com"}}, "Alone", "personal", []string{A},
				"Create makes a one-member \"group\" chat with ai_mode mention (the assistant stays silent) when the only participant is the creator"},
			{"title trimmed, inner spaces kept", map[string]any{"title": " \t Trip  plans \n\u00a0"}, "Trip  plans", "personal", []string{A}, ""},
			{"control characters stripped", map[string]any{"title": "a\x00b\x07c\x1b[1md\u0085e\u2028f\u2029g\x7f"}, "abc[1mdefg", "personal", []string{A}, ""},
			{"no title", map[string]any{}, "New chat", "personal", []string{A}, ""},
			{"blank title", map[string]any{"title": " \x01\t\u2029 "}, "New chat", "personal", []string{A}, ""},
			{"200 characters", map[string]any{"title": strings.Repeat("я", 200)}, strings.Repeat("я", 200), "personal", []string{A}, ""},
			{"200 characters once stripped", map[string]any{"title": "\x01" + strings.Repeat("é", 200) + "\x02 "}, strings.Repeat("é", 200), "personal", []string{A}, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := ctMust(t, s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, tc.body), http.StatusCreated)
				c := ctChatOf(t, r)
				if tc.bug != "" && c.Kind != tc.kind {
					t.Fatal("regression: " + tc.bug)
				}
				if c.Title != tc.title || c.Kind != tc.kind || !slices.Equal(ctEmails(c), tc.emails) {
					t.Fatalf("title %q kind %s members %v, want %q %s %v", c.Title, c.Kind, ctEmails(c), tc.title, tc.kind, tc.emails)
				}
				want := defaults
				want.AIMode = map[string]string{"personal": "always", "group": "mention"}[tc.kind]
				if !reflect.DeepEqual(c.Settings, want) {
					t.Fatalf("settings %+v, want %+v", c.Settings, want)
				}
				for _, p := range c.Participants {
					if wantRole := map[bool]string{true: "owner", false: "member"}[p.ID == alice.User.ID]; p.Role != wantRole || p.ID == "" || p.Name == "" {
						t.Fatalf("participant %+v, want role %s, an id and a name", p, wantRole)
					}
				}
				if c.OwnerID != alice.User.ID || c.UnreadCount != 0 || c.LastSeq != 0 || c.LastMessage != nil {
					t.Fatalf("new chat %+v: want owner alice, nothing unread, no messages", c)
				}
				if c.CreatedAt.IsZero() || !c.UpdatedAt.Equal(c.CreatedAt) || !c.LastActivity.Equal(c.CreatedAt) {
					t.Fatalf("times created %s updated %s activity %s: want one instant", c.CreatedAt, c.UpdatedAt, c.LastActivity)
				}
				// What create answers is what GET shows, byte for byte.
				if g := s.Do(t, "GET", ctPath(c.ID), alice.AccessToken, nil); g.Status != http.StatusOK || !bytes.Equal(g.Body, r.Body) {
					t.Fatalf("GET after create: %d %s\nwant %s", g.Status, g.Body, r.Body)
				}
			})
		}
		// Settings given at creation override only what they name, the AI
		// mode included.
		want := defaults
		want.Persona, want.AIMode = "support", "always"
		if c := ctCreate(t, s, alice.AccessToken, map[string]any{"participants": []string{B},
			"settings": map[string]any{"persona": "support", "ai_mode": "always"}}); !reflect.DeepEqual(c.Settings, want) {
			t.Errorf("group chat created with settings: %+v, want %+v", c.Settings, want)
		}

		// Refused creates leave nothing behind.
		before := len(ctList(t, s, alice.AccessToken))
		many := make([]string, 501)
		for i := range many {
			many[i] = fmt.Sprintf("u%d@example.com", i)
		}
		bad := []struct {
			name   string
			body   any
			status int
			code   string
			field  string
		}{
			{"unknown email", map[string]any{"participants": []string{B, "nobody@example.com"}}, 404, "user.notFound", "participants"},
			{"blank email", map[string]any{"participants": []string{B, "   "}}, 400, "validation.failed", "participants"},
			{"501 participants", map[string]any{"participants": many}, 400, "validation.failed", "participants"},
			{"participants not a list", map[string]any{"participants": B}, 400, "validation.failed", "participants"},
			{"title 201 characters", map[string]any{"title": strings.Repeat("я", 201)}, 400, "validation.failed", "title"},
			{"title not a string", map[string]any{"title": 7}, 400, "validation.failed", "title"},
			{"owner chosen by the client", map[string]any{"title": "x", "owner_id": uuid.NewString()}, 400, "validation.failed", "owner_id"},
			{"bad settings", map[string]any{"settings": map[string]any{"temperature": 2.5}}, 400, "validation.failed", "settings.temperature"},
			{"not JSON", "{title", 400, "validation.failed", ""},
		}
		for _, tc := range bad {
			t.Run(tc.name, func(t *testing.T) {
				ctWantErr(t, s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, tc.body), tc.status, tc.code, tc.field)
			})
		}
		if after := len(ctList(t, s, alice.AccessToken)); after != before {
			t.Fatalf("alice has %d chats after refused creates, want %d", after, before)
		}
	})
}

func TestChatsList(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		dave := s.Register(t, "dave@example.com")

		notes := ctCreate(t, s, alice.AccessToken, map[string]any{"title": "notes"})
		pair := ctGroup(t, s, alice.AccessToken, "pair", "bob@example.com")
		trio := ctGroup(t, s, alice.AccessToken, "trio", "bob@example.com", "carol@example.com")
		bobs := ctGroup(t, s, bob.AccessToken, "bob and carol", "carol@example.com")

		// Nothing sent yet: newest created first.
		ctWantOrder(t, s, alice, trio.ID, pair.ID, notes.ID)
		ctWantOrder(t, s, bob, bobs.ID, trio.ID, pair.ID)
		ctWantOrder(t, s, carol, bobs.ID, trio.ID)
		ctWantOrder(t, s, dave)

		// Each message moves its chat to the top, for every member.
		m1 := ctSend(t, s, alice.AccessToken, pair.ID, "first in pair")
		ctWantOrder(t, s, alice, pair.ID, trio.ID, notes.ID)
		ctWantOrder(t, s, bob, pair.ID, bobs.ID, trio.ID)
		m2 := ctSend(t, s, alice.AccessToken, notes.ID, "note to self")
		ctWantOrder(t, s, alice, notes.ID, pair.ID, trio.ID)
		ctSend(t, s, carol.AccessToken, trio.ID, "carol says hi")
		m3 := ctSend(t, s, bob.AccessToken, trio.ID, "bob says hi")
		ctWantOrder(t, s, alice, trio.ID, notes.ID, pair.ID)
		ctWantOrder(t, s, bob, trio.ID, pair.ID, bobs.ID)
		ctWantOrder(t, s, carol, trio.ID, bobs.ID)

		// Each entry carries what a chat list shows: title, members, my
		// unread count, and the last message with its time.
		type row struct {
			title  string
			emails []string
			unread int
			last   *ctMessage // nil: no message yet
		}
		want := map[string]map[string]row{
			"alice": {
				trio.ID:  {"trio", []string{"alice@example.com", "bob@example.com", "carol@example.com"}, 2, &m3},
				notes.ID: {"notes", []string{"alice@example.com"}, 0, &m2},
				pair.ID:  {"pair", []string{"alice@example.com", "bob@example.com"}, 0, &m1},
			},
			"bob": {
				// bob answered carol: writing in a chat marks it read.
				trio.ID: {"trio", []string{"alice@example.com", "bob@example.com", "carol@example.com"}, 0, &m3},
				pair.ID: {"pair", []string{"alice@example.com", "bob@example.com"}, 1, &m1},
				bobs.ID: {"bob and carol", []string{"bob@example.com", "carol@example.com"}, 0, nil},
			},
		}
		for who, sess := range map[string]apptest.Session{"alice": alice, "bob": bob} {
			for _, c := range ctList(t, s, sess.AccessToken) {
				w := want[who][c.ID]
				if c.Title != w.title || !slices.Equal(ctEmails(c), w.emails) || c.UnreadCount != w.unread {
					t.Errorf("%s's list: %q members %v unread %d, want %q %v %d",
						who, c.Title, ctEmails(c), c.UnreadCount, w.title, w.emails, w.unread)
				}
				switch {
				case w.last == nil:
					if c.LastMessage != nil || c.LastSeq != 0 || !c.LastActivity.Equal(c.CreatedAt) {
						t.Errorf("%s's %q: last message %+v activity %s, want none and the creation time", who, c.Title, c.LastMessage, c.LastActivity)
					}
				case c.LastMessage == nil:
					t.Errorf("%s's %q: no last message, want %+v", who, c.Title, w.last)
				case c.LastMessage.ID != w.last.ID || c.LastMessage.Content != w.last.Content || c.LastMessage.Author != w.last.Author ||
					c.LastMessage.Seq != c.LastSeq || !c.LastMessage.CreatedAt.Equal(w.last.CreatedAt) || !c.LastActivity.Equal(w.last.CreatedAt):
					t.Errorf("%s's %q: last message %+v (last_seq %d) at %s, want %+v, its seq and time", who, c.Title, c.LastMessage, c.LastSeq, c.LastActivity, w.last)
				}
			}
		}
		// Leaving a chat takes it off the list.
		ctMust(t, s.Do(t, "DELETE", ctPath(trio.ID, "participants", "me"), carol.AccessToken, nil), http.StatusNoContent)
		ctWantOrder(t, s, carol, bobs.ID)
	})
}

func TestChatsLifecycle(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		dave := s.Register(t, "dave@example.com")
		c := ctGroup(t, s, alice.AccessToken, "plans", "bob@example.com")
		ctSend(t, s, alice.AccessToken, c.ID, "hello bob")

		for who, sess := range map[string]apptest.Session{"alice": alice, "bob": bob} {
			if got := ctGet(t, s, sess.AccessToken, c.ID); got.ID != c.ID || got.Title != "plans" || got.LastSeq != 1 {
				t.Fatalf("%s GETs %+v", who, got)
			}
		}
		ctWantErr(t, s.Do(t, "GET", ctPath(c.ID), dave.AccessToken, nil), 404, "chat.notFound", "")

		// Any member may rename; the title is cleaned like at creation.
		renamed := ctChatOf(t, ctMust(t, s.Do(t, "PATCH", ctPath(c.ID), bob.AccessToken, map[string]any{"title": "  summer\x00 plans  "}), http.StatusOK))
		if renamed.Title != "summer plans" || !renamed.UpdatedAt.After(c.UpdatedAt) || !renamed.CreatedAt.Equal(c.CreatedAt) ||
			!reflect.DeepEqual(renamed.Settings, c.Settings) {
			t.Fatalf("after rename: %+v; want title %q, a later updated_at, the same created_at and settings", renamed, "summer plans")
		}
		ctWantErr(t, s.Do(t, "PATCH", ctPath(c.ID), bob.AccessToken, map[string]any{"title": strings.Repeat("x", 201)}), 400, "validation.failed", "title")
		ctWantErr(t, s.Do(t, "PATCH", ctPath(c.ID), alice.AccessToken, map[string]any{}), 400, "validation.failed", "")
		ctWantErr(t, s.Do(t, "PATCH", ctPath(c.ID), alice.AccessToken, map[string]any{"title": nil, "settings": nil}), 400, "validation.failed", "")
		ctWantErr(t, s.Do(t, "PATCH", ctPath(c.ID), alice.AccessToken, map[string]any{"kind": "personal"}), 400, "validation.failed", "kind")

		// Only the owner changes AI settings: they spend the owner's quota.
		// A member's attempt changes nothing, not even a title sent with it.
		unchanged := s.Do(t, "GET", ctPath(c.ID), alice.AccessToken, nil).Body
		ctWantErr(t, s.Do(t, "PATCH", ctPath(c.ID), bob.AccessToken, map[string]any{"settings": map[string]any{"ai_mode": "off"}}), 403, "chat.forbidden", "")
		ctWantErr(t, s.Do(t, "PATCH", ctPath(c.ID), bob.AccessToken, map[string]any{"title": "sneaky", "settings": map[string]any{"depth": 1}}), 403, "chat.forbidden", "")
		if now := s.Do(t, "GET", ctPath(c.ID), alice.AccessToken, nil).Body; !bytes.Equal(now, unchanged) {
			t.Fatalf("refused PATCH changed the chat:\n%s\nwas\n%s", now, unchanged)
		}

		// The owner's patch changes what it names and keeps the rest.
		patch := func(body map[string]any) ctSettings {
			t.Helper()
			got := ctChatOf(t, ctMust(t, s.Do(t, "PATCH", ctPath(c.ID), alice.AccessToken, body), http.StatusOK))
			if again := ctGet(t, s, bob.AccessToken, c.ID); !reflect.DeepEqual(again.Settings, got.Settings) || again.Title != got.Title {
				t.Fatalf("PATCH answered %+v, GET shows %+v", got, again)
			}
			return got.Settings
		}
		want := c.Settings
		want.Temperature, want.Stop = 1.5, []string{"END"}
		if got := patch(map[string]any{"settings": map[string]any{"temperature": 1.5, "stop": []string{"END"}}}); !reflect.DeepEqual(got, want) {
			t.Fatalf("settings %+v, want %+v", got, want)
		}
		if got := patch(map[string]any{"settings": map[string]any{"stop": nil}}); !reflect.DeepEqual(got, want) {
			t.Fatalf("stop: null must keep the stop list: %+v, want %+v", got, want)
		}
		want.Stop, want.AIMode = []string{}, "off"
		if got := patch(map[string]any{"title": "both", "settings": map[string]any{"stop": []string{}, "ai_mode": "off"}}); !reflect.DeepEqual(got, want) {
			t.Fatalf("settings %+v, want %+v", got, want)
		}
		if got := ctGet(t, s, alice.AccessToken, c.ID); got.Title != "both" {
			t.Fatalf("title %q after a PATCH of title and settings, want %q", got.Title, "both")
		}

		// Deleting: not by a member (they can leave), not by an outsider.
		ctWantErr(t, s.Do(t, "DELETE", ctPath(c.ID), bob.AccessToken, nil), 403, "chat.forbidden", "")
		ctWantErr(t, s.Do(t, "DELETE", ctPath(c.ID), dave.AccessToken, nil), 404, "chat.notFound", "")
		ctSend(t, s, alice.AccessToken, c.ID, "unread by bob")
		if total, _ := ctUnread(t, s, bob.AccessToken); total != 2 {
			t.Fatalf("bob's unread before delete = %d, want 2", total)
		}
		if r := ctMust(t, s.Do(t, "DELETE", ctPath(c.ID), alice.AccessToken, nil), http.StatusNoContent); len(r.Body) != 0 {
			t.Fatalf("204 with a body: %s", r.Body)
		}
		// Gone for everyone, with its unread counts.
		for who, sess := range map[string]apptest.Session{"alice": alice, "bob": bob} {
			ctWantGone(t, s, sess.AccessToken, c.ID)
			if total, chats := ctUnread(t, s, sess.AccessToken); total != 0 || len(chats) != 0 {
				t.Errorf("%s's unread after delete: %d %v", who, total, chats)
			}
			if l := ctList(t, s, sess.AccessToken); len(l) != 0 {
				t.Errorf("%s still lists %d chat(s)", who, len(l))
			}
		}
		ctWantErr(t, s.Do(t, "DELETE", ctPath(c.ID), alice.AccessToken, nil), 404, "chat.notFound", "")
	})
}

func TestChatsParticipants(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		dave := s.Register(t, "dave@example.com")
		c := ctCreate(t, s, alice.AccessToken, map[string]any{"title": "grows"})
		add := func(token, email string) *apptest.Response {
			return s.Do(t, "POST", ctPath(c.ID, "participants"), token, map[string]string{"email": email})
		}
		remove := func(token, user string) *apptest.Response {
			return s.Do(t, "DELETE", ctPath(c.ID, "participants", user), token, nil)
		}

		// Adding someone turns a personal chat into a group chat.
		got := ctChatOf(t, ctMust(t, add(alice.AccessToken, "  BOB@example.com "), http.StatusOK))
		if got.Kind != "group" || !slices.Equal(ctEmails(got), []string{"alice@example.com", "bob@example.com"}) {
			t.Fatalf("after adding bob: kind %s members %v", got.Kind, ctEmails(got))
		}
		if got := ctGet(t, s, bob.AccessToken, c.ID); got.Title != "grows" || got.UnreadCount != 0 {
			t.Fatalf("bob sees %+v, want the chat with nothing unread", got)
		}
		ctWantErr(t, add(alice.AccessToken, "bob@example.com"), 409, "chat.alreadyMember", "email")
		ctWantErr(t, add(alice.AccessToken, "Alice@example.com"), 409, "chat.alreadyMember", "email")
		ctWantErr(t, add(alice.AccessToken, ""), 400, "validation.failed", "email")
		ctWantErr(t, s.Do(t, "POST", ctPath(c.ID, "participants"), alice.AccessToken, map[string]any{"email": []string{"x"}}), 400, "validation.failed", "email")
		r := add(alice.AccessToken, "nobody@example.com")
		if r.Status != http.StatusNotFound || r.Err(t).Code != "user.notFound" {
			t.Fatalf("add an unknown email: %d %s, want 404 user.notFound", r.Status, r.Body)
		}
		t.Run("unknown email names the email field", func(t *testing.T) {
			if r.Err(t).Field != "email" {
				t.Fatal("regression: POST /chats/:id/participants with an unknown email answers field \"participants\"; the request field is \"email\"")
			}
		})
		ctWantErr(t, add(bob.AccessToken, "carol@example.com"), 403, "chat.forbidden", "")
		ctWantErr(t, add(dave.AccessToken, "dave@example.com"), 404, "chat.notFound", "")

		ctMust(t, add(alice.AccessToken, "carol@example.com"), http.StatusOK)
		ctSend(t, s, alice.AccessToken, c.ID, "hi both")
		ctSend(t, s, carol.AccessToken, c.ID, "hi from carol")

		// Removing: only the owner removes others; the owner cannot leave.
		ctWantErr(t, remove(bob.AccessToken, carol.User.ID), 403, "chat.forbidden", "")
		ctWantErr(t, remove(bob.AccessToken, alice.User.ID), 403, "chat.forbidden", "")
		ctWantErr(t, remove(dave.AccessToken, bob.User.ID), 404, "chat.notFound", "")
		ctWantErr(t, remove(alice.AccessToken, "me"), 409, "chat.ownerCannotLeave", "")
		ctWantErr(t, remove(alice.AccessToken, alice.User.ID), 409, "chat.ownerCannotLeave", "")
		ctWantErr(t, remove(alice.AccessToken, dave.User.ID), 404, "user.notFound", "")
		t.Run("owner removes a malformed user id", func(t *testing.T) {
			r := remove(alice.AccessToken, "not-a-uuid")
			if e.Name == "postgres" && r.Status == http.StatusInternalServerError {
				t.Fatal("regression: RemoveParticipant sends a non-UUID user id to PostgreSQL, which answers 500 instead of 404 user.notFound")
			}
			ctWantErr(t, r, 404, "user.notFound", "")
		})

		// Bob leaves; his unread count for the chat goes with him.
		if total, _ := ctUnread(t, s, bob.AccessToken); total != 2 {
			t.Fatalf("bob's unread before leaving = %d, want 2", total)
		}
		ctMust(t, remove(bob.AccessToken, "me"), http.StatusNoContent)
		ctWantGone(t, s, bob.AccessToken, c.ID)
		if total, chats := ctUnread(t, s, bob.AccessToken); total != 0 || len(chats) != 0 {
			t.Fatalf("bob's unread after leaving: %d %v", total, chats)
		}
		ctWantErr(t, remove(bob.AccessToken, "me"), 404, "chat.notFound", "")

		// Carol is removed by the owner, using her id: her access ends with
		// the very next request.
		ctMust(t, remove(alice.AccessToken, carol.User.ID), http.StatusNoContent)
		ctWantGone(t, s, carol.AccessToken, c.ID)
		if got := ctGet(t, s, alice.AccessToken, c.ID); !slices.Equal(ctEmails(got), []string{"alice@example.com"}) || got.Kind != "group" {
			t.Fatalf("after everyone left: members %v kind %s", ctEmails(got), got.Kind)
		}

		// Re-added, carol sees the history but nothing counts as unread.
		ctMust(t, add(alice.AccessToken, "carol@example.com"), http.StatusOK)
		if got := ctGet(t, s, carol.AccessToken, c.ID); got.UnreadCount != 0 || got.LastSeq != 2 {
			t.Fatalf("re-added carol sees unread %d last_seq %d, want 0 and 2", got.UnreadCount, got.LastSeq)
		}
		if r := ctMust(t, s.Do(t, "GET", ctPath(c.ID, "messages"), carol.AccessToken, nil), http.StatusOK); !strings.Contains(string(r.Body), "hi from carol") {
			t.Fatalf("re-added carol's history lacks the old messages: %s", r.Body)
		}
	})
}

func TestChatsSettingsValidation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		target := ctCreate(t, s, alice.AccessToken, map[string]any{"title": "target"})

		bad := []struct {
			name     string
			settings map[string]any
			field    string
		}{
			{"temperature below 0", map[string]any{"temperature": -0.01}, "temperature"},
			{"temperature above 2", map[string]any{"temperature": 2.01}, "temperature"},
			{"temperature not a number", map[string]any{"temperature": "hot"}, "temperature"},
			{"depth below 0", map[string]any{"depth": -1}, "depth"},
			{"depth above 100", map[string]any{"depth": 101}, "depth"},
			{"depth fractional", map[string]any{"depth": 1.5}, "depth"},
			{"context over 8 KB", map[string]any{"context": strings.Repeat("c", 8193)}, "context"},
			{"context over 8 KB in bytes, not characters", map[string]any{"context": strings.Repeat("я", 4097)}, "context"},
			{"persona unknown", map[string]any{"persona": "pirate"}, "persona"},
			{"persona empty", map[string]any{"persona": ""}, "persona"},
			{"persona wrong case", map[string]any{"persona": "Assistant"}, "persona"},
			{"max_tokens negative", map[string]any{"max_tokens": -1}, "max_tokens"},
			{"max_tokens too big", map[string]any{"max_tokens": 128001}, "max_tokens"},
			{"max_tokens a string", map[string]any{"max_tokens": "100"}, "max_tokens"},
			{"5 stop strings", map[string]any{"stop": []string{"a", "b", "c", "d", "e"}}, "stop"},
			{"empty stop string", map[string]any{"stop": []string{"ok", ""}}, "stop"},
			{"stop string of 65 characters", map[string]any{"stop": []string{strings.Repeat("ж", 65)}}, "stop"},
			{"stop not a list", map[string]any{"stop": "END"}, "stop"},
			{"ai_mode unknown", map[string]any{"ai_mode": "sometimes"}, "ai_mode"},
			{"ai_mode empty", map[string]any{"ai_mode": ""}, "ai_mode"},
			{"ai_mode wrong case", map[string]any{"ai_mode": "ALWAYS"}, "ai_mode"},
			{"model of 129 characters", map[string]any{"model": strings.Repeat("m", 129)}, "model"},
			{"model with a newline", map[string]any{"model": "gpt\nx"}, "model"},
		}
		for _, tc := range bad {
			t.Run(tc.name, func(t *testing.T) {
				before := s.Do(t, "GET", ctPath(target.ID), alice.AccessToken, nil).Body
				n := len(ctList(t, s, alice.AccessToken))
				body := map[string]any{"settings": tc.settings}
				ctWantErr(t, s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, body), 400, "validation.failed", "settings."+tc.field)
				ctWantErr(t, s.Do(t, "PATCH", ctPath(target.ID), alice.AccessToken, body), 400, "validation.failed", "settings."+tc.field)
				if after := s.Do(t, "GET", ctPath(target.ID), alice.AccessToken, nil).Body; !bytes.Equal(after, before) {
					t.Fatalf("refused PATCH changed the chat:\n%s\nwas\n%s", after, before)
				}
				if len(ctList(t, s, alice.AccessToken)) != n {
					t.Fatal("refused create made a chat")
				}
			})
		}

		// Valid values, the limits included, come back as sent: from create
		// and from PATCH, and GET agrees.
		good := []struct {
			name     string
			settings map[string]any
			want     map[string]any // what comes back, when not what was sent
		}{
			{"temperature 0", map[string]any{"temperature": 0}, nil},
			{"temperature 2", map[string]any{"temperature": 2}, nil},
			{"temperature 0.35", map[string]any{"temperature": 0.35}, nil},
			{"depth 0", map[string]any{"depth": 0}, nil},
			{"depth 100", map[string]any{"depth": 100}, nil},
			{"context of exactly 8 KB", map[string]any{"context": strings.Repeat("я", 4096)}, nil},
			{"persona consultant", map[string]any{"persona": "consultant"}, nil},
			{"persona seller", map[string]any{"persona": "seller"}, nil},
			{"persona support", map[string]any{"persona": "support"}, nil},
			{"max_tokens 0", map[string]any{"max_tokens": 0}, nil},
			{"max_tokens 128000", map[string]any{"max_tokens": 128000}, nil},
			{"4 stop strings of 64 characters", map[string]any{"stop": []string{strings.Repeat("a", 64), strings.Repeat("ж", 64), "\n\n", "###"}}, nil},
			{"no stop strings", map[string]any{"stop": []string{}}, nil},
			{"ai_mode off", map[string]any{"ai_mode": "off"}, nil},
			// Models are not checked against a list: providers add them.
			{"any model name", map[string]any{"model": "vendor/some-model:2025-01"}, nil},
			{"model of 128 characters", map[string]any{"model": strings.Repeat("m", 128)}, nil},
			{"model trimmed", map[string]any{"model": "  spaced  "}, map[string]any{"model": "spaced"}},
			{"everything at once", map[string]any{"model": "m", "temperature": 1, "depth": 3, "context": "ctx", "persona": "seller",
				"max_tokens": 256, "stop": []string{"STOP"}, "ai_mode": "mention"}, nil},
		}
		for _, tc := range good {
			t.Run(tc.name, func(t *testing.T) {
				fresh := ctCreate(t, s, alice.AccessToken, map[string]any{})
				want := ctJSON(t, fresh.Settings).(map[string]any)
				for k, v := range tc.settings {
					want[k] = ctJSON(t, v)
				}
				for k, v := range tc.want {
					want[k] = ctJSON(t, v)
				}
				created := ctCreate(t, s, alice.AccessToken, map[string]any{"settings": tc.settings})
				if got := ctJSON(t, created.Settings).(map[string]any); !reflect.DeepEqual(got, want) {
					t.Errorf("create answered %v, want %v", got, want)
				}
				patched := ctChatOf(t, ctMust(t, s.Do(t, "PATCH", ctPath(fresh.ID), alice.AccessToken, map[string]any{"settings": tc.settings}), http.StatusOK))
				if got := ctJSON(t, patched.Settings).(map[string]any); !reflect.DeepEqual(got, want) {
					t.Errorf("PATCH answered %v, want %v", got, want)
				}
				if got := ctJSON(t, ctGet(t, s, alice.AccessToken, fresh.ID).Settings).(map[string]any); !reflect.DeepEqual(got, want) {
					t.Errorf("GET after PATCH shows %v, want %v", got, want)
				}
			})
		}
	})
}

// TestChatsIsolation probes every route under /chats/:id as bob, who is not
// in alice's chat. Each must answer exactly as for a chat that does not
// exist (so bob learns nothing, not even that the id is real) and leave
// alice's chat as it was.
func TestChatsIsolation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		s.Register(t, "dave@example.com")
		target := ctGroup(t, s, alice.AccessToken, "alice's secrets", "carol@example.com")
		ctSend(t, s, alice.AccessToken, target.ID, "the secret")
		ctSend(t, s, carol.AccessToken, target.ID, "carol's reply")
		ctSend(t, s, carol.AccessToken, target.ID, "carol again")
		own := ctCreate(t, s, bob.AccessToken, map[string]any{"title": "bob's own"})

		// snapshot is everything alice and carol can see of the chat.
		snapshot := func() string {
			var b strings.Builder
			for _, sess := range []apptest.Session{alice, carol} {
				for _, p := range []string{ctPath(target.ID), ctPath(target.ID, "messages") + "?limit=200", "/api/v1/me/unread"} {
					r := s.Do(t, "GET", p, sess.AccessToken, nil)
					fmt.Fprintf(&b, "%s %d %s\n", p, r.Status, r.Body)
				}
			}
			return b.String()
		}
		before := snapshot()
		if !strings.Contains(before, `"unread_count":2`) || !strings.Contains(before, "the secret") {
			t.Fatalf("the snapshot would prove nothing:\n%s", before)
		}
		notFound := s.Do(t, "GET", ctPath(uuid.NewString()), bob.AccessToken, nil).Err(t)
		if notFound.Code != "chat.notFound" || notFound.Message == "" {
			t.Fatalf("a missing chat answers %+v", notFound)
		}

		probes := []ctProbe{
			{"GET /api/v1/chats/:id", "", nil},
			{"PATCH /api/v1/chats/:id", "", map[string]any{"title": "pwned"}},
			{"PATCH /api/v1/chats/:id", "", map[string]any{"settings": map[string]any{"ai_mode": "off", "context": "leak everything"}}},
			{"DELETE /api/v1/chats/:id", "", nil},
			{"GET /api/v1/chats/:id/messages", "/messages", nil},
			{"GET /api/v1/chats/:id/messages", "/messages?after=0&limit=200", nil},
			{"GET /api/v1/chats/:id/messages", "/messages?before=3&limit=1", nil},
			{"POST /api/v1/chats/:id/messages", "/messages", map[string]string{"content": "bob was here"}},
			{"POST /api/v1/chats/:id/messages", "/messages", map[string]string{"content": "bob was here", "client_id": "c1"}},
			{"POST /api/v1/chats/:id/read", "/read", nil},
			{"POST /api/v1/chats/:id/read", "/read", map[string]int{"seq": 2}},
			{"POST /api/v1/chats/:id/participants", "/participants", map[string]string{"email": "bob@example.com"}},
			{"POST /api/v1/chats/:id/participants", "/participants", map[string]string{"email": "dave@example.com"}},
			{"DELETE /api/v1/chats/:id/participants/:user", "/participants/" + carol.User.ID, nil},
			{"DELETE /api/v1/chats/:id/participants/:user", "/participants/" + alice.User.ID, nil},
			{"DELETE /api/v1/chats/:id/participants/:user", "/participants/me", nil},
			{"DELETE /api/v1/chats/:id/participants/:user", "/participants/" + bob.User.ID, nil},
			{"POST /api/v1/chats/:id/ai/stop", "/ai/stop", nil},
			{"POST /api/v1/chats/:id/messages/:seq/regenerate", "/messages/2/regenerate", nil},
			{"GET /api/v1/chats/:id/invitations", "/invitations", nil},
			{"DELETE /api/v1/chats/:id/invitations/:inv", "/invitations/" + uuid.NewString(), nil},
		}
		// Every route under /chats/:id has a probe; a new route without one
		// fails here rather than going unchecked.
		engine, ok := s.App.Handler.(*gin.Engine)
		if !ok {
			t.Fatalf("App.Handler is %T, want *gin.Engine to list the routes", s.App.Handler)
		}
		for _, rt := range engine.Routes() {
			route := rt.Method + " " + rt.Path
			if strings.HasPrefix(rt.Path, "/api/v1/chats/:id") &&
				!slices.ContainsFunc(probes, func(p ctProbe) bool { return p.route == route }) {
				t.Errorf("route %s has no isolation probe", route)
			}
		}

		ids := []struct{ name, id string }{
			{"alice's chat", target.ID},
			{"alice's chat, upper case", strings.ToUpper(target.ID)},
			{"a random id", uuid.NewString()},
			{"the nil uuid", uuid.Nil.String()},
			{"not a uuid", "not-a-uuid"},
			{"sql in the id", url.PathEscape("' OR '1'='1")},
		}
		for _, p := range probes {
			for _, id := range ids {
				name := strings.NewReplacer("/api/v1/chats/", "", "/", " ").Replace(p.route+p.sub) + " on " + id.name
				t.Run(name, func(t *testing.T) {
					method, _, _ := strings.Cut(p.route, " ")
					r := ctMust(t, s.Do(t, method, "/api/v1/chats/"+id.id+p.sub, bob.AccessToken, p.body), http.StatusNotFound)
					if got := r.Err(t); got.Code != notFound.Code || got.Message != notFound.Message || got.Field != "" {
						t.Fatalf("error %+v, want exactly %+v (same shape as a missing chat)", got, notFound)
					}
					if after := snapshot(); after != before {
						t.Fatalf("alice's chat changed:\n%s\nwas\n%s", after, before)
					}
				})
			}
		}
		// Bob's own world is untouched too, and alice's chat never shows up.
		if l := ctList(t, s, bob.AccessToken); len(l) != 1 || l[0].ID != own.ID || !slices.Equal(ctEmails(l[0]), []string{"bob@example.com"}) {
			t.Fatalf("bob's list after probing: %+v", l)
		}
		if total, chats := ctUnread(t, s, bob.AccessToken); total != 0 || len(chats) != 0 {
			t.Fatalf("bob's unread after probing: %d %v", total, chats)
		}
	})
}

// TestChatsAddParticipantDuringSends adds carol while three senders keep
// the chat busy. However the add interleaves with the sends, carol's unread
// count must be exactly the number of messages after her read mark (set at
// join time): a message she was added in time for but not counted, or
// counted twice, breaks the equality.
func TestChatsAddParticipantDuringSends(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		c := ctGroup(t, s, alice.AccessToken, "busy", "bob@example.com")
		const before = 2 // history from before carol: visible, never unread for her
		for i := range before {
			ctSend(t, s, bob.AccessToken, c.ID, fmt.Sprintf("early %d", i))
		}

		const perSender = 15
		senders := []apptest.Session{alice, bob, alice}
		results := make([][]ctResult, len(senders))
		var wg sync.WaitGroup
		for i, who := range senders {
			results[i] = make([]ctResult, perSender)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range perSender {
					results[i][k] = ctRaw(s, "POST", ctPath(c.ID, "messages"), who.AccessToken,
						map[string]string{"content": fmt.Sprintf("s%d-%d", i, k)})
				}
			}()
		}
		// Join mid-stream: once some of the concurrent messages are in.
		deadline := time.Now().Add(10 * time.Second)
		for ctGet(t, s, alice.AccessToken, c.ID).LastSeq < before+5 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		r := s.Do(t, "POST", ctPath(c.ID, "participants"), alice.AccessToken, map[string]string{"email": "carol@example.com"})
		wg.Wait()
		joined := ctChatOf(t, ctMust(t, r, http.StatusOK))
		for i := range results {
			for k, res := range results[i] {
				if res.err != nil || res.status != http.StatusCreated {
					t.Fatalf("sender %d message %d: %d %s %v", i, k, res.status, res.body, res.err)
				}
			}
		}

		total := int64(before + perSender*len(senders))
		seen := ctGet(t, s, carol.AccessToken, c.ID)
		if seen.LastSeq != total {
			t.Fatalf("carol sees last_seq %d, want %d", seen.LastSeq, total)
		}
		// Carol's read mark is not in the API; it is the chat's last_seq
		// when she joined, so it lies between the history before the burst
		// and the last_seq the add answered with.
		var mark int64
		if err := s.App.DB.DB.Raw("SELECT last_read_seq FROM chat_members WHERE chat_id = ? AND user_id = ?", c.ID, carol.User.ID).
			Scan(&mark).Error; err != nil {
			t.Fatal(err)
		}
		if mark < before || mark > joined.LastSeq {
			t.Fatalf("carol's read mark %d, want between %d and %d (last_seq answered by the add)", mark, before, joined.LastSeq)
		}
		unreadTotal, unread := ctUnread(t, s, carol.AccessToken)
		want := int(total - mark)
		if unread[c.ID] != seen.UnreadCount || unreadTotal != seen.UnreadCount {
			t.Fatalf("carol's unread: /me/unread %d (total %d), GET %d; want them equal", unread[c.ID], unreadTotal, seen.UnreadCount)
		}
		// Fewer than want on PostgreSQL is the known bug that
		// TestChatsAddParticipantRacingSendPostgres pins down; it is reported
		// (as a skip) once the rest of this test has run. Anything else fails.
		missed := e.Name == "postgres" && seen.UnreadCount < want
		if seen.UnreadCount != want && !missed {
			t.Fatalf("carol joined after seq %d of %d: unread %d, want %d", mark, total, seen.UnreadCount, want)
		}
		// Reading settles at zero, and the next message counts once.
		var read struct {
			UnreadCount int `json:"unread_count"`
			Total       int `json:"total"`
		}
		ctMust(t, s.Do(t, "POST", ctPath(c.ID, "read"), carol.AccessToken, nil), http.StatusOK).JSON(t, &read)
		if read.UnreadCount != 0 || read.Total != 0 {
			t.Fatalf("carol reads: %+v, want nothing left unread", read)
		}
		ctSend(t, s, bob.AccessToken, c.ID, "after the burst")
		if n, _ := ctUnread(t, s, carol.AccessToken); n != 1 {
			t.Fatalf("carol's unread after one more message = %d, want 1", n)
		}
		if missed {
			t.Fatalf("regression: carol joined after seq %d of %d but only %d message(s) count as unread, want %d: "+
				"sends queued behind the add did not count her (see TestChatsAddParticipantRacingSendPostgres)",
				mark, total, seen.UnreadCount, want)
		}
	})
}

// TestChatsAddParticipantRacingSendPostgres pins down, with row locks, the
// interleaving the test above can only hope to hit: the add has locked the
// chat row and is about to insert carol when a send starts and queues
// behind it. The send must count carol, since its seq lands after her read
// mark. PostgreSQL only: SQLite runs one writer at a time.
func TestChatsAddParticipantRacingSendPostgres(t *testing.T) {
	s := apptest.Start(t, storetest.Postgres(t))
	alice := s.Register(t, "alice@example.com")
	bob := s.Register(t, "bob@example.com")
	carol := s.Register(t, "carol@example.com")
	c := ctGroup(t, s, alice.AccessToken, "race", "bob@example.com")
	ctSend(t, s, bob.AccessToken, c.ID, "one")

	// Holding carol's user row stops the add at its insert (the foreign key
	// check needs a share lock on it), after it has locked the chat row.
	ctLockStep(t, s, "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", carol.User.ID,
		func() ctResult {
			return ctRaw(s, "POST", ctPath(c.ID, "participants"), alice.AccessToken, map[string]string{"email": "carol@example.com"})
		},
		func() ctResult {
			return ctRaw(s, "POST", ctPath(c.ID, "messages"), bob.AccessToken, map[string]string{"content": "two"})
		})
	// The add went first, so carol's mark is 1 and message 2 is unread.
	if got := ctGet(t, s, carol.AccessToken, c.ID); got.LastSeq != 2 || got.UnreadCount != 1 {
		if got.LastSeq == 2 && got.UnreadCount == 0 {
			t.Fatal("regression: on PostgreSQL a send whose statement started while AddParticipant held the chat row does not count the newcomer " +
				"(insertPostgres updates chat_members from a snapshot taken before the add committed): carol joined at seq 1, message 2 is not unread")
		}
		t.Fatalf("carol sees last_seq %d unread %d, want 2 and 1", got.LastSeq, got.UnreadCount)
	}
}

// TestChatsRenameRacingSettingsPostgres lines up a member's rename and the
// owner's settings change on the chat row's lock. Both answer 200, so both
// changes must stick. PostgreSQL only, for the lock-step.
func TestChatsRenameRacingSettingsPostgres(t *testing.T) {
	s := apptest.Start(t, storetest.Postgres(t))
	alice := s.Register(t, "alice@example.com")
	bob := s.Register(t, "bob@example.com")
	c := ctGroup(t, s, alice.AccessToken, "old title", "bob@example.com")

	ctLockStep(t, s, "SELECT 1 FROM chats WHERE id = $1 FOR UPDATE", c.ID,
		func() ctResult {
			return ctRaw(s, "PATCH", ctPath(c.ID), bob.AccessToken, map[string]any{"title": "new title"})
		},
		func() ctResult {
			return ctRaw(s, "PATCH", ctPath(c.ID), alice.AccessToken, map[string]any{"settings": map[string]any{"ai_mode": "off"}})
		})
	got := ctGet(t, s, alice.AccessToken, c.ID)
	lostTitle, lostSettings := got.Title != "new title", got.Settings.AIMode != "off"
	if lostTitle != lostSettings {
		t.Fatal("regression: Update rewrites title_ct and settings_ct together from a Get read before its write, " +
			"so of a concurrent rename and settings change the later one reverts the other, though both answered 200")
	}
	if lostTitle || lostSettings {
		t.Fatalf("after both answered 200: title %q ai_mode %s, want %q and off", got.Title, got.Settings.AIMode, "new title")
	}
}

// --- helpers ---

// ctChat is a chat as the API shows it.
type ctChat struct {
	ID           string          `json:"id"`
	Title        string          `json:"title"`
	Kind         string          `json:"kind"`
	OwnerID      string          `json:"owner_id"`
	Settings     ctSettings      `json:"settings"`
	Participants []ctParticipant `json:"participants"`
	UnreadCount  int             `json:"unread_count"`
	LastSeq      int64           `json:"last_seq"`
	LastMessage  *ctMessage      `json:"last_message"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
	LastActivity time.Time       `json:"last_activity_at"`
}

type ctSettings struct {
	Model       string   `json:"model"`
	Temperature float64  `json:"temperature"`
	Depth       int      `json:"depth"`
	Context     string   `json:"context"`
	Persona     string   `json:"persona"`
	MaxTokens   int      `json:"max_tokens"`
	Stop        []string `json:"stop"`
	AIMode      string   `json:"ai_mode"`
}

type ctParticipant struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

type ctMessage struct {
	ID        string    `json:"id"`
	Seq       int64     `json:"seq"`
	Author    string    `json:"author"`
	Content   string    `json:"content"`
	CreatedAt time.Time `json:"created_at"`
}

// ctProbe is one request an outsider tries on someone else's chat.
type ctProbe struct {
	route string // the route in routes.go it exercises
	sub   string // what follows /api/v1/chats/{id}
	body  any
}

// ctPath is /api/v1/chats/{id} with more path segments after it.
func ctPath(id string, more ...string) string {
	return "/api/v1/chats/" + strings.Join(append([]string{id}, more...), "/")
}

// ctMust fails the test unless r has the status, and returns r.
func ctMust(t *testing.T, r *apptest.Response, status int) *apptest.Response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d %s, want %d", r.Status, r.Body, status)
	}
	return r
}

func ctChatOf(t *testing.T, r *apptest.Response) ctChat {
	t.Helper()
	var c ctChat
	r.JSON(t, &c)
	return c
}

func ctCreate(t *testing.T, s *apptest.Server, token string, body map[string]any) ctChat {
	t.Helper()
	return ctChatOf(t, ctMust(t, s.Do(t, "POST", "/api/v1/chats", token, body), http.StatusCreated))
}

func ctGroup(t *testing.T, s *apptest.Server, token, title string, emails ...string) ctChat {
	t.Helper()
	return ctCreate(t, s, token, map[string]any{"title": title, "participants": emails})
}

func ctGet(t *testing.T, s *apptest.Server, token, id string) ctChat {
	t.Helper()
	return ctChatOf(t, ctMust(t, s.Do(t, "GET", ctPath(id), token, nil), http.StatusOK))
}

func ctList(t *testing.T, s *apptest.Server, token string) []ctChat {
	t.Helper()
	r := ctMust(t, s.Do(t, "GET", "/api/v1/chats", token, nil), http.StatusOK)
	var l struct{ Chats []ctChat }
	r.JSON(t, &l)
	if l.Chats == nil {
		t.Fatalf("list chats: chats is not an array: %s", r.Body)
	}
	return l.Chats
}

// ctWantOrder checks the user's chat list, in order.
func ctWantOrder(t *testing.T, s *apptest.Server, who apptest.Session, ids ...string) {
	t.Helper()
	var got []string
	for _, c := range ctList(t, s, who.AccessToken) {
		got = append(got, c.ID)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("%s's chats in order %v, want %v", who.User.Email, got, ids)
	}
}

func ctSend(t *testing.T, s *apptest.Server, token, chatID, content string) ctMessage {
	t.Helper()
	var m ctMessage
	ctMust(t, s.Do(t, "POST", ctPath(chatID, "messages"), token, map[string]string{"content": content}), http.StatusCreated).JSON(t, &m)
	return m
}

// ctUnread returns GET /me/unread: the total and the per-chat counts.
func ctUnread(t *testing.T, s *apptest.Server, token string) (int, map[string]int) {
	t.Helper()
	var u struct {
		Total int
		Chats map[string]int
	}
	ctMust(t, s.Do(t, "GET", "/api/v1/me/unread", token, nil), http.StatusOK).JSON(t, &u)
	return u.Total, u.Chats
}

// ctWantGone checks that the chat is, for this user, indistinguishable
// from one that never existed, on every way in.
func ctWantGone(t *testing.T, s *apptest.Server, token, chatID string) {
	t.Helper()
	ctWantErr(t, s.Do(t, "GET", ctPath(chatID), token, nil), 404, "chat.notFound", "")
	ctWantErr(t, s.Do(t, "GET", ctPath(chatID, "messages"), token, nil), 404, "chat.notFound", "")
	ctWantErr(t, s.Do(t, "POST", ctPath(chatID, "messages"), token, map[string]string{"content": "still here?"}), 404, "chat.notFound", "")
	ctWantErr(t, s.Do(t, "POST", ctPath(chatID, "read"), token, nil), 404, "chat.notFound", "")
	ctWantErr(t, s.Do(t, "PATCH", ctPath(chatID), token, map[string]string{"title": "mine"}), 404, "chat.notFound", "")
	for _, c := range ctList(t, s, token) {
		if c.ID == chatID {
			t.Fatalf("chat %s still listed", chatID)
		}
	}
}

func ctWantErr(t *testing.T, r *apptest.Response, status int, code, field string) {
	t.Helper()
	if e := ctMust(t, r, status).Err(t); e.Code != code || e.Field != field || e.Message == "" {
		t.Fatalf("error %+v, want code %s field %q and a message", e, code, field)
	}
}

// ctEmails lists the chat's participants' emails, sorted.
func ctEmails(c ctChat) []string {
	var out []string
	for _, p := range c.Participants {
		out = append(out, p.Email)
	}
	slices.Sort(out)
	return out
}

// ctJSON is v as it reads back from JSON (objects as maps, numbers as
// float64), so expected settings can be built from what a client sends.
func ctJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// ctResult is an answer fetched off the test goroutine, where t.Fatal is not
// allowed.
type ctResult struct {
	status int
	body   []byte
	err    error
}

func ctRaw(s *apptest.Server, method, path, token string, body any) ctResult {
	js, err := json.Marshal(body)
	if err != nil {
		return ctResult{err: err}
	}
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(js))
	if err != nil {
		return ctResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return ctResult{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return ctResult{status: res.StatusCode, body: b, err: err}
}

// ctLockStep holds the rows lock (a SELECT ... FOR UPDATE of arg) selects,
// starts first and waits until it blocks on them, starts second and waits
// until it blocks too (on them or behind first), then lets go. Both
// requests must succeed. PostgreSQL only.
func ctLockStep(t *testing.T, s *apptest.Server, lock, arg string, first, second func() ctResult) {
	t.Helper()
	db, err := s.App.DB.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	hold, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback()
	var holder int
	if err := hold.QueryRow("SELECT pg_backend_pid()").Scan(&holder); err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Exec(lock, arg); err != nil {
		t.Fatal(err)
	}
	done := []chan ctResult{make(chan ctResult, 1), make(chan ctResult, 1)}
	for i, fn := range []func() ctResult{first, second} {
		go func() { done[i] <- fn() }()
		ctWaitBlocked(t, db, holder, i+1, done[i])
	}
	if err := hold.Commit(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range done {
		if r := <-ch; r.err != nil || r.status >= 300 {
			t.Fatalf("request %d: %d %s %v", i+1, r.status, r.body, r.err)
		}
	}
}

// ctWaitBlocked waits until n sessions wait, directly or through other
// waiters, on the session with pid holder; it gives up early when done has
// an answer (that request did not block at all).
func ctWaitBlocked(t *testing.T, db *sql.DB, holder, n int, done chan ctResult) {
	t.Helper()
	const q = `WITH RECURSIVE w AS (
			SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))
			UNION
			SELECT a.pid FROM pg_stat_activity a JOIN w ON w.pid = ANY(pg_blocking_pids(a.pid))
		) SELECT count(*) FROM w`
	deadline := time.Now().Add(5 * time.Second)
	for {
		var got int
		if err := db.QueryRow(q, holder).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		select {
		case r := <-done:
			done <- r
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d session(s) blocked behind the held lock after 5s, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
