package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"
)

// FanoutResult is what one fan-out phase measured.
type FanoutResult struct {
	Name      string        `json:"name"`
	Members   int           `json:"members"`
	Instances int           `json:"instances"`
	Placement []int         `json:"members_per_instance"`
	Senders   int           `json:"senders"`
	Rate      float64       `json:"rate_per_second"`
	Duration  time.Duration `json:"duration_ns"`
	Warmup    time.Duration `json:"warmup_ns"`
	Via       string        `json:"via"`
	Size      int           `json:"text_bytes"`

	Due            int64            `json:"due"`
	Sent           int64            `json:"sent"`
	Acked          int64            `json:"acked"`
	SendErrors     int64            `json:"send_errors"`
	ErrorCodes     map[string]int64 `json:"error_codes"`
	GeneratorDrops int64            `json:"generator_drops"`
	WriteErrors    int64            `json:"write_errors"`

	Expected         int64   `json:"expected_deliveries"`
	Delivered        int64   `json:"delivered"`
	Missing          int64   `json:"missing"`
	Duplicates       int64   `json:"duplicates"`
	DeliveriesPerSec float64 `json:"deliveries_per_second"` // arrivals during the window / its length

	Disconnects       int64            `json:"disconnects"`
	DisconnectReasons map[string]int64 `json:"disconnect_reasons"`
	FramesByType      map[string]int64 `json:"frames_by_type"`

	Latency Summary  `json:"send_to_deliver"`
	Local   *Summary `json:"same_instance,omitempty"`
	Remote  *Summary `json:"other_instance,omitempty"`
	Ack     Summary  `json:"send_to_ack"`
	Lag     Summary  `json:"generator_lag"`

	Servers []ServerReport `json:"servers"`
	Client  ClientReport   `json:"client"`
	Machine MachineCPU     `json:"machine_cpu"`
}

// HopResult compares delivery through Redis with delivery in-process.
type HopResult struct {
	One        Summary `json:"one_instance"`
	Local      Summary `json:"two_instances_same"`
	Remote     Summary `json:"two_instances_other"`
	AddedP50US int64   `json:"added_p50_us"`
	AddedP99US int64   `json:"added_p99_us"`
	VsOneP50US int64   `json:"vs_one_p50_us"`
	VsOneP99US int64   `json:"vs_one_p99_us"`
}

// fanoutHook lets another scenario add to a fan-out phase: start runs
// once the members are connected, before the 'before' scrape; stop after
// the drain and the 'after' scrape, before the sockets close.
type fanoutHook struct {
	start func(ctx context.Context, f *fanout) error
	stop  func(ctx context.Context, f *fanout)
}

// member is one chat member's socket.
type member struct {
	idx  int
	inst int
	acc  account
	conn *websocket.Conn
	out  chan int64 // message numbers this member is to send

	hello chan struct{}
	mu    sync.Mutex
	types map[string]int64 // frames received by type
}

// fanout is the state of one phase.
type fanout struct {
	o       *options
	name    string
	run     string
	chatID  string
	members []*member
	senders []*member
	targets []string
	pace    pacer
	start   time.Time
	winLo   int64 // messages [winLo, winHi) are measured
	winHi   int64

	startMono int64          // f.start on CLOCK_MONOTONIC
	acked     []atomic.Bool  // per message
	deliv     []atomic.Int32 // deliveries per message

	lat, latLocal, latRemote, ack *stripedHist
	lagMu                         sync.Mutex
	lag                           *hdrhistogram.Histogram

	sent, sendErrs, genDrops, writeErrs, inWindow, disconnects atomic.Int64
	winFrom, winTo                                             int64 // CLOCK_MONOTONIC bounds of the measured window
	errCodes, discReasons                                      counterMap
	closing                                                    atomic.Bool
}

