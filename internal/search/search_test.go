package search_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/search"
	"github.com/aichat/aichat/internal/store/storetest"
)

type chatOut struct {
	ID string `json:"id"`
}

func newChat(t *testing.T, s *apptest.Server, token string, others ...string) string {
	t.Helper()
	r := s.Do(t, "POST", "/api/v1/chats", token, map[string]any{"title": "t", "participants": others,
		"settings": map[string]any{"ai_mode": "off"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create chat: %d %s", r.Status, r.Body)
	}
	var c chatOut
	r.JSON(t, &c)
	return c.ID
}

func send(t *testing.T, s *apptest.Server, token, chatID, text string) string {
	t.Helper()
	r := s.Do(t, "POST", "/api/v1/chats/"+chatID+"/messages", token, map[string]any{"content": text})
	if r.Status != http.StatusCreated {
		t.Fatalf("send: %d %s", r.Status, r.Body)
	}
	var m struct {
		ID string `json:"id"`
	}
	r.JSON(t, &m)
	return m.ID
}

func flush(t *testing.T, s *apptest.Server) {
	t.Helper()
	if err := s.App.Search.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func find(t *testing.T, s *apptest.Server, token string, params url.Values) (int, search.Page) {
	t.Helper()
	r := s.Do(t, "GET", "/api/v1/search?"+params.Encode(), token, nil)
	var p search.Page
	if r.Status == http.StatusOK {
		r.JSON(t, &p)
	}
	return r.Status, p
}

func ids(p search.Page) []string {
	out := []string{}
	for _, r := range p.Results {
		out = append(out, r.MessageID)
	}
	return out
}

// The canary: planted words reach no table, in any form, and the same
// words in two chats have other index values.
func TestSearchCanaryAndAccess(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		carol := s.Register(t, "carol@example.com")
		dave := s.Register(t, "dave@example.com")
		c1 := newChat(t, s, alice.AccessToken, "bob@example.com")
		c2 := newChat(t, s, alice.AccessToken, "carol@example.com")

		planted := []string{"Zanzibarquux", "Квазиморднян", "Überkanone", "plughxyzzy", "frobnitzal", "Щелкунчиков", "wibblewobble", "snarfblat"}
		text := strings.Join(planted, " ")
		m1 := send(t, s, alice.AccessToken, c1, "Secret: "+text)
		m2 := send(t, s, carol.AccessToken, c2, text+" again")
		send(t, s, bob.AccessToken, c1, "nothing to see here")
		flush(t, s)

		sqlDB, err := s.App.DB.DB.DB()
		if err != nil {
			t.Fatal(err)
		}
		dump := strings.ToLower(storetest.Dump(t, sqlDB, e.Name))
		if !strings.Contains(dump, "message_tokens:") {
			t.Fatal("the dump has no message_tokens rows: nothing was indexed")
		}
		for _, w := range planted {
			for _, form := range []string{strings.ToLower(w), search.Normalize(w)} {
				if strings.Contains(dump, form) {
					t.Errorf("planted word %q is in the database", form)
				}
			}
		}
		// The index values of the same words differ between the chats.
		stored := func(msg string) []int {
			var vals []int
			if err := s.App.DB.Raw("SELECT token FROM message_tokens WHERE message_id = ? ORDER BY token", msg).Scan(&vals).Error; err != nil {
				t.Fatal(err)
			}
			return vals
		}
		v1 := s.App.Search.Values(c1, text)
		v2 := s.App.Search.Values(c2, text)
		if slices.Equal(v1, v2) {
			t.Fatal("the same words have the same index values in two chats")
		}
		for _, v := range v1 {
			if !slices.Contains(stored(m1), v) {
				t.Fatalf("value %d of chat 1 not stored for its message: %v", v, stored(m1))
			}
		}
		for _, v := range v2 {
			if !slices.Contains(stored(m2), v) {
				t.Fatalf("value %d of chat 2 not stored for its message", v)
			}
		}

		q := url.Values{"q": {"zanzibarquux"}}
		if _, p := find(t, s, alice.AccessToken, q); !slices.Equal(ids(p), []string{m2, m1}) {
			t.Fatalf("alice finds %v, want %v (newest first)", ids(p), []string{m2, m1})
		}
		if _, p := find(t, s, bob.AccessToken, q); !slices.Equal(ids(p), []string{m1}) {
			t.Fatalf("bob finds %v, want only chat 1's", ids(p))
		}
		if _, p := find(t, s, carol.AccessToken, q); !slices.Equal(ids(p), []string{m2}) {
			t.Fatalf("carol finds %v, want only chat 2's", ids(p))
		}
		if _, p := find(t, s, dave.AccessToken, q); len(p.Results) != 0 {
			t.Fatalf("dave, in no chat, finds %v", ids(p))
		}
		if st, _ := find(t, s, dave.AccessToken, url.Values{"q": {"zanzibarquux"}, "chat_id": {c1}}); st != http.StatusNotFound {
			t.Fatalf("dave searching chat 1: %d, want 404", st)
		}
		if _, p := find(t, s, alice.AccessToken, url.Values{"q": {"zanzibarquux"}, "chat_id": {c1}}); !slices.Equal(ids(p), []string{m1}) {
			t.Fatalf("alice in chat 1 finds %v", ids(p))
		}

		// Result fields and highlights.
		_, p := find(t, s, bob.AccessToken, url.Values{"q": {"КВАЗИМОРДНЯН zanzibarquux"}})
		if len(p.Results) != 1 {
			t.Fatalf("two words: %v", ids(p))
		}
		r := p.Results[0]
		if r.ChatID != c1 || r.Seq != 1 || r.Author != alice.User.ID || r.AuthorKind != "user" || r.CreatedAt.IsZero() {
			t.Fatalf("result %+v", r)
		}
		u := utf16.Encode([]rune(r.Snippet))
		var hl []string
		for _, h := range r.Highlights {
			hl = append(hl, string(utf16.Decode(u[h.Start:h.End])))
		}
		if !slices.Equal(hl, []string{"Zanzibarquux", "Квазиморднян"}) {
			t.Fatalf("highlights %q in %q", hl, r.Snippet)
		}
		// Phrases: in order only.
		if _, p := find(t, s, alice.AccessToken, url.Values{"q": {`"zanzibarquux квазиморднян"`}}); len(p.Results) != 2 {
			t.Fatalf("phrase in order: %v", ids(p))
		}
		if _, p := find(t, s, alice.AccessToken, url.Values{"q": {`"квазиморднян zanzibarquux"`}}); len(p.Results) != 0 {
			t.Fatalf("phrase out of order: %v", ids(p))
		}
		if _, p := find(t, s, alice.AccessToken, url.Values{"q": {`snarfblat again`}}); !slices.Equal(ids(p), []string{m2}) {
			t.Fatalf("all words: %v", ids(p))
		}

		// Removing bob from chat 1 ends his access at once.
		if r := s.Do(t, "DELETE", "/api/v1/chats/"+c1+"/participants/"+bob.User.ID, alice.AccessToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("remove bob: %d %s", r.Status, r.Body)
		}
		if _, p := find(t, s, bob.AccessToken, q); len(p.Results) != 0 {
			t.Fatalf("bob still finds %v after removal", ids(p))
		}
		// Leaving works the same.
		if r := s.Do(t, "DELETE", "/api/v1/chats/"+c2+"/participants/"+carol.User.ID, carol.AccessToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("carol leaves: %d %s", r.Status, r.Body)
		}
		if _, p := find(t, s, carol.AccessToken, q); len(p.Results) != 0 {
			t.Fatalf("carol still finds %v after leaving", ids(p))
		}

		// Bad requests.
		for _, v := range []url.Values{{"q": {""}}, {"q": {"..."}}, {"q": {"x"}, "limit": {"51"}}, {"q": {"x"}, "cursor": {"nope"}}} {
			if st, _ := find(t, s, alice.AccessToken, v); st != http.StatusBadRequest {
				t.Errorf("%v: %d, want 400", v, st)
			}
		}
		if st, _ := find(t, s, "", q); st != http.StatusUnauthorized {
			t.Errorf("anonymous: %d", st)
		}
	})
}

// Backfill indexes messages that have no index rows (history from before
// search, or indexing lost with a stopped process).
func TestSearchBackfill(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		c := newChat(t, s, alice.AccessToken)
		var want []string
		for i := range 7 {
			want = append([]string{send(t, s, alice.AccessToken, c, fmt.Sprintf("backfilled message %d", i))}, want...)
		}
		send(t, s, alice.AccessToken, c, "!!!") // no word: no rows, ever
		flush(t, s)
		if err := s.App.DB.Exec("DELETE FROM message_tokens").Error; err != nil {
			t.Fatal(err)
		}
		q := url.Values{"q": {"backfilled"}}
		if _, p := find(t, s, alice.AccessToken, q); len(p.Results) != 0 {
			t.Fatalf("found %v with an empty index", ids(p))
		}
		n, err := s.App.Search.Backfill(context.Background(), 3)
		if err != nil || n != 7 {
			t.Fatalf("Backfill = %d, %v; want 7", n, err)
		}
		if _, p := find(t, s, alice.AccessToken, q); !slices.Equal(ids(p), want) {
			t.Fatalf("after backfill: %v, want %v", ids(p), want)
		}
		if n, err := s.App.Search.Backfill(context.Background(), 3); err != nil || n != 0 {
			t.Fatalf("second Backfill = %d, %v; want 0", n, err)
		}
		// Deleting the chat deletes its index rows.
		if r := s.Do(t, "DELETE", "/api/v1/chats/"+c, alice.AccessToken, nil); r.Status/100 != 2 {
			t.Fatalf("delete chat: %d %s", r.Status, r.Body)
		}
		var left int64
		if err := s.App.DB.Raw("SELECT COUNT(*) FROM message_tokens").Scan(&left).Error; err != nil || left != 0 {
			t.Fatalf("%d index rows left after the chat was deleted (%v)", left, err)
		}
	})
}
