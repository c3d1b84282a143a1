package httpapi_test

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
)

// This file covers messages end to end through the HTTP API, on every
// engine: sending, idempotent retries, seq numbering under concurrency,
// history pages, unread counters (and their cache), encryption at rest and
// tamper detection. Chat CRUD lives in chats_test.go.

func TestMessagesSend(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		h := newMsgHarness(t, e)
		alice := h.s.Register(t, "alice@example.com")
		bob := h.s.Register(t, "bob@example.com")
		chatID := h.createChat(t, alice.AccessToken, "send", "bob@example.com")

		// Seqs are 1, 2, 3... in sending order, whoever sends.
		senders := []apptest.Session{alice, bob, alice}
		for i, who := range senders {
			m := h.mustSend(t, who.AccessToken, chatID, fmt.Sprintf("hello %d", i+1), "")
			if m.Seq != int64(i+1) {
				t.Fatalf("message %d: seq = %d, want %d", i+1, m.Seq, i+1)
			}
			if m.Author != who.User.ID || m.AuthorKind != "user" || m.Status != "complete" {
				t.Fatalf("message %d: author %q kind %q status %q, want author %q kind user status complete",
					i+1, m.Author, m.AuthorKind, m.Status, who.User.ID)
			}
			if m.ID == "" || m.ChatID != chatID || m.CreatedAt.IsZero() || m.ClientID != "" {
				t.Fatalf("message %d = %+v, want an id, chat_id %s, created_at and no client_id", i+1, m, chatID)
			}
			// The send answer is the stored message: history shows the same,
			// down to created_at (clients match them up by it).
			stored := h.history(t, bob.AccessToken, chatID, fmt.Sprintf("before=%d&limit=1", m.Seq+1)).Messages
			if len(stored) != 1 {
				t.Fatalf("message %d: history shows %+v", i+1, stored)
			}
			if got := stored[0]; got.CreatedAt.Equal(m.CreatedAt) {
				got.CreatedAt = m.CreatedAt // same instant, maybe another zone
				if got != m {
					t.Fatalf("message %d: send answered %+v, history shows %+v", i+1, m, stored[0])
				}
			} else if i == 0 {
				t.Errorf("created_at: send answered %s, history shows %s; want the same instant",
					m.CreatedAt.Format(time.RFC3339Nano), got.CreatedAt.Format(time.RFC3339Nano))
			}
		}

		// Content comes back byte for byte, from the send and from history.
		tests := []struct {
			name    string
			content string
		}{
			{"multi-line", "first line\nsecond line\r\n\tindented third\n"},
			{"emoji", "👍🏽 family: 👨‍👩‍👧‍👦 flag: 🇺🇦 ✨"},
			{"cyrillic", "Привет, мир! Ёжик в тумане."},
			{"surrounding spaces kept", "   padded   "},
			{"markup and quotes", `<script>alert("x")</script> & 'quotes' \ backslash`},
			{"nul and control", "a\x00b\x01c"},
			{"combining marks", "e\u0301 a\u0308 \u200b zero-width"},
			{"max bytes ascii", strings.Repeat("a", 16384)},
			{"max bytes two-byte runes", strings.Repeat("я", 8192)},
			{"max bytes four-byte runes", strings.Repeat("😀", 4096)},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				m := h.mustSend(t, alice.AccessToken, chatID, tc.content, "")
				if m.Content != tc.content {
					t.Fatalf("send answered content %q, want %q", clipText(m.Content), clipText(tc.content))
				}
				got := h.history(t, bob.AccessToken, chatID, fmt.Sprintf("after=%d&limit=1", m.Seq-1))
				if len(got.Messages) != 1 || got.Messages[0].ID != m.ID || got.Messages[0].Content != tc.content {
					t.Fatalf("history of seq %d = %+v, want content %q", m.Seq, got.Messages, clipText(tc.content))
				}
			})
		}
	})
}

