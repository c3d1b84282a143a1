package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm"
	"github.com/gorilla/websocket"
)

func TestTokenStamps(t *testing.T) {
	var b []byte
	b = appendToken(b, 0, 123456789)
	b = appendToken(b, 1, 123456999)
	if string(b) != " 0:123456789 1:123456999" {
		t.Fatalf("tokens %q", b)
	}
	var ks []int
	var nss []int64
	n := eachToken(append(b, " junk :5 7: x:1"...), func(k int, ns int64) {
		ks = append(ks, k)
		nss = append(nss, ns)
	})
	if n != 2 || fmt.Sprint(ks) != "[0 1]" || fmt.Sprint(nss) != "[123456789 123456999]" {
		t.Fatalf("eachToken: n=%d %v %v", n, ks, nss)
	}
	if eachToken(nil, func(int, int64) { t.Fatal("token in nothing") }) != 0 {
		t.Fatal("count of nothing")
	}
}

func TestFindStream(t *testing.T) {
	body := []byte(`{"messages":[{"role":"user","content":"ai1 ab12 7 please"},{"role":"assistant","content":" 0:1 1:2"},` +
		`{"role":"user","content":"ai1 zz99 99 other run"},{"role":"user","content":"ai1 ab12 42 please answer x x"}]}`)
	if n, ok := findStream(body, "ab12"); !ok || n != 42 {
		t.Fatalf("findStream = %d %v, want 42", n, ok)
	}
	if n, ok := findStream([]byte(`"ai1 ab12 -1 probe"`), "ab12"); !ok || n != -1 {
		t.Fatalf("probe: %d %v", n, ok)
	}
	if _, ok := findStream(body, "cd34"); ok {
		t.Fatal("found a stream of another run")
	}
	if _, ok := findStream([]byte("ai1 ab12 x"), "ab12"); ok {
		t.Fatal("found a stream with no number")
	}
	q := questionText("ab12", 5, 60)
	if len(q) < 60 || !strings.HasPrefix(q, "ai1 ab12 5 ") {
		t.Fatalf("question %q", q)
	}
	if n, ok := findStream([]byte(q), "ab12"); !ok || n != 5 {
		t.Fatalf("question's stream %d %v", n, ok)
	}
}

func TestStreamPlan(t *testing.T) {
	p := streamPlan{tokens: 250, rate: 50, ttft: 200 * time.Millisecond}
	if p.tokenDue(0) != 200*time.Millisecond || p.tokenDue(1) != 220*time.Millisecond || p.tokenDue(249) != 5180*time.Millisecond {
		t.Fatalf("due: %v %v %v", p.tokenDue(0), p.tokenDue(1), p.tokenDue(249))
	}
	if p.length() != 5180*time.Millisecond {
		t.Fatalf("length %v", p.length())
	}
	o := &options{aiStreams: 200, aiTokens: 250, aiTokenRate: 50}
	users, rate, _ := o.aiDefaults()
	// 250 tokens at 50/s last 4.98 s; 200 at once need 40.16 starts/s.
	if users != 250 || rate < 40.1 || rate > 40.2 {
		t.Fatalf("defaults: %d users, %.3f/s", users, rate)
	}
	o.aiUsers, o.aiRate = 300, 12
	if users, rate, _ := o.aiDefaults(); users != 300 || rate != 12 {
		t.Fatalf("explicit: %d %v", users, rate)
	}
}

