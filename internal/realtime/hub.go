package realtime

import (
	"context"
	"hash/maphash"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/netstamp"
	"github.com/google/uuid"
	"github.com/gorilla/websocket"
)

// Options configure a Hub. Zero values take the defaults in NewHub.
type Options struct {
	Chats   *chat.Service
	Broker  Broker
	Log     *slog.Logger
	Metrics *Metrics

	MaxConnsPerUser   int
	MaxFrameBytes     int64
	CommandsPerMinute int
	QueueSize         int

	PingInterval  time.Duration // 25 s
	PongWait      time.Duration // 60 s
	WriteWait     time.Duration // 10 s
	PresenceGrace time.Duration // offline is announced after this long without a socket
	TypingTTL     time.Duration // 5 s
	ResumeLimit   int           // messages replayed per chat before the client must page
	// Verify re-checks a session's credential after the broker may have
	// lost a forced close (auth.Service.Verify).
	Verify func(ctx context.Context, p *auth.Principal) error
}

// Hub knows every session of this instance, delivers events to them, and
// exchanges events with other instances through the broker. Its state is
// the session registry, split in shards by user so that delivery to
// different users does not contend on one lock.
type Hub struct {
	opt     Options
	log     *slog.Logger
	metrics *Metrics
	chats   *chat.Service
	broker  Broker
	seed    maphash.Seed
	shards  [shardCount]shard
	up      websocket.Upgrader
	corks   sync.Pool // write buffers of corked sockets (*[]byte)

	ctx    context.Context // the hub's life: ends at Shutdown
	cancel context.CancelFunc

	ai       AI
	controls controls
	outbox   chan []byte // envelopes for the other instances, in order
	// dropLogged is when a full outbox was last logged (unix seconds).
	dropLogged atomic.Int64
}

const shardCount = 32

type shard struct {
	mu    sync.RWMutex
	users map[string]*userSessions
	// unreadMu orders unread_count pushes to the shard's users: see
	// pushUnread.
	unreadMu sync.Mutex
}

type userSessions struct {
	sessions map[*Session]struct{}
	offline  *time.Timer // pending offline announcement
	online   bool        // this instance told the broker the user is here
}

// NewHub returns a hub; Run starts its background work.
func NewHub(opt Options) *Hub {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opt.PingInterval, 25*time.Second)
	def(&opt.PongWait, 60*time.Second)
	def(&opt.WriteWait, 10*time.Second)
	def(&opt.PresenceGrace, 5*time.Second)
	def(&opt.TypingTTL, 5*time.Second)
	if opt.MaxConnsPerUser <= 0 {
		opt.MaxConnsPerUser = 20
	}
	if opt.MaxFrameBytes <= 0 {
		opt.MaxFrameBytes = 64 << 10
	}
	if opt.CommandsPerMinute <= 0 {
		opt.CommandsPerMinute = 600
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 256
	}
	if opt.ResumeLimit <= 0 || opt.ResumeLimit > 200 {
		opt.ResumeLimit = 200 // chat.History's largest page
	}
	if opt.Broker == nil {
		opt.Broker = NewLocal()
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil)
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{opt: opt, log: opt.Log, metrics: opt.Metrics, chats: opt.Chats, broker: opt.Broker, seed: maphash.MakeSeed(),
		outbox: make(chan []byte, outboxSize)}
	for i := range h.shards {
		h.shards[i].users = map[string]*userSessions{}
	}
	h.up = websocket.Upgrader{
		// Small read buffers and pooled write buffers: an idle socket holds
		// neither (frames larger than the buffer are read in pieces).
		ReadBufferSize:  512,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		// httpapi checks the origin before the upgrade.
		CheckOrigin:  func(*http.Request) bool { return true },
		Subprotocols: []string{Subprotocol},
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	opt.Chats.SetEvents(h)
	return h
}

// Subprotocol is the WebSocket subprotocol the server speaks; a client
// that authenticates with the Sec-WebSocket-Protocol header offers it
// alongside its token.
const Subprotocol = "aichat.v1"

// Run exchanges events with other instances and keeps presence fresh until
// ctx ends; then it closes every socket with 1001.
func (h *Hub) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel) // Shutdown ends Run too
	defer stop()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		h.pingLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		h.publishLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		h.presenceLoop(ctx)
	}()
	err := h.broker.Run(ctx, h)
	cancel()
	wg.Wait()
	h.Shutdown()
	return err
}

