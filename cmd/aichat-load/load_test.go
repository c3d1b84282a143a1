package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
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
