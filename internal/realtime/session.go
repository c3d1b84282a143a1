package realtime

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/auth"
	"github.com/gorilla/websocket"
)

// Session is one open socket: one tab or device of one user. A reader
// goroutine runs for the session's whole life; a writer goroutine runs
// only while there is something to write, so an idle socket costs one
// goroutine and no buffers.
type Session struct {
	ID        string
	User      *auth.Principal
	hub       *Hub
	conn      *websocket.Conn
	cork      *corkConn        // conn's connection; nil in tests that build a Session by hand
	arrivals  func() time.Time // the connection's receive stamps (netstamp); nil: none
	expiry    *time.Timer
	ctx       context.Context // ends when the session closes
	cancel    context.CancelFunc
	readDone  chan struct{}
	bucket    tokenBucket
	lastTyped map[string]time.Time // reader-owned: typing throttle per chat

	closed atomic.Bool // set with closing, read by the writer without the lock

	mu       sync.Mutex
	items    []item // what the writer has yet to write
	writing  bool   // a writer goroutine is running
	closing  bool   // close was asked for: nothing more is queued
	holding  bool   // chat events wait in held until a resume completes
	held     []item
	holdStop *time.Timer
	replayed map[string]int64 // per chat, the last seq a resume replayed
	code     int              // close code, once closing
	reason   string           // close reason, once closing
}

type itemOp uint8

const (
	opFrame itemOp = iota
	opPing
	opClose
)

// item is one thing for the writer to do. Chat events carry their chat
// and seq so a resume can hold them and drop the ones it replayed.
type item struct {
	op     itemOp
	typ    string
	frame  []byte
	chatID string
	seq    int64
	born   time.Time // when the hub got the event (zero: not timed)
	// When the event's cause reached this machine, if its data said
	// (Arrived); zero otherwise.
	arrived time.Time
}