// Shutdown closes every session with 1001 (going away) and stops Run.
// New sockets are refused from then on.
func (h *Hub) Shutdown() {
	h.cancel()
	for _, s := range h.all() {
		s.close(websocket.CloseGoingAway, "Server is restarting; reconnect in a moment.", "shutdown")
	}
}

func (h *Hub) shard(userID string) *shard {
	return &h.shards[maphash.String(h.seed, userID)%shardCount]
}

// CanConnect reports whether userID may open one more socket here.
func (h *Hub) CanConnect(userID string) error {
	if h.ctx.Err() != nil {
		return &apperr.Error{Code: apperr.CodeUnavailable, Message: "Server is shutting down; reconnect in a moment.", Retry: 1}
	}
	sh := h.shard(userID)
	sh.mu.RLock()
	n := 0
	if u := sh.users[userID]; u != nil {
		n = len(u.sessions)
	}
	sh.mu.RUnlock()
	if n >= h.opt.MaxConnsPerUser {
		return &apperr.Error{Code: apperr.CodeRateLimited, Message: "Too many open connections for this account (limit " +
			strconv.Itoa(h.opt.MaxConnsPerUser) + "); close a tab or device.", Retry: 5}
	}
	return nil
}

// Accept upgrades an authenticated request to a session. resume asks the
// hub to hold chat events until the client's resume command has replayed
// what it missed. httpapi has already checked credentials and origin.
func (h *Hub) Accept(w http.ResponseWriter, r *http.Request, p *auth.Principal, resume bool) error {
	cw := &corkWriter{ResponseWriter: w, pool: &h.corks}
	conn, err := h.up.Upgrade(cw, r, nil)
	if err != nil {
		return err // the upgrader has answered the client
	}
	ctx, cancel := context.WithCancel(h.ctx)
	s := &Session{ID: uuid.NewString(), User: p, hub: h, conn: conn, cork: cw.conn, ctx: ctx, cancel: cancel,
		readDone: make(chan struct{}), bucket: tokenBucket{perMin: h.opt.CommandsPerMinute}}
	if cw.conn != nil {
		s.arrivals = netstamp.Source(cw.conn.Conn)
	}
	if resume {
		s.hold()
	}
	if !p.Expires.IsZero() {
		s.expiry = time.AfterFunc(time.Until(p.Expires), func() {
			s.close(CloseTokenExpired, "Access token expired; refresh it and reconnect.", "token_expired")
		})
	}
	// hello is queued before the session can receive anything, so it is
	// always the first frame; nothing is written until the session is
	// registered and counted.
	s.writing = true // held: no writer starts until begin
	h.hello(s)
	reason, announce := h.register(s)
	if reason != "" {
		code := websocket.ClosePolicyViolation
		if reason == "shutdown" {
			code = websocket.CloseGoingAway
		}
		s.close(code, registerRefusals[reason], reason)
		s.begin()
		go s.drain()
		return nil
	}
	// One read of the contacts serves both the announcement (first socket
	// of the user on this instance) and the new session's snapshot.
	contacts, cerr := h.contacts(p.UserID)
	if announce {
		h.goOnline(p.UserID, contacts, cerr)
	}
	h.metrics.Connects.Inc()
	h.metrics.Connections.Inc()
	s.begin()
	// The handler returns at once so net/http frees its buffers; the
	// reader goroutine owns the socket from here.
	go s.readLoop()
	h.presenceSnapshot(s, contacts, cerr)
	return nil
}

var registerRefusals = map[string]string{
	"limit":    "Too many open connections for this account.",
	"shutdown": "Server is restarting; reconnect in a moment.",
}

// drain reads until the client acknowledges the close, for a session that
// never made it into the hub.
func (s *Session) drain() {
	defer close(s.readDone)
	s.conn.SetReadDeadline(time.Now().Add(closeGrace))
	for {
		if _, _, err := s.conn.ReadMessage(); err != nil {
			return
		}
	}
}

// register adds s to the hub, or says why not: "limit" or "shutdown".
// announce is true when the caller must announce the user online (goOnline).
func (h *Hub) register(s *Session) (reason string, announce bool) {
	uid := s.User.UserID
	sh := h.shard(uid)
	sh.mu.Lock()
	if h.ctx.Err() != nil {
		// Shutdown has begun: its sweep may already have passed this shard.
		sh.mu.Unlock()
		return "shutdown", false
	}
	u := sh.users[uid]
	if u == nil {
		u = &userSessions{sessions: map[*Session]struct{}{}}
		sh.users[uid] = u
	}
	if len(u.sessions) >= h.opt.MaxConnsPerUser {
		sh.mu.Unlock()
		return "limit", false
	}
	u.sessions[s] = struct{}{}
	first := len(u.sessions) == 1
	pending := u.offline != nil
	if pending {
		u.offline.Stop() // back within the grace period: no flapping
		u.offline = nil
	}
	announce = first && !pending && !u.online
	if announce {
		u.online = true
	}
	sh.mu.Unlock()
	return "", announce
}

