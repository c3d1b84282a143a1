package search_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/app"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/search"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/aichat/aichat/internal/store/storetest"
)

// noBackgroundRebuild keeps the app's own rebuild loop off, so the test
// decides when the rebuild runs and where it stops.
func noBackgroundRebuild(_ *config.Config, o *app.Options) { o.SearchRebuildPoll = -1 }

func inDataDir(dir string) apptest.Option {
	return apptest.WithConfig(func(c *config.Config) { c.DataDir = dir })
}

// rowsOf returns the (version, token) rows of a message's index entries.
func rowsOf(t *testing.T, s *apptest.Server, msg string) []string {
	t.Helper()
	var rows []struct {
		KeyVersion int
		Token      int
	}
	if err := s.App.DB.Raw("SELECT key_version, token FROM message_tokens WHERE message_id = ? ORDER BY key_version, token", msg).
		Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%d:%d", r.KeyVersion, r.Token))
	}
	return out
}

func countRows(t *testing.T, s *apptest.Server, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.App.DB.Raw("SELECT COUNT(*) FROM message_tokens WHERE "+where, args...).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSearchKeyRotation rotates the index key and checks that every
// search answers the same before the rotation, half-way through the
// rebuild, after the rebuilding process stopped and another resumed, and
// at the end; that a message written during the rebuild is found; that
// the index never holds the planted words and hashes them differently
// under each key and in each chat; and that a second rotation works.
func TestSearchKeyRotation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		ctx := context.Background()
		dir := t.TempDir()
		s := apptest.Start(t, e, inDataDir(dir), noBackgroundRebuild)
		alice := s.Register(t, "alice@example.com")
		bob := s.Register(t, "bob@example.com")
		users := []apptest.Session{alice, bob}
		shared := newChat(t, s, alice.AccessToken, "bob@example.com")
		own := newChat(t, s, alice.AccessToken)
		bobs := newChat(t, s, bob.AccessToken)

		planted := []string{"Zanzibarquux", "Квазиморднян", "frobnitzal"}
		r := rand.New(rand.NewPCG(5, 6))
		var plantedMsg, plantedText string
		indexed := 0
		for i := range 90 {
			words := make([]string, 2+r.IntN(8))
			for j := range words {
				words[j] = pick(r)
			}
			if i%10 == 3 {
				words = append(words, planted...)
			}
			chatID, author := []string{shared, own, bobs}[i%3], []apptest.Session{alice, alice, bob}[i%3]
			if chatID == shared && i%2 == 1 {
				author = bob
			}
			text := strings.Join(words, " ")
			if i == 7 {
				text = "?!" // no word: no rows, ever
			} else {
				indexed++
			}
			id := send(t, s, author.AccessToken, chatID, text)
			if i == 3 {
				plantedMsg, plantedText = id, text // in the shared chat
			}
		}
		flush(t, s)

		queries := []string{"the", "и", "cafe", "time people water", "the and of", `"of the"`, "zanzibarquux",
			"квазиморднян frobnitzal", "zyzzogeton"}
		answers := func(s *apptest.Server) map[string][]string {
			t.Helper()
			out := map[string][]string{}
			for ui, u := range users {
				for _, q := range queries {
					var got []string
					cursor := ""
					for {
						p, err := s.App.Search.Search(ctx, search.Request{UserID: u.User.ID, Query: q, Limit: 7, Cursor: cursor})
						if err != nil {
							t.Fatalf("%q: %v", q, err)
						}
						got = append(got, ids(*p)...)
						if p.NextCursor == "" {
							break
						}
						cursor = p.NextCursor
					}
					out[fmt.Sprintf("user %d: %s", ui, q)] = got
				}
			}
			return out
		}
		same := func(when string, got, want map[string][]string) {
			t.Helper()
			for k, w := range want {
				if !slices.Equal(got[k], w) {
					t.Errorf("%s: %s: %d results %v, want %d %v", when, k, len(got[k]), got[k], len(w), w)
				}
			}
		}
		before := answers(s)
		if len(before["user 0: zanzibarquux"]) < 3 || len(before["user 1: the"]) < 10 {
			t.Fatalf("the corpus does not exercise the search: %d results", len(before))
		}
		oldKey := s.App.Search.CurrentKeyID()
		oldRows := rowsOf(t, s, plantedMsg)

		// Rotate: a new key in the data folder, recorded in the database.
		k, err := secrets.AddIndexKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.App.Search.Rotate(ctx, k.ID)
		if err != nil || v != 2 {
			t.Fatalf("Rotate = %d, %v; want version 2", v, err)
		}
		if _, err := s.App.Search.Rotate(ctx, oldKey); err == nil {
			t.Fatal("a second rotation during the rebuild was accepted")
		}
		same("right after the rotation", answers(s), before)

		// Half-way: 4 batches of 7 messages.
		st, err := s.App.Search.Rebuild(ctx, 7, 4)
		if err != nil || st.Finished || st.Messages == 0 || !st.Ran {
			t.Fatalf("first batches: %+v, %v", st, err)
		}
		if countRows(t, s, "key_version = 1") == 0 || countRows(t, s, "key_version = 2") == 0 {
			t.Fatal("half-way, both versions should have rows")
		}
		same("half-way", answers(s), before)

		// A message written during the rebuild uses the new key and is found.
		during := send(t, s, alice.AccessToken, own, "written mid-rebuild: zyzzogeton")
		flush(t, s)
		for _, row := range rowsOf(t, s, during) {
			if !strings.HasPrefix(row, "2:") {
				t.Fatalf("a message written after the rotation has rows %v, want version 2 only", rowsOf(t, s, during))
			}
		}
		before["user 0: zyzzogeton"] = []string{during}
		same("after a write during the rebuild", answers(s), before)

		// The process stops half-way; another one resumes where it stopped.
		s.Stop()
		s = apptest.Start(t, e, inDataDir(dir), noBackgroundRebuild)
		resumed, ok, err := s.App.Search.Status(ctx)
		if err != nil || !ok || resumed.AfterID != st.AfterID || resumed.Messages != st.Messages || resumed.Finished {
			t.Fatalf("after a restart the rebuild is at %+v (%v), want where it stopped: %+v", resumed, err, st)
		}
		same("after the restart, half-way", answers(s), before)
		st, err = s.App.Search.Rebuild(ctx, 7, 0)
		if err != nil || !st.Finished {
			t.Fatalf("resumed rebuild: %+v, %v", st, err)
		}
		// Each message that had rows before the rotation was moved once.
		if st.Messages != int64(indexed) {
			t.Fatalf("the rebuild re-indexed %d messages, want %d", st.Messages, indexed)
		}
		if n := countRows(t, s, "key_version <> 2"); n != 0 {
			t.Fatalf("%d rows of the old version left after the rebuild", n)
		}
		same("after the rebuild", answers(s), before)
		if retired, err := s.App.Search.RetiredKeyIDs(ctx); err != nil || !slices.Equal(retired, []string{oldKey}) {
			t.Fatalf("retired keys %v (%v), want %s", retired, err, oldKey)
		}

		// The canary still holds: no planted word in any table, and the
		// same words hash differently under the two keys and in two chats.
		sqlDB, _ := s.App.DB.DB.DB()
		dump := strings.ToLower(storetest.Dump(t, sqlDB, e.Name))
		for _, w := range planted {
			if strings.Contains(dump, strings.ToLower(w)) || strings.Contains(dump, search.Normalize(w)) {
				t.Errorf("planted word %q is in the database", w)
			}
		}
		text := strings.Join(planted, " ")
		if slices.Equal(s.App.Search.ValuesUnder(oldKey, shared, text), s.App.Search.ValuesUnder(k.ID, shared, text)) {
			t.Error("the same words have the same values under the old and the new key")
		}
		if slices.Equal(s.App.Search.ValuesUnder(k.ID, shared, text), s.App.Search.ValuesUnder(k.ID, own, text)) {
			t.Error("the same words have the same values in two chats under the new key")
		}
		newRows := rowsOf(t, s, plantedMsg)
		// As many rows as distinct values under the new key: two of the
		// words may share a 12-bit value under one key and not the other.
		if len(newRows) != len(s.App.Search.ValuesUnder(k.ID, shared, plantedText)) || slices.Equal(newRows, oldRows) {
			t.Errorf("the planted message's rows went from %v to %v", oldRows, newRows)
		}
		for _, val := range s.App.Search.ValuesUnder(k.ID, shared, text) {
			if !slices.Contains(newRows, fmt.Sprintf("2:%d", val)) {
				t.Errorf("value %d under the new key is not stored for the planted message: %v", val, newRows)
			}
		}

		// The old key can go; a second rotation works the same way.
		if removed, err := secrets.RemoveIndexKeys(dir, oldKey); err != nil || len(removed) != 1 {
			t.Fatalf("remove the old key: %v %v", removed, err)
		}
		s.Stop()
		s = apptest.Start(t, e, inDataDir(dir), noBackgroundRebuild)
		same("after removing the old key", answers(s), before)
		k3, err := secrets.AddIndexKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := s.App.Search.Rotate(ctx, k3.ID); err != nil || v != 3 {
			t.Fatalf("second rotation = %d, %v", v, err)
		}
		if st, err := s.App.Search.Rebuild(ctx, 50, 1); err != nil || st.Finished {
			t.Fatalf("second rotation, one batch: %+v %v", st, err)
		}
		same("second rotation, half-way", answers(s), before)
		if st, err := s.App.Search.Rebuild(ctx, 50, 0); err != nil || !st.Finished || st.Messages != int64(indexed+1) {
			t.Fatalf("second rebuild: %+v %v, want %d messages", st, err, indexed+1)
		}
		if n := countRows(t, s, "key_version <> 3"); n != 0 {
			t.Fatalf("%d rows of older versions after the second rebuild", n)
		}
		same("after the second rotation", answers(s), before)
	})
}