func TestMessagesSendValidation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		h := newMsgHarness(t, e)
		alice := h.s.Register(t, "alice@example.com")
		chatID := h.createChat(t, alice.AccessToken, "validation")

		tests := []struct {
			name      string
			body      any
			wantField string
		}{
			{"one byte too long", map[string]string{"content": strings.Repeat("a", 16385)}, "content"},
			{"one byte too long, multi-byte", map[string]string{"content": strings.Repeat("я", 8192) + "a"}, "content"},
			{"empty", map[string]string{"content": ""}, "content"},
			{"missing", map[string]string{"client_id": "c1"}, "content"},
			{"spaces only", map[string]string{"content": "   "}, "content"},
			{"whitespace only", map[string]string{"content": " \t\r\n \u00a0\u3000"}, "content"},
			{"client_id too long", map[string]string{"content": "hi", "client_id": strings.Repeat("c", 65)}, "client_id"},
			{"client_id with space", map[string]string{"content": "hi", "client_id": "my id"}, "client_id"},
			{"client_id with tab", map[string]string{"content": "hi", "client_id": "my\tid"}, "client_id"},
			{"client_id non-ascii", map[string]string{"content": "hi", "client_id": "ид"}, "client_id"},
			{"content wrong type", map[string]any{"content": 42}, "content"},
			{"unknown field", map[string]any{"content": "hi", "seq": 7}, "seq"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := h.s.Do(t, "POST", h.messagesPath(chatID), alice.AccessToken, tc.body)
				h.wantErr(t, r, http.StatusBadRequest, "validation.failed", tc.wantField)
			})
		}

		// A client_id of exactly 64 printable characters is fine.
		longest := strings.Repeat("x", 63) + "~"
		if m := h.mustSend(t, alice.AccessToken, chatID, "longest client id", longest); m.ClientID != longest {
			t.Fatalf("client_id = %q, want %q", m.ClientID, longest)
		}

		// encoding/json turns invalid UTF-8 inside a string into U+FFFD, so
		// the service may never see the bad bytes. Either answer is
		// acceptable, as long as it is not a 500 and nothing invalid is
		// stored.
		invalid := []struct {
			name string
			body []byte
		}{
			{"raw 0xff", []byte("{\"content\":\"bad \xff\xfe bytes\"}")},
			{"truncated rune", []byte("{\"content\":\"cut \xd0\"}")},
			{"lone surrogate escape", []byte(`{"content":"half \ud800 a pair"}`)},
		}
		for _, tc := range invalid {
			t.Run(tc.name, func(t *testing.T) {
				r := h.s.Do(t, "POST", h.messagesPath(chatID), alice.AccessToken, tc.body)
				switch r.Status {
				case http.StatusBadRequest:
					h.wantErr(t, r, http.StatusBadRequest, "validation.failed", "content")
				case http.StatusCreated:
					var m msgView
					r.JSON(t, &m)
					if !utf8.ValidString(m.Content) || !strings.ContainsRune(m.Content, utf8.RuneError) {
						t.Fatalf("stored content %q: want valid UTF-8 with U+FFFD replacing the bad bytes", m.Content)
					}
				default:
					t.Fatalf("status = %d %s, want 400 or 201", r.Status, r.Body)
				}
			})
		}

		// Nothing invalid was stored: only the 64-char client_id message and
		// the replaced-UTF-8 ones, numbered without gaps.
		all := h.allHistory(t, alice.AccessToken, chatID)
		for i, m := range all {
			if m.Seq != int64(len(all)-i) {
				t.Fatalf("history seqs = %v, want a gapless run down to 1", seqsOf(all))
			}
			if strings.TrimSpace(m.Content) == "" || len(m.Content) > 16384 {
				t.Fatalf("invalid content stored at seq %d: %q", m.Seq, clipText(m.Content))
			}
		}
	})
}

func TestMessagesIdempotency(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		h := newMsgHarness(t, e)
		alice := h.s.Register(t, "alice@example.com")
		bob := h.s.Register(t, "bob@example.com")
		chatID := h.createChat(t, alice.AccessToken, "retries", "bob@example.com")

		first := h.mustSend(t, alice.AccessToken, chatID, "only once", "c-1")
		if first.ClientID != "c-1" {
			t.Fatalf("client_id = %q, want c-1", first.ClientID)
		}

		// A retry answers 200 with the original.
		for i := 0; i < 2; i++ {
			r := h.send(t, alice.AccessToken, chatID, "only once", "c-1")
			if r.Status != http.StatusOK {
				t.Fatalf("retry %d: status = %d %s, want 200", i+1, r.Status, r.Body)
			}
			var again msgView
			r.JSON(t, &again)
			if again.ID != first.ID || again.Seq != first.Seq || again.Content != first.Content || again.Author != first.Author || again.ClientID != "c-1" {
				t.Fatalf("retry %d = %+v, want the original %+v", i+1, again, first)
			}
		}

		// The same client_id with other content is a conflict, not a new
		// message and not an overwrite.
		r := h.send(t, alice.AccessToken, chatID, "something else", "c-1")
		h.wantErr(t, r, http.StatusUnprocessableEntity, "message.idempotencyConflict", "client_id")

		// Another member may use the same client_id: it is their own message.
		r = h.send(t, bob.AccessToken, chatID, "only once", "c-1")
		if r.Status != http.StatusCreated {
			t.Fatalf("bob with alice's client_id: status = %d %s, want 201", r.Status, r.Body)
		}
		var bobs msgView
		r.JSON(t, &bobs)
		if bobs.ID == first.ID || bobs.Seq != 2 || bobs.Author != bob.User.ID {
			t.Fatalf("bob's message = %+v, want a new message with seq 2 by bob", bobs)
		}

		// A message without client_id is never deduplicated.
		h.mustSend(t, alice.AccessToken, chatID, "no id", "")
		h.mustSend(t, alice.AccessToken, chatID, "no id", "")

		all := h.allHistory(t, alice.AccessToken, chatID)
		if got, want := seqsOf(all), []int64{4, 3, 2, 1}; !slices.Equal(got, want) {
			t.Fatalf("history seqs = %v, want %v", got, want)
		}
		if m := all[3]; m.Content != "only once" || m.ID != first.ID {
			t.Fatalf("first message = %+v, want the original, not overwritten", m)
		}
		// Retries did not count as unread for bob: only 3 and 4 are, since
		// writing seq 2 marked the chat read for him.
		h.checkUnread(t, bob.AccessToken, map[string]int{chatID: 2})
	})
}

func TestMessagesIdempotencyConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		h := newMsgHarness(t, e)
		alice := h.s.Register(t, "alice@example.com")
		bob := h.s.Register(t, "bob@example.com")
		chatID := h.createChat(t, alice.AccessToken, "race", "bob@example.com")

		const n = 10
		results := make([]rawResult, n)
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start.Wait()
				results[i] = h.rawDo("POST", h.messagesPath(chatID), alice.AccessToken,
					map[string]string{"content": "tap tap tap", "client_id": "double-tap"})
			}()
		}
		start.Done()
		wg.Wait()

		ids := map[string]int{}
		created := 0
		for i, r := range results {
			if r.err != nil {
				t.Fatalf("request %d: %v", i, r.err)
			}
			if r.status != http.StatusCreated && r.status != http.StatusOK {
				t.Fatalf("request %d: status = %d %s, want 201 or 200", i, r.status, r.body)
			}
			if r.status == http.StatusCreated {
				created++
			}
			var m msgView
			if err := json.Unmarshal(r.body, &m); err != nil {
				t.Fatalf("request %d: %v in %s", i, err, r.body)
			}
			if m.Seq != 1 || m.Content != "tap tap tap" {
				t.Fatalf("request %d answered %+v, want seq 1", i, m)
			}
			ids[m.ID]++
		}
		if len(ids) != 1 || created != 1 {
			t.Fatalf("answers carry ids %v with %d× 201, want one id and exactly one 201", ids, created)
		}
		if got := h.allHistory(t, alice.AccessToken, chatID); len(got) != 1 {
			t.Fatalf("history holds %d messages (%v), want 1", len(got), seqsOf(got))
		}
		// The losers' seq bumps were rolled back: the next message is 2.
		if m := h.mustSend(t, alice.AccessToken, chatID, "next", ""); m.Seq != 2 {
			t.Fatalf("next seq = %d, want 2", m.Seq)
		}
		h.checkUnread(t, bob.AccessToken, map[string]int{chatID: 2})
	})
}

func TestMessagesSeqConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		h := newMsgHarness(t, e)
		emails := []string{"owner@example.com", "m1@example.com", "m2@example.com", "m3@example.com"}
		users := make([]apptest.Session, len(emails))
		for i, em := range emails {
			users[i] = h.s.Register(t, em)
		}
		chatID := h.createChat(t, users[0].AccessToken, "busy group", emails[1:]...)

		const perUser = 25
		total := perUser * len(users)
		sent := make([][]rawResult, len(users))
		var start, wg sync.WaitGroup
		start.Add(1)
		for u := range users {
			sent[u] = make([]rawResult, perUser)
			wg.Add(1)
			go func() {
				defer wg.Done()
				start.Wait()
				for i := range perUser {
					sent[u][i] = h.rawDo("POST", h.messagesPath(chatID), users[u].AccessToken,
						map[string]string{"content": fmt.Sprintf("u%d-%d", u, i), "client_id": fmt.Sprintf("c%d", i)})
				}
			}()
		}
		start.Done()
		wg.Wait()

		contentBySeq := map[int64]string{}
		for u := range users {
			var last int64
			for i, r := range sent[u] {
				if r.err != nil || r.status != http.StatusCreated {
					t.Fatalf("user %d send %d: %d %s %v, want 201", u, i, r.status, r.body, r.err)
				}
				var m msgView
				if err := json.Unmarshal(r.body, &m); err != nil {
					t.Fatal(err)
				}
				if m.Seq <= last {
					t.Fatalf("user %d: seq %d after %d; one sender's messages must number upwards", u, m.Seq, last)
				}
				last = m.Seq
				if prev, dup := contentBySeq[m.Seq]; dup {
					t.Fatalf("seq %d given to both %q and %q", m.Seq, prev, m.Content)
				}
				contentBySeq[m.Seq] = m.Content
			}
		}

		all := h.allHistory(t, users[1].AccessToken, chatID)
		if len(all) != total {
			t.Fatalf("history holds %d messages, want %d", len(all), total)
		}
		for i, m := range all {
			if want := int64(total - i); m.Seq != want {
				t.Fatalf("history seqs = %v, want %d..1 without gaps or duplicates", seqsOf(all), total)
			}
			if m.Content != contentBySeq[m.Seq] {
				t.Fatalf("seq %d: history content %q, send answered %q", m.Seq, m.Content, contentBySeq[m.Seq])
			}
		}
		// Everyone has unread what came after their own last message:
		// writing marks a chat read, and nobody's own messages count.
		for u := range users {
			var m msgView
			if err := json.Unmarshal(sent[u][perUser-1].body, &m); err != nil {
				t.Fatal(err)
			}
			h.checkUnread(t, users[u].AccessToken, map[string]int{chatID: total - int(m.Seq)})
		}
	})
}