func (h *Hub) unregister(s *Session) {
	uid := s.User.UserID
	sh := h.shard(uid)
	sh.mu.Lock()
	u := sh.users[uid]
	if u == nil {
		sh.mu.Unlock()
		return
	}
	if _, ok := u.sessions[s]; !ok {
		sh.mu.Unlock()
		return
	}
	delete(u.sessions, s)
	h.metrics.Connections.Dec()
	if len(u.sessions) == 0 && u.online && u.offline == nil {
		u.offline = time.AfterFunc(h.opt.PresenceGrace, func() { h.goOffline(uid) })
	}
	if len(u.sessions) == 0 && !u.online {
		delete(sh.users, uid)
	}
	sh.mu.Unlock()
}

// sessions returns the user's sessions here.
func (h *Hub) sessions(userID string) []*Session {
	sh := h.shard(userID)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	u := sh.users[userID]
	if u == nil || len(u.sessions) == 0 {
		return nil
	}
	out := make([]*Session, 0, len(u.sessions))
	for s := range u.sessions {
		out = append(out, s)
	}
	return out
}

func (h *Hub) all() []*Session {
	var out []*Session
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for _, u := range sh.users {
			for s := range u.sessions {
				out = append(out, s)
			}
		}
		sh.mu.RUnlock()
	}
	return out
}

// Connections returns how many sockets are open here.
func (h *Hub) Connections() int { return len(h.all()) }

// pingLoop pings every socket each PingInterval, a shard at a time so the
// writes spread over the interval instead of arriving in one burst.
func (h *Hub) pingLoop(ctx context.Context) {
	step := h.opt.PingInterval / shardCount
	t := time.NewTicker(step)
	defer t.Stop()
	for i := 0; ; i = (i + 1) % shardCount {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sh := &h.shards[i]
		sh.mu.RLock()
		for _, u := range sh.users {
			for s := range u.sessions {
				s.push(item{op: opPing})
			}
		}
		sh.mu.RUnlock()
	}
}

// local delivers a frame to the sessions of the given users on this
// instance.
func (h *Hub) local(to []string, it item) {
	for _, uid := range to {
		for _, s := range h.sessions(uid) {
			s.push(it)
		}
	}
}

// publish delivers e here and sends it to the other instances. A broker
// failure is logged and counted; the local delivery has happened, and the
// other instances' clients recover from the database when they resume.
func (h *Hub) publish(e *envelope) {
	if e.Kind != kindControl { // controls are for the other instances
		h.apply(e)
	}
	if _, alone := h.broker.(*Local); alone {
		return
	}
	b, err := e.marshal()
	if err != nil {
		h.log.Error("encode envelope", "kind", e.Kind, "type", e.Type, "err", err)
		return
	}
	select {
	case h.outbox <- b:
	default:
		// The broker is far behind (or down and timing out): the other
		// instances will resync when it recovers; this one must not stall.
		h.metrics.PublishErrors.Inc()
		if now := time.Now().Unix(); h.dropLogged.Swap(now) < now-10 { // at most one line per 10 s
			h.log.Error("broker outbox full: envelopes dropped", "kind", e.Kind, "type", e.Type)
		}
	}
}

// outboxSize bounds the envelopes waiting for the broker.
const outboxSize = 8192