func TestChunksAreValidSSE(t *testing.T) {
	var b []byte
	b = appendRoleChunk(b, "chatcmpl-1", "gpt-4o-mini", 1700000000)
	b = appendContentChunk(b, "chatcmpl-1", "gpt-4o-mini", 1700000000, appendToken(nil, 0, 42))
	b = appendEnd(b, "chatcmpl-1", "gpt-4o-mini", 1700000000, 30, 1)
	events := strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n\n")
	if len(events) != 5 || events[4] != "data: [DONE]" {
		t.Fatalf("events: %q", events)
	}
	for _, ev := range events[:4] {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || !json.Valid([]byte(data)) {
			t.Fatalf("not a data event with JSON: %q", ev)
		}
	}
	var usage struct {
		Choices []any `json:"choices"`
		Usage   struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	json.Unmarshal([]byte(strings.TrimPrefix(events[3], "data: ")), &usage)
	if len(usage.Choices) != 0 || usage.Usage.PromptTokens != 30 || usage.Usage.TotalTokens != 31 {
		t.Fatalf("usage chunk: %+v", usage)
	}
}

// The fake upstream speaks the protocol the server's own client expects:
// its tokens arrive in order, paced, with the finish reason and usage.
func TestUpstreamWithServerClient(t *testing.T) {
	recs := map[int64]*upstreamStream{7: {}}
	up, err := startUpstream("127.0.0.1:0", "gpt-4o-mini", "ab12", streamPlan{tokens: 2, rate: 1000},
		func(idx, recv int64) (streamPlan, *upstreamStream) {
			return streamPlan{tokens: 5, rate: 200, ttft: 10 * time.Millisecond}, recs[idx]
		})
	if err != nil {
		t.Fatal(err)
	}
	defer up.close()
	c := llm.New(llm.Provider{Name: "fake", BaseURL: up.URL}, llm.Options{})
	ctx := context.Background()
	models, err := c.Models(ctx)
	if err != nil || fmt.Sprint(models) != "[gpt-4o-mini]" {
		t.Fatalf("models %v %v", models, err)
	}
	start := monoNow()
	var text strings.Builder
	var stamps []int64
	res, err := c.Stream(ctx, llm.Request{Model: "gpt-4o-mini", Messages: []llm.Message{{Role: "user", Content: "ai1 ab12 7 hello"}}},
		func(d string, _ time.Time) {
			text.WriteString(d)
			eachToken([]byte(d), func(k int, ns int64) {
				if k != len(stamps) {
					t.Errorf("token %d arrived as number %d", k, len(stamps))
				}
				stamps = append(stamps, ns)
			})
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.FinishReason != "stop" || res.Usage == nil || res.Usage.CompletionTokens != 5 {
		t.Fatalf("result %+v usage %+v", res, res.Usage)
	}
	if len(stamps) != 5 {
		t.Fatalf("%d tokens in %q", len(stamps), text.String())
	}
	rec := recs[7]
	if rec.recv.Load() < start || rec.first.Load() != stamps[0] || rec.last.Load() != stamps[4] || rec.tokens.Load() != 5 {
		t.Fatalf("record: recv %d first %d last %d tokens %d; stamps %v", rec.recv.Load(), rec.first.Load(), rec.last.Load(), rec.tokens.Load(), stamps)
	}
	// 10 ms to the first token, then one every 5 ms: none before its time.
	plan := streamPlan{tokens: 5, rate: 200, ttft: 10 * time.Millisecond}
	for k, ns := range stamps {
		if d := time.Duration(ns - rec.recv.Load()); d < plan.tokenDue(k) {
			t.Fatalf("token %d written %v after the request, due at %v", k, d, plan.tokenDue(k))
		}
	}

	// A request with no marker of this run gets the default plan.
	res, err = c.Stream(ctx, llm.Request{Model: "gpt-4o-mini", Messages: []llm.Message{{Role: "user", Content: "hi"}}}, nil)
	if err != nil || res.Usage.CompletionTokens != 2 || up.unknown.Load() != 1 || up.requests.Load() != 2 {
		t.Fatalf("unknown request: %v %+v unknown %d", err, res.Usage, up.unknown.Load())
	}

	// A stream the client leaves stops at once.
	recs[8] = &upstreamStream{}
	cctx, cancel := context.WithCancel(ctx)
	_, err = c.Stream(cctx, llm.Request{Model: "gpt-4o-mini", Messages: []llm.Message{{Role: "user", Content: "ai1 ab12 8"}}},
		func(string, time.Time) { cancel() })
	if err == nil {
		t.Fatal("canceled stream succeeded")
	}
	deadline := time.Now().Add(2 * time.Second)
	for up.canceled.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if up.canceled.Load() != 1 || recs[8].tokens.Load() >= 5 {
		t.Fatalf("canceled %d, tokens written %d", up.canceled.Load(), recs[8].tokens.Load())
	}
}

func TestParseDelta(t *testing.T) {
	f := []byte(`{"type":"ai_delta","data":{"chat_id":"c","message_id":"m","seq":43,"offset":11,"delta":" 3:99"}}`)
	off, d, ok := parseDelta(f)
	if !ok || off != 11 || string(d) != " 3:99" {
		t.Fatalf("fast: %d %q %v", off, d, ok)
	}
	f = []byte(`{"type":"ai_delta","data":{"chat_id":"c","message_id":"m","seq":43,"offset":0,"delta":"say \"hi\""}}`)
	off, d, ok = parseDelta(f)
	if !ok || off != 0 || string(d) != `say "hi"` {
		t.Fatalf("escaped: %d %q %v", off, d, ok)
	}
	if _, _, ok := parseDelta([]byte("nope")); ok {
		t.Fatal("parsed junk")
	}
}

// The client side of a stream, against a scripted socket: what a server
// sends for one answer is timed and checked (a gap in the offsets, the
// outcome, the window).
func TestAIReadLoop(t *testing.T) {
	frames := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for f := range frames {
			c.WriteMessage(websocket.TextMessage, []byte(f))
		}
	}))
	defer srv.Close()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	o := &options{}
	r := &aiRun{o: o, run: "ab12", winLo: 0, winHi: 10}
	for _, h := range []**stripedHist{&r.relay, &r.toUp, &r.added, &r.clientTTFT, &r.upTTFT, &r.firstRelay, &r.ack, &r.start, &r.done, &r.lag} {
		*h = newStripedHist(2)
	}
	now := monoNow()
	r.winFrom, r.winTo = now-int64(time.Second), now+int64(time.Hour)
	st := &aiStream{idx: 3, tokens: 3}
	st.sent.Store(now - int64(5*time.Millisecond))
	st.up.recv.Store(now - int64(4*time.Millisecond))
	st.up.first.Store(now - int64(2*time.Millisecond))
	st.up.last.Store(now - int64(time.Millisecond))
	st.up.tokens.Store(3)
	r.streams = []*aiStream{nil, nil, nil, st}
	c := &aiChat{conn: conn, hello: make(chan struct{}), types: map[string]int64{}}
	c.cur.Store(st)
	done := make(chan struct{})
	go func() { r.readLoop(c); close(done) }()

	tok := func(k int, ago time.Duration) string { return string(appendToken(nil, k, now-int64(ago))) }
	t0, t1, t2 := tok(0, 2*time.Millisecond), tok(1, 1500*time.Microsecond), tok(2, time.Millisecond)
	frames <- `{"type":"hello","data":{}}`
	frames <- `{"type":"ack","id":"3","data":{}}`
	frames <- `{"type":"ai_start","data":{"chat_id":"c","message_id":"m","seq":2,"model":"x","reply_to":1}}`
	frames <- `{"type":"ai_delta","data":{"chat_id":"c","message_id":"m","seq":2,"offset":0,"delta":"` + t0 + `"}}`
	// A lost delta: the next offset skips t1.
	frames <- fmt.Sprintf(`{"type":"ai_delta","data":{"chat_id":"c","message_id":"m","seq":2,"offset":%d,"delta":"%s"}}`, len(t0)+len(t1), t2)
	frames <- `{"type":"ai_done","data":{"chat_id":"c","message_id":"m","seq":2,"status":"complete","content":"..."}}`
	frames <- `{"type":"ai_delta","data":{"chat_id":"c","message_id":"m","seq":2,"offset":0,"delta":"late"}}`
	close(frames)
	<-done

	if p := st.outcome.Load(); p == nil || *p != "ai_done complete" {
		t.Fatalf("outcome %v", p)
	}
	if c.cur.Load() != nil {
		t.Fatal("chat still busy after ai_done")
	}
	if st.recvTokens.Load() != 2 || st.gaps.Load() != 1 || r.stray.Load() != 1 {
		t.Fatalf("tokens %d gaps %d stray %d", st.recvTokens.Load(), st.gaps.Load(), r.stray.Load())
	}
	relay := r.relay.summary()
	if relay.Count != 2 || relay.MaxUS < 2000 {
		t.Fatalf("relay %+v", relay)
	}
	// Client TTFT ≥ 5 ms, upstream TTFT 2 ms: added ≥ 3 ms.
	if s := r.added.summary(); s.Count != 1 || s.P50US < 3000 || s.P50US > 3000+200_000 {
		t.Fatalf("added TTFT %+v", s)
	}
	if r.upTTFT.summary().P50US != 2000 || r.ack.summary().Count != 1 || r.start.summary().Count != 1 || r.done.summary().Count != 1 {
		t.Fatalf("up TTFT %+v ack %+v start %+v done %+v", r.upTTFT.summary(), r.ack.summary(), r.start.summary(), r.done.summary())
	}
	if r.disconnects.Load() != 1 {
		t.Fatalf("disconnects %d", r.disconnects.Load())
	}
}

