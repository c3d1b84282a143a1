package web_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
)

// driver is what the scroll scenario needs from a browser, so the same
// steps and the same assertions run in Chromium and in Firefox.
type driver interface {
	evalJSON(expr string, v any)
	waitFor(what, expr string)
	load(url string)
}

func (p *page) evalJSON(expr string, v any) {
	p.t.Helper()
	s := eval[string](p, "JSON.stringify("+expr+")")
	if v != nil {
		if err := json.Unmarshal([]byte(s), v); err != nil {
			p.fail("decode %s: %v", s, err)
		}
	}
}
func (p *page) waitFor(what, expr string) { p.t.Helper(); p.waitJS(what, expr) }
func (p *page) load(url string)           { p.t.Helper(); p.evalJSON(`location.href = `+js(url), nil) }

func (f *firefox) evalJSON(expr string, v any) { f.t.Helper(); f.eval(expr, v) }
func (f *firefox) waitFor(what, expr string)   { f.t.Helper(); f.waitJS(what, expr) }
func (f *firefox) load(url string)             { f.t.Helper(); f.navigate(url) }

// TestScrollSameInChromiumAndFirefox: opening at the bottom, loading older
// pages without moving the message on screen, the new-messages pill while
// scrolled up, and sticking to the bottom while an answer streams — the
// same steps and tolerances in both browsers (the view scrolls itself,
// with overflow-anchor off, so neither browser's scroll anchoring differs).
func TestScrollSameInChromiumAndFirefox(t *testing.T) {
	for _, name := range []string{"chromium", "firefox"} {
		t.Run(name, func(t *testing.T) {
			var d driver
			if name == "chromium" {
				d = newBrowser(t).newPage("chromium", 1024, 700)
			} else {
				d = startFirefox(t, 1024, 700)
			}
			up := llmtest.NewServer(t)
			srv := apptest.Start(t, storetest.SQLite(t), apptest.WithAI(up.URL))
			scrollScenario(t, d, srv, up)
		})
	}
}

