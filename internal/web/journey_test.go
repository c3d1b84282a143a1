package web_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/chromedp/chromedp"
)

const password = "correct horse battery staple 7"

// signUp creates an account through the sign-in screen.
func signUp(p *page, base, name, email string) {
	p.t.Helper()
	p.do(chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("auth-form")),
		chromedp.Click(chromedp.ID("tab-register")),
		chromedp.SendKeys(chromedp.ID("auth-name"), name),
		chromedp.SendKeys(chromedp.ID("auth-email"), email),
		chromedp.SendKeys(chromedp.ID("auth-password"), password),
		chromedp.Click(chromedp.ID("auth-submit")),
		chromedp.WaitVisible(chromedp.ID("app")))
	p.waitJS("the socket", `window.aichat && window.aichat.socket.ready`)
}

// openChat clicks the chat titled title in the list.
func openChat(p *page, title string) {
	p.t.Helper()
	p.waitJS("chat "+title+" in the list", `[...document.querySelectorAll('#chat-list a .t')].some(e => e.textContent === `+js(title)+`)`)
	eval[chromedp.Void](p, `[...document.querySelectorAll('#chat-list a')].find(a => a.querySelector('.t').textContent === `+js(title)+`).click()`)
	p.waitJS("chat "+title+" open", `document.getElementById('chat-title').textContent === `+js(title)+` && !document.getElementById('messages').hidden`)
}

// send types a message and presses Enter.
func send(p *page, text string) {
	p.t.Helper()
	p.do(chromedp.Focus(chromedp.ID("input")), chromedp.SendKeys(chromedp.ID("input"), text+"\r"))
}

// bodies are the texts of the messages shown, in order.
func bodies(p *page) []string {
	return eval[[]string](p, `[...document.querySelectorAll('#message-list li.msg:not(.system) .body')].map(b => b.textContent)`)
}