// publishLoop sends queued envelopes to the broker in order, off the
// sender's path: local sockets get an event at once, and a sender's ack
// does not wait for Redis.
func (h *Hub) publishLoop(ctx context.Context) {
	var failing bool
	for {
		var b []byte
		select {
		case <-ctx.Done():
			return
		case b = <-h.outbox:
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := h.broker.Publish(pctx, b)
		cancel()
		h.metrics.PublishSeconds.Observe(time.Since(start).Seconds())
		switch {
		case err != nil:
			h.metrics.PublishErrors.Inc()
			if !failing {
				h.log.Warn("broker publish failing", "err", err)
			}
			failing = true
		case failing:
			h.log.Info("broker publish works again")
			failing = false
		}
	}
}

// Deliver applies an envelope another instance published.
func (h *Hub) Deliver(payload []byte) {
	e, err := unmarshalEnvelope(payload)
	if err != nil {
		h.log.Warn("bad envelope from broker", "err", err)
		return
	}
	h.apply(e)
}

// Resync runs after the broker lost envelopes: cached counts may be stale
// and clients may have missed events, so caches go and every client is
// asked to resume (chat events are held until it does).
func (h *Hub) Resync() {
	h.chats.InvalidateAllUnread()
	f := encode(EventResync, "", map[string]string{"reason": "Events may have been missed; send resume."})
	all := h.all()
	for _, s := range all {
		s.push(item{typ: EventResync, frame: f})
		s.hold()
	}
	// What else the outage may have swallowed: a forced close (sign-out,
	// password change, block) published by another instance, and presence
	// (Redis may have restarted empty). Check both now, off the broker's
	// goroutine.
	go h.recover(all)
}

// recover re-checks every session's credential against the database,
// closing those revoked meanwhile, records this instance's users as online
// again, and sends each session its contacts' presence in full.
func (h *Hub) recover(sessions []*Session) {
	ctx, cancel := context.WithTimeout(h.ctx, time.Minute)
	defer cancel()
	var users []string
	seen := map[string]bool{}
	for _, s := range sessions {
		if h.opt.Verify != nil {
			if err := h.opt.Verify(ctx, s.User); err != nil {
				if _, ok := apperr.As(err); !ok {
					h.log.Warn("resync: verify session", "user_id", s.User.UserID, "err", err)
					continue // the database is the problem, not the credential
				}
				code := CloseTokenExpired
				if apperr.Is(err, apperr.CodeUserBlocked) {
					code = ClosePolicy
				}
				s.close(code, "Your sign-in is no longer valid: "+apperr.Code(err)+".", "kicked")
				continue
			}
		}
		if !seen[s.User.UserID] {
			seen[s.User.UserID] = true
			users = append(users, s.User.UserID)
		}
	}
	if len(users) > 0 {
		if err := h.broker.Refresh(ctx, users); err != nil {
			h.log.Warn("resync: presence refresh", "err", err)
		}
	}
	for _, s := range sessions {
		h.presenceState(s)
	}
	// Another instance may have sent its sessions the presence state before
	// this one put its users back: say again that they are online.
	for _, uid := range users {
		h.announce(ctx, uid, true)
	}
}

// apply does what an envelope says on this instance.
func (h *Hub) apply(e *envelope) {
	switch e.Kind {
	case kindFrame:
		changed := h.chats.ApplyUnread(e.Unread...)
		h.local(e.To, item{typ: e.Type, frame: e.Frame, chatID: e.ChatID, seq: e.Seq, born: time.Now(), arrived: e.arrived})
		h.pushUnread(changed)
	case kindUnread:
		h.pushUnread(h.chats.ApplyUnread(e.Unread...))
	case kindInvalidate:
		h.chats.InvalidateUnread(e.To...)
	case kindControl:
		h.runControl(e)
	case kindKick:
		for _, uid := range e.To {
			for _, s := range h.sessions(uid) {
				if e.AuthSession == "" || s.User.SessionID == e.AuthSession {
					s.close(e.Code, e.Reason, "kicked")
				}
			}
		}
	}
}

// pushUnread tells the local sessions of each changed user their new count
// and total. Only users with a socket here cost a look-up.
//
// Concurrent changes (several senders) each read the counts and push them;
// reading and pushing under one lock makes the frames reach each socket in
// the order the counts were read, so the last count a client hears is the
// newest, not one read earlier by a goroutine that pushed later.
func (h *Hub) pushUnread(changes []chat.UnreadChange) {
	for _, c := range changes {
		if len(h.sessions(c.UserID)) == 0 {
			continue
		}
		// Load (database I/O) outside the lock; under it only read the
		// cache and queue, so concurrent pushes for one user leave in the
		// order of the counts they read.
		loaded, err := h.chats.Unread(h.ctx, c.UserID)
		if err != nil {
			h.log.Warn("unread counts", "user_id", c.UserID, "err", err)
			continue
		}
		sh := h.shard(c.UserID)
		sh.unreadMu.Lock()
		u, ok := h.chats.CachedUnread(c.UserID)
		if !ok {
			u = loaded // evicted meanwhile: what was just read is the best known
		}
		f := encode(EventUnreadCount, "", unreadData{ChatID: c.ChatID, Count: u.Chats[c.ChatID], Total: u.Total})
		for _, s := range h.sessions(c.UserID) {
			s.push(item{typ: EventUnreadCount, frame: f})
		}
		sh.unreadMu.Unlock()
	}
}

// Kick closes every socket of the users on every instance (logout of all
// devices, password change, block). With authSession set, only sockets of
// that sign-in session close.
func (h *Hub) Kick(users []string, authSession string, code int, reason string) {
	h.publish(&envelope{Kind: kindKick, To: users, AuthSession: authSession, Code: code, Reason: reason})
}

// Notify sends a notification event to a user's sockets on every
// instance; the social features store notifications and call it.
func (h *Hub) Notify(userID string, data any) {
	h.publish(&envelope{Kind: kindFrame, Type: EventNotification, To: []string{userID}, Frame: encode(EventNotification, "", data)})
}

// Send delivers any server event to users on every instance (the AI
// relay uses it for ai_* events).
func (h *Hub) Send(users []string, typ string, data any) {
	h.publish(&envelope{Kind: kindFrame, Type: typ, To: users, Frame: encode(typ, "", data)})
}

// SendChat delivers an event about a chat to users on every instance. A
// session resuming that chat holds it until the replay is done, like a
// chat_message, so it never overtakes the messages it refers to.
func (h *Hub) SendChat(chatID string, users []string, typ string, data any) {
	e := &envelope{Kind: kindFrame, Type: typ, To: users, ChatID: chatID, Frame: encode(typ, "", data)}
	if a, ok := data.(Arrived); ok {
		e.arrived = a.ArrivedAt()
	}
	h.publish(e)
}

// Arrived is event data that knows when its cause reached this machine
// (an ai_delta: when the kernel received the model's chunk). SendChat then
// also times its frames from that moment, in aichat_ws_arrival_delay_seconds:
// the whole time the server held it, reading and decoding included.
type Arrived interface{ ArrivedAt() time.Time }

// MessageCreated implements chat.Events.
func (h *Hub) MessageCreated(m *chat.Message, members []string, unread []chat.UnreadChange) {
	h.publish(&envelope{Kind: kindFrame, Type: EventChatMessage, To: members, ChatID: m.ChatID, Seq: m.Seq,
		Unread: unread, Frame: encode(EventChatMessage, "", m)})
}

// UnreadChanged implements chat.Events.
func (h *Hub) UnreadChanged(changes ...chat.UnreadChange) {
	h.publish(&envelope{Kind: kindUnread, Unread: changes})
}

// ChatChanged implements chat.Events: members hear chat_updated, the
// removed hear chat_removed, and everyone's cached counts are dropped on
// every instance.
func (h *Hub) ChatChanged(chatID string, members, removed []string) {
	all := append(append([]string{}, members...), removed...)
	h.publish(&envelope{Kind: kindInvalidate, To: all})
	if len(members) > 0 {
		h.publish(&envelope{Kind: kindFrame, Type: EventChatUpdated, To: members, Frame: encode(EventChatUpdated, "", chatRefData{ChatID: chatID})})
		h.exchangePresence(members)
	}
	if len(removed) > 0 {
		h.publish(&envelope{Kind: kindFrame, Type: EventChatRemoved, To: removed, Frame: encode(EventChatRemoved, "", chatRefData{ChatID: chatID})})
		// Their total drops by what was unread there.
		zero := make([]chat.UnreadChange, len(removed))
		for i, u := range removed {
			zero[i] = chat.UnreadChange{UserID: u, ChatID: chatID, Gone: true}
		}
		h.publish(&envelope{Kind: kindUnread, Unread: zero})
	}
}

// presenceExchangeMax bounds the chats whose members are told each other's
// presence when the chat changes: the frames grow with the square of the
// members, and in a big chat presence matters less.
const presenceExchangeMax = 50

// exchangePresence tells the members of a chat which of them are online.
// Presence is otherwise announced only when someone connects or leaves, so
// people who were both online when one added the other would not see it.
func (h *Hub) exchangePresence(members []string) {
	if len(members) < 2 || len(members) > presenceExchangeMax {
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, commandTimeout)
	defer cancel()
	online, err := h.broker.AreOnline(ctx, members)
	if err != nil {
		h.log.Warn("presence exchange", "err", err)
		return
	}
	for _, m := range members {
		if !online[m] {
			continue
		}
		others := make([]string, 0, len(members)-1)
		for _, o := range members {
			if o != m {
				others = append(others, o)
			}
		}
		h.Send(others, EventPresence, presenceData{UserID: m, Online: true})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