func TestAIOptions(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseOptions([]string{"ai", "--streams", "50"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.scenario != "ai" || o.aiStreams != 50 || o.aiRate != 0 || o.aiTokens != 250 || o.aiModel != "fake/gpt-4o-mini" {
		t.Fatalf("%+v", o)
	}
	if o, _ := parseOptions([]string{"ai", "--rate", "7"}, &stderr); o.aiRate != 7 {
		t.Fatalf("explicit rate %v", o.aiRate)
	}
	if _, err := parseOptions([]string{"ai", "--token-rate", "0"}, &stderr); err == nil {
		t.Fatal("zero token rate accepted")
	}
}

// In words mode the answer is prose, and the tool still knows when each
// token was written: every token of a delta (one or several) is found by
// its offset, with the time its chunk was written.
func TestUpstreamWords(t *testing.T) {
	rec := &upstreamStream{writes: make([]int64, 40)}
	up, err := startUpstream("127.0.0.1:0", "gpt-4o-mini", "ab12", streamPlan{tokens: 2, rate: 1000},
		func(idx, recv int64) (streamPlan, *upstreamStream) {
			return streamPlan{tokens: 40, rate: 2000, words: true}, rec
		})
	if err != nil {
		t.Fatal(err)
	}
	defer up.close()
	c := llm.New(llm.Provider{Name: "fake", BaseURL: up.URL}, llm.Options{})
	offs := wordOffsets(40)
	var text strings.Builder
	var seen []int
	_, err = c.Stream(context.Background(), llm.Request{Model: "gpt-4o-mini", Messages: []llm.Message{{Role: "user", Content: "ai1 ab12 3 hi"}}},
		func(d string, _ time.Time) {
			off := int64(text.Len())
			text.WriteString(d)
			eachWord(offs, off, len(d), func(k int) {
				if atomic.LoadInt64(&rec.writes[k]) == 0 {
					t.Errorf("token %d arrived before its write time was kept", k)
				}
				seen = append(seen, k)
			})
		})
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(answerWords[:40], " "); text.String() != " "+want || int64(text.Len()) != offs[40] {
		t.Fatalf("answer %q", text.String())
	}
	if len(seen) != 40 || seen[0] != 0 || seen[39] != 39 {
		t.Fatalf("tokens found: %v", seen)
	}
	// A coalesced delta holds several tokens: each is found once.
	var ks []int
	if n := eachWord(offs, offs[3], int(offs[6]-offs[3]), func(k int) { ks = append(ks, k) }); n != 3 || fmt.Sprint(ks) != "[3 4 5]" {
		t.Fatalf("tokens of a coalesced delta: %d %v", n, ks)
	}
	if distinct := len(slices.Compact(slices.Sorted(slices.Values(answerWords)))); distinct < 80 || distinct > 150 {
		t.Fatalf("%d distinct words in the answers' text", distinct)
	}
}