func waitMessage(p *page, text string) {
	p.t.Helper()
	p.waitJS("message "+text, `[...document.querySelectorAll('#message-list li.msg:not(.pending) .body')].some(b => b.textContent === `+js(text)+`)`)
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// TestBrowserGroupChat: two people in two browser contexts create a group
// chat, exchange messages, see unread badges and typing, and nothing is
// lost or doubled across a reconnect.
func TestBrowserGroupChat(t *testing.T) {
	b := newBrowser(t)
	srv := apptest.Start(t, storetest.SQLite(t))
	alice := b.newPage("alice", 1280, 800)
	bob := b.newPage("bob", 1280, 800)
	signUp(alice, srv.URL, "Alice", "alice@example.com")
	signUp(bob, srv.URL, "Bob", "bob@example.com")

	// Alice creates the group chat from the dialog.
	alice.do(chromedp.Click(chromedp.ID("new-chat")),
		chromedp.WaitVisible(chromedp.ID("new-chat-dialog")),
		chromedp.SendKeys(chromedp.ID("new-title"), "Team"),
		chromedp.SendKeys(chromedp.ID("new-people"), "bob@example.com"),
		chromedp.Click(chromedp.CSS("#new-chat-form button[type=submit]")))
	alice.waitJS("the new chat open", `document.getElementById('chat-title').textContent === 'Team'`)

	// Bob sees the chat appear, and its unread badge once Alice writes.
	bob.waitJS("Team in Bob's list", `[...document.querySelectorAll('#chat-list a .t')].some(e => e.textContent === 'Team')`)
	send(alice, "hello bob")
	waitMessage(alice, "hello bob")
	if n := eval[int](alice, `document.querySelectorAll('#message-list li.pending').length`); n != 0 {
		t.Fatalf("alice: %d messages still pending after the ack", n)
	}
	bob.waitJS("an unread badge", `(document.querySelector('#chat-list a .badge') || {}).textContent === '1'`)
	if title := eval[string](bob, `document.title`); title != "(1) aichat" {
		t.Fatalf("bob's title = %q, want the unread total", title)
	}

	// Bob opens it: the message is there, the badge and the title clear.
	openChat(bob, "Team")
	waitMessage(bob, "hello bob")
	bob.waitJS("the badge cleared", `!document.querySelector('#chat-list a .badge') && document.title === 'aichat'`)

	// Typing shows on the other side.
	bob.do(chromedp.SendKeys(chromedp.ID("input"), "hi"))
	alice.waitJS("bob typing", `document.getElementById('typing').textContent === 'Bob is typing…'`)
	bob.do(chromedp.SendKeys(chromedp.ID("input"), " alice\r"))
	waitMessage(alice, "hi alice")
	alice.waitJS("typing cleared by the message", `document.getElementById('typing').textContent === ''`)

	// Shift+Enter is a new line, Enter sends.
	alice.do(chromedp.Focus(chromedp.ID("input")))
	alice.do(chromedp.SendKeys(chromedp.ID("input"), "line one"))
	shiftEnter(alice)
	alice.do(chromedp.SendKeys(chromedp.ID("input"), "line two\r"))
	waitMessage(bob, "line one\nline two")

	// Presence: Alice's people dialog shows Bob online.
	alice.do(chromedp.Click(chromedp.ID("open-members")), chromedp.WaitVisible(chromedp.ID("members-dialog")))
	alice.waitJS("bob online", `!!document.querySelector('#member-list li .dot.on + span.n[title="bob@example.com"]')`)
	alice.do(chromedp.Click(chromedp.ID("members-close")))

	// Bob's connection drops; Alice writes meanwhile; Bob writes while
	// offline. After the reconnect nothing is missing or doubled, and Bob's
	// queued message is stored once.
	eval[chromedp.Void](bob, `window.aichat.socket.stop()`)
	bob.waitJS("the reconnecting banner", `!document.getElementById('banner').hidden`)
	for i := 1; i <= 3; i++ {
		send(alice, fmt.Sprintf("while you were away %d", i))
	}
	waitMessage(alice, "while you were away 3")
	send(bob, "queued while offline")
	bob.waitJS("the queued message pending", `[...document.querySelectorAll('#message-list li.pending .state')].some(s => s.textContent === 'Waiting for the connection…')`)
	eval[chromedp.Void](bob, `window.aichat.socket.start()`)
	waitMessage(bob, "while you were away 3")
	waitMessage(bob, "queued while offline")
	bob.waitJS("the banner gone", `document.getElementById('banner').hidden`)
	waitMessage(alice, "queued while offline")
	got := bodies(bob)
	for _, want := range []string{"hello bob", "hi alice", "while you were away 1", "while you were away 2", "while you were away 3", "queued while offline"} {
		if n := count(got, want); n != 1 {
			t.Fatalf("bob sees %q %d times after the reconnect: %q", want, n, got)
		}
	}
	// The server stored it once too.
	var hist struct {
		Messages []struct{ Content string } `json:"messages"`
	}
	bobToken := eval[string](bob, `JSON.parse(localStorage.getItem('aichat.session')).access`)
	chatID := eval[string](bob, `window.aichat.view.id`)
	srv.Do(t, "GET", "/api/v1/chats/"+chatID+"/messages?limit=100", bobToken, nil).JSON(t, &hist)
	stored := 0
	for _, m := range hist.Messages {
		if m.Content == "queued while offline" {
			stored++
		}
	}
	if stored != 1 {
		t.Fatalf("the queued message is stored %d times", stored)
	}

	// Mentioning the assistant with no provider configured tells everyone
	// what the admin has to set.
	send(alice, "@ai what now?")
	for _, p := range []*page{alice, bob} {
		p.waitJS("the not-configured notice", `[...document.querySelectorAll('#message-list li.system .body')].some(b => b.textContent.startsWith('Assistant: No AI provider is configured'))`)
	}

	alice.screenshot("desktop-group-chat")
	for _, p := range []*page{alice, bob} {
		if probs := p.consoleProblems(); len(probs) > 0 {
			t.Errorf("%s: console errors: %q", p.name, probs)
		}
	}
}

// TestBrowserAssistant: the answer streams in rendered as Markdown with
// highlighted code and a copy button; Stop keeps the partial text; a reload
// mid-answer shows the text so far and goes on; hostile HTML in an answer
// does nothing.
func TestBrowserAssistant(t *testing.T) {
	b := newBrowser(t)
	up := llmtest.NewServer(t)
	srv := apptest.Start(t, storetest.SQLite(t), apptest.WithAI(up.URL))
	p := b.newPage("carol", 1280, 800)
	signUp(p, srv.URL, "Carol", "carol@example.com")
	p.do(chromedp.Click(chromedp.ID("new-chat")),
		chromedp.WaitVisible(chromedp.ID("new-chat-dialog")),
		chromedp.SendKeys(chromedp.ID("new-title"), "Ask"),
		chromedp.Click(chromedp.CSS("#new-chat-form button[type=submit]")))
	p.waitJS("the chat open", `document.getElementById('chat-title').textContent === 'Ask'`)

	// 1. A streamed answer with a code block.
	answer := "Here is **Go**:\n\n```go\nfunc main() {\n\tprintln(\"hi\")\n}\n```\n\nThat is all."
	up.Enqueue(llmtest.Script{Text: answer, TokensPerSecond: 20})
	send(p, "show me go")
	p.waitJS("streaming with text and Stop shown", `(() => { const m = document.querySelector('li.msg.assistant.streaming .body'); return m && m.textContent.length > 0 && !document.getElementById('stop').hidden; })()`)
	p.waitJS("the answer complete", `(() => { const m = document.querySelector('li.msg.assistant:not(.streaming)'); return m && m.querySelector('pre.chroma code.language-go') && m.querySelector('strong'); })()`)
	if got := eval[string](p, `document.querySelector('li.msg.assistant .body pre code').textContent`); !strings.Contains(got, "println(\"hi\")") {
		t.Fatalf("code block = %q", got)
	}
	if n := eval[int](p, `document.querySelectorAll('li.msg.assistant pre > button.copy').length`); n != 1 {
		t.Fatalf("%d copy buttons, want 1", n)
	}
	p.waitJS("Stop hidden after the answer", `document.getElementById('stop').hidden`)
	p.waitJS("Regenerate on the last answer", `!!document.querySelector('li.msg.assistant:last-child button.regen')`)
	p.screenshot("desktop-assistant")

	// Regenerate rewrites the last answer in place.
	up.Enqueue(llmtest.Script{Text: "A second opinion.", TokensPerSecond: 40})
	p.do(chromedp.Click(chromedp.CSS("li.msg.assistant:last-child button.regen")))
	p.waitJS("the regenerated answer", `document.querySelectorAll('li.msg.assistant').length === 1 && document.querySelector('li.msg.assistant:not(.streaming) .body') && document.querySelector('li.msg.assistant .body').textContent.trim() === 'A second opinion.'`)

	// 2. Stop keeps the partial text.
	up.Enqueue(llmtest.Script{Text: strings.Repeat("slow words keep coming ", 60), TokensPerSecond: 20})
	send(p, "talk slowly")
	p.waitJS("a second answer streaming", `document.querySelectorAll('li.msg.assistant').length === 2 && !!document.querySelector('li.msg.assistant.streaming .body') && document.querySelector('li.msg.assistant.streaming .body').textContent.length > 10`)
	p.do(chromedp.Click(chromedp.ID("stop")))
	p.waitJS("stopped", `(() => { const m = [...document.querySelectorAll('li.msg.assistant')].pop(); return !m.classList.contains('streaming') && m.querySelector('.state') && m.querySelector('.state').textContent === 'Stopped.'; })()`)
	partial := eval[string](p, `[...document.querySelectorAll('li.msg.assistant')].pop().querySelector('.body').textContent`)
	if !strings.HasPrefix(partial, "slow words") || len(partial) > 60*23 {
		t.Fatalf("stopped answer shows %q", partial)
	}

	// 3. Reload mid-answer: the text so far shows, then the rest streams in.
	long := strings.Repeat("steady tokens flow ", 40) + "THE END"
	up.Enqueue(llmtest.Script{Text: long, TokensPerSecond: 40})
	send(p, "long one")
	p.waitJS("third answer streaming", `document.querySelectorAll('li.msg.assistant').length === 3 && (document.querySelector('li.msg.assistant.streaming .body') || {textContent: ''}).textContent.length > 30`)
	p.do(chromedp.Reload())
	p.waitJS("the chat back after reload", `window.aichat && window.aichat.view.id && document.querySelectorAll('li.msg.assistant').length === 3`)
	p.waitJS("still streaming after reload", `!!document.querySelector('li.msg.assistant.streaming') || [...document.querySelectorAll('li.msg.assistant')].pop().textContent.includes('THE END')`)
	p.waitJS("the whole answer after reload", `(() => { const m = [...document.querySelectorAll('li.msg.assistant')].pop(); return !m.classList.contains('streaming') && m.querySelector('.body').textContent.trim() === `+js(strings.TrimSpace(long))+`; })()`)

	// 4. Hostile HTML in an answer is shown as text and runs nothing.
	evil := "<img src=x onerror=\"window.__xss=1\"> <script>window.__xss=2</script> [click](javascript:window.__xss=3) <a href=\"javascript:window.__xss=4\">a</a>"
	up.Enqueue(llmtest.Script{Text: evil, TokensPerSecond: 200})
	send(p, "be evil")
	p.waitJS("the evil answer complete", `document.querySelectorAll('li.msg.assistant').length === 4 && !document.querySelector('li.msg.assistant.streaming')`)
	last := `[...document.querySelectorAll('li.msg.assistant')].pop().querySelector('.body')`
	if n := eval[int](p, last+`.querySelectorAll('img, script, [onerror], a[href^="javascript"]').length`); n != 0 {
		t.Fatalf("the answer holds %d dangerous elements: %s", n, eval[string](p, last+`.innerHTML`))
	}
	eval[chromedp.Void](p, last+`.querySelectorAll('a').forEach(a => a.click())`)
	time.Sleep(200 * time.Millisecond)
	if v := eval[string](p, `String(window.__xss)`); v != "undefined" {
		t.Fatalf("injected script ran: window.__xss = %s", v)
	}
	if txt := eval[string](p, last+`.textContent`); !strings.Contains(txt, "<img src=x") {
		t.Fatalf("the HTML is not shown as text: %q", txt)
	}

	// Phone size: one pane at a time.
	p.do(chromedp.EmulateViewport(360, 740))
	p.waitJS("chat pane only", `getComputedStyle(document.getElementById('sidebar')).display === 'none'`)
	p.screenshot("phone-chat")
	p.do(chromedp.Click(chromedp.ID("back")))
	p.waitJS("list pane only", `getComputedStyle(document.getElementById('chat')).display === 'none' && getComputedStyle(document.getElementById('sidebar')).display !== 'none'`)
	p.screenshot("phone-list")
	if probs := p.consoleProblems(); len(probs) > 0 {
		t.Errorf("console errors: %q", probs)
	}
}