// push queues a frame for the writer. It never blocks: a session whose
// queue is full is closed as too slow, and the hub moves on.
func (s *Session) push(it item) {
	if !s.allows(it) {
		return // another chat than the API key's
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	if it.typ == EventChatMessage && it.seq > 0 && it.seq <= s.replayed[it.chatID] {
		// A late copy of a message a resume already replayed: its sender
		// committed before the replay read the database but published after.
		s.mu.Unlock()
		return
	}
	if s.holding && it.chatID != "" {
		if len(s.held) < s.hub.opt.QueueSize*4 {
			s.held = append(s.held, it)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.hub.metrics.QueueDrops.Inc()
		s.close(websocket.ClosePolicyViolation, "Too many events arrived while resuming; reconnect and resume again.", "slow")
		return
	}
	if len(s.items) >= s.hub.opt.QueueSize && it.op == opFrame {
		s.mu.Unlock()
		s.hub.metrics.QueueDrops.Inc()
		s.close(websocket.ClosePolicyViolation, "Too slow: events were arriving faster than this connection read them. Reconnect and resume.", "slow")
		return
	}
	s.items = append(s.items, it)
	s.startWriterLocked()
	s.mu.Unlock()
}

// begin lets the writer run after Accept held it back while the session
// was being registered.
func (s *Session) begin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writing = false
	if len(s.items) > 0 {
		s.startWriterLocked()
	}
}

func (s *Session) startWriterLocked() {
	if !s.writing {
		s.writing = true
		go s.writeLoop()
	}
}

// writeLoop writes queued items until none are left, then exits.
func (s *Session) writeLoop() {
	var batch []item
	for {
		s.mu.Lock()
		if len(s.items) == 0 {
			s.writing = false
			s.mu.Unlock()
			return
		}
		batch, s.items = s.items, batch[:0]
		s.mu.Unlock()
		corked := len(batch) > 1 && s.cork != nil
		if corked {
			s.cork.cork()
		}
		written := 0 // corked frames written, counted once they leave
		counted := func() {
			now := time.Now()
			for i := range batch[:written] {
				s.sent(batch[i], now)
				batch[i] = item{}
			}
			written = 0
		}
		for i, it := range batch {
			if s.closed.Load() && it.op != opClose {
				break // closing: skip the backlog, the close item is queued
			}
			if it.op == opClose && corked {
				// The close waits for the client's answer: what is
				// buffered must be on its way first.
				corked = false
				if !s.uncork() {
					return
				}
				counted()
			}
			if !s.write(it) {
				s.writeFailed()
				return
			}
			if corked {
				batch[i].frame = nil // let the frame go; it is counted when it leaves
				written++
			} else {
				s.sent(it, time.Now())
				batch[i] = item{}
			}
		}
		if corked {
			if !s.uncork() {
				return
			}
			counted()
		}
	}
}

// sent counts a frame that left for the socket (the kernel has it) and
// how long it was in this server since the hub got its event, and since
// its cause arrived when that is known.
func (s *Session) sent(it item, now time.Time) {
	if it.op != opFrame {
		return
	}
	m := s.hub.metrics.ofType(it.typ)
	m.sent.Inc()
	if !it.born.IsZero() {
		m.delay.Observe(now.Sub(it.born).Seconds())
	}
	if !it.arrived.IsZero() { // a wall-clock time from another source: never below 0
		s.hub.metrics.observeArrival(it.typ, m, max(0, now.Sub(it.arrived).Seconds()))
	}
}

// uncork sends the frames buffered for one write; false means the socket
// is done (and has been closed).
func (s *Session) uncork() bool {
	if err := s.cork.uncork(); err != nil {
		s.close(0, "", "write_error")
		s.writeFailed()
		return false
	}
	return true
}

// writeFailed ends the writer of a socket that is done. A failed write may
// have discarded the close item queued meanwhile (a slow client closed
// while its write was blocked): the connection is closed here so the reader
// ends and the session leaves the hub.
func (s *Session) writeFailed() {
	s.mu.Lock()
	s.items, s.writing = nil, false
	s.mu.Unlock()
	s.conn.Close()
}

// write performs one item; false means the socket is done.
func (s *Session) write(it item) bool {
	deadline := time.Now().Add(s.hub.opt.WriteWait)
	switch it.op {
	case opPing:
		if err := s.conn.WriteControl(websocket.PingMessage, nil, deadline); err != nil {
			s.close(0, "", "write_error")
			return false
		}
		return true
	case opClose:
		s.finish(it, deadline)
		return false
	}
	s.conn.SetWriteDeadline(deadline)
	if err := s.conn.WriteMessage(websocket.TextMessage, it.frame); err != nil {
		s.close(0, "", "write_error")
		return false
	}
	return true
}

// finish sends the last error frame and the close frame, waits briefly
// for the client's close so the frames are read before the TCP connection
// goes, and closes it.
func (s *Session) finish(it item, deadline time.Time) {
	if it.frame != nil {
		s.conn.SetWriteDeadline(deadline)
		if s.conn.WriteMessage(websocket.TextMessage, it.frame) == nil {
			s.hub.metrics.ofType(EventError).sent.Inc()
		}
		s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(s.code, truncate(s.reason, 120)), deadline)
		select {
		case <-s.readDone:
		case <-time.After(closeGrace):
		}
	}
	s.conn.Close()
}

// closeGrace is how long the server waits for the client's close frame.
const closeGrace = 2 * time.Second

// close ends the session once: with a code, the client first gets an
// error frame saying why and a close frame with that code; with code 0 the
// connection is just dropped (the peer is gone or broke the protocol).
// why labels the disconnect metric.
func (s *Session) close(code int, reason, why string) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing, s.code, s.reason = true, code, reason
	s.closed.Store(true)
	s.items, s.held, s.holding = s.items[:0], nil, false
	if s.holdStop != nil {
		s.holdStop.Stop()
	}
	last := item{op: opClose}
	if code != 0 {
		last.frame = encode(EventError, "", errorData{Code: CodeClosed, Message: reason})
	}
	s.items = append(s.items, last)
	s.startWriterLocked()
	s.mu.Unlock()
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.cancel()
	s.hub.metrics.Disconnects.WithLabelValues(why).Inc()
}

// Close closes the session with a code and a reason for the client.
func (s *Session) Close(code int, reason string) { s.close(code, reason, "server") }

