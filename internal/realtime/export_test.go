package realtime

// Hooks for the external tests in package realtime_test, which need a real
// chat service (and so apptest) but drive the hub without sockets.

// NewOfflineSession returns a session of userID without a socket: what it
// would write stays queued, for Sent to read.
func NewOfflineSession(h *Hub, userID string) *Session {
	s := offlineSession(h)
	s.ID = "test-" + userID
	s.User.UserID = userID
	return s
}

// Sent returns the frames queued for the session so far, oldest first.
func (s *Session) Sent() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, it := range s.items {
		if it.op == opFrame {
			out = append(out, it.frame)
		}
	}
	return out
}

// TestRegister registers s and announces its user as Accept does.
func (h *Hub) TestRegister(s *Session) bool {
	reason, announce := h.register(s)
	if announce {
		contacts, err := h.contacts(s.User.UserID)
		h.goOnline(s.User.UserID, contacts, err)
	}
	return reason == ""
}
func (h *Hub) TestUnregister(s *Session) { h.unregister(s) }