// runFanout runs the fanout scenario: one chat, every member with one
// socket, senders sending at the set rate. place says which server each
// member connects to.
func runFanout(ctx context.Context, o *options, rep *Report, accs []account, name string, place func(i int) int, hook *fanoutHook) (*FanoutResult, error) {
	hc := newHTTPClient(o.timeout)
	a := &api{base: o.urls[0], hc: hc}
	f := &fanout{o: o, name: name, run: randomHex(4)}
	for _, u := range o.urls {
		t, err := wsURL(u)
		if err != nil {
			return nil, err
		}
		f.targets = append(f.targets, t)
	}
	emails := make([]string, 0, len(accs)-1)
	for _, acc := range accs[1:] {
		emails = append(emails, acc.Email)
	}
	var err error
	f.chatID, err = a.createChat(ctx, accs[0].Token, "load "+f.run, emails)
	if err != nil {
		return nil, fmt.Errorf("create chat: %w", err)
	}
	placement := make([]int, len(o.urls))
	for i, acc := range accs {
		m := &member{idx: i, inst: place(i), acc: acc, hello: make(chan struct{}), types: map[string]int64{}}
		placement[m.inst]++
		f.members = append(f.members, m)
	}
	nSend := o.senders
	if nSend <= 0 || nSend > len(f.members) {
		nSend = len(f.members)
	}
	// Senders are spread over the members so that, with several servers,
	// every server has senders.
	step := float64(len(f.members)) / float64(nSend)
	for k := 0; k < nSend; k++ {
		f.senders = append(f.senders, f.members[int(float64(k)*step)])
	}
	if perMin := o.rate / float64(nSend) * 60; perMin > float64(o.serverCmdLimit) && o.via == "ws" {
		o.logf("warning: %.0f commands/min per sender socket is over the server's limit of %d (AICHAT_WS_COMMANDS_PER_MINUTE): raise it or use more --senders",
			perMin, o.serverCmdLimit)
	}

	f.pace = pacer{rate: o.rate, total: int64(math.Ceil((o.warmup + o.duration).Seconds() * o.rate))}
	f.winLo = int64(math.Ceil(o.warmup.Seconds() * o.rate))
	f.winHi = f.pace.total
	f.acked = make([]atomic.Bool, f.pace.total)
	f.deliv = make([]atomic.Int32, f.pace.total)
	f.lat, f.latLocal, f.latRemote, f.ack = newStripedHist(16), newStripedHist(16), newStripedHist(16), newStripedHist(16)
	f.lag = newHist()

	if err := f.connect(ctx); err != nil {
		f.closeAll()
		return nil, err
	}
	defer f.closeAll()
	o.logf("fanout %s: %d members connected %v; settling %s", name, len(f.members), placement, o.settle)
	sleepCtx(ctx, o.settle)

	if hook != nil && hook.start != nil {
		if err := hook.start(ctx, f); err != nil {
			return nil, err
		}
	}
	before, err := scrapeAll(ctx, hc, o.urls)
	if err != nil {
		return nil, err
	}
	cBefore, mBefore := clientNow(), cpuNow()
	var senders sync.WaitGroup
	for _, s := range f.senders {
		s.out = make(chan int64, max(1024, int(f.pace.total)/len(f.senders)+1))
		senders.Add(1)
		go func() {
			defer senders.Done()
			f.sendLoop(ctx, s)
		}()
	}
	o.logf("fanout %s: sending %d messages at %.0f/s (%s warm-up + %s)", name, f.pace.total, o.rate, o.warmup, o.duration)
	f.start = time.Now().Add(10 * time.Millisecond)
	f.startMono = clockBase + int64(f.start.Sub(clockStart))
	f.winFrom, f.winTo = f.startMono+int64(o.warmup), f.startMono+int64(o.warmup+o.duration)
	f.pace.run(ctx, f.start, f.emit)
	for _, s := range f.senders {
		close(s.out)
	}
	// The drain compares acks with messages sent: let the last sends be
	// written (and counted) first.
	senders.Wait()
	// Wait for the answers and the deliveries still on their way.
	expectAll := func() bool {
		return f.sent.Load() > 0 && f.countAcked() == f.sent.Load()-f.sendErrs.Load() && f.allDelivered()
	}
	deadline := time.Now().Add(o.drain)
	for time.Now().Before(deadline) && !expectAll() && ctx.Err() == nil {
		sleepCtx(ctx, 50*time.Millisecond)
	}
	after, err := scrapeAll(context.WithoutCancel(ctx), hc, o.urls)
	if err != nil {
		return nil, err
	}
	cAfter, mAfter := clientNow(), cpuNow()
	if hook != nil && hook.stop != nil {
		hook.stop(ctx, f)
	}
	f.closing.Store(true)

	res := &FanoutResult{Name: name, Members: len(f.members), Instances: len(o.urls), Placement: placement,
		Senders: len(f.senders), Rate: o.rate, Duration: o.duration, Warmup: o.warmup, Via: o.via, Size: o.size,
		Due: f.pace.total, Sent: f.sent.Load(), SendErrors: f.sendErrs.Load(), ErrorCodes: f.errCodes.snapshot(),
		GeneratorDrops: f.genDrops.Load(), WriteErrors: f.writeErrs.Load(),
		Disconnects: f.disconnects.Load(), DisconnectReasons: f.discReasons.snapshot(),
		Latency: f.lat.summary(), Ack: f.ack.summary(),
		Servers: compareAll(before, after), Client: compareClient(cBefore, cAfter)}
	res.Machine = compareCPU(mBefore, mAfter, res.Servers, res.Client)
	f.lagMu.Lock()
	res.Lag = summarize(f.lag)
	f.lagMu.Unlock()
	if len(o.urls) > 1 {
		l, r := f.latLocal.summary(), f.latRemote.summary()
		res.Local, res.Remote = &l, &r
	}
	res.Acked = f.countAcked()
	M := int32(len(f.members))
	for i := f.winLo; i < f.winHi; i++ {
		n := f.deliv[i].Load()
		if f.acked[i].Load() {
			res.Expected += int64(M)
			if n < M {
				res.Missing += int64(M - n)
			}
		}
		if n > M {
			res.Duplicates += int64(n - M)
		}
		res.Delivered += int64(min(n, M))
	}
	// Throughput is what arrived during the window, whenever it was sent:
	// a server that falls behind delivers less per second than is sent.
	res.DeliveriesPerSec = float64(f.inWindow.Load()) / o.duration.Seconds()
	res.FramesByType = map[string]int64{}
	for _, m := range f.members {
		m.mu.Lock()
		for k, v := range m.types {
			res.FramesByType[k] += v
		}
		m.mu.Unlock()
	}
	return res, nil
}