func TestMessagesHistoryPagination(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		h := newMsgHarness(t, e)
		alice := h.s.Register(t, "alice@example.com")
		chatID := h.createChat(t, alice.AccessToken, "long")
		const n = 120
		for i := 1; i <= n; i++ {
			h.mustSend(t, alice.AccessToken, chatID, fmt.Sprintf("message %d", i), "")
		}

		tests := []struct {
			name     string
			query    string
			wantSeqs []int64
			wantMore bool
		}{
			{"default: newest 50, newest first", "", seqRange(120, 71), true},
			{"before 71 limit 20", "before=71&limit=20", seqRange(70, 51), true},
			{"before 51: exactly the rest", "before=51&limit=50", seqRange(50, 1), false},
			{"before 2", "before=2", seqRange(1, 1), false},
			{"before 1: nothing", "before=1", seqRange(0, 0), false},
			{"before past the end", "before=1000&limit=3", seqRange(120, 118), true},
			{"after 100: oldest first", "after=100", seqRange(101, 120), false},
			{"after 70: exactly the rest", "after=70&limit=50", seqRange(71, 120), false},
			{"after 10 limit 5", "after=10&limit=5", seqRange(11, 15), true},
			{"after the newest: nothing", "after=120", seqRange(0, 0), false},
			{"after and before", "after=10&before=15", seqRange(11, 14), false},
			{"after and before, limited", "after=10&before=15&limit=2", seqRange(11, 12), true},
			// after=0 is "from the first message": oldest first, like any after.
			{"after 0 limit 200", "after=0&limit=200", seqRange(1, 120), false},
			{"after 0 limit 5", "after=0&limit=5", seqRange(1, 5), true},
			{"limit 0 means default", "limit=0", seqRange(120, 71), true},
			{"limit 1", "limit=1", seqRange(120, 120), true},
			{"limit 200", "limit=200", seqRange(120, 1), false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p := h.history(t, alice.AccessToken, chatID, tc.query)
				if got := seqsOf(p.Messages); !slices.Equal(got, tc.wantSeqs) || p.HasMore != tc.wantMore {
					t.Fatalf("?%s: seqs %v has_more %v, want %v has_more %v", tc.query, got, p.HasMore, tc.wantSeqs, tc.wantMore)
				}
				for _, m := range p.Messages {
					if want := fmt.Sprintf("message %d", m.Seq); m.Content != want || m.ChatID != chatID {
						t.Fatalf("seq %d: content %q chat %s, want %q in %s", m.Seq, m.Content, m.ChatID, want, chatID)
					}
				}
			})
		}

		t.Run("walk back with before", func(t *testing.T) {
			seen := map[int64]bool{}
			query, pages := "limit=17", 0
			for {
				p := h.history(t, alice.AccessToken, chatID, query)
				pages++
				for _, m := range p.Messages {
					if seen[m.Seq] {
						t.Fatalf("seq %d seen twice", m.Seq)
					}
					seen[m.Seq] = true
				}
				if !p.HasMore {
					break
				}
				if len(p.Messages) == 0 || pages > n {
					t.Fatalf("has_more with page %v after %d pages", seqsOf(p.Messages), pages)
				}
				query = fmt.Sprintf("limit=17&before=%d", p.Messages[len(p.Messages)-1].Seq)
			}
			if len(seen) != n || pages != 8 {
				t.Fatalf("walk saw %d messages in %d pages, want %d in 8", len(seen), pages, n)
			}
		})

		bad := []struct {
			name  string
			query string
			field string
		}{
			{"limit 201", "limit=201", "limit"},
			{"limit negative", "limit=-1", "limit"},
			{"limit not a number", "limit=ten", "limit"},
			{"before not a number", "before=abc", "before"},
			{"before negative", "before=-5", "before"},
			{"before float", "before=1.5", "before"},
			{"after not a number", "after=x", "after"},
			{"after negative", "after=-1", "after"},
			{"after overflow", "after=99999999999999999999", "after"},
		}
		for _, tc := range bad {
			t.Run(tc.name, func(t *testing.T) {
				r := h.s.Do(t, "GET", h.messagesPath(chatID)+"?"+tc.query, alice.AccessToken, nil)
				h.wantErr(t, r, http.StatusBadRequest, "validation.failed", tc.field)
			})
		}
	})
}

func TestMessagesUnreadCounts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		h := newMsgHarness(t, e)
		alice := h.s.Register(t, "alice@example.com")
		bob := h.s.Register(t, "bob@example.com")
		carol := h.s.Register(t, "carol@example.com")
		dave := h.s.Register(t, "dave@example.com")
		chat1 := h.createChat(t, alice.AccessToken, "one", "bob@example.com", "carol@example.com")

		for i := 1; i <= 3; i++ {
			h.mustSend(t, alice.AccessToken, chat1, fmt.Sprintf("news %d", i), "")
		}
		h.checkUnread(t, alice.AccessToken, map[string]int{})
		h.checkUnread(t, bob.AccessToken, map[string]int{chat1: 3})
		h.checkUnread(t, carol.AccessToken, map[string]int{chat1: 3})

		// Reading up to a seq leaves what is after it.
		h.read(t, bob.AccessToken, chat1, map[string]int64{"seq": 2}, readView{ChatID: chat1, UnreadCount: 1, Total: 1})
		h.checkUnread(t, bob.AccessToken, map[string]int{chat1: 1})
		// No body: everything.
		h.read(t, bob.AccessToken, chat1, nil, readView{ChatID: chat1, UnreadCount: 0, Total: 0})
		h.checkUnread(t, bob.AccessToken, map[string]int{})
		// Reading never moves backwards.
		h.read(t, bob.AccessToken, chat1, map[string]int64{"seq": 1}, readView{ChatID: chat1, UnreadCount: 0, Total: 0})
		h.checkUnread(t, bob.AccessToken, map[string]int{})
		// Twice, and past the end, is fine.
		h.read(t, bob.AccessToken, chat1, nil, readView{ChatID: chat1, UnreadCount: 0, Total: 0})
		h.read(t, bob.AccessToken, chat1, map[string]int64{"seq": 999}, readView{ChatID: chat1, UnreadCount: 0, Total: 0})
		// An explicit 0 also means everything.
		h.read(t, bob.AccessToken, chat1, map[string]int64{"seq": 0}, readView{ChatID: chat1, UnreadCount: 0, Total: 0})
		r := h.s.Do(t, "POST", "/api/v1/chats/"+chat1+"/read", bob.AccessToken, map[string]int64{"seq": -1})
		h.wantErr(t, r, http.StatusBadRequest, "validation.failed", "seq")
		r = h.s.Do(t, "POST", "/api/v1/chats/"+chat1+"/read", bob.AccessToken, map[string]string{"seq": "2"})
		h.wantErr(t, r, http.StatusBadRequest, "validation.failed", "seq")
		// Bob's reading is his own: carol still has all three.
		h.checkUnread(t, carol.AccessToken, map[string]int{chat1: 3})

		// Someone added later starts at 0 and counts only what comes next.
		if r := h.s.Do(t, "POST", "/api/v1/chats/"+chat1+"/participants", alice.AccessToken, map[string]string{"email": "dave@example.com"}); r.Status != http.StatusOK {
			t.Fatalf("add dave: %d %s", r.Status, r.Body)
		}
		h.checkUnread(t, dave.AccessToken, map[string]int{})
		h.mustSend(t, alice.AccessToken, chat1, "welcome dave", "")
		h.checkUnread(t, dave.AccessToken, map[string]int{chat1: 1})
		h.checkUnread(t, bob.AccessToken, map[string]int{chat1: 1})
		h.checkUnread(t, carol.AccessToken, map[string]int{chat1: 4})
		// Reading up to a seq from before he joined changes nothing.
		h.read(t, dave.AccessToken, chat1, map[string]int64{"seq": 1}, readView{ChatID: chat1, UnreadCount: 1, Total: 1})

		// Totals add up across chats.
		chat2 := h.createChat(t, carol.AccessToken, "two", "bob@example.com")
		h.mustSend(t, carol.AccessToken, chat2, "psst", "")
		h.mustSend(t, carol.AccessToken, chat2, "psst psst", "")
		h.checkUnread(t, bob.AccessToken, map[string]int{chat1: 1, chat2: 2})
		h.read(t, bob.AccessToken, chat2, map[string]int64{"seq": 1}, readView{ChatID: chat2, UnreadCount: 1, Total: 2})
		h.read(t, bob.AccessToken, chat1, nil, readView{ChatID: chat1, UnreadCount: 0, Total: 1})
		h.read(t, bob.AccessToken, chat1, nil, readView{ChatID: chat1, UnreadCount: 0, Total: 1})
		h.checkUnread(t, bob.AccessToken, map[string]int{chat2: 1})

		// One's own messages never count, and reading skips them too.
		h.mustSend(t, bob.AccessToken, chat1, "thanks", "")
		h.checkUnread(t, bob.AccessToken, map[string]int{chat2: 1})
		h.checkUnread(t, alice.AccessToken, map[string]int{chat1: 1})
		h.checkUnread(t, carol.AccessToken, map[string]int{chat1: 5})
		h.checkUnread(t, dave.AccessToken, map[string]int{chat1: 2})
		// Writing marks the chat read up to one's own message, and a read
		// of an earlier seq does not move that mark back.
		h.mustSend(t, carol.AccessToken, chat1, "carol here", "")
		h.checkUnread(t, carol.AccessToken, map[string]int{})
		h.read(t, carol.AccessToken, chat1, map[string]int64{"seq": 3}, readView{ChatID: chat1, UnreadCount: 0, Total: 0})
	})
}

