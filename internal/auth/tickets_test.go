package auth

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/aichat/aichat/internal/store"
	"github.com/aichat/aichat/internal/store/storetest"
)

const ticketPassword = "correct horse battery staple"

// ticketClock is a clock tests move by hand.
type ticketClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *ticketClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *ticketClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// ticketEnv is a migrated database and a Service over it on a stopped clock.
type ticketEnv struct {
	db    *store.DB
	svc   *Service
	clock *ticketClock
}

func ticketSetup(t *testing.T, e storetest.Engine) *ticketEnv {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := store.Open(ctx, e.URL, "", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx, log); err != nil {
		t.Fatal(err)
	}
	clk := &ticketClock{now: t0}
	svc, err := NewService(db, Options{
		Hasher:        cheapHasher(),
		Tokens:        &Tokens{Keys: secrets.Keyring{newKey("k1")}, Issuer: "aichat", TTL: testTTL, Now: clk.Now},
		RefreshTTL:    time.Hour,
		SessionMaxAge: 24 * time.Hour,
		MaxFails:      5,
		FailWindow:    time.Minute,
		Now:           clk.Now,
		Log:           log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &ticketEnv{db: db, svc: svc, clock: clk}
}

// ticketSignIn creates an account with role and returns its session and the
// principal its access token authenticates as.
func (env *ticketEnv) ticketSignIn(t *testing.T, email string, role Role) (*Session, *Principal) {
	t.Helper()
	ctx := context.Background()
	if _, err := env.svc.CreateUser(ctx, email, ticketPassword, "", role); err != nil {
		t.Fatal(err)
	}
	sess, err := env.svc.Login(ctx, email, ticketPassword)
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.svc.Authenticate(ctx, sess.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return sess, p
}

func (env *ticketEnv) ticketIssue(t *testing.T, p *Principal) string {
	t.Helper()
	tk, _, err := env.svc.IssueTicket(context.Background(), p)
	if err != nil {
		t.Fatalf("IssueTicket: %v", err)
	}
	return tk
}

func (env *ticketEnv) ticketCount(t *testing.T) int {
	t.Helper()
	var n int64
	if err := env.db.Table("ws_tickets").Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func TestTicketIssueRedeem(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		env := ticketSetup(t, e)
		ctx := context.Background()
		sess, p := env.ticketSignIn(t, "tess@example.com", RoleSupport)
		if want := t0.Add(testTTL); !p.Expires.Equal(want) {
			t.Fatalf("Authenticate: Expires = %v, want the access token's exp %v", p.Expires, want)
		}

		tk, exp, err := env.svc.IssueTicket(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if raw, err := base64.RawURLEncoding.DecodeString(tk); err != nil || len(raw) != 32 {
			t.Fatalf("ticket %q: want 32 bytes base64url (%d bytes, %v)", tk, len(raw), err)
		}
		if want := t0.Add(TicketTTL); !exp.Equal(want) {
			t.Fatalf("ticket expires %v, want %v", exp, want)
		}

		env.clock.Advance(TicketTTL - time.Second)
		got, err := env.svc.RedeemTicket(ctx, tk)
		if err != nil {
			t.Fatalf("RedeemTicket: %v", err)
		}
		want := Principal{UserID: sess.User.ID, Role: RoleSupport, Email: "tess@example.com",
			SessionID: p.SessionID, Expires: t0.Add(testTTL)}
		if got.UserID != want.UserID || got.Role != want.Role || got.Email != want.Email ||
			got.SessionID != want.SessionID || got.SessionID == "" || !got.Expires.Equal(want.Expires) {
			t.Fatalf("redeemed principal = %+v, want %+v", got, want)
		}

		_, err = env.svc.RedeemTicket(ctx, tk)
		wantErrCode(t, err, apperr.CodeInvalidToken)
		if !strings.Contains(err.Error(), "used or expired") {
			t.Errorf("second redeem: message %q does not say why", err)
		}
		for _, bad := range []string{"", "nonsense", strings.Repeat("a", 1000), tk + "x"} {
			_, err := env.svc.RedeemTicket(ctx, bad)
			wantErrCode(t, err, apperr.CodeInvalidToken)
		}
	})
}

func TestTicketExpires(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		env := ticketSetup(t, e)
		ctx := context.Background()
		_, p := env.ticketSignIn(t, "ursula@example.com", RoleUser)

		tk := env.ticketIssue(t, p)
		env.clock.Advance(TicketTTL)
		_, err := env.svc.RedeemTicket(ctx, tk)
		wantErrCode(t, err, apperr.CodeInvalidToken)

		tk = env.ticketIssue(t, p)
		env.clock.Advance(TicketTTL + time.Minute)
		_, err = env.svc.RedeemTicket(ctx, tk)
		wantErrCode(t, err, apperr.CodeInvalidToken)
	})
}

func TestTicketNotPastAccessToken(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		env := ticketSetup(t, e)
		ctx := context.Background()
		_, p := env.ticketSignIn(t, "vera@example.com", RoleUser)

		// Issued 10 s before the access token expires, redeemed after it did.
		env.clock.Advance(testTTL - 10*time.Second)
		tk := env.ticketIssue(t, p)
		env.clock.Advance(15 * time.Second)
		_, err := env.svc.RedeemTicket(ctx, tk)
		wantErrCode(t, err, apperr.CodeInvalidToken)

		// A principal whose credential has already expired gets no ticket.
		_, _, err = env.svc.IssueTicket(ctx, p)
		wantErrCode(t, err, apperr.CodeTokenExpired)
	})
}

