package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/aichat/aichat/internal/store"
)

// A browser cannot set headers on a WebSocket handshake, and an access token
// in a URL ends up in proxy logs and browser history. So the client trades
// its access token (sent in the Authorization header) for a ticket: a random
// string that is good for one handshake within TicketTTL and nothing else.
// Only its SHA-256 is stored. The ticket remembers the user's token_version
// and the access token's expiry, so a redeemed ticket is worth no more than
// the token it came from.

// TicketTTL is how long a WebSocket ticket can be redeemed after it is issued.
const TicketTTL = 30 * time.Second

// ticketSweep bounds how many expired tickets one sweep deletes, and
// ticketSweepEvery how often an instance sweeps: a sweep on every issue was
// a write transaction per connecting socket (on SQLite, a turn of the one
// writer), and a connect storm issues hundreds of tickets a second.
const (
	ticketSweep      = 1000
	ticketSweepEvery = time.Second
)

// wsTicket is a row of ws_tickets.
type wsTicket struct {
	Hash            string `gorm:"primaryKey"`
	UserID          string
	SessionID       string
	TokenVersion    int
	AccessExpiresAt time.Time
	ExpiresAt       time.Time
	CreatedAt       time.Time
}

func (wsTicket) TableName() string { return "ws_tickets" }

func invalidTicket() error {
	return apperr.New(apperr.CodeInvalidToken, "WebSocket ticket is invalid, used or expired; ask for a new one.")
}

// IssueTicket returns a single-use WebSocket ticket for p, valid until
// expires (TicketTTL from now). p must come from Authenticate: its Expires
// is carried over to the principal RedeemTicket returns.
func (s *Service) IssueTicket(ctx context.Context, p *Principal) (ticket string, expires time.Time, err error) {
	if p == nil || p.UserID == "" || p.Expires.IsZero() {
		return "", time.Time{}, errors.New("issue ticket: principal without user or expiry")
	}
	now := s.opt.Now().UTC()
	if !p.Expires.After(now) {
		return "", time.Time{}, apperr.New(apperr.CodeTokenExpired, "Token expired.")
	}
	var u User
	err = s.db.WithContext(ctx).Select("id", "blocked", "token_version").Where("id = ?", p.UserID).Take(&u).Error
	if store.IsNotFound(err) {
		return "", time.Time{}, apperr.New(apperr.CodeInvalidToken, "Invalid token.")
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("load user: %w", err)
	}
	if u.Blocked {
		return "", time.Time{}, apperr.New(apperr.CodeUserBlocked, "This account is blocked.")
	}
	raw := base64.RawURLEncoding.EncodeToString(secrets.Random(32))
	expires = now.Add(TicketTTL)
	row := wsTicket{Hash: hashToken(raw), UserID: u.ID, SessionID: p.SessionID, TokenVersion: u.TokenVersion,
		AccessExpiresAt: p.Expires.UTC(), ExpiresAt: expires, CreatedAt: now}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return "", time.Time{}, fmt.Errorf("store ticket: %w", err)
	}
	s.sweepTickets(ctx, now)
	return raw, expires, nil
}

// sweepTickets deletes up to ticketSweep expired tickets, at most once per
// ticketSweepEvery on this instance. Redeeming never needs it (an expired
// ticket does not match), it only keeps the table small; a failure is
// logged and otherwise ignored.
func (s *Service) sweepTickets(ctx context.Context, now time.Time) {
	last := s.lastSweep.Load()
	if now.UnixNano()-last < int64(ticketSweepEvery) || !s.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	err := s.db.WithContext(ctx).Exec(
		"DELETE FROM ws_tickets WHERE hash IN (SELECT hash FROM ws_tickets WHERE expires_at <= ? LIMIT ?)",
		now, ticketSweep).Error
	if err != nil && s.opt.Log != nil {
		s.opt.Log.WarnContext(ctx, "delete expired ws tickets", "err", err)
	}
}

// RedeemTicket spends a ticket and returns who it was issued to, with
// Expires set to the expiry of the access token it was issued for. The
// ticket is deleted by the same statement that finds it, so it works once
// even when several server instances race for it. The user must still exist,
// not be blocked, and not have had their tokens invalidated since (password,
// role or block change). An unknown, used or expired ticket answers
// auth.invalidToken.
func (s *Service) RedeemTicket(ctx context.Context, ticket string) (*Principal, error) {
	if ticket == "" || len(ticket) > 256 {
		return nil, invalidTicket()
	}
	now := s.opt.Now().UTC()
	var rows []wsTicket
	err := s.db.WithContext(ctx).Raw(`DELETE FROM ws_tickets WHERE hash = ? AND expires_at > ?
		RETURNING user_id, session_id, token_version, access_expires_at`, hashToken(ticket), now).
		Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("redeem ticket: %w", err)
	}
	if len(rows) != 1 {
		return nil, invalidTicket()
	}
	t := rows[0]
	if !t.AccessExpiresAt.After(now) {
		return nil, invalidTicket()
	}
	var u User
	err = s.db.WithContext(ctx).Select("id", "email", "role", "blocked", "token_version").
		Where("id = ?", t.UserID).Take(&u).Error
	if store.IsNotFound(err) {
		return nil, invalidTicket()
	}
	if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	if u.Blocked {
		return nil, apperr.New(apperr.CodeUserBlocked, "This account is blocked.")
	}
	if u.TokenVersion != t.TokenVersion {
		return nil, apperr.New(apperr.CodeInvalidToken, "Token was revoked; refresh or sign in again.")
	}
	return &Principal{UserID: u.ID, Role: u.Role, Email: u.Email, SessionID: t.SessionID,
		Expires: t.AccessExpiresAt.UTC(), Version: u.TokenVersion}, nil
}