func TestMessagesUnreadCacheInterleaved(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		h := newMsgHarness(t, e)
		alice := h.s.Register(t, "alice@example.com")
		bob := h.s.Register(t, "bob@example.com")
		carol := h.s.Register(t, "carol@example.com")
		chatA := h.createChat(t, alice.AccessToken, "a", "bob@example.com", "carol@example.com")
		chatB := h.createChat(t, carol.AccessToken, "b", "bob@example.com")

		send := func(who apptest.Session, chatID string) func(t *testing.T) {
			return func(t *testing.T) { h.mustSend(t, who.AccessToken, chatID, "ping", "") }
		}
		read := func(who apptest.Session, chatID string, seq int64) func(t *testing.T) {
			return func(t *testing.T) {
				if r := h.s.Do(t, "POST", "/api/v1/chats/"+chatID+"/read", who.AccessToken, map[string]int64{"seq": seq}); r.Status != http.StatusOK {
					t.Fatalf("read: %d %s", r.Status, r.Body)
				}
			}
		}
		type counts map[string]int
		// Each step changes something, then every user's counts are read
		// (which fills the cache) and compared with what they must be.
		steps := []struct {
			name  string
			do    func(t *testing.T)
			alice counts
			bob   counts
			carol counts
		}{
			{"start", func(*testing.T) {}, counts{}, counts{}, counts{}},
			{"alice sends", send(alice, chatA), counts{}, counts{chatA: 1}, counts{chatA: 1}},
			{"alice sends again", send(alice, chatA), counts{}, counts{chatA: 2}, counts{chatA: 2}},
			{"carol sends in b", send(carol, chatB), counts{}, counts{chatA: 2, chatB: 1}, counts{chatA: 2}},
			{"bob reads a to 1", read(bob, chatA, 1), counts{}, counts{chatA: 1, chatB: 1}, counts{chatA: 2}},
			// Writing marks a chat read for the writer.
			{"bob sends in a", send(bob, chatA), counts{chatA: 1}, counts{chatB: 1}, counts{chatA: 3}},
			{"bob reads a", read(bob, chatA, 0), counts{chatA: 1}, counts{chatB: 1}, counts{chatA: 3}},
			{"carol reads a to 2", read(carol, chatA, 2), counts{chatA: 1}, counts{chatB: 1}, counts{chatA: 1}},
			{"alice sends", send(alice, chatA), counts{}, counts{chatA: 1, chatB: 1}, counts{chatA: 2}},
			{"alice reads a", read(alice, chatA, 0), counts{}, counts{chatA: 1, chatB: 1}, counts{chatA: 2}},
			{"bob reads b", read(bob, chatB, 0), counts{}, counts{chatA: 1}, counts{chatA: 2}},
			{"bob leaves a", func(t *testing.T) {
				if r := h.s.Do(t, "DELETE", "/api/v1/chats/"+chatA+"/participants/me", bob.AccessToken, nil); r.Status != http.StatusNoContent {
					t.Fatalf("leave: %d %s", r.Status, r.Body)
				}
			}, counts{}, counts{}, counts{chatA: 2}},
			{"bob sends in b", send(bob, chatB), counts{}, counts{}, counts{chatA: 2, chatB: 1}},
			{"alice deletes a", func(t *testing.T) {
				if r := h.s.Do(t, "DELETE", "/api/v1/chats/"+chatA, alice.AccessToken, nil); r.Status != http.StatusNoContent {
					t.Fatalf("delete: %d %s", r.Status, r.Body)
				}
			}, counts{}, counts{}, counts{chatB: 1}},
		}
		for _, st := range steps {
			st.do(t)
			for _, u := range []struct {
				name string
				tok  string
				want counts
			}{{"alice", alice.AccessToken, st.alice}, {"bob", bob.AccessToken, st.bob}, {"carol", carol.AccessToken, st.carol}} {
				if got := h.unread(t, u.tok); !sameCounts(got.Chats, u.want) {
					t.Fatalf("after %q: %s has %v, want %v", st.name, u.name, got.Chats, u.want)
				}
				// Twice: the second answer comes from the cache.
				h.checkUnread(t, u.tok, u.want)
			}
		}
	})
}

