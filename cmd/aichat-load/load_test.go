package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/realtime"
	"github.com/aichat/aichat/internal/store/storetest"
)

func TestPacerDue(t *testing.T) {
	for _, rate := range []float64{1, 3, 7, 1000, 1234.5, 20000} {
		p := pacer{rate: rate, total: 5000}
		for i := int64(0); i < 5000; i++ {
			at := p.dueAt(i)
			if got := p.dueBy(at); got != min(i+1, p.total) {
				t.Fatalf("rate %v: dueBy(dueAt(%d)=%v) = %d, want %d", rate, i, at, got, i+1)
			}
			if i > 0 && p.dueBy(at-1) != i {
				t.Fatalf("rate %v: message %d due before its time", rate, i)
			}
		}
	}
	p := pacer{rate: 1000, total: 10}
	if p.dueBy(-time.Millisecond) != 0 || p.dueBy(time.Hour) != 10 {
		t.Fatal("dueBy bounds")
	}
}

func TestPacerRunOpenLoop(t *testing.T) {
	// 200 messages at 2000/s take ~100 ms; every one is emitted once, in
	// order, never before its due time, even though emit is slow at first
	// (an open loop catches up instead of shifting later messages).
	p := pacer{rate: 2000, total: 200}
	start := time.Now()
	var got []int64
	p.run(context.Background(), start, func(i int64, due time.Time) {
		if time.Now().Before(due) {
			t.Errorf("message %d emitted before due", i)
		}
		if want := start.Add(p.dueAt(i)); !due.Equal(want) {
			t.Errorf("message %d due %v, want %v", i, due, want)
		}
		if i == 0 {
			time.Sleep(30 * time.Millisecond)
		}
		got = append(got, i)
	})
	if len(got) != 200 {
		t.Fatalf("emitted %d, want 200", len(got))
	}
	for i, v := range got {
		if v != int64(i) {
			t.Fatalf("out of order at %d: %d", i, v)
		}
	}
	if el := time.Since(start); el < 99*time.Millisecond || el > time.Second {
		t.Fatalf("took %v, want ~100ms", el)
	}
}

func TestHistogramSummary(t *testing.T) {
	h := newStripedHist(4)
	for i := 1; i <= 1000; i++ {
		h.record(i, time.Duration(i)*time.Millisecond)
	}
	s := h.summary()
	check := func(name string, got, want int64) {
		// HDR with 3 significant digits: within 0.1 %.
		if d := got - want; d < -want/1000-1 || d > want/1000+1 {
			t.Errorf("%s = %d µs, want %d", name, got, want)
		}
	}
	if s.Count != 1000 {
		t.Fatalf("count %d", s.Count)
	}
	check("p50", s.P50US, 500_000)
	check("p90", s.P90US, 900_000)
	check("p99", s.P99US, 990_000)
	check("p99.9", s.P999US, 999_000)
	check("max", s.MaxUS, 1_000_000)

	// Out-of-range values are clamped, not lost.
	one := newHist()
	recordDur(one, -time.Second)
	recordDur(one, time.Hour)
	if one.TotalCount() != 2 {
		t.Fatalf("clamped values lost: %d", one.TotalCount())
	}
	if (summarize(nil) != Summary{}) {
		t.Fatal("empty summary")
	}
}

