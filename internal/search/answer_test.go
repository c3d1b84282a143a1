package search_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
)

// Assistant answers are indexed when they end, and a regenerated answer
// replaces the words of the one before.
func TestSearchFindsAnswersAndFollowsRegenerate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		up := llmtest.NewServer(t)
		up.SetModels("gpt-test")
		s := apptest.Start(t, e, apptest.WithAI(up.URL))
		alice := s.Register(t, "alice@example.com")
		r := s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "a",
			"settings": map[string]any{"ai_mode": "always", "model": "fake/gpt-test"}})
		if r.Status != http.StatusCreated {
			t.Fatalf("create chat: %d %s", r.Status, r.Body)
		}
		var c chatOut
		r.JSON(t, &c)

		waitAnswer := func(seq int64) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for {
				var h struct {
					Messages []struct {
						Seq    int64  `json:"seq"`
						Status string `json:"status"`
					} `json:"messages"`
				}
				s.Do(t, "GET", "/api/v1/chats/"+c.ID+"/messages", alice.AccessToken, nil).JSON(t, &h)
				for _, m := range h.Messages {
					if m.Seq == seq && m.Status != "streaming" {
						flush(t, s)
						return
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("answer %d did not end: %+v", seq, h)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		count := func(q string) int {
			t.Helper()
			st, p := find(t, s, alice.AccessToken, url.Values{"q": {q}})
			if st != http.StatusOK {
				t.Fatalf("search %q: %d", q, st)
			}
			for _, res := range p.Results {
				if res.AuthorKind != "assistant" || res.Author != "assistant" || res.Seq != 2 {
					t.Fatalf("result %+v, want the assistant's answer", res)
				}
			}
			return len(p.Results)
		}

		// ai_done, which queues the answer, goes out just after the
		// answer is saved: wait for the index to have it.
		eventually := func(q string, want int) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for count(q) != want {
				if time.Now().After(deadline) {
					t.Fatalf("%q: %d results, want %d", q, count(q), want)
				}
				time.Sleep(20 * time.Millisecond)
				flush(t, s)
			}
		}

		up.Enqueue(llmtest.Script{Text: "The capybara is the largest rodent."})
		send(t, s, alice.AccessToken, c.ID, "Tell me about an animal")
		waitAnswer(2)
		eventually("capybara", 1)

		up.Enqueue(llmtest.Script{Text: "Der Wombat gräbt Höhlen."})
		r = s.Do(t, "POST", fmt.Sprintf("/api/v1/chats/%s/messages/2/regenerate", c.ID), alice.AccessToken, nil)
		if r.Status/100 != 2 {
			t.Fatalf("regenerate: %d %s", r.Status, r.Body)
		}
		waitAnswer(2)
		eventually("WOMBAT grabt hohlen", 1)
		if n := count("capybara"); n != 0 { // replaced in the same transaction
			t.Fatalf("the replaced answer's word still found: %d", n)
		}
	})
}
