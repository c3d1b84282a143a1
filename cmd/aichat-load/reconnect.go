package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The reconnect scenario: --clients sockets, one per user, in chats of
// --members (each chat's owner sends from a socket of its own, which is
// never dropped). Every client connects with /ws?resume=1 and resumes from
// seq 0, so it must see every message of its chat, seq 1, 2, 3, ... Messages
// flow at --rate (open loop, spread over the chats) for --warmup; then
// --drop-share of the clients lose their socket at once (closed without a
// close frame, as when a network goes away) and reconnect at once (or
// within --jitter) with resume from the highest seq they saw. Sending goes
// on for --duration, then --drain for the last deliveries. Each client
// counts every seq of its chat it received: none missing and none twice is
// the requirement (docs/protocol.md "Resume: nothing lost, nothing
// doubled"); the tool exits 1 otherwise. With two --url servers a client
// reconnects to the other one. A resume that answers "truncated" (more than
// 200 missed) is completed with GET /chats/{id}/messages, and counted.
//
// The same machinery drives the soak scenario (soak.go).

// ReconnectResult is what the reconnect scenario measured.
type ReconnectResult struct {
	Clients   int           `json:"clients"`
	Chats     int           `json:"chats"`
	Members   int           `json:"members_per_chat"`
	Instances int           `json:"instances"`
	Rate      float64       `json:"rate_per_second"`
	Warmup    time.Duration `json:"warmup_ns"`
	Duration  time.Duration `json:"duration_ns"`
	DropShare float64       `json:"drop_share"`
	Jitter    time.Duration `json:"jitter_ns"`

	Rounds          int              `json:"drop_rounds"`
	Dropped         int64            `json:"dropped"`
	Reconnected     int64            `json:"reconnected"`
	ReconnectFailed int64            `json:"reconnect_failed"`
	Retries         int64            `json:"retries"`
	Errors          map[string]int64 `json:"errors"`

	Sent       int64            `json:"sent"`
	Acked      int64            `json:"acked"`
	SendErrors int64            `json:"send_errors"`
	ErrorCodes map[string]int64 `json:"error_codes"`
	WriteErrs  int64            `json:"write_errors"`
	Messages   int64            `json:"messages"` // the chats' last seqs, summed
	Expected   int64            `json:"expected_deliveries"`
	Received   int64            `json:"received"`
	Missed     int64            `json:"missed"`
	Doubled    int64            `json:"doubled"`
	Truncated  int64            `json:"truncated_resumes"`
	Filled     int64            `json:"filled_by_rest"`

	DropToResumed Summary `json:"drop_to_resumed"` // the drop → resumed frame, waiting and retries included
	Upgrade       Summary `json:"upgrade"`
	Hello         Summary `json:"upgrade_to_hello"`
	ResumeLat     Summary `json:"resume_to_resumed"`
	Deliver       Summary `json:"send_to_deliver"` // live deliveries of messages due after the warm-up

	Disconnects       int64            `json:"unexpected_disconnects"`
	DisconnectReasons map[string]int64 `json:"disconnect_reasons"`

	Servers []ServerReport `json:"servers"`
	Client  ClientReport   `json:"client"`
	Machine MachineCPU     `json:"machine_cpu"`
}

// rcChat is one chat and its sender.
type rcChat struct {
	idx   int
	id    string
	owner account
	inst  int
	conn  *websocket.Conn
	out   chan int64
	final atomic.Int64 // highest seq acked to or seen by the sender
}

// rcClient is one member's socket, which may be dropped and reconnected.
type rcClient struct {
	idx  int
	acc  account
	chat *rcChat

	mu       sync.Mutex
	inst     int
	conn     *websocket.Conn
	done     chan struct{} // the current connection's reader ended
	dropping bool          // the tool closed it on purpose
	seen     []uint8       // by seq: deliveries (low 7 bits), filled by REST (high bit)
	max      int64
}

const filledBit = 0x80

func (c *rcClient) see(seq int64) {
	if seq <= 0 {
		return
	}
	for int64(len(c.seen)) <= seq {
		c.seen = append(c.seen, make([]uint8, max(64, len(c.seen)))...)
	}
	if c.seen[seq]&0x7f < 0x7f {
		c.seen[seq]++
	}
	c.max = max(c.max, seq)
}