func TestFormatting(t *testing.T) {
	for us, want := range map[int64]string{0: "0µs", 87: "87µs", 1240: "1.24ms", 12345: "12.3ms", 1234567: "1.235s"} {
		if got := fmtUS(us); got != want {
			t.Errorf("fmtUS(%d) = %q, want %q", us, got, want)
		}
	}
	for b, want := range map[float64]string{512: "512 B", 16 << 10: "16.0 KiB", 3 << 20: "3.0 MiB", -2048: "-2.0 KiB"} {
		if got := fmtBytes(b); got != want {
			t.Errorf("fmtBytes(%v) = %q, want %q", b, got, want)
		}
	}
	var buf bytes.Buffer
	latencyTable(&buf, []namedSummary{
		{"send→deliver", Summary{Count: 10, P50US: 900, P90US: 1500, P99US: 18000, P999US: 25000, MaxUS: 2_000_000}},
		{"empty", Summary{}},
	})
	out := buf.String()
	for _, want := range []string{"p99.9", "900µs", "1.50ms", "18.0ms", "25.0ms", "2.000s", "empty"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if got := medianRange([]int64{3000, 1000, 2000}); got != "2.00ms (1.00ms–3.00ms)" {
		t.Errorf("medianRange = %q", got)
	}
	if got := fmtCounts(map[string]int64{"b": 2, "a": 1}); got != "a 1, b 2" {
		t.Errorf("fmtCounts = %q", got)
	}
}

func TestMarkerAndFrames(t *testing.T) {
	m := marker{Run: "ab12", Inst: 1, Sender: 42, Seq: 123456, TS: 987654321012}
	text := m.text(100)
	if len(text) != 100 {
		t.Fatalf("text is %d bytes", len(text))
	}
	// The frame the server sends: a chat_message whose data is the message.
	msg := map[string]any{"id": "x", "chat_id": "c", "seq": 1, "author": "u", "author_kind": "user",
		"client_id": "ab12-123456", "content": text, "status": "complete"}
	frame, _ := json.Marshal(struct {
		Type string `json:"type"`
		Data any    `json:"data"`
	}{"chat_message", msg})
	if frameType(frame) != "chat_message" {
		t.Fatalf("type %q", frameType(frame))
	}
	c, ok := messageContent(frame)
	if !ok {
		t.Fatal("no content")
	}
	got, ok := parseMarker(c)
	if !ok || got != m {
		t.Fatalf("parseMarker = %+v %v, want %+v", got, ok, m)
	}
	if _, ok := parseMarker([]byte("hello there")); ok {
		t.Fatal("parsed a foreign text")
	}

	ack := []byte(`{"type":"ack","id":"77","data":{"client_id":"x","duplicate":false,"message":{"id":"m"}}}`)
	if frameType(ack) != "ack" || frameID(ack) != "77" {
		t.Fatalf("ack: %q %q", frameType(ack), frameID(ack))
	}
	errf := []byte(`{"type":"error","id":"9","data":{"code":"rate_limited","message":"slow down"}}`)
	if frameID(errf) != "9" || errorCode(errf) != "rate_limited" {
		t.Fatalf("error: %q %q", frameID(errf), errorCode(errf))
	}
	// Another key order still parses, through encoding/json.
	odd := []byte(`{"data":{},"id":"5","type":"pong"}`)
	if frameType(odd) != "pong" || frameID(odd) != "5" {
		t.Fatalf("odd: %q %q", frameType(odd), frameID(odd))
	}

	// The command the generator sends is valid JSON with the right fields.
	var cmd struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data struct {
			ChatID   string `json:"chat_id"`
			Content  string `json:"content"`
			ClientID string `json:"client_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(sendFrame(77, "chat-1", text, "ab12-77"), &cmd); err != nil {
		t.Fatal(err)
	}
	if cmd.Type != "send_message" || cmd.ID != "77" || cmd.Data.ChatID != "chat-1" || cmd.Data.Content != text || cmd.Data.ClientID != "ab12-77" {
		t.Fatalf("send frame: %+v", cmd)
	}
}

func TestParseProm(t *testing.T) {
	in := `# HELP x
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.5e+07
aichat_ws_events_sent_total{type="chat_message"} 100
aichat_ws_events_sent_total{type="ack"} 5
aichat_ws_disconnects_total{reason="client"} 3
go_memstats_next_gc_bytes 4e+06
go_gc_gogc_percent 100
`
	p, err := parseProm(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if p.sum("process_resident_memory_bytes") != 25e6 || p.sum("aichat_ws_events_sent_total") != 105 {
		t.Fatalf("sums: %v", p)
	}
	if got := p.byLabel("aichat_ws_events_sent_total", "type"); got["chat_message"] != 100 || got["ack"] != 5 {
		t.Fatalf("byLabel: %v", got)
	}
	if p.heapLive() != 2e6 {
		t.Fatalf("heapLive %v", p.heapLive())
	}
	a := serverSnap{URL: "u", At: time.Unix(0, 0), M: promText{"process_cpu_seconds_total": 1, "aichat_ws_events_sent_total{type=\"ack\"}": 5}}
	b := serverSnap{URL: "u", At: time.Unix(10, 0), M: promText{"process_cpu_seconds_total": 6, "aichat_ws_events_sent_total{type=\"ack\"}": 8}}
	r := compareSnaps(a, b)
	if r.CPUPercent != 50 || r.EventsSent["ack"] != 3 {
		t.Fatalf("compare: %+v", r)
	}
	if _, err := parseProm(strings.NewReader("broken_line\n")); err == nil {
		t.Fatal("no error for a line without a value")
	}
}

func TestOptions(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseOptions([]string{"redis", "--url", "http://a:1/", "--url", "http://b:2", "--rate", "50"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.scenario != "redis" || len(o.urls) != 2 || o.urls[0] != "http://a:1" || o.rate != 50 {
		t.Fatalf("%+v", o)
	}
	if _, err := parseOptions([]string{"redis"}, &stderr); err == nil {
		t.Fatal("redis with one server accepted")
	}
	if _, err := parseOptions([]string{"--scenario", "bogus"}, &stderr); err == nil {
		t.Fatal("unknown scenario accepted")
	}
	if u, _ := wsURL("http://127.0.0.1:8080"); u != "ws://127.0.0.1:8080/ws" {
		t.Fatalf("wsURL %q", u)
	}
	if ips := sourceIPs(3); len(ips) != 3 || ips[0].String() != "127.0.0.2" || ips[2].String() != "127.0.0.4" {
		t.Fatalf("sourceIPs %v", ips)
	}
}

// runScenario runs the tool against srv with args, briefly, and returns
// the report as written to --json and what it printed.
func runScenario(t *testing.T, srv *apptest.Server, args ...string) (*Report, string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "report.json")
	args = append(args, "--url", srv.URL, "--json", out, "--settle", "0s", "--timeout", "5s", "--reg-concurrency", "4")
	var stderr bytes.Buffer
	o, err := parseOptions(args, &stderr)
	if err != nil {
		t.Fatalf("options %v: %v\n%s", args, err, stderr.String())
	}
	o.logf = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout bytes.Buffer
	runErr := run(ctx, o, &stdout)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no report (run: %v): %v", runErr, err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	// Every report carries the tool's fd limits and, per server, CPU and
	// memory before and after.
	var raw struct {
		Limits map[string]any `json:"fd_limits"`
	}
	json.Unmarshal(b, &raw)
	if _, ok := raw.Limits["raised_to"]; !ok {
		t.Errorf("report without fd limits: %s", b[:min(len(b), 300)])
	}
	for _, key := range []string{`"cpu_seconds_before"`, `"cpu_seconds_after"`, `"rss_before_bytes"`, `"heap_alloc_after_bytes"`, `"goroutines_after"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("report lacks %s", key)
		}
	}
	t.Log(stdout.String())
	return &rep, stdout.String(), runErr
}