func scrollScenario(t *testing.T, d driver, srv *apptest.Server, up *llmtest.Server) {
	hana := srv.Register(t, "hana@example.com")
	ivan := srv.Register(t, "ivan@example.com")
	var c struct{ ID string }
	srv.Do(t, "POST", "/api/v1/chats", hana.AccessToken, map[string]any{"title": "Scroll", "participants": []string{"ivan@example.com"},
		"settings": map[string]any{"ai_mode": "off"}}).JSON(t, &c)
	const total = 300
	for i := 1; i <= total; i++ {
		tok := hana.AccessToken
		if i%2 == 0 {
			tok = ivan.AccessToken
		}
		body := fmt.Sprintf("line %d", i)
		if i%7 == 0 {
			body += "\nand a longer second line so that heights differ from one message to the next"
		}
		if r := srv.Do(t, "POST", "/api/v1/chats/"+c.ID+"/messages", tok, map[string]any{"content": body}); r.Status != 201 {
			t.Fatalf("seed: %d %s", r.Status, r.Body)
		}
	}

	d.load(srv.URL + "/")
	d.waitFor("the sign-in form", `!document.getElementById('auth').hidden`)
	d.evalJSON(`(() => { document.getElementById('auth-email').value = 'hana@example.com';
		document.getElementById('auth-password').value = `+js(apptest.Password)+`;
		document.getElementById('auth-submit').click(); return true; })()`, nil)
	d.waitFor("signed in", `!document.getElementById('app').hidden && window.aichat.socket.ready`)
	d.waitFor("the chat listed", `document.querySelector('#chat-list a')`)
	d.evalJSON(`(document.querySelector('#chat-list a').click(), true)`, nil)
	d.waitFor("the first page", `window.aichatMetrics && window.aichatMetrics.messages === 50`)

	atBottom := `(() => { const m = document.getElementById('messages'); return m.scrollHeight - m.scrollTop - m.clientHeight < 2; })()`
	var ok bool
	if d.evalJSON(atBottom, &ok); !ok {
		t.Fatal("did not open at the bottom")
	}

	for loaded := 50; loaded < total; {
		var anchor struct {
			Seq string
			Y   float64
		}
		d.evalJSON(`(() => { const m = document.getElementById('messages'); const a = document.querySelector('#message-list li.msg');
			return {Seq: a.dataset.seq, Y: a.getBoundingClientRect().top - m.getBoundingClientRect().top + m.scrollTop}; })()`, &anchor)
		d.evalJSON(`(document.getElementById('messages').scrollTop = 0, true)`, nil)
		d.waitFor("an older page", fmt.Sprintf(`document.querySelectorAll('#message-list li.msg').length > %d && !window.aichat.view.loadingOlder`, loaded))
		var y float64
		d.evalJSON(`(() => { const m = document.getElementById('messages'); return document.querySelector('#message-list li.msg[data-seq="`+anchor.Seq+`"]').getBoundingClientRect().top - m.getBoundingClientRect().top; })()`, &y)
		if diff := y - anchor.Y; diff < -2 || diff > 2 {
			t.Fatalf("message %s moved %.1f px when an older page loaded", anchor.Seq, diff)
		}
		d.evalJSON(`document.querySelectorAll('#message-list li.msg').length`, &loaded)
	}

	// Scrolled into the middle: a new message shows the pill, the view stays.
	d.evalJSON(`(document.getElementById('messages').scrollTop = 3000, true)`, nil)
	d.waitFor("unstuck", `!window.aichat.view.stick`)
	var top float64
	d.evalJSON(`document.getElementById('messages').scrollTop`, &top)
	srv.Do(t, "POST", "/api/v1/chats/"+c.ID+"/messages", ivan.AccessToken, map[string]any{"content": "news from ivan"})
	d.waitFor("the pill", `!document.getElementById('new-pill').hidden`)
	var now float64
	if d.evalJSON(`document.getElementById('messages').scrollTop`, &now); now != top {
		t.Fatalf("the view moved from %.0f to %.0f while scrolled up", top, now)
	}
	d.evalJSON(`(document.getElementById('new-pill').click(), true)`, nil)
	d.waitFor("at the bottom after the pill", atBottom+` && document.getElementById('new-pill').hidden`)

	// At the bottom, a streaming answer keeps the view at the bottom the
	// whole time it grows.
	srv.Do(t, "PATCH", "/api/v1/chats/"+c.ID, hana.AccessToken, map[string]any{"settings": map[string]any{"ai_mode": "always"}})
	up.Enqueue(llmtest.Script{Text: "A long answer, line after line.\n\n" + repeatLines(40), TokensPerSecond: 150})
	srv.Do(t, "POST", "/api/v1/chats/"+c.ID+"/messages", ivan.AccessToken, map[string]any{"content": "tell me more"})
	d.waitFor("the answer streaming", `document.querySelector('li.msg.assistant.streaming')`)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		var st struct {
			Bottom, Streaming bool
		}
		d.evalJSON(`(() => { const m = document.getElementById('messages'); return {Bottom: m.scrollHeight - m.scrollTop - m.clientHeight < 2 || !!window.aichat.view.frame, Streaming: !!document.querySelector('li.msg.assistant.streaming')}; })()`, &st)
		if !st.Bottom {
			t.Fatal("the view left the bottom while the answer grew")
		}
		if !st.Streaming {
			break
		}
	}
	d.waitFor("the answer done, still at the bottom", `!document.querySelector('li.msg.assistant.streaming') && `+atBottom)
	if f, ok := d.(*firefox); ok {
		f.screenshot("firefox-chat")
	}
}

func repeatLines(n int) string {
	s := ""
	for i := 1; i <= n; i++ {
		s += fmt.Sprintf("Line %d of the answer, long enough to wrap on a narrow screen.\n\n", i)
	}
	return s
}