// TestMessagesMarkReadRacingSend reads while messages keep arriving. An
// unread count is the chat's last seq minus the reader's mark, two numbers
// that only grow, so whatever the interleaving the count must end equal to
// the messages after the mark, in the database and in the cache.
func TestMessagesMarkReadRacingSend(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		h := newMsgHarness(t, e)
		alice := h.s.Register(t, "alice@example.com")
		bob := h.s.Register(t, "bob@example.com")
		chatID := h.createChat(t, alice.AccessToken, "race", "bob@example.com")
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 30 {
				h.rawDo("POST", h.messagesPath(chatID), alice.AccessToken, map[string]string{"content": fmt.Sprint("m", i)})
			}
		}()
		go func() {
			defer wg.Done()
			for range 30 {
				h.rawDo("POST", "/api/v1/chats/"+chatID+"/read", bob.AccessToken, map[string]any{})
				h.unread(t, bob.AccessToken) // fills the cache while sends go on
			}
		}()
		wg.Wait()
		db := h.s.App.DB
		var lastRead, behind int64
		if err := db.Raw("SELECT last_read_seq FROM chat_members WHERE chat_id = ? AND user_id = ?", chatID, bob.User.ID).
			Scan(&lastRead).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Raw("SELECT count(*) FROM messages WHERE chat_id = ? AND seq > ?", chatID, lastRead).
			Scan(&behind).Error; err != nil {
			t.Fatal(err)
		}
		if u := h.unread(t, bob.AccessToken); int64(u.Chats[chatID]) != behind {
			t.Errorf("bob read up to %d and %d message(s) follow, but GET /me/unread = %+v", lastRead, behind, u)
		}
	})
}

func TestMessagesEncryptedAtRest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		h := newMsgHarness(t, e)
		alice := h.s.Register(t, "alice@example.com")
		h.s.Register(t, "bob@example.com")

		const (
			msgWord      = "canaryXylophone42"
			msgWord2     = "канарейкаСекрет77"
			titleWord    = "canaryTitleZebra"
			renamedWord  = "canaryRenamedOkapi"
			contextWord  = "canaryContextQuokka"
			stopWord     = "canaryStopWombat"
			retriedWord  = "canaryRetriedNarwhal"
			conflictWord = "canaryConflictLemur"
		)
		r := h.s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{
			"title":        "secret " + titleWord,
			"participants": []string{"bob@example.com"},
			"settings": map[string]any{
				"context": "Always mention " + contextWord + ".",
				"stop":    []string{stopWord},
			},
		})
		if r.Status != http.StatusCreated {
			t.Fatalf("create chat: %d %s", r.Status, r.Body)
		}
		var c msgChatView
		r.JSON(t, &c)
		personal := h.createChat(t, alice.AccessToken, titleWord+" personal")

		h.mustSend(t, alice.AccessToken, c.ID, "the word is "+msgWord+"!", "")
		h.mustSend(t, alice.AccessToken, c.ID, msgWord2, "")
		h.mustSend(t, alice.AccessToken, personal, strings.Repeat(msgWord+" ", 50), "")
		h.mustSend(t, alice.AccessToken, c.ID, retriedWord, "retry-1")
		if r := h.send(t, alice.AccessToken, c.ID, retriedWord, "retry-1"); r.Status != http.StatusOK {
			t.Fatalf("retry: %d %s", r.Status, r.Body)
		}
		// Refused; it must not leave a trace either.
		h.wantErr(t, h.send(t, alice.AccessToken, c.ID, conflictWord, "retry-1"), http.StatusUnprocessableEntity, "message.idempotencyConflict", "client_id")

		// Rename a second chat so both the create and the update path seal.
		if r := h.s.Do(t, "PATCH", "/api/v1/chats/"+personal, alice.AccessToken, map[string]string{"title": renamedWord}); r.Status != http.StatusOK {
			t.Fatalf("rename: %d %s", r.Status, r.Body)
		}

		// Through the API everything reads back.
		var got msgChatView
		if r := h.s.Do(t, "GET", "/api/v1/chats/"+c.ID, alice.AccessToken, nil); r.Status != http.StatusOK {
			t.Fatalf("get chat: %d %s", r.Status, r.Body)
		} else {
			r.JSON(t, &got)
		}
		if !strings.Contains(got.Title, titleWord) || !strings.Contains(got.Settings.Context, contextWord) || !slices.Equal(got.Settings.Stop, []string{stopWord}) {
			t.Fatalf("chat through the API = %+v, want the planted title, context and stop", got)
		}
		if r := h.s.Do(t, "GET", "/api/v1/chats/"+personal, alice.AccessToken, nil); !strings.Contains(string(r.Body), renamedWord) {
			t.Fatalf("renamed chat through the API: %d %s", r.Status, r.Body)
		}
		hist := h.allHistory(t, alice.AccessToken, c.ID)
		var texts []string
		for _, m := range hist {
			texts = append(texts, m.Content)
		}
		joined := strings.Join(texts, "\n")
		for _, w := range []string{msgWord, msgWord2, retriedWord} {
			if !strings.Contains(joined, w) {
				t.Fatalf("history %q lacks %q", texts, w)
			}
		}
		if strings.Contains(joined, conflictWord) {
			t.Fatalf("a refused conflicting retry was stored: %q", texts)
		}

		// In the database, none of it.
		dump := storetest.Dump(t, h.sqlDB(t), h.s.Engine.Name)
		if !strings.Contains(dump, "alice@example.com") || !strings.Contains(dump, "messages:") {
			t.Fatalf("the dump looks empty; it would prove nothing:\n%s", clipText(dump))
		}
		lower := strings.ToLower(dump)
		for _, w := range []string{msgWord, msgWord2, titleWord, renamedWord, contextWord, stopWord, retriedWord, conflictWord} {
			for _, form := range plantedForms(w) {
				if strings.Contains(dump, form) || strings.Contains(lower, strings.ToLower(form)) {
					t.Errorf("the database holds %q (a form of %q) in the clear", form, w)
				}
			}
			if strings.Contains(h.s.Logs(), w) {
				t.Errorf("the log holds %q", w)
			}
		}
	})
}

