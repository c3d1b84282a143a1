package chat_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/seal"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/aichat/aichat/internal/store"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/google/uuid"
)

// Run with PostgreSQL too:
//
//	AICHAT_TEST_POSTGRES_URL=postgres://... go test -run '^$' -bench . -benchmem ./internal/chat/

// eachEngine runs fn as the sub-benchmarks "sqlite" and "postgres"; the
// PostgreSQL one is skipped when AICHAT_TEST_POSTGRES_URL is unset.
func eachEngine(b *testing.B, fn func(b *testing.B, e storetest.Engine)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, storetest.SQLite(b)) })
	b.Run("postgres", func(b *testing.B) {
		// storetest.Postgres fails under CI=true without a database; a
		// benchmark is never worth failing CI over.
		if os.Getenv("AICHAT_TEST_POSTGRES_URL") == "" {
			b.Skip("set AICHAT_TEST_POSTGRES_URL to benchmark PostgreSQL")
		}
		fn(b, storetest.Postgres(b))
	})
}

// newService builds the chat service the way internal/app does.
func newService(b testing.TB, e storetest.Engine) (*chat.Service, *store.DB) {
	b.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := store.Open(ctx, e.URL, "", log)
	if err != nil {
		b.Fatalf("open %s: %v", e.Name, err)
	}
	b.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx, log); err != nil {
		b.Fatalf("migrate: %v", err)
	}
	sealer, err := seal.New(secrets.Keyring{secrets.NewKey()})
	if err != nil {
		b.Fatal(err)
	}
	svc := chat.NewService(db, sealer, chat.Options{Defaults: chat.Settings{
		Persona: "assistant", AIMode: "always", Temperature: 0.7, Depth: 20, Stop: []string{},
	}})
	return svc, db
}

type benchUser struct{ ID, Email string }

// createUsers inserts n users straight into the users table.
func createUsers(b testing.TB, db *store.DB, n int) []benchUser {
	b.Helper()
	now := time.Now().UTC()
	users := make([]benchUser, n)
	rows := make([]map[string]any, n)
	for i := range users {
		users[i] = benchUser{ID: uuid.NewString(), Email: fmt.Sprintf("user%d@example.com", i)}
		rows[i] = map[string]any{
			"id": users[i].ID, "email": users[i].Email, "name": fmt.Sprintf("User %d", i),
			"password_hash": "x", "role": "user", "blocked": false, "token_version": 1,
			"created_at": now, "updated_at": now,
		}
	}
	if err := db.Table("users").Create(rows).Error; err != nil {
		b.Fatalf("create users: %v", err)
	}
	return users
}

// groupChat creates a chat owned by users[0] with all the others in it.
func groupChat(b testing.TB, svc *chat.Service, users []benchUser) *chat.Chat {
	b.Helper()
	var emails []string
	for _, u := range users[1:] {
		emails = append(emails, u.Email)
	}
	c, err := svc.Create(context.Background(), users[0].ID, chat.NewChat{Title: "bench", Participants: emails})
	if err != nil {
		b.Fatalf("create chat: %v", err)
	}
	if len(c.Participants) != len(users) {
		b.Fatalf("chat has %d participants, want %d", len(c.Participants), len(users))
	}
	return c
}

// BenchmarkSend10Members measures one message sent to a group chat of ten,
// authors taking turns, each send with its own client id (so the
// idempotency lookup runs too).
func BenchmarkSend10Members(b *testing.B) {
	eachEngine(b, func(b *testing.B, e storetest.Engine) {
		svc, db := newService(b, e)
		users := createUsers(b, db, 10)
		c := groupChat(b, svc, users)
		ctx := context.Background()
		content := "Hello everyone, here is the plan for this week."
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			sent, err := svc.Send(ctx, users[i%len(users)].ID, c.ID, content, fmt.Sprintf("bench-%d", i))
			if err != nil {
				b.Fatalf("send %d: %v", i, err)
			}
			if sent.Duplicate || sent.Message.Seq != int64(i+1) || len(sent.Members) != len(users) {
				b.Fatalf("send %d: duplicate=%v seq=%d members=%d", i, sent.Duplicate, sent.Message.Seq, len(sent.Members))
			}
			i++
		}
	})
}

// BenchmarkHistoryPage50 reads 50-message pages at random positions of a
// chat of 1,000 messages of about 300 bytes.
func BenchmarkHistoryPage50(b *testing.B) {
	const total, page = 1000, 50
	eachEngine(b, func(b *testing.B, e storetest.Engine) {
		svc, db := newService(b, e)
		users := createUsers(b, db, 2)
		c := groupChat(b, svc, users)
		ctx := context.Background()
		body := strings.Repeat("lorem ipsum dolor sit amet ", 12) // 324 bytes with the prefix
		for i := range total {
			content := fmt.Sprintf("%04d %s", i, body)[:300]
			if _, err := svc.Send(ctx, users[i%2].ID, c.ID, content, fmt.Sprintf("seed-%d", i)); err != nil {
				b.Fatalf("seed message %d: %v", i, err)
			}
		}
		rng := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		for b.Loop() {
			// before in [page+1, total+1]: every page is a full one.
			before := page + 1 + rng.Int64N(total-page+1)
			msgs, _, err := svc.History(ctx, users[1].ID, c.ID, chat.Page{Before: before, Limit: page})
			if err != nil {
				b.Fatalf("history before %d: %v", before, err)
			}
			if len(msgs) != page || msgs[0].Seq != before-1 || len(msgs[0].Content) != 300 {
				b.Fatalf("history before %d: %d messages, first seq %d", before, len(msgs), msgs[0].Seq)
			}
		}
	})
}

// BenchmarkRoundTrip is the yardstick for the others: one trivial query
// through GORM, i.e. one round trip to the database.
func BenchmarkRoundTrip(b *testing.B) {
	eachEngine(b, func(b *testing.B, e storetest.Engine) {
		_, db := newService(b, e)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			var n int
			if err := db.WithContext(ctx).Raw("SELECT 1").Scan(&n).Error; err != nil || n != 1 {
				b.Fatalf("SELECT 1 = %d, %v", n, err)
			}
		}
	})
}

// BenchmarkRecent20 reads the 20 messages before the newest of a chat of
// 200 messages of 200 bytes: the history an answer with depth 20 is
// written from.
func BenchmarkRecent20(b *testing.B) {
	const total, depth = 200, 20
	eachEngine(b, func(b *testing.B, e storetest.Engine) {
		svc, db := newService(b, e)
		users := createUsers(b, db, 2)
		c := groupChat(b, svc, users)
		ctx := context.Background()
		body := strings.Repeat("lorem ipsum dolor sit amet ", 8)[:200]
		for i := range total {
			if _, err := svc.Send(ctx, users[i%2].ID, c.ID, body, fmt.Sprintf("seed-%d", i)); err != nil {
				b.Fatalf("seed message %d: %v", i, err)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			msgs, err := svc.Recent(ctx, c.ID, total, depth)
			if err != nil {
				b.Fatal(err)
			}
			if len(msgs) != depth || msgs[depth-1].Seq != total-1 || len(msgs[0].Content) != 200 {
				b.Fatalf("recent: %d messages", len(msgs))
			}
		}
	})
}