// readLoop reads commands until the socket fails or closes. It owns the
// session's life: when it returns the session is gone from the hub.
func (s *Session) readLoop() {
	defer func() {
		close(s.readDone)
		s.hub.unregister(s)
	}()
	defer func() {
		if v := recover(); v != nil {
			s.hub.log.Error("panic in socket reader", "session", s.ID, "panic", v)
			s.close(websocket.CloseInternalServerErr, "Internal error.", "panic")
		}
	}()
	// No SetReadLimit: past it gorilla closes the socket itself, before the
	// client could be told why. Reading through a limit keeps memory
	// bounded the same way and lets the session send its last frame.
	limit := s.hub.opt.MaxFrameBytes
	s.conn.SetReadDeadline(time.Now().Add(s.hub.opt.PongWait))
	s.conn.SetPongHandler(func(string) error {
		return s.conn.SetReadDeadline(time.Now().Add(s.hub.opt.PongWait))
	})
	for {
		_, r, err := s.conn.NextReader()
		if err != nil {
			s.readFailed(err)
			return
		}
		msg, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			s.readFailed(err)
			return
		}
		if int64(len(msg)) > limit {
			s.close(websocket.CloseMessageTooBig, "Frame too big: the limit is "+itoa(int(limit))+" bytes.", "too_big")
			continue // the rest of the frame is discarded; wait for the client's close
		}
		s.conn.SetReadDeadline(time.Now().Add(s.hub.opt.PongWait))
		if !s.bucket.take(time.Now()) {
			s.close(websocket.ClosePolicyViolation, "Too many commands: the limit is "+itoa(s.hub.opt.CommandsPerMinute)+" per minute.", "rate_limit")
			continue // keep reading until the client's close arrives
		}
		var arrived time.Time // when the kernel had the frame's last bytes, if it says
		if s.arrivals != nil {
			arrived = s.arrivals()
		}
		s.hub.handle(s, msg, arrived)
	}
}

func (s *Session) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		s.close(websocket.CloseMessageTooBig, "Frame too big: the limit is "+itoa(int(s.hub.opt.MaxFrameBytes))+" bytes.", "too_big")
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
		s.close(0, "", "client")
	case errors.As(err, &ne) && ne.Timeout():
		s.close(websocket.ClosePolicyViolation, "No pong within the keep-alive window.", "no_pong")
	default:
		s.close(0, "", "client")
	}
}

// hold makes chat events wait until a resume replays what was missed, so
// the client sees every chat's messages in order. If no resume comes
// within holdTimeout the held events are let go.
func (s *Session) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.holding {
		return
	}
	s.holding = true
	s.holdStop = time.AfterFunc(holdTimeout, func() { s.release(nil) })
}

const holdTimeout = 10 * time.Second

// release queues the replayed items, then the held live events the replay
// did not already cover, and ends holding.
func (s *Session) release(replayed []item) { s.releaseHeld(replayed, false) }

// releaseResumed ends holding after a resume replayed what was missed:
// held ai_delta frames are dropped too, since the resume sends the text so
// far of answers in progress.
func (s *Session) releaseResumed(replayed []item) { s.releaseHeld(replayed, true) }

func (s *Session) releaseHeld(replayed []item, resumed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	if s.holdStop != nil {
		s.holdStop.Stop()
		s.holdStop = nil
	}
	if s.replayed == nil && len(replayed) > 0 {
		s.replayed = map[string]int64{}
	}
	top := s.replayed
	for _, it := range replayed {
		s.items = append(s.items, it)
		if it.seq > top[it.chatID] {
			top[it.chatID] = it.seq
		}
	}
	for _, it := range s.held {
		if it.typ == EventChatMessage && it.seq <= top[it.chatID] {
			continue // replayed already
		}
		if resumed && it.typ == EventAIDelta {
			continue
		}
		s.items = append(s.items, it)
	}
	s.held, s.holding = nil, false
	if len(s.items) > 0 {
		s.startWriterLocked()
	}
}

// tokenBucket limits commands: a full minute's allowance may be spent at
// once, and it refills evenly.
type tokenBucket struct {
	perMin int
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens, b.last = float64(b.perMin), now
	}
	b.tokens += now.Sub(b.last).Minutes() * float64(b.perMin)
	if b.tokens > float64(b.perMin) {
		b.tokens = float64(b.perMin)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// truncate cuts s to at most n bytes on a rune boundary: close reasons
// and error texts must stay valid UTF-8 (a browser fails the connection
// on an invalid close reason).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