// count returns how many of seqs 1..final the client lacks, and how many
// extra copies it received.
func (c *rcClient) count(final int64) (received, missed, doubled int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := int64(1); s <= final; s++ {
		var v uint8
		if s < int64(len(c.seen)) {
			v = c.seen[s]
		}
		n := int64(v & 0x7f)
		received += n
		if n == 0 && v&filledBit == 0 {
			missed++
		}
		if n > 1 {
			doubled += n - 1
		}
	}
	return
}

// rcRun is one run of the engine.
type rcRun struct {
	o       *options
	run     string
	apis    []*api
	targets []string
	d       *dialer
	chats   []*rcChat
	clients []*rcClient
	pace    pacer
	start   time.Time
	mono0   int64
	measure int64 // messages from this number on are timed (after the warm-up)

	dropToResumed, upgrade, hello, resume, deliver *stripedHist

	errs, errCodes, discReasons counterMap
	sent, acked, sendErrs, writeErrs, disconnects,
	dropped, reconnected, reconnectFailed, retries, truncated, filled, rounds atomic.Int64
	closing atomic.Bool

	// Reconnects after a drop the server decided run in the background;
	// close cancels them and waits.
	bgMu     sync.Mutex // orders bg.Add with close
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
}

func newRCRun(o *options) (*rcRun, error) {
	r := &rcRun{o: o, run: randomHex(4), d: newDialer(o.sourceIPs, o.timeout)}
	r.bgCtx, r.bgCancel = context.WithCancel(context.Background())
	hc := newHTTPClient(o.timeout)
	for _, u := range o.urls {
		t, err := wsURL(u)
		if err != nil {
			return nil, err
		}
		r.targets = append(r.targets, t)
		r.apis = append(r.apis, &api{base: u, hc: hc})
	}
	r.dropToResumed, r.upgrade, r.hello, r.resume, r.deliver = newStripedHist(16), newStripedHist(16), newStripedHist(16), newStripedHist(16), newStripedHist(16)
	return r, nil
}

