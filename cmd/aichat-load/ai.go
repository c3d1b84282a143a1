package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The ai scenario: U users, each in a personal chat of their own (ai_mode
// "always") with --history earlier messages, one socket each. Streams
// start at a fixed rate (open loop): stream i is a question sent in chat
// i mod U with send_message; the server calls the generator's own fake
// upstream (upstream.go), which streams --tokens tokens at --token-rate
// after --ttft, each stamped with its write time. Measured:
//
//	(1) send → upstream request: the socket write of the question to the
//	    upstream's handler starting, i.e. what the server does before the
//	    model is called (store the question, load the chat, store the empty
//	    answer, read the history, build the prompt, open the request);
//	(2) token relay: the upstream writing a chunk → the asker's socket
//	    reading the ai_delta that carries it;
//	(3) added time to first token: the asker's time to first token (send →
//	    first ai_delta) minus the upstream's own (request → first chunk);
//
// plus tokens/s relayed, and the server's CPU and memory from /metrics
// between the start and the end of the measured window.

// AIResult is what the ai scenario measured.
type AIResult struct {
	Streams      int           `json:"target_concurrent_streams"`
	Users        int           `json:"users"`
	Rate         float64       `json:"streams_per_second"`
	Tokens       int           `json:"tokens_per_stream"`
	TokenRate    float64       `json:"tokens_per_second_per_stream"`
	TTFT         time.Duration `json:"upstream_ttft_ns"`
	Duration     time.Duration `json:"duration_ns"`
	Warmup       time.Duration `json:"warmup_ns"`
	History      int           `json:"history_messages"`
	HistorySize  int           `json:"history_text_bytes"`
	Depth        int           `json:"depth"`
	QuestionSize int           `json:"question_bytes"`
	Model        string        `json:"model"`
	UpstreamURL  string        `json:"upstream_url"`

	Due            int64            `json:"due"`
	Sent           int64            `json:"sent"`
	BusySkipped    int64            `json:"busy_skipped"` // due while the chat's previous stream still ran
	GeneratorDrops int64            `json:"generator_drops"`
	WriteErrors    int64            `json:"write_errors"`
	Outcomes       map[string]int64 `json:"outcomes"` // measured streams, by how they ended
	Unfinished     int64            `json:"unfinished"`

	TokensWritten  int64   `json:"tokens_written"` // measured streams
	TokensReceived int64   `json:"tokens_received"`
	TokensMissing  int64   `json:"tokens_missing"`
	OffsetGaps     int64   `json:"offset_gaps"`
	StrayDeltas    int64   `json:"stray_deltas"`
	TokensPerSec   float64 `json:"tokens_per_second"` // tokens read by the sockets during the window / its length
	DeltasPerSec   float64 `json:"deltas_per_second"`
	ConcMean       float64 `json:"upstream_concurrency_mean"`
	ConcMax        int64   `json:"upstream_concurrency_max"`

	UpstreamRequests int64 `json:"upstream_requests"`
	UpstreamConns    int64 `json:"upstream_connections"` // TCP connections the server opened to the upstream
	UpstreamUnknown  int64 `json:"upstream_unknown_requests"`
	UpstreamCanceled int64 `json:"upstream_canceled"`

	SendToUpstream  Summary `json:"send_to_upstream_request"` // (1)
	TokenRelay      Summary `json:"token_relay"`              // (2)
	AddedTTFT       Summary `json:"added_ttft"`               // (3)
	ClientTTFT      Summary `json:"client_ttft"`
	UpstreamTTFT    Summary `json:"upstream_ttft"`
	FirstRelay      Summary `json:"first_token_relay"`
	SendToAck       Summary `json:"send_to_ack"`
	SendToStart     Summary `json:"send_to_ai_start"`
	LastToDone      Summary `json:"last_token_to_ai_done"`
	StartLag        Summary `json:"generator_start_lag"`    // stream due → question written
	UpstreamPaceLag Summary `json:"generator_upstream_lag"` // token due → written

	Disconnects       int64            `json:"disconnects"`
	DisconnectReasons map[string]int64 `json:"disconnect_reasons"`
	FramesByType      map[string]int64 `json:"frames_by_type"`

	ServerAI       map[string]float64 `json:"server_ai"`
	ServerIdleRSS  float64            `json:"server_rss_idle_bytes"` // after connecting, before any stream
	CPUPerTokenUS  float64            `json:"server_cpu_us_per_token"`
	CPUPerStreamUS float64            `json:"server_cpu_us_per_stream"`

	// The server's own view, from its histograms over the window: an
	// ai_delta event from the hub to its frame written to the socket, and a
	// question from Send to the model's request written.
	ServerRelay   *BucketSummary `json:"server_relay,omitempty"`
	ServerRequest *BucketSummary `json:"server_request_delay,omitempty"`
	// From the model's chunk reaching the server's machine (the kernel's
	// receive stamp) to the frame written: all the relay time the server adds.
	ServerArrival *BucketSummary `json:"server_arrival_delay,omitempty"`

	Servers []ServerReport `json:"servers"`
	Client  ClientReport   `json:"client"`
	Machine MachineCPU     `json:"machine_cpu"`
}

// aiChat is one user, their personal chat and their socket.
type aiChat struct {
	idx    int
	acc    account
	chatID string
	conn   *websocket.Conn
	out    chan *aiStream
	cur    atomic.Pointer[aiStream] // the stream running in this chat
	hello  chan struct{}

	mu    sync.Mutex
	types map[string]int64
}

// aiStream is one question and its answer.
type aiStream struct {
	idx    int64
	tokens int
	due    int64 // mono ns
	sent   atomic.Int64
	up     upstreamStream

	// Set by the chat's reader only.
	ack, start, first, done atomic.Int64
	recvTokens, recvBytes   atomic.Int64
	gaps                    atomic.Int64
	outcome                 atomic.Pointer[string]
}

type aiRun struct {
	o       *options
	run     string
	chats   []*aiChat
	streams []*aiStream
	probe   *aiStream
	plan    streamPlan
	offsets []int64 // words mode: where each token starts in an answer
	pace    pacer
	winLo   int64
	winHi   int64

	startMono       int64
	winFrom, winTo  int64
	inWinTok, inWin atomic.Int64 // tokens, deltas read during the window

	relay, toUp, added, clientTTFT, upTTFT, firstRelay, ack, start, done, lag *stripedHist

	sent, busy, drops, writeErrs, stray atomic.Int64
	disconnects                         atomic.Int64
	discReasons                         counterMap
	closing                             atomic.Bool
}

func (r *aiRun) inWindow(idx int64) bool { return idx >= r.winLo && idx < r.winHi }

// aiDefaults fills the ai scenario's derived settings: users (chats) and
// the stream start rate that keeps --streams streams running at once.
func (o *options) aiDefaults() (users int, rate float64, plan streamPlan) {
	plan = streamPlan{tokens: o.aiTokens, rate: o.aiTokenRate, ttft: o.aiTTFT, words: o.aiAnswer != "stamps"}
	users = o.aiUsers
	if users <= 0 {
		// Each chat has one stream at a time; a quarter more chats than
		// streams leaves each chat idle for a quarter of a stream's length
		// before its next turn, room for the server's own delays.
		users = o.aiStreams + (o.aiStreams+3)/4
	}
	rate = o.aiRate
	if rate <= 0 {
		// Little's law: concurrency = rate × stream length.
		rate = float64(o.aiStreams) / max(plan.length().Seconds(), 0.05)
	}
	return users, rate, plan
}

func runAI(ctx context.Context, o *options) (*AIResult, error) {
	users, rate, plan := o.aiDefaults()
	r := &aiRun{o: o, run: randomHex(4), plan: plan}
	// Everything the upstream's handlers read exists before it starts.
	r.pace = pacer{rate: rate, total: int64(math.Ceil((o.warmup + o.duration).Seconds() * rate))}
	r.winLo = int64(math.Ceil(o.warmup.Seconds() * rate))
	r.winHi = r.pace.total
	r.streams = make([]*aiStream, r.pace.total)
	for i := range r.streams {
		r.streams[i] = &aiStream{idx: int64(i), tokens: plan.tokens}
		if plan.words {
			r.streams[i].up.writes = make([]int64, plan.tokens)
		}
	}
	r.probe = &aiStream{idx: -1, tokens: 3} // one short answer before the run
	if plan.words {
		r.probe.up.writes = make([]int64, 3)
		r.offsets = wordOffsets(plan.tokens)
	}
	for _, h := range []**stripedHist{&r.relay, &r.toUp, &r.added, &r.clientTTFT, &r.upTTFT, &r.firstRelay, &r.ack, &r.start, &r.done, &r.lag} {
		*h = newStripedHist(16)
	}
	hc := newHTTPClient(o.timeout)
	base := o.urls[0]
	a := &api{base: base, hc: hc}

	upModel := o.aiModel
	if i := lastSlash(upModel); i >= 0 {
		upModel = upModel[i+1:]
	}
	up, err := startUpstream(o.aiUpstream, upModel, r.run, plan, r.lookup)
	if err != nil {
		return nil, err
	}
	defer up.close()
	o.logf("ai: fake upstream at %s (the server needs AICHAT_AI_PROVIDERS=fake=%s)", up.URL, up.URL)
	if err := waitHealthy(ctx, hc, base, o.aiWaitServer); err != nil {
		return nil, err
	}

	streamLen := plan.length()
	if o.warmup < streamLen {
		o.logf("warning: --warmup %s is shorter than a stream (%s): the measured window starts before the concurrency settles", o.warmup, streamLen)
	}
	if perMin := rate / float64(users) * 60; perMin > float64(o.serverCmdLimit) {
		o.logf("warning: %.0f commands/min per socket is over the server's limit of %d (AICHAT_WS_COMMANDS_PER_MINUTE)", perMin, o.serverCmdLimit)
	}
	need := 2 * (o.warmup + o.duration + o.drain + o.settle + 5*time.Minute)
	accs, err := accounts(ctx, a, users, o.usersFile, o.regConc, need, o.logf)
	if err != nil {
		return nil, err
	}
	for i, acc := range accs {
		r.chats = append(r.chats, &aiChat{idx: i, acc: acc, hello: make(chan struct{}), types: map[string]int64{},
			out: make(chan *aiStream, 4)})
	}
	setupStart := time.Now()
	if err := r.setupChats(ctx, a); err != nil {
		return nil, err
	}
	o.logf("ai: %d personal chats with %d earlier messages each ready in %s", users, o.aiHistory, time.Since(setupStart).Round(time.Millisecond))
	if err := r.connect(ctx); err != nil {
		r.closeAll()
		return nil, err
	}
	defer r.closeAll()
	for _, c := range r.chats {
		go r.sendLoop(c)
	}

	// The probe fails fast on a misconfigured server.
	if err := r.runProbe(ctx); err != nil {
		return nil, err
	}
	// Nothing may stream before the run but its own streams.
	for deadline := time.Now().Add(o.timeout); up.active.Load() > 0 && time.Now().Before(deadline); {
		sleepCtx(ctx, 20*time.Millisecond)
	}
	if n := up.unknown.Load(); n > 0 {
		o.logf("warning: the upstream got %d requests for no question of this run before it (answers to the earlier messages?)", n)
	}
	sleepCtx(ctx, o.settle)
	idle, err := scrape(ctx, hc, base)
	if err != nil {
		return nil, err
	}

	upBase := struct{ conns, reqs, unknown, canceled int64 }{up.conns.Load(), up.requests.Load(), up.unknown.Load(), up.canceled.Load()}

	o.logf("ai: %d streams of %d tokens at %.0f tokens/s (+%s to first token), starting %.2f/s over %d chats: ~%.0f at once; %s warm-up + %s",
		r.pace.total, plan.tokens, plan.rate, plan.ttft, rate, users, rate*streamLen.Seconds(), o.warmup, o.duration)
	start := time.Now().Add(10 * time.Millisecond)
	r.startMono = clockBase + int64(start.Sub(clockStart))
	r.winFrom, r.winTo = r.startMono+int64(o.warmup), r.startMono+int64(o.warmup+o.duration)

	// Scrapes at the window's edges, and the upstream's concurrency
	// sampled during it.
	type edge struct {
		s   serverSnap
		c   clientSnap
		m   cpuSnap
		err error
	}
	edges := make(chan edge, 2)
	var concSum, concN atomic.Int64
	var concMax atomic.Int64
	go func() {
		for _, at := range []time.Time{start.Add(o.warmup), start.Add(o.warmup + o.duration)} {
			sleepCtx(ctx, time.Until(at))
			s, err := scrape(context.WithoutCancel(ctx), hc, base)
			edges <- edge{s, clientNow(), cpuNow(), err}
		}
	}()
	go func() {
		sleepCtx(ctx, time.Until(start.Add(o.warmup)))
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		end := start.Add(o.warmup + o.duration)
		for now := range t.C {
			if now.After(end) || ctx.Err() != nil {
				return
			}
			a := up.active.Load()
			concSum.Add(a)
			concN.Add(1)
			if a > concMax.Load() {
				concMax.Store(a)
			}
		}
	}()
	r.pace.run(ctx, start, r.emit)
	e1, e2 := <-edges, <-edges
	if e1.err != nil {
		return nil, e1.err
	}
	if e2.err != nil {
		return nil, e2.err
	}
	deadline := time.Now().Add(o.drain)
	for time.Now().Before(deadline) && r.running() > 0 && ctx.Err() == nil {
		sleepCtx(ctx, 50*time.Millisecond)
	}
	r.closing.Store(true)

	res := &AIResult{Streams: o.aiStreams, Users: users, Rate: rate, Tokens: plan.tokens, TokenRate: plan.rate, TTFT: plan.ttft,
		Duration: o.duration, Warmup: o.warmup, History: o.aiHistory, HistorySize: o.aiHistorySize, Depth: o.aiDepth,
		QuestionSize: o.size, Model: o.aiModel, UpstreamURL: up.URL,
		Due: r.pace.total, Sent: r.sent.Load(), BusySkipped: r.busy.Load(), GeneratorDrops: r.drops.Load(), WriteErrors: r.writeErrs.Load(),
		StrayDeltas:      r.stray.Load(),
		UpstreamRequests: up.requests.Load() - upBase.reqs, UpstreamConns: up.conns.Load() - upBase.conns,
		UpstreamUnknown: up.unknown.Load() - upBase.unknown, UpstreamCanceled: up.canceled.Load() - upBase.canceled,
		SendToUpstream: r.toUp.summary(), TokenRelay: r.relay.summary(), AddedTTFT: r.added.summary(),
		ClientTTFT: r.clientTTFT.summary(), UpstreamTTFT: r.upTTFT.summary(), FirstRelay: r.firstRelay.summary(),
		SendToAck: r.ack.summary(), SendToStart: r.start.summary(), LastToDone: r.done.summary(), StartLag: r.lag.summary(),
		UpstreamPaceLag: up.paceLag.summary(), ServerIdleRSS: idle.M.sum("process_resident_memory_bytes"),
		TokensPerSec: float64(r.inWinTok.Load()) / o.duration.Seconds(), DeltasPerSec: float64(r.inWin.Load()) / o.duration.Seconds(),
		ConcMax: concMax.Load()}
	if n := concN.Load(); n > 0 {
		res.ConcMean = float64(concSum.Load()) / float64(n)
	}
	outcomes := map[string]int64{}
	for _, st := range r.streams[r.winLo:r.winHi] {
		if st.sent.Load() == 0 {
			continue
		}
		if p := st.outcome.Load(); p != nil {
			outcomes[*p]++
		} else {
			res.Unfinished++
		}
		w, g := int64(st.up.tokens.Load()), st.recvTokens.Load()
		res.TokensWritten += w
		res.TokensReceived += g
		res.TokensMissing += max(0, w-g)
		res.OffsetGaps += st.gaps.Load()
	}
	res.Outcomes = outcomes
	res.Servers = []ServerReport{compareSnaps(e1.s, e2.s)}
	res.Client = compareClient(e1.c, e2.c)
	res.Machine = compareCPU(e1.m, e2.m, res.Servers, res.Client)
	res.ServerAI = aiServerMetrics(e1.s.M, e2.s.M)
	if h, ok := histWindow(e1.s.M, e2.s.M, "aichat_ws_frame_delay_seconds", `type="ai_delta"`); ok {
		res.ServerRelay = &h
	}
	if h, ok := histWindow(e1.s.M, e2.s.M, "aichat_ai_request_delay_seconds", ""); ok {
		res.ServerRequest = &h
	}
	if h, ok := histWindow(e1.s.M, e2.s.M, "aichat_ws_arrival_delay_seconds", `type="ai_delta"`); ok {
		res.ServerArrival = &h
	}
	if tok := res.TokensPerSec * o.duration.Seconds(); tok > 0 {
		res.CPUPerTokenUS = 1e6 * res.Servers[0].CPUSeconds / tok
	}
	if started := res.ServerAI["generations_started"]; started > 0 {
		res.CPUPerStreamUS = 1e6 * res.Servers[0].CPUSeconds / started
	}
	res.FramesByType = map[string]int64{}
	for _, c := range r.chats {
		c.mu.Lock()
		for k, v := range c.types {
			res.FramesByType[k] += v
		}
		c.mu.Unlock()
	}
	res.Disconnects, res.DisconnectReasons = r.disconnects.Load(), r.discReasons.snapshot()
	return res, nil
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// aiServerMetrics are the assistant's counters over the window.
func aiServerMetrics(a, b promText) map[string]float64 {
	d := func(name string) float64 { return b.sum(name) - a.sum(name) }
	out := map[string]float64{
		"generations_started":  d("aichat_ai_generations_started_total"),
		"generations_finished": d("aichat_ai_generations_finished_total"),
		"deltas_sent":          d("aichat_ai_deltas_sent_total"),
		"completion_tokens":    d("aichat_ai_completion_tokens_total"),
		"upstream_errors":      d("aichat_ai_upstream_errors_total"),
		"active_streams_after": b.sum("aichat_ai_active_streams"),
	}
	if n := d("aichat_ai_time_to_first_token_seconds_count"); n > 0 {
		out["server_ttft_mean_us"] = 1e6 * d("aichat_ai_time_to_first_token_seconds_sum") / n
	}
	for k, v := range b.byLabel("aichat_ai_generations_finished_total", "outcome") {
		if dv := v - a.byLabel("aichat_ai_generations_finished_total", "outcome")[k]; dv != 0 {
			out["finished_"+k] = dv
		}
	}
	return out
}

// lookup is the upstream's view of a stream: its plan and its record.
// It also times (1), the question's socket write → this request.
func (r *aiRun) lookup(idx, recv int64) (streamPlan, *upstreamStream) {
	var st *aiStream
	switch {
	case idx == -1 && r.probe != nil:
		st = r.probe
	case idx >= 0 && idx < int64(len(r.streams)):
		st = r.streams[idx]
	default:
		return r.plan, nil
	}
	p := r.plan
	p.tokens = st.tokens
	if sent := st.sent.Load(); sent > 0 && r.inWindow(idx) {
		r.toUp.record(int(idx), time.Duration(recv-sent))
	}
	return p, &st.up
}

// emit starts stream i in its chat, never waiting: if the chat's previous
// stream still runs, this one is skipped (counted).
func (r *aiRun) emit(i int64, due time.Time) {
	st := r.streams[i]
	st.due = clockBase + int64(due.Sub(clockStart))
	c := r.chats[i%int64(len(r.chats))]
	if !c.cur.CompareAndSwap(nil, st) {
		r.busy.Add(1)
		return
	}
	select {
	case c.out <- st:
	default:
		c.cur.CompareAndSwap(st, nil)
		r.drops.Add(1)
	}
}

func (r *aiRun) sendLoop(c *aiChat) {
	for st := range c.out {
		text := questionText(r.run, st.idx, r.o.size)
		frame := sendFrame(st.idx, c.chatID, text, r.run+"-"+strconv.FormatInt(st.idx, 10))
		c.conn.SetWriteDeadline(time.Now().Add(r.o.timeout))
		now := monoNow()
		st.sent.Store(now)
		if st.idx >= 0 && r.inWindow(st.idx) {
			r.lag.record(c.idx, time.Duration(now-st.due))
		}
		if err := c.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
			r.writeErrs.Add(1)
			r.end(c, st, "write_error")
			continue
		}
		if st.idx >= 0 {
			r.sent.Add(1)
		}
	}
}

// end records how a stream ended and frees its chat.
func (r *aiRun) end(c *aiChat, st *aiStream, outcome string) {
	if st.outcome.CompareAndSwap(nil, &outcome) {
		c.cur.CompareAndSwap(st, nil)
	}
}

func (r *aiRun) running() int {
	n := 0
	for _, c := range r.chats {
		if c.cur.Load() != nil {
			n++
		}
	}
	return n
}

var (
	offsetKey = []byte(`"offset":`)
	deltaKey  = []byte(`"delta":"`)
	statusKey = []byte(`"status":"`)
)

// parseDelta reads an ai_delta frame's offset and text.
func parseDelta(b []byte) (offset int64, delta []byte, ok bool) {
	if i := bytes.Index(b, offsetKey); i >= 0 {
		rest := b[i+len(offsetKey):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
		if d, ok2 := stringAfter(b, deltaKey); err == nil && ok2 {
			return n, d, true
		}
	}
	var f struct {
		Data struct {
			Offset int64  `json:"offset"`
			Delta  string `json:"delta"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &f) != nil {
		return 0, nil, false
	}
	return f.Data.Offset, []byte(f.Data.Delta), true
}

// readLoop reads one user's socket and times the stream running in the
// chat.
func (r *aiRun) readLoop(c *aiChat) {
	first := true
	err := readFrames(c.conn, func(b []byte) {
		now := monoNow()
		typ := frameType(b)
		if first {
			first = false
			close(c.hello)
		}
		c.mu.Lock()
		c.types[typ]++
		c.mu.Unlock()
		st := c.cur.Load()
		switch typ {
		case "ai_delta":
			if st == nil {
				r.stray.Add(1)
				return
			}
			off, delta, ok := parseDelta(b)
			if !ok {
				return
			}
			if off != st.recvBytes.Load() {
				st.gaps.Add(1)
			}
			st.recvBytes.Store(off + int64(len(delta)))
			inWin := st.idx >= 0 && r.inWindow(st.idx)
			nowIn := now >= r.winFrom && now < r.winTo
			if nowIn {
				r.inWin.Add(1)
			}
			if st.first.Load() == 0 {
				st.first.Store(now)
				if sent, upRecv, upFirst := st.sent.Load(), st.up.recv.Load(), st.up.first.Load(); inWin && sent > 0 && upRecv > 0 && upFirst > 0 {
					client, upstream := now-sent, upFirst-upRecv
					r.clientTTFT.record(c.idx, time.Duration(client))
					r.upTTFT.record(c.idx, time.Duration(upstream))
					r.added.record(c.idx, time.Duration(client-upstream))
				}
			}
			relayed := func(k int, ns int64) {
				if ns >= r.winFrom && ns < r.winTo {
					r.relay.record(c.idx, time.Duration(now-ns))
				}
				if k == 0 && inWin {
					r.firstRelay.record(c.idx, time.Duration(now-ns))
				}
			}
			var k int
			if r.plan.words {
				k = eachWord(r.offsets[:min(len(st.up.writes), len(r.offsets)-1)+1], off, len(delta), func(k int) {
					if ns := atomic.LoadInt64(&st.up.writes[k]); ns > 0 {
						relayed(k, ns)
					}
				})
			} else {
				k = eachToken(delta, relayed)
			}
			st.recvTokens.Add(int64(k))
			if nowIn {
				r.inWinTok.Add(int64(k))
			}
		case "ack":
			if st != nil && frameID(b) == strconv.FormatInt(st.idx, 10) {
				st.ack.Store(now)
				if st.idx >= 0 && r.inWindow(st.idx) {
					r.ack.record(c.idx, time.Duration(now-st.sent.Load()))
				}
			}
		case "ai_start":
			if st != nil {
				st.start.Store(now)
				if st.idx >= 0 && r.inWindow(st.idx) {
					r.start.record(c.idx, time.Duration(now-st.sent.Load()))
				}
			}
		case "ai_done":
			if st == nil {
				return
			}
			st.done.Store(now)
			if last := st.up.last.Load(); last > 0 && st.idx >= 0 && r.inWindow(st.idx) {
				r.done.record(c.idx, time.Duration(now-last))
			}
			status, _ := stringAfter(b, statusKey)
			r.end(c, st, "ai_done "+string(status))
		case "ai_error":
			if st != nil {
				r.end(c, st, "ai_error "+errorCode(b))
			}
		case "error":
			if st != nil && frameID(b) == strconv.FormatInt(st.idx, 10) {
				r.end(c, st, "error "+errorCode(b))
			}
		}
	})
	if first {
		close(c.hello)
	}
	if !r.closing.Load() {
		r.disconnects.Add(1)
		r.discReasons.add(errorKey(err), 1)
	}
}

// connect opens every user's socket and waits for its hello.
func (r *aiRun) connect(ctx context.Context) error {
	target, err := wsURL(r.o.urls[0])
	if err != nil {
		return err
	}
	d := newDialer(r.o.sourceIPs, r.o.timeout)
	sem := make(chan struct{}, r.o.connectConc)
	errc := make(chan error, len(r.chats))
	var wg sync.WaitGroup
	for _, c := range r.chats {
		wg.Add(1)
		sem <- struct{}{}
		go func(c *aiChat) {
			defer wg.Done()
			defer func() { <-sem }()
			conn, _, err := d.dialWS(ctx, target, c.acc.Token)
			if err != nil {
				errc <- fmt.Errorf("user %d: %w", c.idx, err)
				return
			}
			c.conn = conn
			go r.readLoop(c)
			select {
			case <-c.hello:
			case <-time.After(r.o.timeout):
				errc <- fmt.Errorf("user %d: no hello within %s", c.idx, r.o.timeout)
			}
		}(c)
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func (r *aiRun) closeAll() {
	r.closing.Store(true)
	var conns []*websocket.Conn
	for _, c := range r.chats {
		if c.conn != nil {
			conns = append(conns, c.conn)
		}
		close(c.out)
	}
	closeAll(conns)
}

// runProbe asks one question in the first chat and waits for its answer.
func (r *aiRun) runProbe(ctx context.Context) error {
	c := r.chats[0]
	st := r.probe
	c.cur.Store(st)
	c.out <- st
	deadline := time.Now().Add(r.o.timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if p := st.outcome.Load(); p != nil {
			if *p != "ai_done complete" {
				return fmt.Errorf("probe question: %s (is the server running with AICHAT_AI_PROVIDERS=fake=<the upstream URL above>?)", *p)
			}
			if st.recvTokens.Load() != int64(st.tokens) {
				return fmt.Errorf("probe question: %d tokens relayed, want %d", st.recvTokens.Load(), st.tokens)
			}
			r.o.logf("ai: probe answered: send→upstream %s, first token after %s, %d tokens relayed",
				time.Duration(st.up.recv.Load()-st.sent.Load()).Round(time.Microsecond),
				time.Duration(st.first.Load()-st.sent.Load()).Round(time.Microsecond), st.recvTokens.Load())
			// Let the server release the chat before its first stream.
			sleepCtx(ctx, 100*time.Millisecond)
			return nil
		}
		sleepCtx(ctx, 10*time.Millisecond)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("probe question: no answer within %s (upstream requests so far: %v)", r.o.timeout, st.up.recv.Load() > 0)
}

// setupChats creates each user's personal chat with the assistant off and
// stores the earlier messages; then, once every chat has them, turns the
// assistant on. The pause between matters: the server decides whether to
// answer a message from the chat's settings when its answer goroutine
// reads them, not when the message was stored, so a message stored just
// before the switch would be answered.
func (r *aiRun) setupChats(ctx context.Context, a *api) error {
	if err := r.eachChat(ctx, func(c *aiChat) error { return r.createChat(ctx, a, c) }); err != nil {
		return err
	}
	sleepCtx(ctx, time.Second)
	return r.eachChat(ctx, func(c *aiChat) error {
		return a.call(ctx, http.MethodPatch, "/api/v1/chats/"+c.chatID, c.acc.Token,
			map[string]any{"settings": map[string]any{"ai_mode": "always"}}, nil)
	})
}

// eachChat runs f for every chat, 8 at a time, and returns the first error.
func (r *aiRun) eachChat(ctx context.Context, f func(c *aiChat) error) error {
	var firstErr error
	var mu sync.Mutex
	jobs := make(chan *aiChat)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				if err := f(c); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("chat of user %d: %w", c.idx, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, c := range r.chats {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		jobs <- c
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func (r *aiRun) createChat(ctx context.Context, a *api, c *aiChat) error {
	var out struct {
		ID string `json:"id"`
	}
	settings := map[string]any{"ai_mode": "off", "depth": r.o.aiDepth, "model": r.o.aiModel}
	if err := a.call(ctx, http.MethodPost, "/api/v1/chats", c.acc.Token,
		map[string]any{"title": "ai load " + r.run, "settings": settings}, &out); err != nil {
		return err
	}
	c.chatID = out.ID
	for h := 0; h < r.o.aiHistory; h++ {
		text := fmt.Sprintf("earlier message %d of user %d:", h, c.idx)
		for len(text) < r.o.aiHistorySize {
			text += " lorem ipsum"
		}
		if err := a.sendREST(ctx, c.acc.Token, c.chatID, text[:r.o.aiHistorySize], r.run+"-h"+strconv.Itoa(h)); err != nil {
			return err
		}
	}
	return nil
}
