package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The slow scenario: the fanout scenario twice, first as is (the
// baseline, unless --baseline=false), then with one more socket in the
// chat, a second tab of member 1, that reads normally for --slow-after and
// then, with --slow-mode stop, stops reading, or with --slow-mode slow,
// reads one frame every --slow-delay. Its receive buffer is --slow-rcvbuf
// bytes, so the server's queue for it (AICHAT_WS_QUEUE_SIZE frames) fills
// soon instead of after megabytes of kernel buffers. The server should
// drop it (close 1008) and the other members should not notice: their
// send→deliver percentiles are compared with the baseline's (target: p99
// no more than 10 % worse). The tool watches /metrics for the drop, then
// reads what the socket still holds (the close code and the server's last
// frame, if they arrived), reconnects with resume from the last seq it
// read and checks it ends with every message of the chat once; it exits 1
// if it missed or doubled any.

// SlowResult is what the slow scenario measured.
type SlowResult struct {
	Mode     string        `json:"mode"`
	After    time.Duration `json:"slow_after_ns"`
	Stall    time.Duration `json:"stall_ns"`
	Delay    time.Duration `json:"read_delay_ns"`
	RcvBuf   int           `json:"rcvbuf_bytes"`
	MSS      int           `json:"mss"`
	Baseline *FanoutResult `json:"baseline,omitempty"`
	WithSlow *FanoutResult `json:"with_slow"`

	P50ChangePct  float64 `json:"fast_p50_change_percent"`
	P99ChangePct  float64 `json:"fast_p99_change_percent"`
	P999ChangePct float64 `json:"fast_p99_9_change_percent"`

	Slow SlowClient `json:"slow_client"`
}

// SlowClient is what happened to the slow socket.
type SlowClient struct {
	FramesBeforeSlow int64   `json:"frames_before_slow"`
	FramesWhileSlow  int64   `json:"frames_while_slow"` // read after --slow-after, before the socket ended
	Dropped          bool    `json:"dropped"`
	DroppedAfterSec  float64 `json:"dropped_after_seconds"` // from --slow-after to the server counting the drop
	DropReason       string  `json:"drop_reason"`           // the server's disconnect reason (its metric's label)
	ServerSlowDrops  float64 `json:"server_slow_disconnects"`
	CloseCode        int     `json:"close_code"` // 1006: the connection ended without a close frame
	CloseText        string  `json:"close_text"`
	LastError        string  `json:"last_error_frame"` // the webSocket.closed message, if it was read
	Resumed          bool    `json:"resumed"`
	ResumeAttempts   int     `json:"resume_attempts"` // connections it took (a resume can itself be dropped as too slow)
	ResumeLatency    Summary `json:"reconnect_to_resumed"`
	Final            int64   `json:"chat_last_seq"`
	Received         int64   `json:"received"`
	Missed           int64   `json:"missed"`
	Doubled          int64   `json:"doubled"`
	Error            string  `json:"error,omitempty"`
}

// slowConsumer drives the slow socket during one fanout phase.
type slowConsumer struct {
	o      *options
	hc     *http.Client // one for the phase: its scrapes reuse their connections
	r      *rcRun       // reconnects with resume, tracks seqs
	c      *rcClient
	res    *SlowClient
	finish chan struct{} // the phase is over: read what is left
	done   chan struct{}

	dropped      atomic.Bool
	reason       atomic.Pointer[string]
	droppedAfter atomic.Int64 // ns from slowing down to the drop
}

// serverDrops sums the servers' disconnects the server decided (every
// reason but "client"), by reason.
func serverDrops(ctx context.Context, hc *http.Client, o *options) map[string]float64 {
	out := map[string]float64{}
	for _, u := range o.urls {
		if s, err := scrape(ctx, hc, u); err == nil {
			for k, v := range s.M.byLabel("aichat_ws_disconnects_total", "reason") {
				if k != "client" {
					out[k] += v
				}
			}
		}
	}
	return out
}

func (s *slowConsumer) start(ctx context.Context, f *fanout) error {
	m := f.members[1]
	s.c = &rcClient{idx: 0, acc: m.acc, chat: &rcChat{id: f.chatID}, inst: m.inst}
	d := newDialer(s.o.sourceIPs, s.o.timeout)
	d.rcvBuf, d.mss = s.o.slowRcvBuf, s.o.slowMSS
	conn, _, err := d.dialWS(ctx, s.r.targets[m.inst]+"?resume=1", m.acc.Token)
	if err != nil {
		return fmt.Errorf("slow consumer: %w", err)
	}
	s.c.conn = conn
	conn.SetWriteDeadline(time.Now().Add(s.o.timeout))
	if err := conn.WriteMessage(websocket.TextMessage, resumeFrame("resume", map[string]int64{f.chatID: 0})); err != nil {
		return fmt.Errorf("slow consumer: %w", err)
	}
	base := serverDrops(ctx, s.hc, s.o)
	slowAt := time.Now().Add(s.o.slowAfter)
	go s.watch(ctx, base, slowAt)
	go s.read(ctx, conn, slowAt)
	return nil
}

// watch polls /metrics from slowAt until the server counts a slow drop.
func (s *slowConsumer) watch(ctx context.Context, base map[string]float64, slowAt time.Time) {
	sleepCtx(ctx, time.Until(slowAt))
	for ctx.Err() == nil {
		select {
		case <-s.finish:
			return
		case <-time.After(200 * time.Millisecond):
		}
		for k, v := range serverDrops(ctx, s.hc, s.o) {
			if v > base[k] {
				s.droppedAfter.Store(int64(time.Since(slowAt)))
				s.reason.Store(&k)
				s.dropped.Store(true)
				return
			}
		}
	}
}

// read is the slow socket's reader: normal, then stalled or slow, then
// the backlog, then a reconnect with resume and normal reading.
func (s *slowConsumer) read(ctx context.Context, conn *websocket.Conn, slowAt time.Time) {
	defer close(s.done)
	c := s.c
	var before, while int64
	stalled := false
	widened := false
	var err error
	for {
		if !widened && s.o.slowRcvBuf > 0 && (s.dropped.Load() || s.r.closing.Load() || isClosed(s.finish)) {
			// Reading in earnest again: a 4 KiB window would take a
			// delayed ACK per few KiB.
			widened = true
			if tc, ok := conn.UnderlyingConn().(*net.TCPConn); ok {
				tc.SetReadBuffer(1 << 20)
			}
		}
		now := time.Now()
		if now.After(slowAt) {
			switch s.o.slowMode {
			case "stop":
				if !stalled {
					stalled = true
					deadline := slowAt.Add(s.o.slowStall)
					for time.Now().Before(deadline) && !s.dropped.Load() {
						select {
						case <-s.finish:
							deadline = time.Now()
						case <-time.After(50 * time.Millisecond):
						}
					}
				}
			default:
				select {
				case <-s.finish:
				case <-time.After(s.o.slowDelay):
				}
			}
		}
		var r io.Reader
		_, r, err = conn.NextReader()
		if err != nil {
			break
		}
		b, rerr := io.ReadAll(r)
		if rerr != nil {
			err = rerr
			break
		}
		if time.Now().After(slowAt) {
			while++
		} else {
			before++
		}
		switch frameType(b) {
		case "chat_message":
			if id, seq, ok := chatSeq(b); ok && id == c.chat.id {
				c.mu.Lock()
				c.see(seq)
				c.mu.Unlock()
			}
		case "error":
			if errorCode(b) == "webSocket.closed" {
				s.res.LastError = errorMessage(b)
			}
		}
	}
	s.res.FramesBeforeSlow, s.res.FramesWhileSlow = before, while
	var ce *websocket.CloseError
	if s.r.closing.Load() {
		s.res.CloseCode, s.res.CloseText = 0, "not closed by the server: the tool closed it at the end"
	} else if errors.As(err, &ce) {
		s.res.CloseCode, s.res.CloseText = ce.Code, ce.Text
	} else {
		s.res.CloseCode, s.res.CloseText = websocket.CloseAbnormalClosure, errorKey(err)
	}
	conn.Close()
	if s.r.closing.Load() {
		return // the phase ended first: the tool closed the socket
	}
	// Dropped: come back as a client should, resuming from the last seq,
	// and again (with a pause) if the server drops the resuming socket
	// too: its replay is a burst, and on a busy machine the socket may
	// fall behind again or too many live events may pile up meanwhile.
	t0 := time.Now()
	for attempt := 0; ; attempt++ {
		s.res.ResumeAttempts = attempt + 1
		err := s.r.connect(ctx, c)
		if err == nil {
			break
		}
		if attempt >= 2 || ctx.Err() != nil || s.r.closing.Load() {
			s.res.Error = "reconnect: " + err.Error()
			return
		}
		sleepCtx(ctx, time.Duration(100<<attempt)*time.Millisecond)
	}
	s.res.Resumed = true
	s.r.dropToResumed.record(0, time.Since(t0))
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// stop waits for the slow client to have the whole chat, then counts.
func (s *slowConsumer) stop(ctx context.Context, f *fanout) {
	a := &api{base: s.o.urls[0], hc: s.hc}
	final, lastErr := a.lastSeq(ctx, s.c.acc.Token, f.chatID)
	s.c.chat.final.Store(final)
	// A socket that was never dropped reads again now (its backlog); a
	// dropped one is reconnecting or reading again.
	close(s.finish)
	deadline := time.Now().Add(s.o.drain + s.o.slowStall)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		s.c.mu.Lock()
		m := s.c.max
		s.c.mu.Unlock()
		if m >= final {
			break
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	s.r.closing.Store(true)
	closeConn := func() {
		s.c.mu.Lock()
		if s.c.conn != nil {
			s.c.conn.Close()
		}
		s.c.mu.Unlock()
	}
	closeConn()
	<-s.done
	closeConn()
	if lastErr != nil {
		// Set once the reader is done: it writes Error too when it
		// cannot reconnect.
		s.res.Error = "last seq: " + lastErr.Error()
	}
	s.res.Final = final
	s.res.Received, s.res.Missed, s.res.Doubled = s.c.count(final)
	s.res.Dropped = s.dropped.Load()
	s.res.DroppedAfterSec = time.Duration(s.droppedAfter.Load()).Seconds()
	if p := s.reason.Load(); p != nil {
		s.res.DropReason = *p
	}
	s.res.ResumeLatency = s.r.dropToResumed.summary()
}

func runSlow(ctx context.Context, o *options, rep *Report, accs []account) error {
	res := &SlowResult{Mode: o.slowMode, After: o.slowAfter, Stall: o.slowStall, Delay: o.slowDelay, RcvBuf: o.slowRcvBuf, MSS: o.slowMSS}
	rep.Slow = res
	n := len(o.urls)
	place := func(i int) int { return i % n }
	if o.baseline {
		b, err := runFanout(ctx, o, rep, accs, "baseline, no slow consumer", place, nil)
		if err != nil {
			return err
		}
		b.print(io.Discard)
		res.Baseline = b
	}
	r, err := newRCRun(o)
	if err != nil {
		return err
	}
	r.measure = 1 << 62
	s := &slowConsumer{o: o, hc: newHTTPClient(o.timeout), r: r, res: &res.Slow, finish: make(chan struct{}), done: make(chan struct{})}
	w, err := runFanout(ctx, o, rep, accs, "with one slow consumer", place, &fanoutHook{start: s.start, stop: s.stop})
	if err != nil {
		return err
	}
	res.WithSlow = w
	for _, sv := range w.Servers {
		res.Slow.ServerSlowDrops += sv.Disconnects["slow"]
	}
	if b := res.Baseline; b != nil {
		pct := func(a, b int64) float64 {
			if a == 0 {
				return 0
			}
			return 100 * float64(b-a) / float64(a)
		}
		res.P50ChangePct = pct(b.Latency.P50US, w.Latency.P50US)
		res.P99ChangePct = pct(b.Latency.P99US, w.Latency.P99US)
		res.P999ChangePct = pct(b.Latency.P999US, w.Latency.P999US)
	}
	if res.Slow.Missed > 0 || res.Slow.Doubled > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("slow: the slow consumer missed %d and doubled %d messages after resuming (want 0)",
			res.Slow.Missed, res.Slow.Doubled))
	}
	return nil
}

func (r *SlowResult) print(w io.Writer) {
	if r.Baseline != nil {
		r.Baseline.print(w)
	}
	r.WithSlow.print(w)
	fmt.Fprintf(w, "\n== slow consumer (%s after %s", r.Mode, r.After)
	if r.Mode == "stop" {
		fmt.Fprintf(w, ", for up to %s", r.Stall)
	} else {
		fmt.Fprintf(w, ", one frame per %s", r.Delay)
	}
	fmt.Fprintf(w, "; SO_RCVBUF %d B (0: kernel's), MSS %d)\n", r.RcvBuf, r.MSS)
	if r.Baseline != nil {
		fmt.Fprintf(w, "fast members' send→deliver: p50 %s → %s (%+.0f %%), p99 %s → %s (%+.0f %%), p99.9 %s → %s (%+.0f %%); target p99 ≤ +10 %%\n",
			fmtUS(r.Baseline.Latency.P50US), fmtUS(r.WithSlow.Latency.P50US), r.P50ChangePct,
			fmtUS(r.Baseline.Latency.P99US), fmtUS(r.WithSlow.Latency.P99US), r.P99ChangePct,
			fmtUS(r.Baseline.Latency.P999US), fmtUS(r.WithSlow.Latency.P999US), r.P999ChangePct)
	}
	s := r.Slow
	fmt.Fprintf(w, "slow socket: read %d frames before, %d after slowing; dropped by the server %v", s.FramesBeforeSlow, s.FramesWhileSlow, s.Dropped)
	if s.Dropped {
		fmt.Fprintf(w, " %.1f s after slowing", s.DroppedAfterSec)
	}
	fmt.Fprintf(w, " (reason %q; server slow disconnects %.0f); close code %d %q; last frame %q\n", s.DropReason, s.ServerSlowDrops, s.CloseCode, s.CloseText, s.LastError)
	fmt.Fprintf(w, "after: resumed %v (reconnect→resumed %s, %d connection(s)); chat last seq %d, received %d, MISSED %d, DOUBLED %d",
		s.Resumed, fmtUS(s.ResumeLatency.MaxUS), s.ResumeAttempts, s.Final, s.Received, s.Missed, s.Doubled)
	if s.Error != "" {
		fmt.Fprintf(w, "; error: %s", s.Error)
	}
	fmt.Fprintln(w)
}
