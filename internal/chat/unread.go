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
		return tx.Exec(`UPDATE chat_members SET last_read_seq = ?, unread_count = (
				SELECT count(*) FROM messages WHERE messages.chat_id = ? AND messages.seq > ?
				AND (messages.author_id IS NULL OR messages.author_id <> ?))
			WHERE chat_id = ? AND user_id = ? AND last_read_seq <= ?`,
			seq, chatID, seq, userID, chatID, userID, seq).Error
	})
	if err != nil {
		if _, ok := apperr.As(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("mark read: %w", err)
	}
	s.unread.invalidate(userID)
	return s.Unread(ctx, userID)
}

// Unread returns the user's unread counts, from memory when cached.
func (s *Service) Unread(ctx context.Context, userID string) (*Unread, error) {
	if u, ok := s.unread.get(userID); ok {
		return u, nil
	}
	ver := s.unread.version(userID)
	var rows []struct {
		ChatID      string
		UnreadCount int
	}
	if err := s.db.WithContext(ctx).Model(&memberRow{}).Select("chat_id, unread_count").
		Where("user_id = ? AND unread_count > 0", userID).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("unread counts: %w", err)
	}
	u := &Unread{Chats: make(map[string]int, len(rows))}
	for _, r := range rows {
		u.Chats[r.ChatID] = r.UnreadCount
		u.Total += r.UnreadCount
	}
	s.unread.put(userID, ver, u)
	return u.clone(), nil
}

// InvalidateUnread drops cached counts, e.g. when another instance changed
// them.
func (s *Service) InvalidateUnread(userIDs ...string) { s.unread.invalidate(userIDs...) }

func (u *Unread) clone() *Unread {
	c := &Unread{Total: u.Total, Chats: make(map[string]int, len(u.Chats))}
	for k, v := range u.Chats {
		c.Chats[k] = v
	}
	return c
}

// unreadCache keeps users' unread counts in memory. The database is the
// truth: a change invalidates, and the next read reloads. A load that
// started before an invalidation must not store its stale result, so each
// user has a version that invalidation bumps and put checks.
type unreadCache struct {
	mu       sync.Mutex
	entries  map[string]*Unread
	versions map[string]uint64
}

// maxCachedUsers bounds the cache; past it, it starts over.
const maxCachedUsers = 100_000

func newUnreadCache() *unreadCache {
	return &unreadCache{entries: map[string]*Unread{}, versions: map[string]uint64{}}
}

func (c *unreadCache) get(user string) (*Unread, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.entries[user]
	if !ok {
		return nil, false
	}
	return u.clone(), true
}

func (c *unreadCache) version(user string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[user]
}

func (c *unreadCache) put(user string, ver uint64, u *Unread) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.versions[user] != ver {
		return
	}
	if len(c.entries) >= maxCachedUsers {
		c.entries = map[string]*Unread{}
	}
	c.entries[user] = u.clone()
}

func (c *unreadCache) invalidate(users ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range users {
		delete(c.entries, u)
		c.versions[u]++
	}
	if len(c.versions) >= maxCachedUsers {
		// Versions only matter while a load is in flight; dropping them can
		// at worst let one stale load in, and the next change evicts it.
		c.versions = map[string]uint64{}
	}
}