// setup creates the chats (members accounts each, the first the owner)
// and connects the senders and every client, which resume from seq 0.
func (r *rcRun) setup(ctx context.Context, accs []account, members int) error {
	nChats := len(accs) / members
	for k := 0; k < nChats; k++ {
		group := accs[k*members : (k+1)*members]
		emails := make([]string, 0, members-1)
		for _, a := range group[1:] {
			emails = append(emails, a.Email)
		}
		id, err := r.apis[0].createChat(ctx, group[0].Token, fmt.Sprintf("reconnect %s %d", r.run, k), emails)
		if err != nil {
			return fmt.Errorf("create chat: %w", err)
		}
		ch := &rcChat{idx: k, id: id, owner: group[0], inst: k % len(r.targets)}
		r.chats = append(r.chats, ch)
		for _, a := range group {
			i := len(r.clients)
			r.clients = append(r.clients, &rcClient{idx: i, acc: a, chat: ch, inst: i % len(r.targets)})
		}
	}
	for _, ch := range r.chats {
		c, _, err := r.d.dialWS(ctx, r.targets[ch.inst], ch.owner.Token)
		if err != nil {
			return fmt.Errorf("sender of chat %d: %w", ch.idx, err)
		}
		ch.conn = c
		go r.senderReadLoop(ch)
	}
	sem := make(chan struct{}, r.o.connectConc)
	errc := make(chan error, len(r.clients))
	var wg sync.WaitGroup
	for _, c := range r.clients {
		wg.Add(1)
		sem <- struct{}{}
		go func(c *rcClient) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.connect(ctx, c); err != nil {
				errc <- fmt.Errorf("client %d: %w", c.idx, err)
			}
		}(c)
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// connect opens c's socket with ?resume=1, waits for hello, resumes from
// the highest seq c saw and waits for resumed; a truncated resume is
// completed over REST.
func (r *rcRun) connect(ctx context.Context, c *rcClient) error {
	c.mu.Lock()
	inst := c.inst
	c.mu.Unlock()
	conn, took, err := r.d.dialWS(ctx, r.targets[inst]+"?resume=1", c.acc.Token)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	r.upgrade.record(c.idx, took)
	hello, resumed, done := make(chan struct{}), make(chan []string, 1), make(chan struct{})
	c.mu.Lock()
	c.conn, c.done, c.dropping = conn, done, false
	last := c.max
	c.mu.Unlock()
	go r.readLoop(c, conn, hello, resumed, done)
	fail := func(err error) error {
		c.mu.Lock()
		c.dropping = true
		c.mu.Unlock()
		conn.Close()
		<-done
		return err
	}
	t1 := time.Now()
	select {
	case <-hello:
	case <-time.After(r.o.timeout):
		return fail(fmt.Errorf("hello: no hello within %s", r.o.timeout))
	}
	select {
	case <-done:
		return fail(fmt.Errorf("hello: socket closed"))
	default:
	}
	r.hello.record(c.idx, time.Since(t1))
	t2 := time.Now()
	conn.SetWriteDeadline(time.Now().Add(r.o.timeout))
	if err := conn.WriteMessage(websocket.TextMessage, resumeFrame("resume", map[string]int64{c.chat.id: last})); err != nil {
		return fail(fmt.Errorf("resume: %w", err))
	}
	var trunc []string
	select {
	case trunc = <-resumed:
	case <-done:
		return fail(fmt.Errorf("resume: socket closed"))
	case <-time.After(r.o.timeout):
		return fail(fmt.Errorf("resume: no resumed within %s", r.o.timeout))
	}
	r.resume.record(c.idx, time.Since(t2))
	if len(trunc) > 0 {
		r.truncated.Add(1)
		if err := r.fill(ctx, c, last); err != nil {
			r.errs.add("fill: "+errorKey(err), 1)
		}
	}
	return nil
}

// fill reads the chat's messages after seq over REST and marks those the
// socket did not bring (the gap a truncated resume leaves).
func (r *rcRun) fill(ctx context.Context, c *rcClient, after int64) error {
	a := r.apis[c.inst]
	for {
		seqs, more, err := a.history(ctx, c.acc.Token, c.chat.id, after, 200)
		if err != nil {
			return err
		}
		c.mu.Lock()
		for _, s := range seqs {
			for int64(len(c.seen)) <= s {
				c.seen = append(c.seen, make([]uint8, max(64, len(c.seen)))...)
			}
			if c.seen[s] == 0 {
				c.seen[s] |= filledBit
				r.filled.Add(1)
			}
			c.max = max(c.max, s)
			after = max(after, s)
		}
		c.mu.Unlock()
		if !more || len(seqs) == 0 {
			return nil
		}
	}
}

func (r *rcRun) readLoop(c *rcClient, conn *websocket.Conn, hello chan struct{}, resumed chan []string, done chan struct{}) {
	gotHello := false
	err := readFrames(conn, func(b []byte) {
		now := monoNow()
		switch frameType(b) {
		case "hello":
			if !gotHello {
				gotHello = true
				close(hello)
			}
		case "chat_message":
			chatID, seq, ok := chatSeq(b)
			if !ok || chatID != c.chat.id {
				return
			}
			c.mu.Lock()
			c.see(seq)
			c.mu.Unlock()
			if content, ok := messageContent(b); ok {
				if mk, ok := parseMarker(content); ok && mk.Run == r.run && mk.Seq >= r.measure {
					r.deliver.record(c.idx, time.Duration(now-mk.TS))
				}
			}
		case "resumed":
			select {
			case resumed <- resumedTruncated(b):
			default:
			}
		case "error":
			r.errs.add("error frame: "+errorCode(b), 1)
		}
	})
	if !gotHello {
		close(hello)
	}
	close(done)
	c.mu.Lock()
	expected := c.dropping || c.conn != conn
	c.mu.Unlock()
	if expected || r.closing.Load() {
		return
	}
	// The server closed it (or the network failed): a client reconnects
	// and resumes, and so does this one.
	r.disconnects.Add(1)
	r.discReasons.add(errorKey(err), 1)
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	if r.closing.Load() {
		return
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		r.reconnect(r.bgCtx, c, time.Now(), false)
	}()
}

// reconnect opens c again after a drop at since, retrying with backoff.
func (r *rcRun) reconnect(ctx context.Context, c *rcClient, since time.Time, timed bool) {
	if r.o.jitter > 0 {
		sleepCtx(ctx, rand.N(r.o.jitter))
	}
	c.mu.Lock()
	c.inst = (c.inst + 1) % len(r.targets) // another instance, when there are several
	c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if r.closing.Load() {
			return
		}
		err := r.connect(ctx, c)
		if err == nil {
			r.reconnected.Add(1)
			if timed {
				r.dropToResumed.record(c.idx, time.Since(since))
			}
			return
		}
		r.errs.add("reconnect: "+errorKey(err), 1)
		if attempt >= 6 || ctx.Err() != nil {
			r.reconnectFailed.Add(1)
			return
		}
		r.retries.Add(1)
		back := time.Duration(float64(100*time.Millisecond<<attempt) * (0.5 + rand.Float64()))
		sleepCtx(ctx, back)
	}
}

