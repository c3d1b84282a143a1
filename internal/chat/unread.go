package chat

import (
	"context"
	"fmt"
	"sync"

	"github.com/aichat/aichat/internal/apperr"
	"gorm.io/gorm"
)

// Unread is a user's unread counts: per chat and the total for the badge.
type Unread struct {
	Total int            `json:"total"`
	Chats map[string]int `json:"chats"`
}

// MarkRead marks the chat read for userID up to seq (0: everything) and
// returns the user's unread counts afterwards. Reading never moves the mark
// backwards.
func (s *Service) MarkRead(ctx context.Context, userID, chatID string, seq int64) (*Unread, error) {
	if _, err := s.Members(ctx, userID, chatID); err != nil {
		return nil, err
	}
	if seq < 0 {
		return nil, errInvalidSeq
	}
	var change *UnreadChange
	// Locking the chat row first (a no-op UPDATE) orders this against
	// concurrent sends: the count below sees every message up to last_seq
	// and none that a sender is still adding.
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var last []int64
		if err := tx.Raw("UPDATE chats SET last_seq = last_seq WHERE id = ? RETURNING last_seq", chatID).Scan(&last).Error; err != nil {
			return err
		}
		if len(last) == 0 {
			return notFound()
		}
		if seq == 0 || seq > last[0] {
			seq = last[0]
		}
		// Count what is left after seq, not written by the reader.
		var counts []int
		err := tx.Raw(`UPDATE chat_members SET last_read_seq = ?, unread_count = (
				SELECT count(*) FROM messages WHERE messages.chat_id = ? AND messages.seq > ?
				AND (messages.author_id IS NULL OR messages.author_id <> ?))
			WHERE chat_id = ? AND user_id = ? AND last_read_seq <= ? RETURNING unread_count`,
			seq, chatID, seq, userID, chatID, userID, seq).Scan(&counts).Error
		if err != nil {
			return err
		}
		if len(counts) > 0 {
			change = &UnreadChange{UserID: userID, ChatID: chatID, Count: counts[0], Ver: 2*last[0] + 1}
		}
		return nil
	})
	if err != nil {
		if _, ok := apperr.As(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("mark read: %w", err)
	}
	if change != nil {
		s.unread.apply(*change)
		s.events.UnreadChanged(*change)
	}
	return s.Unread(ctx, userID)
}

// Unread returns the user's unread counts, from memory when cached. Pushes
// to sockets use it: the cache follows every change this instance hears of.
func (s *Service) Unread(ctx context.Context, userID string) (*Unread, error) {
	if u, ok := s.unread.get(userID); ok {
		return u, nil
	}
	return s.loadUnread(ctx, userID)
}

// UnreadFresh reads the user's counts from the database (and refreshes the
// cache). REST answers use it: with several instances, a read just made on
// another instance may not have reached this one's cache yet, and a client
// that reads its own write must see it.
func (s *Service) UnreadFresh(ctx context.Context, userID string) (*Unread, error) {
	return s.loadUnread(ctx, userID)
}

func (s *Service) loadUnread(ctx context.Context, userID string) (*Unread, error) {
	gen := s.unread.generation(userID)
	// One statement reads each count with its chat's last seq, so the
	// versions match the counts (see UnreadChange).
	var rows []struct {
		ChatID      string
		UnreadCount int
		LastSeq     int64
	}
	if err := s.db.WithContext(ctx).Table("chat_members").
		Select("chat_members.chat_id, chat_members.unread_count, chats.last_seq").
		Joins("JOIN chats ON chats.id = chat_members.chat_id").
		Where("chat_members.user_id = ?", userID).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("unread counts: %w", err)
	}
	e := &userUnread{chats: make(map[string]chatUnread, len(rows))}
	for _, r := range rows {
		e.chats[r.ChatID] = chatUnread{count: r.UnreadCount, ver: 2*r.LastSeq + 1}
	}
	// Snapshot before put: once cached, e belongs to the cache's lock.
	out := e.snapshot()
	s.unread.put(userID, gen, e)
	return out, nil
}

// ApplyUnread records unread changes made elsewhere (another instance),
// so cached counts stay right without a reload.
func (s *Service) ApplyUnread(changes ...UnreadChange) { s.unread.apply(changes...) }

// InvalidateUnread drops cached counts, e.g. when another instance changed
// a user's chats, or when changes from other instances may have been lost.
func (s *Service) InvalidateUnread(userIDs ...string) { s.unread.invalidate(userIDs...) }

// InvalidateAllUnread drops every cached count.
func (s *Service) InvalidateAllUnread() { s.unread.reset() }

// unreadCache keeps users' unread counts in memory. The database is the
// truth; the cache follows it two ways. Counts changed by a send or a read
// are applied in place, ordered by their version, so a busy chat does not
// cost a reload per message per member. Membership changes invalidate, and
// the next read reloads; a load that started before an invalidation must
// not store its stale result, so each user has a generation that
// invalidation bumps and put checks.
type unreadCache struct {
	mu          sync.Mutex
	entries     map[string]*userUnread
	generations map[string]uint64
	epoch       uint64 // bumped by reset; part of every generation check
}

type userUnread struct {
	chats map[string]chatUnread
}

type chatUnread struct {
	count int
	ver   int64
}

func (e *userUnread) snapshot() *Unread {
	u := &Unread{Chats: map[string]int{}}
	for id, c := range e.chats {
		if c.count > 0 {
			u.Chats[id] = c.count
			u.Total += c.count
		}
	}
	return u
}

// maxCachedUsers bounds the cache; past it, it starts over.
const maxCachedUsers = 100_000

func newUnreadCache() *unreadCache {
	return &unreadCache{entries: map[string]*userUnread{}, generations: map[string]uint64{}}
}

func (c *unreadCache) get(user string) (*Unread, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[user]
	if !ok {
		return nil, false
	}
	return e.snapshot(), true
}

func (c *unreadCache) generation(user string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.generations[user] + c.epoch<<32
}

func (c *unreadCache) put(user string, gen uint64, e *userUnread) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.generations[user]+c.epoch<<32 != gen {
		return
	}
	if old, ok := c.entries[user]; ok {
		// A change applied while e was read from the database is newer
		// than what e holds for that chat: keep it.
		for id, cur := range old.chats {
			if n, ok := e.chats[id]; ok && cur.ver > n.ver {
				e.chats[id] = cur
			}
		}
	}
	if len(c.entries) >= maxCachedUsers {
		c.entries = map[string]*userUnread{}
	}
	c.entries[user] = e
}

// apply sets counts of cached users where the change is not older than
// what is cached. Users not cached are skipped: their next load is fresh.
func (c *unreadCache) apply(changes ...UnreadChange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range changes {
		e, ok := c.entries[ch.UserID]
		if !ok {
			// A load in flight may have read the database before this
			// change: make it discard its result.
			c.generations[ch.UserID]++
			continue
		}
		if cur, ok := e.chats[ch.ChatID]; ok && cur.ver > ch.Ver {
			continue
		}
		e.chats[ch.ChatID] = chatUnread{count: ch.Count, ver: ch.Ver}
	}
}

func (c *unreadCache) invalidate(users ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range users {
		delete(c.entries, u)
		c.generations[u]++
	}
	if len(c.generations) >= maxCachedUsers {
		c.resetLocked()
	}
}

func (c *unreadCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
}

// resetLocked drops everything; bumping the epoch keeps loads in flight
// from storing results that predate it.
func (c *unreadCache) resetLocked() {
	c.entries = map[string]*userUnread{}
	c.generations = map[string]uint64{}
	c.epoch++
}