func startServer(t *testing.T, opts ...apptest.Option) *apptest.Server {
	t.Helper()
	return apptest.Start(t, storetest.SQLite(t), opts...)
}

func TestStormScenario(t *testing.T) {
	srv := startServer(t)
	rep, out, err := runScenario(t, srv, "storm", "--conns", "20", "--conns-per-user", "2", "--login", "--connect-concurrency", "8")
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Storm
	if r == nil || r.Opened != 20 || r.Failed != 0 || r.Users != 10 {
		t.Fatalf("storm: %+v", r)
	}
	if r.LoginLat.Count != 10 || r.TicketLat.Count != 20 || r.UpgradeLat.Count != 20 || r.HelloLat.Count != 20 || r.TotalLat.Count != 20 {
		t.Fatalf("storm percentiles: login %d ticket %d upgrade %d hello %d total %d", r.LoginLat.Count, r.TicketLat.Count,
			r.UpgradeLat.Count, r.HelloLat.Count, r.TotalLat.Count)
	}
	if len(r.Servers) != 1 || r.Servers[0].RSSAfter == 0 || r.Servers[0].CPUSecondsAfter < r.Servers[0].CPUSecondsBefore {
		t.Fatalf("server figures: %+v", r.Servers)
	}
	if !strings.Contains(out, "upgrade→hello") {
		t.Fatalf("output:\n%s", out)
	}
	// At a set arrival rate, with the tokens already saved.
	rep, _, err = runScenario(t, srv, "storm", "--conns", "10", "--arrival-rate", "200")
	if err != nil || rep.Storm.Opened != 10 || rep.Storm.Lag.Count != 10 || rep.Storm.LoginLat.Count != 0 {
		t.Fatalf("storm at a rate: %v %+v", err, rep.Storm)
	}
}