// dropRound closes share of the clients at once and reconnects them.
func (r *rcRun) dropRound(ctx context.Context, share float64) {
	n := int(math.Round(share * float64(len(r.clients))))
	if n <= 0 {
		return
	}
	r.rounds.Add(1)
	pick := rand.Perm(len(r.clients))[:n]
	since := time.Now()
	var olds []chan struct{}
	for _, i := range pick {
		c := r.clients[i]
		c.mu.Lock()
		c.dropping = true
		conn, done := c.conn, c.done
		c.mu.Unlock()
		if conn != nil {
			conn.Close() // no close frame: the network went away
		}
		olds = append(olds, done)
	}
	r.dropped.Add(int64(n))
	r.o.logf("reconnect: dropped %d sockets; reconnecting", n)
	sem := make(chan struct{}, r.o.connectConc)
	var wg sync.WaitGroup
	for k, i := range pick {
		wg.Add(1)
		sem <- struct{}{}
		go func(c *rcClient, done chan struct{}) {
			defer wg.Done()
			defer func() { <-sem }()
			if done != nil {
				<-done // the old reader saw everything it will see
			}
			r.reconnect(ctx, c, since, true)
		}(r.clients[i], olds[k])
	}
	wg.Wait()
	r.o.logf("reconnect: round done in %s", time.Since(since).Round(time.Millisecond))
}

func (r *rcRun) senderReadLoop(ch *rcChat) {
	err := readFrames(ch.conn, func(b []byte) {
		switch frameType(b) {
		case "ack":
			r.acked.Add(1)
			if _, seq, ok := chatSeq(b); ok {
				setMax(&ch.final, seq)
			}
		case "chat_message":
			if id, seq, ok := chatSeq(b); ok && id == ch.id {
				setMax(&ch.final, seq)
			}
		case "error":
			r.sendErrs.Add(1)
			r.errCodes.add(errorCode(b), 1)
		}
	})
	if !r.closing.Load() {
		r.disconnects.Add(1)
		r.discReasons.add("sender: "+errorKey(err), 1)
	}
}

func setMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// send paces --rate messages over the chats for total, calling at(k)
// for every k-th due event of every (every) on its own goroutine:
// the drop rounds.
func (r *rcRun) send(ctx context.Context, total time.Duration, every time.Duration, at func(ctx context.Context)) {
	r.pace = pacer{rate: r.o.rate, total: int64(math.Ceil(total.Seconds() * r.o.rate))}
	var senders sync.WaitGroup
	for _, ch := range r.chats {
		ch.out = make(chan int64, 4096)
		senders.Add(1)
		go func() {
			defer senders.Done()
			r.sendLoop(ch)
		}()
	}
	r.start = time.Now().Add(10 * time.Millisecond)
	r.mono0 = clockBase + int64(r.start.Sub(clockStart))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	if at != nil && every > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case <-t.C:
					at(ctx)
				}
			}
		}()
	}
	r.pace.run(ctx, r.start, func(i int64, due time.Time) {
		ch := r.chats[i%int64(len(r.chats))]
		select {
		case ch.out <- i:
		default:
			r.writeErrs.Add(1) // the sender is stuck: counted, never waited for
		}
	})
	close(stop)
	for _, ch := range r.chats {
		close(ch.out)
	}
	senders.Wait() // every send written (and counted) before the drain compares acks
	wg.Wait()
}

