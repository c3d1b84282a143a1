package search_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/search"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/aichat/aichat/internal/store/storetest"
)

// checkCounts fails unless message_token_counts holds, for every (chat,
// key version, value), the number of index rows it has: no counter for a
// value without rows except 0, never a negative one.
func checkCounts(t *testing.T, s *apptest.Server, when string) {
	t.Helper()
	type row struct {
		ChatID     string
		KeyVersion int
		Token      int
		N          int
	}
	var want, got []row
	if err := s.App.DB.Raw("SELECT chat_id, key_version, token, COUNT(*) AS n FROM message_tokens" +
		" GROUP BY chat_id, key_version, token ORDER BY chat_id, key_version, token").Scan(&want).Error; err != nil {
		t.Fatal(err)
	}
	if err := s.App.DB.Raw("SELECT chat_id, key_version, token, n FROM message_token_counts" +
		" WHERE n <> 0 ORDER BY chat_id, key_version, token").Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 {
		t.Fatalf("%s: no index rows to count", when)
	}
	if !slices.Equal(got, want) {
		extra, missing := 0, 0
		for _, r := range got {
			if !slices.Contains(want, r) {
				extra++
			}
		}
		for _, r := range want {
			if !slices.Contains(got, r) {
				missing++
			}
		}
		t.Fatalf("%s: %d counters differ from COUNT(*) of message_tokens, %d counts missing (of %d)", when, extra, missing, len(want))
	}
}

// TestSearchTokenCounts: the per-value row counts searches walk by stay
// equal to COUNT(*) of the index rows after writes, re-indexed answers,
// a deleted chat, a key rotation's rebuild (half-way and done), and the
// upgrade that creates them from an existing index.
func TestSearchTokenCounts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		ctx := context.Background()
		dir := t.TempDir()
		s := apptest.Start(t, e, inDataDir(dir), noBackgroundRebuild)
		alice := s.Register(t, "alice@example.com")
		s.Register(t, "bob@example.com")
		c1 := newChat(t, s, alice.AccessToken, "bob@example.com")
		c2 := newChat(t, s, alice.AccessToken)
		c3 := newChat(t, s, alice.AccessToken)
		var msgs []string
		for i := range 60 {
			c := []string{c1, c2, c3}[i%3]
			msgs = append(msgs, send(t, s, alice.AccessToken, c, fmt.Sprintf("count %d of the %s words %s", i%7, pickWord(i), pickWord(i*5+1))))
		}
		flush(t, s)
		checkCounts(t, s, "after writes")

		// Re-indexed as a regenerated answer is (rows replaced), in
		// batches through the queue and once more with the same text.
		for i, id := range msgs[:30] {
			c := []string{c1, c2, c3}[i%3]
			s.App.Search.AnswerDone(c, id, fmt.Sprintf("edited %d %s", i%4, pickWord(i+2)))
			if i%10 == 0 {
				s.App.Search.AnswerDone(c, id, fmt.Sprintf("edited %d %s", i%4, pickWord(i+2)))
			}
		}
		flush(t, s)
		checkCounts(t, s, "after re-indexing")

		if r := s.Do(t, "DELETE", "/api/v1/chats/"+c3, alice.AccessToken, nil); r.Status/100 != 2 {
			t.Fatalf("delete chat: %d", r.Status)
		}
		checkCounts(t, s, "after deleting a chat")

		k, err := secrets.AddIndexKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.App.Search.Rotate(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		send(t, s, alice.AccessToken, c2, "written during the rebuild of the index")
		flush(t, s)
		if st, err := s.App.Search.Rebuild(ctx, 7, 2); err != nil || st.Finished {
			t.Fatalf("half a rebuild: %+v %v", st, err)
		}
		checkCounts(t, s, "half-way through a rebuild")
		if st, err := s.App.Search.Rebuild(ctx, 7, 0); err != nil || !st.Finished {
			t.Fatalf("rebuild: %+v %v", st, err)
		}
		checkCounts(t, s, "after a rebuild")
		var old int64
		if err := s.App.DB.Raw("SELECT COUNT(*) FROM message_token_counts WHERE key_version = 1").Scan(&old).Error; err != nil || old != 0 {
			t.Fatalf("counters of the retired version left: %d %v", old, err)
		}
		p, err := s.App.Search.Search(ctx, search.Request{UserID: alice.User.ID, Query: "rebuild index", Limit: 50})
		if err != nil || len(p.Results) != 1 {
			t.Fatalf("search after the rebuild: %v %v", p, err)
		}

		// The upgrade: an index without counters gets them from its rows.
		for _, q := range []string{"DROP TABLE message_token_counts", "DELETE FROM schema_migrations WHERE version = 10"} {
			if err := s.App.DB.Exec(q).Error; err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		s.Stop()
		s = apptest.Start(t, e, inDataDir(dir), noBackgroundRebuild)
		checkCounts(t, s, "after migration 0010")
	})
}

func pickWord(i int) string {
	words := []string{"apple", "river", "stone", "книга", "café", "night", "water", "green", "small", "light", "road"}
	return words[i%len(words)]
}

// TestSearchIndexYields: when another writer waits for the database, the
// indexer commits after the message at hand and goes on in a new
// transaction; nothing is lost or counted twice on the way.
func TestSearchIndexYields(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		alice := s.Register(t, "alice@example.com")
		chats := []string{newChat(t, s, alice.AccessToken), newChat(t, s, alice.AccessToken)}
		var ids []string
		for i := range 40 {
			ids = append(ids, send(t, s, alice.AccessToken, chats[i%2], fmt.Sprintf("first %s", pickWord(i))))
		}
		flush(t, s)
		var asked atomic.Int64
		defer s.App.Search.SetWritersWaiting(func() int { asked.Add(1); return 1 })()
		// Queued at once, so they are taken in batches: each batch is
		// then written one message per transaction.
		for i, id := range ids {
			s.App.Search.AnswerDone(chats[i%2], id, fmt.Sprintf("yielded %d %s %s", i%5, pickWord(i+3), pickWord(i*7)))
		}
		flush(t, s)
		if asked.Load() == 0 {
			t.Fatal("the indexer never asked whether a writer waits: no batch of several messages")
		}
		checkCounts(t, s, "after writes that yielded")
		// Each message has exactly the values of its new text.
		for i, id := range ids {
			var got []int
			if err := s.App.DB.Raw("SELECT token FROM message_tokens WHERE message_id = ? ORDER BY token", id).Scan(&got).Error; err != nil {
				t.Fatal(err)
			}
			want := s.App.Search.Values(chats[i%2], fmt.Sprintf("yielded %d %s %s", i%5, pickWord(i+3), pickWord(i*7)))
			slices.Sort(want)
			if want = slices.Compact(want); !slices.Equal(got, want) {
				t.Fatalf("message %d has index values %v, want %v", i, got, want)
			}
		}
	})
}
