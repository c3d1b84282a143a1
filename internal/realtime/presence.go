package realtime

import (
	"context"
	"time"
)

// hello queues the first frame of a session: who it is, when its
// credential expires, and its unread counts.
func (h *Hub) hello(s *Session) {
	ctx, cancel := context.WithTimeout(s.ctx, commandTimeout)
	defer cancel()
	uid := s.User.UserID
	unread, err := h.chats.Unread(ctx, uid)
	if err != nil {
		h.log.Warn("hello: unread counts", "user_id", uid, "err", err)
	}
	if unread != nil && s.User.APIKeyID != "" {
		unread = scopedUnread(s, unread)
	}
	s.mu.Lock()
	holding := s.holding
	s.mu.Unlock()
	s.push(item{typ: EventHello, frame: encode(EventHello, "", helloData{SessionID: s.ID, UserID: uid,
		ServerTime: time.Now().UTC(), ExpiresAt: s.User.Expires, Holding: holding, Unread: unread})})
}

// contacts reads who sees userID's presence.
func (h *Hub) contacts(userID string) ([]string, error) {
	ctx, cancel := context.WithTimeout(h.ctx, commandTimeout)
	defer cancel()
	return h.chats.Contacts(ctx, userID)
}

// presenceSnapshot tells a new session which of its contacts are online.
func (h *Hub) presenceSnapshot(s *Session, contacts []string, err error) {
	if err != nil || len(contacts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, commandTimeout)
	defer cancel()
	uid := s.User.UserID
	online, err := h.broker.AreOnline(ctx, contacts)
	if err != nil {
		h.log.Warn("hello: presence", "user_id", uid, "err", err)
		return
	}
	for _, c := range contacts {
		if online[c] {
			s.push(item{typ: EventPresence, frame: encode(EventPresence, "", presenceData{UserID: c, Online: true})})
		}
	}
}

// goOnline records the user's presence and, when no instance had them
// before, tells their contacts (read by the caller; cerr is that read's
// error).
func (h *Hub) goOnline(userID string, contacts []string, cerr error) {
	ctx, cancel := context.WithTimeout(h.ctx, commandTimeout)
	defer cancel()
	first, err := h.broker.Online(ctx, userID)
	if err != nil {
		h.log.Warn("presence online", "user_id", userID, "err", err)
		return
	}
	if !first {
		return
	}
	if cerr != nil {
		h.log.Warn("presence contacts", "user_id", userID, "err", cerr)
		return
	}
	if len(contacts) > 0 {
		h.Send(contacts, EventPresence, presenceData{UserID: userID, Online: true})
	}
}

// goOffline runs PresenceGrace after the user's last socket here closed,
// unless a new one arrived meanwhile.
func (h *Hub) goOffline(userID string) {
	sh := h.shard(userID)
	sh.mu.Lock()
	u := sh.users[userID]
	if u == nil || len(u.sessions) > 0 || u.offline == nil {
		sh.mu.Unlock()
		return
	}
	u.offline, u.online = nil, false
	delete(sh.users, userID)
	sh.mu.Unlock()
	ctx, cancel := context.WithTimeout(h.ctx, commandTimeout)
	defer cancel()
	last, err := h.broker.Offline(ctx, userID)
	if err != nil {
		h.log.Warn("presence offline", "user_id", userID, "err", err)
		return
	}
	if last {
		h.announce(ctx, userID, false)
	}
	// A socket that arrived while the broker was being told found no entry
	// and announced the user online; if the broker heard that before the
	// Offline above, it said "not first" and nobody was told, and the user
	// now counts as offline while connected. Say online again.
	sh.mu.RLock()
	u = sh.users[userID]
	back := u != nil && len(u.sessions) > 0
	sh.mu.RUnlock()
	if back {
		if _, err := h.broker.Online(ctx, userID); err != nil {
			h.log.Warn("presence online", "user_id", userID, "err", err)
			return
		}
		h.announce(ctx, userID, true)
	}
}

func (h *Hub) announce(ctx context.Context, userID string, online bool) {
	contacts, err := h.chats.Contacts(ctx, userID)
	if err != nil {
		h.log.Warn("presence contacts", "user_id", userID, "err", err)
		return
	}
	if len(contacts) > 0 {
		h.Send(contacts, EventPresence, presenceData{UserID: userID, Online: online})
	}
}

// presenceLoop keeps this instance's presence records alive in the broker.
func (h *Hub) presenceLoop(ctx context.Context) {
	t := time.NewTicker(PresenceRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var users []string
		for i := range h.shards {
			sh := &h.shards[i]
			sh.mu.RLock()
			for id, u := range sh.users {
				if u.online {
					users = append(users, id)
				}
			}
			sh.mu.RUnlock()
		}
		if len(users) == 0 {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, commandTimeout)
		if err := h.broker.Refresh(rctx, users); err != nil {
			h.log.Warn("presence refresh", "users", len(users), "err", err)
		}
		cancel()
	}
}

// presenceState sends a session the presence of every contact, online and
// offline: after a broker outage announcements may have been lost, so the
// client replaces what it knows.
func (h *Hub) presenceState(s *Session) {
	ctx, cancel := context.WithTimeout(s.ctx, commandTimeout)
	defer cancel()
	contacts, err := h.chats.Contacts(ctx, s.User.UserID)
	if err != nil || len(contacts) == 0 {
		return
	}
	online, err := h.broker.AreOnline(ctx, contacts)
	if err != nil {
		h.log.Warn("resync: presence", "user_id", s.User.UserID, "err", err)
		return
	}
	for _, c := range contacts {
		s.push(item{typ: EventPresence, frame: encode(EventPresence, "", presenceData{UserID: c, Online: online[c]})})
	}
}