func (r *rcRun) sendLoop(ch *rcChat) {
	for i := range ch.out {
		mk := marker{Run: r.run, Inst: ch.inst, Sender: ch.idx, Seq: i, TS: r.mono0 + int64(r.pace.dueAt(i))}
		ch.conn.SetWriteDeadline(time.Now().Add(r.o.timeout))
		err := ch.conn.WriteMessage(websocket.TextMessage, sendFrame(i, ch.id, mk.text(r.o.size), r.run+"-"+strconv.FormatInt(i, 10)))
		if err != nil {
			r.writeErrs.Add(1)
			continue
		}
		r.sent.Add(1)
	}
}

// drain waits until every ack came and every client has every message of
// its chat, or until timeout.
func (r *rcRun) drain(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if r.acked.Load()+r.sendErrs.Load() >= r.sent.Load() && r.allSeen() {
			return
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
}

func (r *rcRun) allSeen() bool {
	for _, c := range r.clients {
		c.mu.Lock()
		m := c.max
		c.mu.Unlock()
		if m < c.chat.final.Load() {
			return false
		}
	}
	return true
}

// close ends every socket, and the reconnects under way first.
func (r *rcRun) close() {
	r.bgMu.Lock()
	r.closing.Store(true)
	r.bgMu.Unlock()
	r.bgCancel()
	r.bg.Wait()
	var conns []*websocket.Conn
	for _, c := range r.clients {
		c.mu.Lock()
		if c.conn != nil {
			conns = append(conns, c.conn)
		}
		c.mu.Unlock()
	}
	for _, ch := range r.chats {
		if ch.conn != nil {
			conns = append(conns, ch.conn)
		}
	}
	closeAll(conns)
}

// fill the result's counts from the run.
func (r *rcRun) result(res *ReconnectResult) {
	res.Rounds = int(r.rounds.Load())
	res.Dropped, res.Reconnected, res.ReconnectFailed, res.Retries = r.dropped.Load(), r.reconnected.Load(), r.reconnectFailed.Load(), r.retries.Load()
	res.Errors = r.errs.snapshot()
	res.Sent, res.Acked, res.SendErrors, res.ErrorCodes, res.WriteErrs = r.sent.Load(), r.acked.Load(), r.sendErrs.Load(), r.errCodes.snapshot(), r.writeErrs.Load()
	for _, ch := range r.chats {
		res.Messages += ch.final.Load()
	}
	for _, c := range r.clients {
		f := c.chat.final.Load()
		rec, miss, dup := c.count(f)
		res.Expected += f
		res.Received += rec
		res.Missed += miss
		res.Doubled += dup
	}
	res.Truncated, res.Filled = r.truncated.Load(), r.filled.Load()
	res.DropToResumed, res.Upgrade, res.Hello, res.ResumeLat = r.dropToResumed.summary(), r.upgrade.summary(), r.hello.summary(), r.resume.summary()
	res.Deliver = r.deliver.summary()
	res.Disconnects, res.DisconnectReasons = r.disconnects.Load(), r.discReasons.snapshot()
}

// rcAccounts returns the accounts for clients in chats of members: whole
// chats, so the count is rounded up.
func rcAccounts(ctx context.Context, o *options, clients int, need time.Duration) ([]account, int, error) {
	members := o.members
	nChats := max(1, (clients+members-1)/members)
	a := &api{base: o.urls[0], hc: newHTTPClient(o.timeout)}
	accs, err := accounts(ctx, a, nChats*members, o.usersFile, o.regConc, need, o.logf)
	return accs, members, err
}

func runReconnect(ctx context.Context, o *options, rep *Report) error {
	need := 2*(o.warmup+o.duration+o.drain+o.settle) + 2*time.Minute
	accs, members, err := rcAccounts(ctx, o, o.clients, need)
	if err != nil {
		return err
	}
	r, err := newRCRun(o)
	if err != nil {
		return err
	}
	defer r.close()
	r.measure = int64(math.Ceil(o.warmup.Seconds() * o.rate))
	if err := r.setup(ctx, accs, members); err != nil {
		return err
	}
	res := &ReconnectResult{Clients: len(r.clients), Chats: len(r.chats), Members: members, Instances: len(o.urls),
		Rate: o.rate, Warmup: o.warmup, Duration: o.duration, DropShare: o.dropShare, Jitter: o.jitter}
	rep.Reconnect = res
	if perMin := o.rate / float64(len(r.chats)) * 60; perMin > float64(o.serverCmdLimit) {
		o.logf("warning: %.0f commands/min per sender socket is over the server's limit of %d (AICHAT_WS_COMMANDS_PER_MINUTE)", perMin, o.serverCmdLimit)
	}
	o.logf("reconnect: %d clients in %d chats of %d connected; settling %s", len(r.clients), len(r.chats), members, o.settle)
	sleepCtx(ctx, o.settle)
	hc := newHTTPClient(o.timeout)
	before, err := scrapeAll(ctx, hc, o.urls)
	if err != nil {
		return err
	}
	cBefore, mBefore := clientNow(), cpuNow()
	o.logf("reconnect: sending %.0f msg/s; dropping %.0f %% of the sockets after %s", o.rate, 100*o.dropShare, o.warmup)
	var once sync.Once
	r.send(ctx, o.warmup+o.duration, o.warmup, func(ctx context.Context) {
		once.Do(func() { r.dropRound(ctx, o.dropShare) })
	})
	r.drain(ctx, o.drain)
	after, err := scrapeAll(context.WithoutCancel(ctx), hc, o.urls)
	if err != nil {
		return err
	}
	cAfter, mAfter := clientNow(), cpuNow()
	r.closing.Store(true)
	r.result(res)
	res.Servers = compareAll(before, after)
	res.Client = compareClient(cBefore, cAfter)
	res.Machine = compareCPU(mBefore, mAfter, res.Servers, res.Client)
	if res.Missed > 0 || res.Doubled > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("reconnect: %d missed and %d doubled deliveries (want 0)", res.Missed, res.Doubled))
	}
	if res.ReconnectFailed > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("reconnect: %d clients could not reconnect", res.ReconnectFailed))
	}
	return nil
}