// TestSearchRebuildOneAtATime: two instances on one database; while one
// rebuilds, the other is told the rebuild is held elsewhere and changes
// nothing, then finds it finished.
func TestSearchRebuildOneAtATime(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		ctx := context.Background()
		dir := t.TempDir()
		a := apptest.Start(t, e, inDataDir(dir), noBackgroundRebuild)
		b := apptest.Start(t, e, inDataDir(dir), noBackgroundRebuild)
		alice := a.Register(t, "alice@example.com")
		c := newChat(t, a, alice.AccessToken)
		for i := range 20 {
			send(t, a, alice.AccessToken, c, fmt.Sprintf("message number %d", i))
		}
		flush(t, a)
		k, err := secrets.AddIndexKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.App.Search.Rotate(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		var seen []search.RebuildStatus
		restore := search.SetRebuildBatchHook(func() {
			if len(seen) == 0 {
				st, err := b.App.Search.Rebuild(ctx, 5, 0)
				if err != nil {
					t.Errorf("second instance: %v", err)
				}
				seen = append(seen, st)
			}
		})
		st, err := a.App.Search.Rebuild(ctx, 5, 0)
		restore()
		if err != nil || !st.Finished || st.Messages != 20 {
			t.Fatalf("first instance: %+v, %v", st, err)
		}
		if len(seen) != 1 || !seen[0].Elsewhere || seen[0].Ran || seen[0].Messages != 5 {
			t.Fatalf("second instance during the rebuild: %+v, want held elsewhere after the first batch", seen)
		}
		st, err = b.App.Search.Rebuild(ctx, 5, 0)
		if err != nil || !st.Finished || st.Ran {
			t.Fatalf("second instance afterwards: %+v, %v", st, err)
		}
		p, err := b.App.Search.Search(ctx, search.Request{UserID: alice.User.ID, Query: "number"})
		if err != nil || len(p.Results) != 20 {
			t.Fatalf("search on the second instance after the rebuild: %v", err)
		}
	})
}