func TestTicketConcurrentRedeem(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		env := ticketSetup(t, e)
		_, p := env.ticketSignIn(t, "wanda@example.com", RoleUser)
		for round := range 3 {
			tk := env.ticketIssue(t, p)
			const n = 8
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, errs[i] = env.svc.RedeemTicket(context.Background(), tk)
				}()
			}
			close(start)
			wg.Wait()
			ok := 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case apperr.Is(err, apperr.CodeInvalidToken):
				default:
					t.Errorf("round %d: unexpected error %v", round, err)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d of %d concurrent redeems succeeded, want exactly 1", round, ok, n)
			}
		}
	})
}

func TestTicketRevokedUser(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		env := ticketSetup(t, e)
		ctx := context.Background()

		t.Run("blocked", func(t *testing.T) {
			sess, p := env.ticketSignIn(t, "xena@example.com", RoleUser)
			tk := env.ticketIssue(t, p)
			blocked := true
			if _, err := env.svc.UpdateUser(ctx, sess.User.ID, UserUpdate{Blocked: &blocked}); err != nil {
				t.Fatal(err)
			}
			_, err := env.svc.RedeemTicket(ctx, tk)
			wantErrCode(t, err, apperr.CodeUserBlocked)
			_, _, err = env.svc.IssueTicket(ctx, p)
			wantErrCode(t, err, apperr.CodeUserBlocked)
		})
		t.Run("password changed", func(t *testing.T) {
			sess, p := env.ticketSignIn(t, "yara@example.com", RoleUser)
			tk := env.ticketIssue(t, p)
			if _, err := env.svc.ChangePassword(ctx, sess.User.ID, ticketPassword, "a brand new passphrase"); err != nil {
				t.Fatal(err)
			}
			_, err := env.svc.RedeemTicket(ctx, tk)
			wantErrCode(t, err, apperr.CodeInvalidToken)
		})
		t.Run("role changed", func(t *testing.T) {
			sess, p := env.ticketSignIn(t, "zoe@example.com", RoleUser)
			tk := env.ticketIssue(t, p)
			admin := RoleAdmin
			if _, err := env.svc.UpdateUser(ctx, sess.User.ID, UserUpdate{Role: &admin}); err != nil {
				t.Fatal(err)
			}
			_, err := env.svc.RedeemTicket(ctx, tk)
			wantErrCode(t, err, apperr.CodeInvalidToken)
		})
		t.Run("user deleted", func(t *testing.T) {
			sess, p := env.ticketSignIn(t, "abe@example.com", RoleUser)
			tk := env.ticketIssue(t, p)
			if err := env.db.Exec("DELETE FROM users WHERE id = ?", sess.User.ID).Error; err != nil {
				t.Fatal(err)
			}
			_, err := env.svc.RedeemTicket(ctx, tk)
			wantErrCode(t, err, apperr.CodeInvalidToken)
		})
	})
}

func TestTicketStoredHashed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		env := ticketSetup(t, e)
		_, p := env.ticketSignIn(t, "bea@example.com", RoleUser)
		tk := env.ticketIssue(t, p)

		var rows []map[string]any
		if err := env.db.Raw("SELECT * FROM ws_tickets").Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Fatalf("ws_tickets has %d rows, want 1", len(rows))
		}
		for col, v := range rows[0] {
			if s, ok := v.(string); ok && strings.Contains(s, tk) {
				t.Fatalf("ws_tickets.%s holds the ticket in clear", col)
			}
			if b, ok := v.([]byte); ok && strings.Contains(string(b), tk) {
				t.Fatalf("ws_tickets.%s holds the ticket in clear", col)
			}
		}
		if h, _ := rows[0]["hash"].(string); h != hashToken(tk) {
			t.Fatalf("ws_tickets.hash = %q, want the ticket's SHA-256", h)
		}
		sqlDB, err := env.db.DB.DB()
		if err != nil {
			t.Fatal(err)
		}
		if dump := storetest.Dump(t, sqlDB, e.Name); strings.Contains(dump, tk) {
			t.Fatal("the database holds the ticket in clear")
		}
	})
}

func TestTicketSweep(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		env := ticketSetup(t, e)
		_, p := env.ticketSignIn(t, "cleo@example.com", RoleUser)
		for range 3 {
			env.ticketIssue(t, p)
		}
		if n := env.ticketCount(t); n != 3 {
			t.Fatalf("%d tickets stored, want 3", n)
		}
		env.clock.Advance(TicketTTL + time.Second)
		fresh := env.ticketIssue(t, p)
		if n := env.ticketCount(t); n != 1 {
			t.Fatalf("%d tickets stored after the expired ones were swept, want 1", n)
		}
		if _, err := env.svc.RedeemTicket(context.Background(), fresh); err != nil {
			t.Fatalf("fresh ticket: %v", err)
		}
		if n := env.ticketCount(t); n != 0 {
			t.Fatalf("%d tickets stored after redeeming the last one, want 0", n)
		}

		// A connect storm does not sweep on every issue: once a second.
		env.clock.Advance(2 * time.Second)
		env.ticketIssue(t, p) // A (sweeps: nothing has expired)
		env.clock.Advance(TicketTTL - 200*time.Millisecond)
		env.ticketIssue(t, p) // B (sweeps: A has not expired yet)
		env.clock.Advance(500 * time.Millisecond)
		env.ticketIssue(t, p) // C: A has expired, but the last sweep was 0.5 s ago
		if n := env.ticketCount(t); n != 3 {
			t.Fatalf("%d tickets stored half a second after a sweep, want 3", n)
		}
		env.clock.Advance(time.Second)
		env.ticketIssue(t, p) // D sweeps A
		if n := env.ticketCount(t); n != 3 {
			t.Fatalf("%d tickets stored a second after the last sweep, want 3 (A swept)", n)
		}
	})
}