func TestFanoutSizes(t *testing.T) {
	srv := startServer(t)
	rep, out, err := runScenario(t, srv, "fanout", "--members", "2,3,5", "--rate", "20", "--warmup", "200ms",
		"--duration", "1s", "--drain", "3s")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Fanout) != 3 {
		t.Fatalf("%d phases, want 3", len(rep.Fanout))
	}
	for i, want := range []int{2, 3, 5} {
		f := rep.Fanout[i]
		if f.Members != want || f.Missing != 0 || f.Duplicates != 0 || f.Delivered == 0 {
			t.Fatalf("size %d: %+v", want, f)
		}
	}
	if !strings.Contains(out, "fanout by chat size") {
		t.Fatalf("no size table:\n%s", out)
	}
}

func TestReconnectScenario(t *testing.T) {
	srv := startServer(t)
	rep, out, err := runScenario(t, srv, "reconnect", "--clients", "12", "--members", "4", "--rate", "30",
		"--warmup", "1s", "--duration", "1500ms", "--drain", "5s", "--drop-share", "0.5")
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Reconnect
	if r.Clients != 12 || r.Chats != 3 || r.Dropped != 6 || r.Reconnected < 6 || r.DropToResumed.Count != 6 {
		t.Fatalf("reconnect: %+v", r)
	}
	if r.Missed != 0 || r.Doubled != 0 || r.Expected == 0 || r.Received != r.Expected {
		t.Fatalf("deliveries: expected %d received %d missed %d doubled %d", r.Expected, r.Received, r.Missed, r.Doubled)
	}
	if !strings.Contains(out, "MISSED 0, DOUBLED 0") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestReconnectCounts(t *testing.T) {
	c := &rcClient{}
	for _, s := range []int64{1, 2, 2, 4, 5} {
		c.see(s)
	}
	c.seen[5] |= 0 // delivered once
	rec, miss, dup := c.count(6)
	if rec != 5 || miss != 2 || dup != 1 { // 3 and 6 missing, 2 twice
		t.Fatalf("received %d missed %d doubled %d", rec, miss, dup)
	}
	c.seen[3] |= filledBit
	if _, miss, _ := c.count(5); miss != 0 {
		t.Fatalf("a seq filled over REST still counted missing: %d", miss)
	}
	f := []byte(`{"type":"chat_message","data":{"id":"m1","chat_id":"c1","seq":42,"author":"u","content":"x"}}`)
	if id, seq, ok := chatSeq(f); !ok || id != "c1" || seq != 42 {
		t.Fatalf("chatSeq: %q %d %v", id, seq, ok)
	}
	ack := []byte(`{"type":"ack","id":"7","data":{"client_id":"x","duplicate":false,"message":{"id":"m","chat_id":"c2","seq":9}}}`)
	if id, seq, ok := chatSeq(ack); !ok || id != "c2" || seq != 9 {
		t.Fatalf("chatSeq(ack): %q %d %v", id, seq, ok)
	}
	var cmd struct {
		Type, ID string
		Data     struct{ Chats map[string]int64 }
	}
	if err := json.Unmarshal(resumeFrame("r", map[string]int64{"c1": 41}), &cmd); err != nil || cmd.Type != "resume" || cmd.Data.Chats["c1"] != 41 {
		t.Fatalf("resume frame: %+v %v", cmd, err)
	}
}

func TestSlowScenario(t *testing.T) {
	// A short queue so the slow socket is dropped within the test.
	srv := startServer(t, apptest.WithHub(func(o *realtime.Options) { o.QueueSize = 16 }))
	rep, out, err := runScenario(t, srv, "slow", "--members", "3", "--rate", "100", "--size", "8000", "--baseline=false", "--slow-rcvbuf", "16384",
		"--warmup", "300ms", "--duration", "3s", "--drain", "3s", "--slow-after", "300ms", "--slow-stall", "10s")
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Slow
	if r.WithSlow == nil || r.WithSlow.Missing != 0 {
		t.Fatalf("slow phases: %+v", r)
	}
	// Whether the server drops it within the test depends on how much the
	// kernel buffers (MiBs on loopback): either way, the slow socket ends
	// with every message once, by reading its backlog or by resuming.
	s := r.Slow
	if s.Missed != 0 || s.Doubled != 0 || s.Final == 0 || s.Received < s.Final || s.FramesWhileSlow == 0 {
		t.Fatalf("slow consumer: %+v", s)
	}
	if s.Dropped && (!s.Resumed || s.DropReason == "") {
		t.Fatalf("dropped but not resumed: %+v", s)
	}
	t.Logf("slow consumer dropped: %v (%s), close code %d", s.Dropped, s.DropReason, s.CloseCode)
	if !strings.Contains(out, "slow socket: read") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestSoakScenario(t *testing.T) {
	srv := startServer(t)
	// The server runs in the test's own process: its goroutines and heap
	// include the tool's, hence the loose tolerance.
	rep, out, err := runScenario(t, srv, "soak", "--clients", "8", "--members", "4", "--rate", "20",
		"--warmup", "1s", "--duration", "2500ms", "--drain", "3s", "--settle-after", "2s", "--sample", "1s",
		"--drop-every", "1s", "--drop-share", "0.25", "--churn", "2", "--tolerance", "1")
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Soak
	if r == nil || r.Load == nil || len(r.Servers) != 1 || len(r.Servers[0].Samples) < 2 {
		t.Fatalf("soak: %+v", r)
	}
	if r.Load.Missed != 0 || r.Load.Doubled != 0 || r.Load.Rounds < 2 || r.Churned == 0 || !r.Returned {
		t.Fatalf("soak load: %+v churned %d returned %v", r.Load, r.Churned, r.Returned)
	}
	if !strings.Contains(out, "goroutines") {
		t.Fatalf("output:\n%s", out)
	}
}

// histWindow reads a server histogram over a window: the difference of
// two scrapes, quantiles interpolated inside the bucket, shares per bound.
func TestHistWindow(t *testing.T) {
	scrape := func(counts ...float64) promText {
		p := promText{}
		for i, le := range []string{"0.001", "0.01", "+Inf"} {
			p[`x_seconds_bucket{type="ai_delta",le="`+le+`"}`] = counts[i]
			p[`x_seconds_bucket{type="hello",le="`+le+`"}`] = 1000
		}
		return p
	}
	a, b := scrape(10, 10, 10), scrape(10+90, 10+99, 10+100)
	h, ok := histWindow(a, b, "x_seconds", `type="ai_delta"`)
	if !ok || h.Count != 100 {
		t.Fatalf("%+v %v", h, ok)
	}
	if math.Abs(h.P50-0.001*50/90) > 1e-9 || math.Abs(h.P99-(0.001+0.009*(99-90)/9)) > 1e-9 || h.P999 != 0.01 {
		t.Fatalf("quantiles %+v", h)
	}
	if h.Within["0.001"] != 0.9 || h.Within["0.01"] != 0.99 {
		t.Fatalf("shares %v", h.Within)
	}
	// Unfiltered, every series adds to its bucket (sum by le).
	c := scrape(10+90, 10+99, 10+100)
	for _, le := range []string{"0.001", "0.01", "+Inf"} {
		c[`x_seconds_bucket{type="hello",le="`+le+`"}`] = 1000 + 50
	}
	if all, ok := histWindow(a, c, "x_seconds", ""); !ok || all.Count != 150 || all.Within["0.001"] != (90.0+50)/150 {
		t.Fatalf("both series: %+v %v", all, ok)
	}
	if _, ok := histWindow(a, a, "x_seconds", `type="ai_delta"`); ok {
		t.Fatal("nothing observed, yet a summary")
	}
	if _, ok := histWindow(a, b, "y_seconds", ""); ok {
		t.Fatal("a histogram the server does not have")
	}
}
