// Package social owns the people around a user: friend requests, friends,
// blocks, and notifications.
//
// Friend requests are addressed by email and stored whether or not the
// address has an account, so the answer never tells which (no account
// enumeration); a request to someone who blocked the sender is stored too,
// and never shown to them. Requests are rate-limited per sender in the
// database, so every replica shares the count. Friendships are two rows,
// one each way. Blocks keep the blocked person from sending requests,
// adding the blocker to chats and writing in a direct chat with them
// (package chat asks through chat.Relations, which Service implements).
//
// Notifications are stored per user with their text sealed (it names chat
// titles, which are sealed everywhere else) and pushed at once to every
// socket of the user, with the new unread total, through the real-time
// hub. Service hears chat membership changes (chat.Relations), messages
// that mention someone (chat.Events) and finished assistant answers
// (AnswerFinished). It owns its GORM queries; there is no repository layer.
package social

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/seal"
	"github.com/aichat/aichat/internal/store"
	"github.com/google/uuid"
)

// Frames the package sends (docs/protocol.md).
const (
	EventNotification  = "notification"
	EventUnread        = "notifications_unread"
	EventFriends       = "friends_updated"
	EventPresence      = "presence"
	defaultPerHour     = 20
	defaultAnswerDelay = 5 * time.Second
	jobTimeout         = 10 * time.Second
)

// Pusher delivers a server event to every socket of users, on every
// instance (realtime.Hub.Send).
type Pusher interface {
	Send(users []string, typ string, data any)
}

// Presence tells who has a socket open on any instance
// (realtime.Broker.AreOnline).
type Presence interface {
	AreOnline(ctx context.Context, userIDs []string) (map[string]bool, error)
}

// Options configure a Service; zero values take defaults.
type Options struct {
	// RequestsPerHour is how many friend requests one user may send in an
	// hour (20).
	RequestsPerHour int
	// AnswerDelay is how long after an assistant answer finished a member
	// who has not read it gets an answer_finished notification (5 s).
	AnswerDelay time.Duration
	Now         func() time.Time
	Log         *slog.Logger
}

// Service manages friends, blocks and notifications.
type Service struct {
	db       *store.DB
	sealer   *seal.Sealer
	chats    *chat.Service
	push     Pusher
	presence Presence
	opt      Options
	log      *slog.Logger

	ctx    context.Context // ends at Close: background work stops
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Service.
func New(db *store.DB, sealer *seal.Sealer, chats *chat.Service, push Pusher, presence Presence, opt Options) *Service {
	if opt.RequestsPerHour <= 0 {
		opt.RequestsPerHour = defaultPerHour
	}
	if opt.AnswerDelay <= 0 {
		opt.AnswerDelay = defaultAnswerDelay
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	now := opt.Now
	opt.Now = func() time.Time { return now().UTC().Truncate(time.Microsecond) }
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: db, sealer: sealer, chats: chats, push: push, presence: presence, opt: opt, log: opt.Log}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Close stops background work (pending notifications) and waits for it.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// background runs fn off the caller's path, with a bounded context; after
// Close it runs nothing.
func (s *Service) background(name string, fn func(ctx context.Context) error) {
	if s.ctx.Err() != nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, jobTimeout)
		defer cancel()
		if err := fn(ctx); err != nil && s.ctx.Err() == nil {
			s.log.Warn("social: "+name, "err", err)
		}
	}()
}

// after runs fn once d has passed, unless Close comes first.
func (s *Service) after(d time.Duration, name string, fn func(ctx context.Context) error) {
	if s.ctx.Err() != nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, jobTimeout)
		defer cancel()
		if err := fn(ctx); err != nil && s.ctx.Err() == nil {
			s.log.Warn("social: "+name, "err", err)
		}
	}()
}

// Person is a user as others see them.
type Person struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

type userRow struct {
	ID    string
	Email string
	Name  string
}

func (userRow) TableName() string { return "users" }

func (u userRow) person() Person { return Person(u) }

// user reads one account; nil when there is none.
func (s *Service) user(ctx context.Context, id string) (*userRow, error) {
	if !validID(id) {
		return nil, nil
	}
	var rows []userRow
	if err := s.db.WithContext(ctx).Where("id = ?", id).Limit(1).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

func (s *Service) userByEmail(ctx context.Context, email string) (*userRow, error) {
	var rows []userRow
	if err := s.db.WithContext(ctx).Where("email = ?", email).Limit(1).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

func (s *Service) users(ctx context.Context, ids []string) (map[string]userRow, error) {
	out := map[string]userRow{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []userRow
	if err := s.db.WithContext(ctx).Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}

// validID reports whether id is a UUID: anything else names no row, and
// PostgreSQL would answer an error rather than no rows.
func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