// downgradeTo0008 puts the search schema back as migration 0008 left it
// (no key versions, no rotation tables, no counts), keeping the index rows, so the
// next start runs migration 0009 on an index that has data.
var downgradeTo0008 = map[string][]string{
	"sqlite": {
		"DROP TABLE message_token_counts", "DELETE FROM schema_migrations WHERE version IN (10, 11)",
		"DROP TABLE search_rebuilds", "DROP TABLE search_index", "DROP TABLE search_keys",
		`CREATE TABLE message_tokens_old (
			chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
			token INTEGER NOT NULL,
			message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
			PRIMARY KEY (chat_id, token, message_id)) WITHOUT ROWID`,
		"INSERT INTO message_tokens_old SELECT chat_id, token, message_id FROM message_tokens",
		"DROP TABLE message_tokens",
		"ALTER TABLE message_tokens_old RENAME TO message_tokens",
		"CREATE INDEX message_tokens_message ON message_tokens (message_id)",
		"DELETE FROM schema_migrations WHERE version = 9",
	},
	"postgres": {
		"DROP TABLE message_token_counts", "DELETE FROM schema_migrations WHERE version IN (10, 11)",
		"DROP TABLE search_rebuilds", "DROP TABLE search_index", "DROP TABLE search_keys",
		"ALTER TABLE message_tokens DROP CONSTRAINT message_tokens_pkey",
		"ALTER TABLE message_tokens DROP COLUMN key_version",
		"ALTER TABLE message_tokens ADD PRIMARY KEY (chat_id, token, message_id)",
		"DELETE FROM schema_migrations WHERE version = 9",
	},
}