func (f *fanout) countAcked() int64 {
	var n int64
	for i := range f.acked {
		if f.acked[i].Load() {
			n++
		}
	}
	return n
}

func (f *fanout) allDelivered() bool {
	M := int32(len(f.members))
	for i := range f.deliv {
		if f.acked[i].Load() && f.deliv[i].Load() < M {
			return false
		}
	}
	return true
}

// connect opens every member's socket and waits for its hello.
func (f *fanout) connect(ctx context.Context) error {
	d := newDialer(f.o.sourceIPs, f.o.timeout)
	sem := make(chan struct{}, f.o.connectConc)
	errc := make(chan error, len(f.members))
	var wg sync.WaitGroup
	for _, m := range f.members {
		wg.Add(1)
		sem <- struct{}{}
		go func(m *member) {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := d.dialWS(ctx, f.targets[m.inst], m.acc.Token)
			if err != nil {
				errc <- fmt.Errorf("member %d: %w", m.idx, err)
				return
			}
			m.conn = c
			go f.readLoop(m)
			select {
			case <-m.hello:
			case <-time.After(f.o.timeout):
				errc <- fmt.Errorf("member %d: no hello within %s", m.idx, f.o.timeout)
			}
		}(m)
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func (f *fanout) closeAll() {
	f.closing.Store(true)
	var conns []*websocket.Conn
	for _, m := range f.members {
		if m.conn != nil {
			conns = append(conns, m.conn)
		}
	}
	closeAll(conns)
}

// readLoop reads a member's socket: deliveries of this run's messages are
// timed, acks and errors of its own sends are matched, everything is
// counted by type.
func (f *fanout) readLoop(m *member) {
	first := true
	err := readFrames(m.conn, func(b []byte) {
		now := monoNow()
		typ := frameType(b)
		if first {
			first = false
			close(m.hello)
		}
		m.mu.Lock()
		m.types[typ]++
		m.mu.Unlock()
		switch typ {
		case "chat_message":
			content, ok := messageContent(b)
			if !ok {
				return
			}
			mk, ok := parseMarker(content)
			if !ok || mk.Run != f.run || mk.Seq < 0 || mk.Seq >= f.pace.total {
				return
			}
			f.deliv[mk.Seq].Add(1)
			if now >= f.winFrom && now < f.winTo {
				f.inWindow.Add(1)
			}
			if mk.Seq < f.winLo || mk.Seq >= f.winHi {
				return
			}
			d := time.Duration(now - mk.TS)
			f.lat.record(m.idx, d)
			if len(f.targets) > 1 {
				if mk.Inst == m.inst {
					f.latLocal.record(m.idx, d)
				} else {
					f.latRemote.record(m.idx, d)
				}
			}
		case "ack":
			if seq, err := strconv.ParseInt(frameID(b), 10, 64); err == nil && seq >= 0 && seq < f.pace.total {
				f.markAcked(m.idx, seq, now)
			}
		case "error":
			f.sendErrs.Add(1)
			f.errCodes.add(errorCode(b), 1)
		}
	})
	if first {
		close(m.hello)
	}
	if !f.closing.Load() {
		f.disconnects.Add(1)
		f.discReasons.add(errorKey(err), 1)
	}
}

// dueMono is when message seq was due, on CLOCK_MONOTONIC.
func (f *fanout) dueMono(seq int64) int64 { return f.startMono + int64(f.pace.dueAt(seq)) }

func (f *fanout) markAcked(stripe int, seq, now int64) {
	if f.acked[seq].Swap(true) {
		return
	}
	if seq >= f.winLo && seq < f.winHi {
		f.ack.record(stripe, time.Duration(now-f.dueMono(seq)))
	}
}

// emit hands message i to its sender without ever waiting: a sender that
// cannot keep up loses the message (counted), the pacer goes on.
func (f *fanout) emit(i int64, due time.Time) {
	lag := time.Since(due)
	f.lagMu.Lock()
	recordDur(f.lag, lag)
	f.lagMu.Unlock()
	s := f.senders[i%int64(len(f.senders))]
	select {
	case s.out <- i:
	default:
		f.genDrops.Add(1)
	}
}

// sendLoop sends the messages handed to s, over its socket or by REST.
func (f *fanout) sendLoop(ctx context.Context, s *member) {
	var rest *api
	var inflight chan struct{}
	if f.o.via == "rest" {
		rest = &api{base: f.o.urls[s.inst], hc: newHTTPClient(f.o.timeout)}
		inflight = make(chan struct{}, f.o.restInflight)
	}
	for seq := range s.out {
		mk := marker{Run: f.run, Inst: s.inst, Sender: s.idx, Seq: seq, TS: f.dueMono(seq)}
		text := mk.text(f.o.size)
		clientID := f.run + "-" + strconv.FormatInt(seq, 10)
		if rest != nil {
			select {
			case inflight <- struct{}{}:
			default:
				f.genDrops.Add(1)
				continue
			}
			f.sent.Add(1)
			go func() {
				defer func() { <-inflight }()
				err := rest.sendREST(ctx, s.acc.Token, f.chatID, text, clientID)
				if err != nil {
					f.sendErrs.Add(1)
					code := errorKey(err)
					if ae, ok := err.(*apiError); ok {
						code = ae.Code
					}
					f.errCodes.add(code, 1)
					return
				}
				f.markAcked(s.idx, seq, monoNow())
			}()
			continue
		}
		s.conn.SetWriteDeadline(time.Now().Add(f.o.timeout))
		if err := s.conn.WriteMessage(websocket.TextMessage, sendFrame(seq, f.chatID, text, clientID)); err != nil {
			f.writeErrs.Add(1)
			continue
		}
		f.sent.Add(1)
	}
}
