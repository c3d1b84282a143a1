package search_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/search"
	"github.com/aichat/aichat/internal/store/storetest"
)

// Benchmarks run on SQLite and, with AICHAT_TEST_POSTGRES_URL, PostgreSQL:
//
//	go test ./internal/search -run '^$' -bench . -benchtime 200x
//
// AICHAT_BENCH_SEARCH_MESSAGES sets the corpus of the query benchmarks
// (default 10,000; the figure is 100,000).
// AICHAT_BENCH_SEARCH_COMPARE=1 also runs each search walking the values
// from the longest word, as before message_token_counts ("-wordorder").

type benchCorpus struct {
	s     *apptest.Server
	user  string
	chats []string
	ids   []string
	texts []string
	chat  []string // chat of each message
}

func engines(b *testing.B, fn func(b *testing.B, e storetest.Engine)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, storetest.SQLite(b)) })
	b.Run("postgres", func(b *testing.B) { fn(b, storetest.Postgres(b)) })
}

// corpus sends n generated messages (about 7 words each) from one user
// to 10 chats with a second member, and waits until they are indexed.
func corpus(b *testing.B, e storetest.Engine, n int) *benchCorpus {
	b.Helper()
	s := apptest.Start(b, e)
	u := s.Register(b, "bench@example.com")
	s.Register(b, "other@example.com")
	c := &benchCorpus{s: s, user: u.User.ID}
	for range 10 {
		r := s.Do(b, "POST", "/api/v1/chats", u.AccessToken, map[string]any{"participants": []string{"other@example.com"},
			"settings": map[string]any{"ai_mode": "off"}})
		var ch chatOut
		r.JSON(b, &ch)
		c.chats = append(c.chats, ch.ID)
	}
	r := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	for i := range n {
		words := make([]string, 3+r.IntN(10))
		for j := range words {
			words[j] = pick(r)
		}
		text := strings.Join(words, " ")
		chatID := c.chats[i%len(c.chats)]
		sent, err := s.App.Chats.Send(ctx, c.user, chatID, text, "")
		if err != nil {
			b.Fatal(err)
		}
		c.ids, c.texts, c.chat = append(c.ids, sent.Message.ID), append(c.texts, text), append(c.chat, chatID)
	}
	if err := s.App.Search.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkIndex: what indexing costs per message. "hash" is the CPU part
// (tokenize, normalize, HMAC per distinct word); "write" re-indexes stored
// messages through the queue as answers are (delete the message's tokens,
// insert the new ones, batched per transaction), flushed at the end.
func BenchmarkIndex(b *testing.B) {
	engines(b, func(b *testing.B, e storetest.Engine) {
		c := corpus(b, e, 1000)
		b.Run("hash", func(b *testing.B) {
			i := 0
			for b.Loop() {
				c.s.App.Search.Values(c.chat[i%len(c.ids)], c.texts[i%len(c.ids)])
				i++
			}
		})
		b.Run("write", func(b *testing.B) {
			b.ResetTimer()
			for i := range b.N {
				k := i % len(c.ids)
				c.s.App.Search.AnswerDone(c.chat[k], c.ids[k], c.texts[k])
			}
			// Timed: the writes end when the queue is empty.
			if err := c.s.App.Search.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkSearch: the first page (20 results) of a search over every chat
// of a user with the whole corpus, for one word and for three words; p99
// is reported beside the mean.
func BenchmarkSearch(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("AICHAT_BENCH_SEARCH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	engines(b, func(b *testing.B, e storetest.Engine) {
		c := corpus(b, e, n)
		if e.Name == "postgres" {
			// Autovacuum may be off (it is on the benchmark machine): give
			// the planner the statistics a running server would have.
			if err := c.s.App.DB.Exec("ANALYZE").Error; err != nil {
				b.Fatal(err)
			}
		}
		type query struct{ name, q string }
		queries := []query{
			{"1word", "water"},
			{"1word-common", "the"},
			{"3words", "the and of"},
			{"3words-rare", "time people water"},
			{"phrase", `"of the"`},
		}
		if os.Getenv("AICHAT_BENCH_SEARCH_COMPARE") != "" {
			// The same searches walking from the longest word instead of
			// the rarest value (message_token_counts).
			for _, q := range slices.Clone(queries) {
				queries = append(queries, query{q.name + "-wordorder", q.q})
			}
		}
		for _, q := range queries {
			b.Run(q.name, func(b *testing.B) {
				defer search.SetCountOrder(!strings.HasSuffix(q.name, "-wordorder"))()
				var took []time.Duration
				results := 0
				for b.Loop() {
					start := time.Now()
					p, err := c.s.App.Search.Search(context.Background(), search.Request{UserID: c.user, Query: q.q})
					if err != nil {
						b.Fatal(err)
					}
					took = append(took, time.Since(start))
					results = len(p.Results)
				}
				slices.Sort(took)
				p99 := took[min(len(took)-1, len(took)*99/100)]
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(results), "results")
			})
		}
	})
}

// BenchmarkIndexAnswer: indexing one assistant-sized answer (150 distinct
// words) at a time, each in its own transaction, as a server does when
// answers finish one by one: the statement's preparation counts here.
func BenchmarkIndexAnswer(b *testing.B) {
	engines(b, func(b *testing.B, e storetest.Engine) {
		c := corpus(b, e, 100)
		r := rand.New(rand.NewPCG(5, 6))
		texts := make([]string, 64)
		for i := range texts {
			words := make([]string, 150)
			for j := range words {
				words[j] = fmt.Sprintf("%s%d", pick(r), r.IntN(1000))
			}
			texts[i] = strings.Join(words, " ")
		}
		ctx := context.Background()
		b.ResetTimer()
		for i := range b.N {
			k := i % len(c.ids)
			c.s.App.Search.AnswerDone(c.chat[k], c.ids[k], texts[i%len(texts)])
			if err := c.s.App.Search.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