func (r *ReconnectResult) print(w io.Writer) {
	fmt.Fprintf(w, "\n== reconnect: %d clients in %d chats of %d on %d instance(s), %.0f msg/s, %s then drop %.0f %% (jitter %s), %s more\n",
		r.Clients, r.Chats, r.Members, r.Instances, r.Rate, r.Warmup, 100*r.DropShare, r.Jitter, r.Duration)
	fmt.Fprintf(w, "dropped %d in %d round(s), reconnected %d, failed %d, retries %d; errors: %s\n",
		r.Dropped, r.Rounds, r.Reconnected, r.ReconnectFailed, r.Retries, fmtCounts(r.Errors))
	latencyTable(w, []namedSummary{{"drop→resumed", r.DropToResumed}, {"upgrade", r.Upgrade}, {"upgrade→hello", r.Hello},
		{"resume→resumed", r.ResumeLat}, {"send→deliver (live, after warm-up)", r.Deliver}})
	fmt.Fprintf(w, "messages: sent %d, acked %d, send errors %d (%s), write errors %d; chats' last seqs sum %d\n",
		r.Sent, r.Acked, r.SendErrors, fmtCounts(r.ErrorCodes), r.WriteErrs, r.Messages)
	fmt.Fprintf(w, "deliveries: expected %d, received %d, MISSED %d, DOUBLED %d; truncated resumes %d (filled over REST %d)\n",
		r.Expected, r.Received, r.Missed, r.Doubled, r.Truncated, r.Filled)
	fmt.Fprintf(w, "unexpected disconnects: %d (%s)\n", r.Disconnects, fmtCounts(r.DisconnectReasons))
	printServers(w, r.Servers)
	printClient(w, r.Client)
	printMachine(w, r.Machine)
}