func TestMessagesTamperedRowFails(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		h := newMsgHarness(t, e)
		alice := h.s.Register(t, "alice@example.com")
		chatID := h.createChat(t, alice.AccessToken, "tamper")
		texts := []string{"first: transfer 10 EUR", "second: transfer 9000 EUR", "third: bye"}
		for _, txt := range texts {
			h.mustSend(t, alice.AccessToken, chatID, txt, "")
		}

		// Someone with database access copies message 1's ciphertext and key
		// over message 2, hoping the server shows it as message 2.
		res := h.s.App.DB.DB.Exec(`UPDATE messages SET
				content_ct = (SELECT m.content_ct FROM messages m WHERE m.seq = 1 AND m.chat_id = ?),
				key_id = (SELECT m.key_id FROM messages m WHERE m.seq = 1 AND m.chat_id = ?)
			WHERE seq = 2 AND chat_id = ?`, chatID, chatID, chatID)
		if res.Error != nil || res.RowsAffected != 1 {
			t.Fatalf("tamper: %v, %d rows", res.Error, res.RowsAffected)
		}

		for _, q := range []string{"", "before=3", "after=1", "limit=200"} {
			r := h.s.Do(t, "GET", h.messagesPath(chatID)+"?"+q, alice.AccessToken, nil)
			h.wantErr(t, r, http.StatusInternalServerError, "internal.error", "")
			for _, txt := range texts {
				if bytes.Contains(r.Body, []byte(txt)) {
					t.Fatalf("?%s: the error answer holds message text %q: %s", q, txt, r.Body)
				}
			}
		}
		// The other messages are still readable around it.
		if p := h.history(t, alice.AccessToken, chatID, "before=2"); len(p.Messages) != 1 || p.Messages[0].Content != texts[0] {
			t.Fatalf("before=2: %+v, want message 1 intact", p.Messages)
		}
		if p := h.history(t, alice.AccessToken, chatID, "after=2"); len(p.Messages) != 1 || p.Messages[0].Content != texts[2] {
			t.Fatalf("after=2: %+v, want message 3 intact", p.Messages)
		}
		for _, txt := range texts {
			if strings.Contains(h.s.Logs(), txt) {
				t.Fatalf("the log holds message text %q", txt)
			}
		}
	})
}

// --- helpers ---

// msgHarness is a running server plus the calls these tests make.
type msgHarness struct {
	s *apptest.Server
}

func newMsgHarness(t *testing.T, e storetest.Engine) *msgHarness {
	t.Helper()
	return &msgHarness{s: apptest.Start(t, e)}
}