// TestSearchUpgradeKeepsIndex: an index written before key versions
// existed is version 1 after migration 0009, under the key in use; every
// search answers the same, and it can be rotated.
func TestSearchUpgradeKeepsIndex(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		ctx := context.Background()
		dir := t.TempDir()
		s := apptest.Start(t, e, inDataDir(dir), noBackgroundRebuild)
		alice := s.Register(t, "alice@example.com")
		c := newChat(t, s, alice.AccessToken)
		for i := range 25 {
			send(t, s, alice.AccessToken, c, fmt.Sprintf("upgrade note %d %s", i, []string{"alpha", "beta"}[i%2]))
		}
		flush(t, s)
		queries := []string{"note", "alpha", `"note 7"`, "beta upgrade"}
		answers := func(s *apptest.Server) [][]string {
			var out [][]string
			for _, q := range queries {
				p, err := s.App.Search.Search(ctx, search.Request{UserID: alice.User.ID, Query: q, Limit: 50})
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, ids(*p))
			}
			return out
		}
		before := answers(s)
		rows := countRows(t, s, "1 = 1")
		keyID := s.App.Search.CurrentKeyID()
		for _, q := range downgradeTo0008[e.Name] {
			if err := s.App.DB.Exec(q).Error; err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		s.Stop()

		s = apptest.Start(t, e, inDataDir(dir), noBackgroundRebuild)
		if n := countRows(t, s, "key_version = 1"); n != rows || rows == 0 {
			t.Fatalf("after migration 0009: %d rows of version 1, want all %d", n, rows)
		}
		if got := s.App.Search.CurrentKeyID(); got != keyID {
			t.Fatalf("current index key after the upgrade: %s, want the one in use, %s", got, keyID)
		}
		if got := answers(s); !slices.EqualFunc(got, before, slices.Equal) {
			t.Fatalf("after the upgrade: %v, want %v", got, before)
		}
		k, err := secrets.AddIndexKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.App.Search.Rotate(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if st, err := s.App.Search.Rebuild(ctx, 10, 0); err != nil || !st.Finished || st.Messages != 25 {
			t.Fatalf("rebuild after the upgrade: %+v %v", st, err)
		}
		if got := answers(s); !slices.EqualFunc(got, before, slices.Equal) {
			t.Fatalf("after rotating the upgraded index: %v, want %v", got, before)
		}
	})
}
