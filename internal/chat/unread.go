package chat

import (
	"context"
	"fmt"
	"sync"
)

// Unread is a user's unread counts: per chat and the total for the badge.
type Unread struct {
	Total int            `json:"total"`
	Chats map[string]int `json:"chats"`
}

// MarkRead marks the chat read for userID up to seq (0: everything) and
// returns the user's unread counts afterwards. Reading never moves the mark
// backwards. The count is the chat's last seq minus the mark, so nothing
// else is written and no lock on the chat is needed: a message arriving
// meanwhile raises last_seq and so still counts.
func (s *Service) MarkRead(ctx context.Context, userID, chatID string, seq int64) (*Unread, error) {
	if _, err := s.Members(ctx, userID, chatID); err != nil {
		return nil, err
	}
	if seq < 0 {
		return nil, errInvalidSeq
	}
	db := s.db.WithContext(ctx)
	var last []int64
	if err := db.Model(&chatRow{}).Where("id = ?", chatID).Pluck("last_seq", &last).Error; err != nil {
		return nil, fmt.Errorf("mark read: %w", err)
	}
	if len(last) == 0 {
		return nil, notFound()
	}
	if seq == 0 || seq > last[0] {
		seq = last[0]
	}
	res := db.Model(&memberRow{}).Where("chat_id = ? AND user_id = ? AND last_read_seq < ?", chatID, userID, seq).
		Update("last_read_seq", seq)
	if res.Error != nil {
		return nil, fmt.Errorf("mark read: %w", res.Error)
	}
	if res.RowsAffected > 0 {
		s.changed(UnreadChange{UserID: userID, ChatID: chatID, LastSeq: last[0], LastRead: seq})
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

// CachedUnread returns the user's counts only if cached: no I/O.
func (s *Service) CachedUnread(userID string) (*Unread, bool) { return s.unread.get(userID) }

// UnreadFresh reads the user's counts from the database (and refreshes the
// cache). REST answers use it: with several instances, a read just made on
// another instance may not have reached this one's cache yet, and a client
// that reads its own write must see it.
func (s *Service) UnreadFresh(ctx context.Context, userID string) (*Unread, error) {
	return s.loadUnread(ctx, userID)
}

func (s *Service) loadUnread(ctx context.Context, userID string) (*Unread, error) {
	gen := s.unread.generation(userID)
	var rows []struct {
		ChatID      string
		LastSeq     int64
		LastReadSeq int64
	}
	if err := s.db.WithContext(ctx).Table("chat_members").
		Select("chat_members.chat_id, chats.last_seq, chat_members.last_read_seq").
		Joins("JOIN chats ON chats.id = chat_members.chat_id").
		Where("chat_members.user_id = ?", userID).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("unread counts: %w", err)
	}
	e := &userUnread{chats: make(map[string]chatUnread, len(rows))}
	for _, r := range rows {
		e.chats[r.ChatID] = chatUnread{lastSeq: r.LastSeq, lastRead: r.LastReadSeq}
	}
	// Snapshot before put: once cached, e belongs to the cache's lock.
	out := e.snapshot()
	s.unread.put(userID, gen, e)
	return out, nil
}

// ApplyUnread records unread changes (this instance's, through the hub, or
// another's) and returns those that changed a user's count, or concern a
// user not cached (whose count is unknown): the ones worth telling.
func (s *Service) ApplyUnread(changes ...UnreadChange) []UnreadChange {
	return s.unread.apply(changes...)
}

// InvalidateUnread drops cached counts, e.g. when another instance changed
// a user's chats, or when changes from other instances may have been lost.
func (s *Service) InvalidateUnread(userIDs ...string) { s.unread.invalidate(userIDs...) }

// InvalidateAllUnread drops every cached count.
func (s *Service) InvalidateAllUnread() { s.unread.reset() }

// unreadCache keeps users' unread counts in memory. The database is the
// truth; the cache follows it two ways. Sends and reads are applied in
// place (each count is two numbers that only grow, so applying takes the
// larger of each and order does not matter), so a busy chat does not cost
// a reload per message per member. Membership changes invalidate, and the
// next read reloads; a load that started before an invalidation must not
// store its stale result, so each user has a generation that invalidation
// bumps and put checks.
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
	lastSeq  int64
	lastRead int64
}

func (c chatUnread) count() int { return int(max(c.lastSeq-c.lastRead, 0)) }

func (c chatUnread) merge(o chatUnread) chatUnread {
	return chatUnread{lastSeq: max(c.lastSeq, o.lastSeq), lastRead: max(c.lastRead, o.lastRead)}
}

func (e *userUnread) snapshot() *Unread {
	u := &Unread{Chats: map[string]int{}}
	for id, c := range e.chats {
		if n := c.count(); n > 0 {
			u.Chats[id] = n
			u.Total += n
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
			if n, ok := e.chats[id]; ok {
				e.chats[id] = n.merge(cur)
			}
		}
	}
	if len(c.entries) >= maxCachedUsers {
		c.entries = map[string]*userUnread{}
	}
	c.entries[user] = e
}

// apply merges changes into cached users' counts. Users not cached are
// skipped: their next load is fresh.
func (c *unreadCache) apply(changes ...UnreadChange) []UnreadChange {
	c.mu.Lock()
	defer c.mu.Unlock()
	var changed []UnreadChange
	for _, ch := range changes {
		e, ok := c.entries[ch.UserID]
		if !ok {
			// A load in flight may have read the database before this
			// change: make it discard its result.
			c.generations[ch.UserID]++
			changed = append(changed, ch)
			continue
		}
		before, had := e.chats[ch.ChatID]
		if ch.Gone {
			delete(e.chats, ch.ChatID)
			if had && before.count() > 0 {
				changed = append(changed, ch)
			}
			continue
		}
		after := before.merge(chatUnread{lastSeq: ch.LastSeq, lastRead: ch.LastRead})
		e.chats[ch.ChatID] = after
		if after.count() != before.count() {
			changed = append(changed, ch)
		}
	}
	return changed
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

// changed tells listeners of a read. The hub applies changes to the cache
// as it hears them (here and on every other instance), so the cache is
// only updated directly when nobody listens.
func (s *Service) changed(c UnreadChange) {
	if _, none := s.events.(noEvents); none {
		s.unread.apply(c)
	}
	s.events.UnreadChanged(c)
}

// created tells listeners of a new message, like changed.
func (s *Service) created(m *Message, members []string, unread []UnreadChange) {
	if _, none := s.events.(noEvents); none {
		s.unread.apply(unread...)
	}
	s.events.MessageCreated(m, members, unread)
}