// msgView is a message as the API shows it.
type msgView struct {
	ID         string    `json:"id"`
	ChatID     string    `json:"chat_id"`
	Seq        int64     `json:"seq"`
	Author     string    `json:"author"`
	AuthorKind string    `json:"author_kind"`
	ClientID   string    `json:"client_id"`
	Content    string    `json:"content"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
}

type historyView struct {
	Messages []msgView `json:"messages"`
	HasMore  bool      `json:"has_more"`
}

type unreadView struct {
	Total int            `json:"total"`
	Chats map[string]int `json:"chats"`
}

type readView struct {
	ChatID      string `json:"chat_id"`
	UnreadCount int    `json:"unread_count"`
	Total       int    `json:"total"`
}

type msgChatView struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	UnreadCount int    `json:"unread_count"`
	Settings    struct {
		Context string   `json:"context"`
		Stop    []string `json:"stop"`
	} `json:"settings"`
}

func (h *msgHarness) messagesPath(chatID string) string {
	return "/api/v1/chats/" + chatID + "/messages"
}

func (h *msgHarness) createChat(t *testing.T, token, title string, participants ...string) string {
	t.Helper()
	if participants == nil {
		participants = []string{}
	}
	r := h.s.Do(t, "POST", "/api/v1/chats", token, map[string]any{"title": title, "participants": participants})
	if r.Status != http.StatusCreated {
		t.Fatalf("create chat %q: %d %s", title, r.Status, r.Body)
	}
	var c msgChatView
	r.JSON(t, &c)
	if c.ID == "" {
		t.Fatalf("create chat %q: no id in %s", title, r.Body)
	}
	return c.ID
}

func (h *msgHarness) send(t *testing.T, token, chatID, content, clientID string) *apptest.Response {
	t.Helper()
	body := map[string]string{"content": content}
	if clientID != "" {
		body["client_id"] = clientID
	}
	return h.s.Do(t, "POST", h.messagesPath(chatID), token, body)
}

func (h *msgHarness) mustSend(t *testing.T, token, chatID, content, clientID string) msgView {
	t.Helper()
	r := h.send(t, token, chatID, content, clientID)
	if r.Status != http.StatusCreated {
		t.Fatalf("send %q: status = %d %s, want 201", clipText(content), r.Status, r.Body)
	}
	var m msgView
	r.JSON(t, &m)
	return m
}

func (h *msgHarness) history(t *testing.T, token, chatID, query string) historyView {
	t.Helper()
	r := h.s.Do(t, "GET", h.messagesPath(chatID)+"?"+query, token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("history ?%s: %d %s", query, r.Status, r.Body)
	}
	var p historyView
	r.JSON(t, &p)
	if p.Messages == nil {
		t.Fatalf("history ?%s: messages is not an array: %s", query, r.Body)
	}
	return p
}

// allHistory fetches every message, newest first, 50 a page.
func (h *msgHarness) allHistory(t *testing.T, token, chatID string) []msgView {
	t.Helper()
	var all []msgView
	query := "limit=50"
	for {
		p := h.history(t, token, chatID, query)
		all = append(all, p.Messages...)
		if !p.HasMore || len(p.Messages) == 0 {
			return all
		}
		query = fmt.Sprintf("limit=50&before=%d", p.Messages[len(p.Messages)-1].Seq)
	}
}

func (h *msgHarness) unread(t *testing.T, token string) unreadView {
	t.Helper()
	r := h.s.Do(t, "GET", "/api/v1/me/unread", token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("unread: %d %s", r.Status, r.Body)
	}
	var u unreadView
	r.JSON(t, &u)
	if u.Chats == nil {
		t.Fatalf("unread: chats is not an object: %s", r.Body)
	}
	return u
}

// listUnread returns unread_count per chat from GET /chats.
func (h *msgHarness) listUnread(t *testing.T, token string) map[string]int {
	t.Helper()
	r := h.s.Do(t, "GET", "/api/v1/chats", token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("list chats: %d %s", r.Status, r.Body)
	}
	var list struct {
		Chats []msgChatView `json:"chats"`
	}
	r.JSON(t, &list)
	out := map[string]int{}
	for _, c := range list.Chats {
		out[c.ID] = c.UnreadCount
	}
	return out
}

// checkUnread asserts the user's unread counts (chats with 0 left out)
// agree in GET /me/unread (map and total) and in GET /chats.
func (h *msgHarness) checkUnread(t *testing.T, token string, want map[string]int) {
	t.Helper()
	u := h.unread(t, token)
	wantTotal := 0
	for _, n := range want {
		wantTotal += n
	}
	if !sameCounts(u.Chats, want) || u.Total != wantTotal {
		t.Fatalf("GET /me/unread = %+v, want chats %v total %d", u, want, wantTotal)
	}
	for id, n := range h.listUnread(t, token) {
		if n != want[id] {
			t.Fatalf("GET /chats: chat %s unread_count = %d, want %d", id, n, want[id])
		}
	}
}

func (h *msgHarness) read(t *testing.T, token, chatID string, body any, want readView) {
	t.Helper()
	r := h.s.Do(t, "POST", "/api/v1/chats/"+chatID+"/read", token, body)
	if r.Status != http.StatusOK {
		t.Fatalf("read %s with %v: %d %s", chatID, body, r.Status, r.Body)
	}
	var got readView
	r.JSON(t, &got)
	if got != want {
		t.Fatalf("read %s with %v = %+v, want %+v", chatID, body, got, want)
	}
}

func (h *msgHarness) wantErr(t *testing.T, r *apptest.Response, status int, code, field string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d %s, want %d %s", r.Status, r.Body, status, code)
	}
	if e := r.Err(t); e.Code != code || e.Field != field || e.Message == "" {
		t.Fatalf("error = %+v, want code %s field %q and a message", e, code, field)
	}
}

func (h *msgHarness) sqlDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := h.s.App.DB.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// rawResult is an answer fetched off the test goroutine, where t.Fatal is
// not allowed.
type rawResult struct {
	status int
	body   []byte
	err    error
}

func (h *msgHarness) rawDo(method, path, token string, body any) rawResult {
	js, err := json.Marshal(body)
	if err != nil {
		return rawResult{err: err}
	}
	req, err := http.NewRequest(method, h.s.URL+path, bytes.NewReader(js))
	if err != nil {
		return rawResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return rawResult{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return rawResult{status: res.StatusCode, body: b, err: err}
}

func seqsOf(msgs []msgView) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

// seqRange lists from..to inclusive, either way; (0, 0) is empty.
func seqRange(from, to int64) []int64 {
	out := []int64{}
	if from == 0 && to == 0 {
		return out
	}
	step := int64(1)
	if from > to {
		step = -1
	}
	for s := from; ; s += step {
		out = append(out, s)
		if s == to {
			return out
		}
	}
}

// sameCounts compares unread maps, treating a missing chat as 0.
func sameCounts(got, want map[string]int) bool {
	for id, n := range got {
		if want[id] != n {
			return false
		}
	}
	for id, n := range want {
		if got[id] != n {
			return false
		}
	}
	return true
}

// plantedForms is what a planted word could look like if it leaked: as is,
// in hex, and base64 (standard and URL alphabets) at each of the three byte
// alignments it could start at inside a longer text.
func plantedForms(w string) []string {
	forms := []string{w, hex.EncodeToString([]byte(w))}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for k := 0; k < 3; k++ {
			b := append(bytes.Repeat([]byte{'.'}, k), w...)
			s := enc.EncodeToString(b)
			first := (k + 2) / 3     // first 3-byte group made only of w's bytes
			last := (k+len(w))/3 - 1 // last such group
			if last >= first {
				forms = append(forms, s[4*first:4*(last+1)])
			}
		}
	}
	return forms
}

func clipText(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%s... (%d bytes)", s[:80], len(s))
	}
	return s
}
